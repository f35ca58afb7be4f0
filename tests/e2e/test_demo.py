"""``exchange demo`` (what ``make run`` starts): two nodes on one embedded PostgreSQL,
an item pushed on one node read on the other, and a clean stop on SIGINT."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from exchange.demo import CROSS_NODE_MARK


def _free_pair() -> int:
    """A port P with P and P+1 both free (bounded tries)."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = int(a.getsockname()[1])
            if port >= 65535:
                continue
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise AssertionError("no two adjacent free ports")


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_demo_runs_a_two_node_federation_and_stops_cleanly(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
    port = _free_pair()
    # Not under pytest's tmp tree: a concurrent pytest session resets its root to 0700,
    # and PostgreSQL runs as another user when we are root.
    base = Path(tempfile.mkdtemp(prefix="exchange-demo-test-"))
    base.chmod(0o711)  # the embedded server runs as its own user and must traverse it
    data = base / "demo-data"
    out_path = tmp_path / "demo.log"
    log = open(out_path, "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exchange",
            "demo",
            "--data-dir",
            str(data),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    pg_pid = None
    urls = [f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"]
    try:
        deadline = time.monotonic() + 120
        while True:
            text = out_path.read_text(encoding="utf-8", errors="replace")
            if (
                CROSS_NODE_MARK in text
                and "press Ctrl-C to stop" in text
                and all(map(_ready, urls))
            ):
                break
            assert proc.poll() is None, text
            assert time.monotonic() < deadline, f"demo not ready:\n{text}"
            time.sleep(0.3)
        lines = [ln for ln in text.splitlines() if ln.startswith(CROSS_NODE_MARK)]
        assert any(
            "huaihai" in ln and "read on yangtze-delta" in ln and "verified" in ln
            for ln in lines
        ), text
        assert "杜集区践行全过程人民民主的做法" in lines[0]
        # The joint inspection between both regions went through every state.
        assert "已办结 (closed)" in text and "整改中 (rectifying)" in text, text
        assert (data / "roster.key").exists()
        assert (data / "huaihai" / "node.toml").exists()
        assert (data / "huaihai" / "data" / "node.key").exists()
        assert (data / "yangtze-delta" / "data" / "node.key").exists()
        # One PostgreSQL server, in demo-data/pg, for both nodes.
        assert not (data / "huaihai" / "data" / "pg").exists()
        pg_pid = int((data / "pg" / "postmaster.pid").read_text().splitlines()[0])
        assert _alive(pg_pid)
        _the_hints_teach(text, urls, data, tmp_path, env)
    finally:
        t_stop = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        stop_s = time.monotonic() - t_stop
    try:
        text = out_path.read_text(encoding="utf-8", errors="replace")
        assert proc.returncode == 0, (
            f"exit code {proc.returncode}, {stop_s:.1f} s to stop:\n{text}"
        )
        assert pg_pid is not None
        for _ in range(100):  # bounded: up to ~10 s for the postmaster to exit
            if not _alive(pg_pid):
                break
            time.sleep(0.1)
        assert not _alive(pg_pid), "the demo's PostgreSQL is still running"
        assert not (data / "pg" / "postmaster.pid").exists()
    finally:
        if pg_pid is not None and _alive(pg_pid):  # the demo failed to stop it
            os.kill(pg_pid, signal.SIGQUIT)
        shutil.rmtree(base, ignore_errors=True)


def _hint(text: str, label: str) -> str:
    line = next(ln for ln in text.splitlines() if f"/ {label}:" in ln)
    return line.split(":", 1)[1].strip()


def _the_hints_teach(
    text: str, urls: list[str], data: Path, cwd: Path, env: dict[str, str]
) -> None:
    """The closing hints name the activate line, the dashboard and the reading view with
    working tokens, and commands whose scratch files land under the demo's data folder."""
    import json
    import urllib.request

    activate = _hint(text, "first").split()[1]
    assert Path(activate).resolve() == Path(sys.executable).parent / "activate"
    dash = _hint(text, "dashboard")
    assert dash.startswith(f"{urls[0]}/dashboard") and "monitor token:" in dash
    token = dash.rsplit(":", 1)[1].strip()
    with urllib.request.urlopen(
        urllib.request.Request(
            f"{urls[0]}/v1/activity", headers={"Authorization": f"Bearer {token}"}
        ),
        timeout=10,
    ) as r:
        assert r.status == 200 and "scope" in json.load(r)
    assert (
        _hint(text, "reading").startswith(f"{urls[1]}/read") and "read token:" in text
    )
    assert "exchange site token suzhou-wuzhong --config" in _hint(text, "read token")
    before = set(cwd.iterdir())
    tool_env = dict(env, PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}")
    for label in ("pull", "verify"):
        cmd = _hint(text, label)
        assert str(data) in cmd, cmd
        done = subprocess.run(
            ["bash", "-c", cmd], cwd=cwd, env=tool_env, capture_output=True, timeout=120
        )
        assert done.returncode == 0, (cmd, done.stdout, done.stderr)
    assert any((data / "pulled").glob("00000000-*.json"))
    assert set(cwd.iterdir()) == before  # nothing written beside the checkout's files
    for label in ("new item", "sign+push"):
        assert f"{data}/my" in _hint(text, label)
