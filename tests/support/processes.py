"""Helpers of the deployment tests: signed items, node processes started and stopped by PID."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from exchange.core.items import sign_item
from exchange.templates import template
from tests.support import wait_for

REPO = Path(__file__).resolve().parents[2]
FAST_LOG: dict[str, Any] = {"log": {"checkpoint_interval_ms": 50, "batch_size": 64}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without EXCHANGE_* variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
    env.update(extra)
    return env


def items(
    key: Any, n: int, start: int = 0, site: str = "huaibei-duji"
) -> list[dict[str, Any]]:
    out = []
    for i in range(start, start + n):
        it = template("lesson", site)
        it["title"] = f"经验做法 第{i}号"
        out.append(sign_item(it, key))
    return out


def run_cli(
    *args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m exchange ARGS`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "exchange", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


async def arun_cli(
    *args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """:func:`run_cli` off the event loop."""
    return await asyncio.to_thread(run_cli, *args, env=env, cwd=cwd, timeout=timeout)


def get_json(url: str, timeout: float = 2.0) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


class NodeProcess:
    """``python -m exchange node up ...`` in a child process, output in a log file."""

    def __init__(
        self,
        args: list[str],
        env: dict[str, str],
        log: Path,
        cwd: Path,
        program: list[str] | None = None,
    ) -> None:
        self.log = log
        self._out = open(log, "wb")  # noqa: SIM115 - closed in stop()
        argv = (program or [sys.executable, "-m", "exchange", "node", "up"]) + args
        self.proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=self._out, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, url: str, timeout: float = 60) -> None:
        def ready() -> bool:
            assert self.proc.poll() is None, f"node exited:\n{self.output()}"
            with contextlib.suppress(OSError, ValueError):
                return get_json(url + "/readyz")[0] == 200
            return False

        wait_for(ready, timeout, f"the node at {url} to be ready", interval=0.1)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (then SIGKILL after ``timeout``); returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        return int(self.proc.returncode)
