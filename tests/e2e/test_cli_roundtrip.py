"""End to end with only the CLI and the HTTP API: a real node process, a 2 KB item
pushed, pulled back as a file, and verified offline."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from exchange.core.canonical import canonical_json
from tests.support import fill_placeholders, wait_ready


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(
    *args: str,
    env: dict[str, str],
    cwd: Path,
    check: bool = True,
    stdin: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run(
        [sys.executable, "-m", "exchange", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        input=stdin,
        timeout=120,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"exchange {' '.join(args)} -> {done.returncode}\n"
            f"{done.stdout.decode()}\n{done.stderr.decode()}"
        )
    return done


@pytest.mark.asyncio
async def test_push_pull_verify_with_cli_only(
    fresh_db: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    db_url = await fresh_db()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
    env["EXCHANGE_DATABASE_URL"] = db_url
    work = tmp_path
    _cli(
        "node",
        "init",
        "--region",
        "huaihai",
        "--name",
        "淮海经济区节点",
        "--listen",
        f"127.0.0.1:{port}",
        env=env,
        cwd=work,
    )
    assert (work / "node.toml").exists()

    # Operator registers the site; the site makes its key (the private key stays with it).
    out = _cli(
        "keys",
        "new",
        "--key-id",
        "huaibei-duji#k1",
        "--out",
        "duji.key",
        env=env,
        cwd=work,
    )
    pub = json.loads(out.stdout)["public_key"]
    assert (work / "duji.key").stat().st_mode & 0o777 == 0o600
    _cli(
        "site",
        "add",
        "huaibei-duji",
        "--name",
        "淮北市杜集区人大常委会",
        "--circle",
        "huaihai",
        env=env,
        cwd=work,
    )
    _cli(
        "site",
        "key",
        "add",
        "huaibei-duji",
        "--key-id",
        "huaibei-duji#k1",
        f"--public-key={pub}",
        env=env,
        cwd=work,
    )
    _cli(
        "keys",
        "new",
        "--key-id",
        "xuzhou-tongshan#k1",
        "--out",
        "tongshan.key",
        env=env,
        cwd=work,
    )
    pub2 = json.loads(
        _cli(
            "keys",
            "new",
            "--key-id",
            "xuzhou-tongshan#k2",
            "--out",
            "t2.key",
            env=env,
            cwd=work,
        ).stdout
    )["public_key"]
    _cli(
        "site",
        "add",
        "xuzhou-tongshan",
        "--name",
        "徐州市铜山区人大常委会",
        "--circle",
        "huaihai",
        env=env,
        cwd=work,
    )
    _cli(
        "site",
        "key",
        "add",
        "xuzhou-tongshan",
        "--key-id",
        "xuzhou-tongshan#k2",
        f"--public-key={pub2}",
        env=env,
        cwd=work,
    )

    log = open(work / "node.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [sys.executable, "-m", "exchange", "node", "up", "--config", "node.toml"],
        env=env,
        cwd=work,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, proc, 60, work / "node.log")

        # Write a ~2 KB item from the template (filled in), sign it, push it.
        item = fill_placeholders(
            json.loads(
                _cli(
                    "item",
                    "new",
                    "--kind",
                    "case_study",
                    "--author",
                    "huaibei-duji",
                    env=env,
                    cwd=work,
                ).stdout
            )
        )
        item["summary"] = "杜集区人大常委会预算联网监督工作案例。" * 20
        raw = canonical_json(item)
        assert 1800 <= len(raw) <= 4096, len(raw)
        (work / "case.json").write_text(
            json.dumps(item, ensure_ascii=False), encoding="utf-8"
        )
        _cli(
            "item",
            "sign",
            "case.json",
            "--key",
            "duji.key",
            "--out",
            "case.signed.json",
            env=env,
            cwd=work,
        )
        pushed = _cli(
            "push",
            "case.signed.json",
            "--node",
            base,
            "--key",
            "duji.key",
            env=env,
            cwd=work,
        )
        assert "\taccepted\tsha256:" in pushed.stdout.decode()
        again = _cli(
            "push",
            "case.signed.json",
            "--node",
            base,
            "--key",
            "duji.key",
            env=env,
            cwd=work,
        )
        assert "\tduplicate\t" in again.stdout.decode()

        # A partner pulls it as a file and verifies it offline.
        _cli(
            "pull",
            "--node",
            base,
            "--key",
            "t2.key",
            "--out",
            "inbox",
            env=env,
            cwd=work,
        )
        files = sorted((work / "inbox").glob("0*.json"))
        assert len(files) == 1
        ok = _cli("verify", str(files[0]), env=env, cwd=work)
        assert ok.stdout.decode().startswith("OK   sha256:")
        # Pull resumes from its cursor: nothing new the second time.
        _cli(
            "pull",
            "--node",
            base,
            "--key",
            "t2.key",
            "--out",
            "inbox",
            env=env,
            cwd=work,
        )
        assert len(sorted((work / "inbox").glob("0*.json"))) == 1

        # A tampered copy fails verification with exit code 3.
        doc = json.loads(files[0].read_text(encoding="utf-8"))
        doc["item"]["title"] = "改过的标题"
        (work / "inbox" / "tampered.json").write_text(
            json.dumps(doc, ensure_ascii=False), encoding="utf-8"
        )
        bad = _cli(
            "verify",
            str(work / "inbox" / "tampered.json"),
            env=env,
            cwd=work,
            check=False,
        )
        assert bad.returncode == 3 and "bad_signature" in bad.stdout.decode()

        # A key not registered on the node: its requests are refused (exit 1, clear message).
        refused = _cli(
            "pull",
            "--node",
            base,
            "--key",
            "tongshan.key",
            "--out",
            "x",
            env=env,
            cwd=work,
            check=False,
        )
        assert refused.returncode == 1 and b"bad_request_signature" in refused.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    assert proc.returncode == 0, (work / "node.log").read_text()


def test_cli_usage_errors(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
    bad = _cli("item", "new", "--kind", "poem", env=env, cwd=tmp_path, check=False)
    assert bad.returncode == 2
    missing = _cli("verify", "nope.json", env=env, cwd=tmp_path, check=False)
    assert missing.returncode == 3 and b"cannot read" in missing.stdout
    (tmp_path / "loose.key").write_text("{}")
    (tmp_path / "loose.key").chmod(0o644)
    (tmp_path / "i.json").write_text("{}")
    loose = _cli(
        "item",
        "sign",
        "i.json",
        "--key",
        "loose.key",
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert loose.returncode == 1 and b"chmod 600" in loose.stderr
    helptext = _cli("--help", env=env, cwd=tmp_path).stdout.decode()
    for cmd in ("keys", "node", "site", "item", "push", "pull", "verify", "demo"):
        assert cmd in helptext
