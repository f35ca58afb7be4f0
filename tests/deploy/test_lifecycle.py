"""One lifecycle: a failed start leaves nothing running; commands never start loops.

``exchange node up`` starts its embedded PostgreSQL before it loads the roster and binds
the port. When either fails, every process it started must be gone when it exits —
checked by the PIDs of the postmaster seen while it ran and by every process whose
command line names the data folder. CLI commands open storage only: no federation
loop, no log writer, no call to a peer.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil

from exchange.cli import with_node
from tests.support.processes import clean_env, free_port


def _postmasters(pgdata: Path) -> set[int]:
    """PIDs of live processes whose command line names ``pgdata``."""
    out = set()
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(str(pgdata) in a for a in p.info["cmdline"] or ()):
                out.add(p.info["pid"])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return out


def _run_failing_start(
    args: list[str], env: dict[str, str], cwd: Path, pgdata: Path
) -> tuple[int, str, set[int]]:
    """Run ``node up ARGS`` to its exit; the postmaster PIDs seen meanwhile."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "exchange", "node", "up", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    seen: set[int] = set()
    deadline = time.monotonic() + 120
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            pidfile = pgdata / "postmaster.pid"
            try:
                seen.add(int(pidfile.read_text().splitlines()[0]))
            except (OSError, ValueError, IndexError):
                pass
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
        out = proc.communicate(timeout=30)[0].decode(errors="replace")
    return int(proc.returncode), out, seen


def _gone(pids: set[int], pgdata: Path) -> set[int]:
    """PIDs (seen, or naming ``pgdata``) still alive after a bounded wait."""
    left: set[int] = set()
    for _ in range(50):
        left = {
            p
            for p in pids
            if psutil.pid_exists(p)
            and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
        } | _postmasters(pgdata)
        if not left:
            break
        time.sleep(0.1)
    return left


def test_failed_start_leaves_no_process(tmp_path: Path) -> None:
    data = tmp_path / "data"
    pgdata = data / "pg"
    env = clean_env()
    bad = tmp_path / "roster.signed.json"
    bad.write_text("this is not a roster")
    # 1. A roster file that cannot be read: refused after PostgreSQL started.
    code, out, seen = _run_failing_start(
        ["--data-dir", str(data), "--listen", f"127.0.0.1:{free_port()}"],
        {**env, "EXCHANGE_FEDERATION_ROSTER_FILE": str(bad)},
        tmp_path,
        pgdata,
    )
    try:
        assert seen, f"PostgreSQL never started:\n{out}"
        left = _gone(seen, pgdata)
        assert not left, (
            f"processes left after a failed start (bad roster): {left}\n{out}"
        )
        assert code != 0, out
        assert "roster" in out and "Traceback" not in out, out
        # 2. The port is taken by another program.
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            code, out, seen = _run_failing_start(
                ["--data-dir", str(data), "--listen", f"127.0.0.1:{port}"],
                env,
                tmp_path,
                pgdata,
            )
        assert seen, f"PostgreSQL never started:\n{out}"
        left = _gone(seen, pgdata)
        assert not left, (
            f"processes left after a failed start (port in use): {left}\n{out}"
        )
        assert code != 0, out
        assert f"127.0.0.1:{port}" in out and "Traceback" not in out, out
    finally:
        for pid in _postmasters(pgdata):  # never leak one from this test either
            psutil.Process(pid).kill()


async def test_cli_commands_open_storage_only(
    fresh_db: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    url = await fresh_db()
    cfg = tmp_path / "node.toml"
    cfg.write_text(
        f'[node]\nid = "huaihai"\ndata_dir = "{tmp_path / "data"}"\n'
        f'[database]\nurl = "{url}"\npool_min = 1\npool_max = 2\n'
    )
    args = argparse.Namespace(config=str(cfg), data_dir=None)
    seen: dict[str, Any] = {}

    async def fn(node: Any) -> int:
        await asyncio.sleep(0.3)  # loops started with the node would be running by now
        seen["tasks"] = sorted(t.get_name() for t in asyncio.all_tasks())
        return 0

    assert await asyncio.to_thread(with_node, args, fn) == 0
    loops = [
        n
        for n in seen["tasks"]
        if n.startswith(
            (
                "federation",
                "push",
                "witness",
                "notifier",
                "key-watch",
                "activity-flush",
                "webhook",
            )
        )
    ]
    assert loops == [], f"a CLI command started background loops: {loops}"
