"""Shared pieces of the reliability suite.

* :class:`NodeProcess` — ``python -m exchange node up`` as a real subprocess, started,
  SIGKILLed and stopped by PID.
* :class:`OwnedPostgres` — an embedded PostgreSQL the test owns, so it can SIGKILL the
  postmaster and start it again.
* :class:`FakePeer` and :class:`SwitchProxy` — misbehaving peers on 127.0.0.1: one that
  never answers, one that answers 500, garbage or slowly, and a proxy in front of a real
  node whose behaviour can be switched while the test runs.
* :func:`roster` — a signed roster for nodes and fake peers alike.
* :class:`RssSampler` — peak resident memory of a process while something runs.
* :func:`write_artifact` — figures for ``docs/reliability.md``
  (``test-artifacts/reliability/*.json``, rendered by ``bench/reliability_report.py``).

Every wait here is bounded in count and time; every process is stopped by its PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from aiohttp import web

from exchange.config import env_flag
from exchange.core.roster import sign_document
from exchange.core.signing import CONTEXT_ROSTER, PrivateKey, generate_key
from exchange.storage.database import Database
from exchange.storage.directory import SiteStore
from exchange.storage.embedded import EmbeddedPostgres
from exchange.templates import template

__all__ = [
    "ARTIFACTS",
    "FakePeer",
    "NodeProcess",
    "OwnedPostgres",
    "RssSampler",
    "SOAK",
    "SwitchProxy",
    "free_port",
    "lesson",
    "merge_artifact",
    "node_entry",
    "roster",
    "seed_directory",
    "write_artifact",
]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "reliability"
SOAK = env_flag("EXCHANGE_SOAK")
"""``EXCHANGE_SOAK=1`` runs the longer variants (more kills, more fuzz examples)."""


def write_artifact(name: str, doc: dict[str, Any]) -> Path:
    """Write the figures of one test to ``test-artifacts/reliability/<name>.json``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.json"
    doc = {
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "soak": SOAK,
        **doc,
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True) + "\n",
        encoding="utf-8",
    )
    os.replace(tmp, path)
    return path


def merge_artifact(name: str, **figures: Any) -> Path:
    """Merge figures into ``<name>.json`` (several tests of one file contribute)."""
    path = ARTIFACTS / f"{name}.json"
    doc: dict[str, Any] = {}
    if path.exists():
        with contextlib.suppress(ValueError):
            doc = json.loads(path.read_text(encoding="utf-8"))
        doc.pop("recorded_at", None)
        doc.pop("soak", None)
    doc.update(figures)
    return write_artifact(name, doc)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lesson(
    author: str,
    title: str,
    audience: dict[str, list[str]] | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """A schema-valid ``lesson`` item with the given title (and audience)."""
    it = template("lesson", author)
    it["title"] = title
    if audience is not None:
        it["audience"] = audience
    it.update(changes)
    return it


def _pid_gone(pid: int) -> bool:
    """True once ``pid`` no longer exists (a zombie still counts as existing)."""
    return not Path(f"/proc/{pid}").exists()


# ------------------------------------------------------------------ subprocess node
@dataclass
class NodeProcess:
    """``exchange node up`` in a subprocess on a fixed port of 127.0.0.1.

    Args:
        data_dir: The node's data folder (holds its key).
        db_url: ``EXCHANGE_DATABASE_URL``.
        node_id: ``node.id``.
        env: Further ``EXCHANGE_*`` settings.
        verbose: Run with ``-v`` (DEBUG logging).
    """

    data_dir: Path
    db_url: str
    node_id: str = "huaihai"
    env: dict[str, str] = field(default_factory=dict)
    verbose: bool = False
    nofile: int | None = (
        None  # soft RLIMIT_NOFILE the node starts with (hard unchanged)
    )
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}-node.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        """Launch the process (returns at once; see :meth:`wait_ready`)."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
        env.update(
            {
                "EXCHANGE_DATABASE_URL": self.db_url,
                "EXCHANGE_NODE_ID": self.node_id,
                **self.env,
            }
        )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {self.starts} ---\n".encode())
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "exchange",
                    *(["-v"] if self.verbose else []),
                    "node",
                    "up",
                    "--data-dir",
                    str(self.data_dir),
                    "--listen",
                    f"127.0.0.1:{self.port}",
                ],
                env=env,
                cwd=str(self.data_dir.parent),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=None if self.nofile is None else self._lower_nofile,
            )
        self.starts += 1

    def _lower_nofile(self) -> None:  # in the child, before exec
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, hard))

    async def wait_ready(self, timeout: float = 60.0) -> float:
        """Wait until ``/readyz`` answers 200; returns seconds waited."""
        start = time.monotonic()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as s:
            for _ in range(int(timeout / 0.05) + 1):
                assert self.proc is not None and self.proc.poll() is None, (
                    f"node exited ({self.proc and self.proc.returncode}):\n{self.log_tail()}"
                )
                with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                    async with s.get(self.url + "/readyz") as r:
                        if r.status == 200:
                            return time.monotonic() - start
                if time.monotonic() - start > timeout:
                    break
                await asyncio.sleep(0.05)
        raise AssertionError(f"node not ready after {timeout} s:\n{self.log_tail()}")

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL the node by PID and reap it."""
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM by PID, wait (bounded), SIGKILL if it did not exit; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(timeout=30)

    def rss(self) -> int:
        """Resident memory of the node process, in bytes."""
        return int(psutil.Process(self.pid).memory_info().rss)


async def seed_directory(
    url: str,
    sites: list[tuple[str, str, tuple[str, ...]]],
    monitors: list[tuple[str, tuple[str, ...]]] = (),  # type: ignore[assignment]
) -> tuple[dict[str, PrivateKey], dict[str, str]]:
    """Register sites (id, home node, circles) with fresh keys, and monitors (id, circles),
    in the database at ``url`` (created and migrated if needed), as the operator's CLI
    would. Returns the site keys and the monitor tokens."""
    db = Database(url, min_size=1, max_size=2)
    await db.open()
    keys: dict[str, PrivateKey] = {}
    tokens: dict[str, str] = {}
    try:
        store = SiteStore(db)
        for sid, home, circles in sites:
            await store.add_site(sid, f"站点 {sid}", home, list(circles))
            key = generate_key(key_id=f"{sid}#k1")
            await store.add_key(key.key_id, sid, key.alg, key.public_key.raw)
            keys[sid] = key
        for mid, circles in monitors:
            tokens[mid] = secrets.token_urlsafe(32)
            await store.add_monitor(mid, f"监督 {mid}", tokens[mid], list(circles), [])
    finally:
        await db.close()
    return keys, tokens


# ------------------------------------------------------------------ owned PostgreSQL
class OwnedPostgres:
    """An embedded PostgreSQL in a folder of the test, on a fixed port."""

    def __init__(self, root: Path) -> None:
        # Port 0: a free port is picked when the server first starts (after initdb, so no
        # other process grabs it meanwhile) and kept for every restart.
        self.pg = EmbeddedPostgres(root / "pg")

    def url(self, database: str = "exchange") -> str:
        return self.pg.url(database)

    def start(self) -> float:
        """Start (or restart after a crash); returns seconds taken. Bounded retries."""
        t0 = time.monotonic()
        last: Exception | None = None
        for _ in range(40):
            try:
                self.pg.start()
                return time.monotonic() - t0
            except Exception as exc:  # leftover backends may hold shared memory briefly
                last = exc
                time.sleep(0.25)
        raise AssertionError(f"PostgreSQL did not restart: {last}")

    def kill_postmaster(self) -> int:
        """SIGKILL the postmaster by PID and wait (bounded) until it is gone."""
        pid = self.pg.running_pid()
        assert pid is not None, "PostgreSQL is not running"
        os.kill(pid, signal.SIGKILL)
        for _ in range(600):  # at most ~30 s for init to reap it
            if _pid_gone(pid):
                return pid
            time.sleep(0.05)
        raise AssertionError(f"postmaster {pid} did not go away after SIGKILL")

    def destroy(self) -> None:
        self.pg.destroy()


# ------------------------------------------------------------------ roster
def node_entry(
    node_id: str, url: str, key: PrivateKey, sites: list[str] | tuple[str, ...] = ()
) -> dict[str, Any]:
    """One ``nodes`` entry of a roster."""
    return {
        "id": node_id,
        "base_url": url,
        "keys": [
            {
                "key_id": key.key_id,
                "alg": "ed25519",
                "public_key": key.public_key.b64(),
                "valid_from": "2026-01-01T00:00:00+00:00",
            }
        ],
        "sites": list(sites),
    }


def roster(
    nodes: list[dict[str, Any]],
    circles: dict[str, list[str]],
    roster_key: PrivateKey,
    version: int = 1,
) -> dict[str, Any]:
    """A roster signed by ``roster_key``."""
    doc = {
        "federation": "congress-exchange-reliability",
        "version": version,
        "issued_at": datetime.now(UTC).isoformat(),
        "nodes": nodes,
        "circles": [
            {"id": c, "name": f"圈子 {c}", "members": sorted(m)}
            for c, m in sorted(circles.items())
        ],
        "monitors": [],
    }
    return sign_document(doc, roster_key, CONTEXT_ROSTER)


# ------------------------------------------------------------------ fake peers
class FakePeer:
    """A peer on 127.0.0.1 that misbehaves in one way.

    Modes: ``hang`` accepts connections and never answers; ``500`` answers every request
    with an HTTP 500; ``garbage`` answers 200 with bytes that are not JSON; ``slow``
    answers correctly-shaped but empty JSON only after ``delay`` seconds.
    """

    def __init__(self, mode: str, delay: float = 5.0) -> None:
        self.mode = mode
        self.delay = delay
        self.port = 0
        self.requests = 0
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._held: list[asyncio.StreamWriter] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakePeer:
        if self.mode == "hang":

            async def hold(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter
            ) -> None:
                self.requests += 1
                self._held.append(writer)  # keep it open, never answer

            self._server = await asyncio.start_server(hold, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
            return self

        async def handle(request: web.Request) -> web.StreamResponse:
            self.requests += 1
            await request.read()
            if self.mode == "500":
                return web.Response(status=500, text="internal error")
            if self.mode == "garbage":
                return web.Response(
                    status=200,
                    body=b"\x00\xffnot json at all{{{",
                    content_type="application/json",
                )
            await asyncio.sleep(self.delay)  # slow
            return web.json_response({"results": [], "items": []})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        for w in self._held:
            w.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._runner is not None:
            await self._runner.cleanup()


class SwitchProxy:
    """A reverse proxy in front of a real node; ``mode`` switches its behaviour live.

    ``pass`` forwards the request unchanged (the ``Host`` header too, so signatures over
    ``@authority`` still verify); ``500`` answers 500 without forwarding. Every request's
    headers are recorded (the secrets test looks for signatures in the logs), and every
    forwarded exchange as ``(path, request body, status, response body)`` in
    ``exchanges`` (what crossed the wire, for the federation format tests).
    """

    def __init__(self, target: str, mode: str = "pass") -> None:
        self.target = target.rstrip("/")
        self.mode = mode
        self.port = 0
        self.forwarded = 0
        self.refused = 0
        self.seen_headers: list[dict[str, str]] = []
        self.exchanges: list[tuple[str, bytes, int, bytes]] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> SwitchProxy:
        self._session = aiohttp.ClientSession(auto_decompress=False)

        async def handle(request: web.Request) -> web.StreamResponse:
            self.seen_headers.append(dict(request.headers))
            body = await request.read()
            if self.mode == "500":
                self.refused += 1
                return web.Response(status=500, text="upstream unavailable")
            assert self._session is not None
            async with self._session.request(
                request.method,
                self.target + request.path_qs,
                data=body,
                headers={
                    k: v
                    for k, v in request.headers.items()
                    if k.lower() not in ("content-length", "transfer-encoding")
                },
                allow_redirects=False,
            ) as r:
                data = await r.read()
                self.forwarded += 1
                self.exchanges.append((request.path, body, r.status, data))
                return web.Response(
                    status=r.status,
                    body=data,
                    headers={
                        "Content-Type": r.headers.get(
                            "Content-Type", "application/json"
                        )
                    },
                )

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()


# ------------------------------------------------------------------ memory
class RssSampler:
    """Samples a process's RSS from a thread every ``interval`` seconds while the block runs.

    A thread, not a task: the sampling goes on while the event loop is busy (hashing or
    sending a large body).
    """

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.baseline = 0
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        rss = int(self.proc.memory_info().rss)
        self.peak = max(self.peak, rss)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> RssSampler:
        self.baseline = int(self.proc.memory_info().rss)
        self.peak = self.baseline
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._thread is not None
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()

    @property
    def growth(self) -> int:
        """Peak minus the RSS at entry, in bytes."""
        return self.peak - self.baseline
