"""``exchange node up`` with no database URL runs its own PostgreSQL and stops it on exit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support import wait_ready


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_node_up_starts_and_stops_embedded_postgres(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
    port = _free_port()
    data = tmp_path / "data"
    log = open(tmp_path / "node.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exchange",
            "node",
            "up",
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
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, 90, tmp_path / "node.log")
        pidfile = data / "pg" / "postmaster.pid"
        assert pidfile.exists(), (
            "the embedded PostgreSQL should live in the data folder"
        )
        pg_pid = int(pidfile.read_text().splitlines()[0])
        assert _pid_alive(pg_pid)
        assert (data / "node.key").stat().st_mode & 0o777 == 0o600
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    assert proc.returncode == 0, (tmp_path / "node.log").read_text()
    assert pg_pid is not None
    for _ in range(100):  # bounded: up to ~10 s for the postmaster to exit
        if not _pid_alive(pg_pid):
            break
        time.sleep(0.1)
    assert not _pid_alive(pg_pid), (
        "embedded PostgreSQL still running after the node stopped"
    )
    assert not (data / "pg" / "postmaster.pid").exists()
