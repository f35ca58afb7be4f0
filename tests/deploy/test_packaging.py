"""The files in ``deploy/`` are checked, and where possible exercised, without Docker or
Kubernetes: the compose file against the Compose Specification's JSON Schema (and with
``docker compose config`` when the compose plugin is installed), the Kubernetes manifests
against the Kubernetes schemas (``kubernetes-validate``, pinned version), the Dockerfile's
build steps run in a fresh virtual environment and its HEALTHCHECK run against a node
started from that environment, the systemd units with ``systemd-analyze verify``. Every
command line these files give to ``exchange`` is parsed by the real CLI parser.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from exchange.cli import build_parser
from exchange.config import load_config
from tests.support.processes import REPO, NodeProcess, clean_env, free_port

DEPLOY = REPO / "deploy"
K8S_VERSION = "1.33.0"  # the Kubernetes version the manifests are validated against


def _cli_accepts(argv: list[str]) -> None:
    """The real ``exchange`` parser accepts ``argv`` (after the program name)."""
    build_parser().parse_args(argv)


# -- compose ----------------------------------------------------------------------------
def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text("utf-8"))
    return doc


def _compose_schema() -> dict[str, Any]:
    ref = (
        resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    )
    schema: dict[str, Any] = json.loads(ref.read_text(encoding="utf-8"))
    return schema


def test_compose_file_matches_the_compose_specification() -> None:
    schema = _compose_schema()
    jsonschema.validate(_compose(), schema)
    broken = _compose()
    broken["services"]["node"]["ports"] = 8700  # not a list
    broken["services"]["node"]["helthcheck"] = {}  # misspelt key
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(e.message for e in validator.iter_errors(broken))
    assert any("helthcheck" in e for e in errors) and any(
        "8700" in e for e in errors
    ), errors


def test_compose_region_is_complete_and_consistent() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"node", "postgres", "prometheus", "grafana"}
    node = services["node"]
    assert (
        DEPLOY / node["build"]["context"] / node["build"]["dockerfile"]
    ).resolve() == (DEPLOY / "Dockerfile").resolve()
    assert node["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "postgres:5432/exchange" in node["environment"]["EXCHANGE_DATABASE_URL"]
    for svc in services.values():  # every file mounted from the repository exists
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("./"):
                assert (DEPLOY / src).exists(), src
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = [
        t
        for job in prom["scrape_configs"]
        for sc in job["static_configs"]
        for t in sc["targets"]
    ]
    assert "node:8700" in targets  # Prometheus scrapes the compose service by its name
    assert node["healthcheck"]["test"] == ["CMD", *_dockerfile()["healthcheck"]]
    _cli_accepts(node["command"])
    for secret in (
        "EXCHANGE_DB_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
    ):  # no default secrets
        assert f"${{{secret}:?" in (DEPLOY / "compose.yaml").read_text()
        assert re.search(rf"^{secret}=", (DEPLOY / ".env.example").read_text(), re.M)


def _compose_plugin() -> bool:
    if shutil.which("docker") is None:
        return False
    return (
        subprocess.run(
            ["docker", "compose", "version"], capture_output=True, timeout=30
        ).returncode
        == 0
    )


@pytest.mark.skipif(
    not _compose_plugin(),
    reason="the docker compose plugin is not installed "
    "here; the file is validated against the Compose Specification schema above",
)
def test_docker_compose_config() -> None:
    env = clean_env(EXCHANGE_DB_PASSWORD="test", GRAFANA_ADMIN_PASSWORD="test")
    done = subprocess.run(
        ["docker", "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "-q"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


# -- Kubernetes ---------------------------------------------------------------------------
def _k8s() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for f in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text(encoding="utf-8")):
            if doc:
                out.append((f.name, doc))
    return out


def _kind(kind: str) -> dict[str, Any]:
    found = [d for _, d in _k8s() if d["kind"] == kind]
    assert len(found) == 1, kind
    return found[0]


def test_kubernetes_manifests_validate_against_the_schemas() -> None:
    import kubernetes_validate

    validated = []
    for _name, doc in _k8s():
        if doc["apiVersion"].startswith("postgresql.cnpg.io/"):
            continue  # a CRD: not in the core schemas (checked structurally below)
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        validated.append(doc["kind"])
    assert sorted(validated) == sorted(
        [
            "ConfigMap",
            "CronJob",
            "Deployment",
            "PersistentVolumeClaim",
            "PodDisruptionBudget",
            "Service",
        ]
    )
    bad = _kind("Deployment")
    bad["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}  # misspelt
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_kubernetes_deployment_is_production_shaped(tmp_path: Path) -> None:
    dep = _kind("Deployment")
    pod = dep["spec"]["template"]["spec"]
    node = pod["containers"][0]
    assert dep["spec"]["replicas"] >= 2
    assert node["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert node["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert node["resources"]["limits"]["memory"] and node["resources"]["limits"]["cpu"]
    assert (
        pod["securityContext"]["runAsNonRoot"]
        and pod["securityContext"]["runAsUser"] != 0
    )
    assert node["securityContext"]["readOnlyRootFilesystem"]
    _cli_accepts(node["args"])
    labels = dep["spec"]["template"]["metadata"]["labels"]
    for kind in ("Service", "PodDisruptionBudget"):
        sel = _kind(kind)["spec"]["selector"]
        sel = sel.get("matchLabels", sel)
        assert sel.items() <= labels.items(), kind
    # Secrets: the node key from a Secret, the database from the CloudNativePG cluster's.
    cluster = _kind("Cluster")
    env = {e["name"]: e for e in node["env"]}
    app_secret = f"{cluster['metadata']['name']}-app"
    assert (
        env["EXCHANGE_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == app_secret
    )
    assert (
        f"@{cluster['metadata']['name']}-ro:"
        in env["EXCHANGE_DATABASE_READ_URL"]["value"]
    )
    secrets = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert secrets == {"exchange-node-key"}
    assert not any(
        "value" in e
        and "password" in e["value"].lower().split("@")[0].replace("$(db_password)", "")
        for e in node["env"]
        if e["name"] != "EXCHANGE_DATABASE_READ_URL"
    )
    # The ConfigMap's node.toml is a valid configuration.
    toml = tmp_path / "node.toml"
    toml.write_text(_kind("ConfigMap")["data"]["node.toml"], encoding="utf-8")
    cfg = load_config(toml, environ={})
    assert str(cfg.key_path) == "/var/lib/congress-exchange/node.key"
    mounts = {m["mountPath"] for m in node["volumeMounts"]}
    assert {"/etc/congress-exchange", "/var/lib/congress-exchange", "/tmp"} <= mounts
    cron = _kind("CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    line = cron["command"][-1].split("&&")[0]
    _cli_accepts(shlex.split(re.sub(r"\$\([^)]*\)", "X", line))[1:])


def test_cloudnativepg_cluster_structure() -> None:
    """The Cluster CRD is not in the core schemas: check the fields the node relies on."""
    c = _kind("Cluster")
    assert c["apiVersion"] == "postgresql.cnpg.io/v1"
    spec = c["spec"]
    assert spec["instances"] >= 3 and spec["storage"]["size"]
    assert spec["bootstrap"]["initdb"] == {"database": "exchange", "owner": "exchange"}
    assert spec["minSyncReplicas"] >= 1  # a failover loses no acknowledged push
    assert int(spec["postgresql"]["parameters"]["max_connections"]) >= 100
    assert set(spec) <= {
        "instances",
        "imageName",
        "primaryUpdateStrategy",
        "storage",
        "postgresql",
        "minSyncReplicas",
        "maxSyncReplicas",
        "bootstrap",
        "affinity",
        "monitoring",
        "backup",
    }


# -- Dockerfile ---------------------------------------------------------------------------
def _dockerfile() -> dict[str, Any]:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)
    stages: list[list[tuple[str, str]]] = []
    healthcheck: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, arg = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instr, arg.strip()))
        if instr == "HEALTHCHECK":
            healthcheck = json.loads(arg[arg.index("CMD") + 3 :].strip())
    return {"stages": stages, "healthcheck": healthcheck}


def test_dockerfile_is_multi_stage_non_root_with_healthcheck() -> None:
    df = _dockerfile()
    stages = df["stages"]
    assert len(stages) >= 2 and " AS build" in stages[0][0][1]
    final = stages[-1]
    users = [a for i, a in final if i == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any(i == "COPY" and a.startswith("--from=build") for i, a in final)
    assert not any(
        i == "RUN" and "pip install" in a for i, a in final
    )  # no build tools at run
    assert df["healthcheck"] == ["exchange", "healthcheck"]
    _cli_accepts(df["healthcheck"][1:])
    entry = json.loads(next(a for i, a in final if i == "ENTRYPOINT"))
    cmd = json.loads(next(a for i, a in final if i == "CMD"))
    assert entry == ["exchange"]
    _cli_accepts(cmd)
    copied = " ".join(a for i, a in final + stages[0] if i == "COPY")
    assert ".key" not in copied and ".env" not in copied  # no secrets in the image


def _borrow_dependencies(venv: Path) -> None:
    """Let a fresh venv use this environment's packages (offline: no PyPI in tests).

    A ``.pth`` file puts this environment's site-packages after the venv's own, and the
    venv's bundled (older) setuptools makes way for this environment's build backend.
    """
    site = next((venv / "lib").glob("python3*/site-packages"))
    ours = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    (site / "zz_dependencies.pth").write_text(f"{ours}\n")
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "uninstall",
            "-y",
            "-q",
            "setuptools",
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )


def _run_build_stage(root: Path) -> dict[str, Path]:
    """Run the build stage's COPY and RUN steps with its paths mapped under ``root``."""
    stage = _dockerfile()["stages"][0]
    paths = {"/src": root / "src", "/opt/congress-exchange": root / "venv"}

    def mapped(text: str) -> str:
        for a, b in paths.items():
            text = re.sub(rf"(?<![\w/]){re.escape(a)}(?=/|\s|$)", str(b), text)
        return text

    for instr, arg in stage:
        if instr == "COPY":
            *srcs, dest = shlex.split(arg)
            target = Path(mapped(dest))
            for s in srcs:
                src = REPO / s
                out = (
                    target / src.name if dest.endswith("/") or len(srcs) > 1 else target
                )
                out.parent.mkdir(parents=True, exist_ok=True)
                if src.is_dir():
                    shutil.copytree(
                        src, out, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    shutil.copy2(src, out)
        elif instr == "RUN":
            cmd = shlex.split(mapped(arg))
            if cmd[0] == "python":
                cmd[0] = sys.executable
            if "pip" in Path(cmd[0]).name and "install" in cmd:
                # Offline and fast: the project only; its dependencies come from this
                # environment (below). The install command itself is the Dockerfile's.
                cmd += ["--no-deps", "--no-build-isolation", "--no-index", "--quiet"]
            done = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=300,
                env=clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1"),
            )
            assert done.returncode == 0, f"{arg}\n{done.stdout}\n{done.stderr}"
            if "venv" in cmd:
                _borrow_dependencies(Path(cmd[-1]))
    return paths


async def test_dockerfile_build_steps_and_healthcheck_in_a_fresh_venv(
    fresh_db: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    import asyncio

    paths = await asyncio.to_thread(_run_build_stage, tmp_path)
    venv = paths["/opt/congress-exchange"]
    py = venv / "bin" / "python"
    probe = (
        "import exchange, schemas, adapters, importlib.resources as r;"
        "print(exchange.__file__);"
        "print(len([p for p in r.files('exchange.storage.migrations').iterdir() if p.name.endswith('.sql')]));"
        "print(len([p for p in r.files('schemas.json').iterdir() if p.name.endswith('.json')]));"
        "print(r.files('exchange.http.dashboard').joinpath('index.html').is_file())"
    )
    done = subprocess.run(
        [str(py), "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    where, migrations, schemas, dashboard = done.stdout.split()
    assert where.startswith(str(venv)), where  # the installed copy, not the repository
    assert int(migrations) == len(
        list((REPO / "exchange/storage/migrations").glob("*.sql"))
    )
    assert int(schemas) == len(list((REPO / "schemas/json").glob("*.json")))
    assert dashboard == "True"
    # Run the image's command from the installed copy, then its HEALTHCHECK against it.
    df = _dockerfile()
    final_env = dict(
        re.findall(
            r"(\w+)=(\S+)", " ".join(a for i, a in df["stages"][-1] if i == "ENV")
        )
    )
    assert final_env["EXCHANGE_CONFIG"] == "/etc/congress-exchange/node.toml"
    conf = tmp_path / "etc" / "node.toml"
    conf.parent.mkdir()
    shutil.copy2(DEPLOY / "node.toml", conf)
    port = free_port()
    env = clean_env(
        PATH=f"{venv / 'bin'}:{os.environ.get('PATH', '')}",
        EXCHANGE_CONFIG=str(conf),  # the image's EXCHANGE_CONFIG, relocated
        EXCHANGE_LISTEN=f"127.0.0.1:{port}",  # the image listens on 0.0.0.0:8700
        EXCHANGE_DATA_DIR=str(tmp_path / "data"),
        EXCHANGE_DATABASE_URL=await fresh_db(),
        EXCHANGE_FEDERATION_ROSTER_KEYS="",
    )
    entry = json.loads(next(a for i, a in df["stages"][-1] if i == "ENTRYPOINT"))
    cmd = json.loads(next(a for i, a in df["stages"][-1] if i == "CMD"))
    assert entry == ["exchange"]
    proc = NodeProcess(
        cmd,
        env,
        tmp_path / "node.log",
        tmp_path,
        program=[str(venv / "bin" / entry[0])],
    )
    try:
        await asyncio.to_thread(proc.wait_ready, f"http://127.0.0.1:{port}")
        check = subprocess.run(
            df["healthcheck"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            cwd=tmp_path,
        )
        assert check.returncode == 0, check.stderr
    finally:
        assert proc.stop() == 0, proc.output()
    check = subprocess.run(
        df["healthcheck"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert check.returncode == 1 and "unhealthy" in check.stderr


# -- systemd ------------------------------------------------------------------------------
def _units() -> list[Path]:
    return sorted((DEPLOY / "systemd").glob("*.service")) + sorted(
        (DEPLOY / "systemd").glob("*.timer")
    )


def _unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A structural parse: sections of key → values (keys may repeat)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            assert line.endswith("]"), line
            section = line[1:-1]
            out.setdefault(section, {})
            continue
        assert section is not None and "=" in line, f"{path.name}: {line}"
        key, _, value = line.partition("=")
        out[section].setdefault(key.strip(), []).append(value.strip())
    return out


def test_systemd_units_structure_and_commands() -> None:
    main = _unit(DEPLOY / "systemd" / "congress-exchange.service")
    svc = main["Service"]
    assert svc["User"] == ["exchange"] and svc["KillMode"] == ["mixed"]
    assert "multi-user.target" in main["Install"]["WantedBy"]
    env = dict(e.split("=", 1) for e in svc["Environment"])
    for line in svc["ExecStartPre"] + svc["ExecStart"]:
        argv = shlex.split(re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], line))
        assert argv[0] == "/opt/congress-exchange/bin/exchange"
        _cli_accepts(argv[1:])
    backup = _unit(DEPLOY / "systemd" / "congress-exchange-backup.service")
    inner = shlex.split(backup["Service"]["ExecStart"][0])[-1]
    argv = shlex.split(re.sub(r"\$\([^)]*\)", "X", inner))[1:]
    assert argv[0] == "/opt/congress-exchange/bin/exchange"
    _cli_accepts(argv[1:])
    timer = _unit(DEPLOY / "systemd" / "congress-exchange-backup.timer")
    assert timer["Timer"]["Persistent"] == ["true"]


def _stub_root(root: Path, units: list[Path]) -> Path:
    """A root with the system's units, ours, and stand-ins for the programs they run."""
    shutil.copytree(
        "/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True
    )
    dest = root / "etc/systemd/system"
    dest.mkdir(parents=True)
    for u in units:
        shutil.copy2(u, dest / u.name)
        for section in _unit(u).values():
            for key, values in section.items():
                if key.startswith("Exec"):
                    for v in values:
                        prog = root / shlex.split(v.lstrip("-@+!:"))[0].lstrip("/")
                        prog.parent.mkdir(parents=True, exist_ok=True)
                        prog.write_text("#!/bin/sh\n")
                        prog.chmod(0o755)
    return dest


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None
    or not Path("/usr/lib/systemd/system").is_dir(),
    reason="systemd-analyze is not installed here",
)
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    units = _units()
    dest = _stub_root(tmp_path / "root", units)

    def verify(*names: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "systemd-analyze",
                "verify",
                f"--root={tmp_path / 'root'}",
                *(f"/etc/systemd/system/{n}" for n in names),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    done = verify(*(u.name for u in units))
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr
    broken = dest / "congress-exchange.service"
    broken.write_text(
        broken.read_text().replace("Type=exec", "Type=exce\nRestartSecs=5")
    )
    done = verify("congress-exchange.service")
    assert (
        "Failed to parse service type" in done.stderr and "Unknown key" in done.stderr
    )


def test_sample_node_toml_is_valid_and_secret_free() -> None:
    cfg = load_config(DEPLOY / "node.toml", environ={})
    assert cfg.database.url == "" and cfg.http.listen == "0.0.0.0:8700"
    assert str(cfg.data_path) == "/var/lib/congress-exchange"
    raw = tomllib.loads((DEPLOY / "node.toml").read_text(encoding="utf-8"))
    assert "password" not in json.dumps(raw).lower()
