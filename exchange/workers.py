"""Several API worker processes for one node: ``exchange node up --workers N``.

Design
------
The supervisor (the parent process) does what must happen once: it starts the embedded
PostgreSQL when no database URL is configured, creates the database and applies the
migrations, and creates the node key if there is none. It then starts N children, each
a plain ``exchange node up --worker K`` with the same configuration (and, for the
embedded server, ``EXCHANGE_DATABASE_URL`` pointing at it).

Every worker binds the same HOST:PORT with ``SO_REUSEPORT``: the kernel spreads new
connections over the workers, and a worker that dies stops getting connections at once
(requests it had in flight fail and are retried by clients; nothing acknowledged is
lost, because a push is acknowledged only after its commit). Workers are identical and
stateless: all serve the whole API and all run the background loops, whose cursors only
move forward (``GREATEST``), as replicas on several machines do. Exactly one worker
integrates the Merkle log: the holder of the sequencer's advisory lock; when it dies,
its database session ends, the lock is released, and another worker takes it within
about a second. Each lock connection is named ``exchange-log-<node>-<pid>`` in
``pg_stat_activity``, so ``pg_locks`` tells which process writes.

The supervisor restarts a worker that exits, after 1 s doubling to 30 s (reset once a
worker has run for a minute); if a worker fails within 10 s of its start 5 times in a
row, something is wrong with the setup (a port taken by another program, a bad key) and
it stops everything with exit code 1. The supervisor also restarts the embedded
PostgreSQL if it dies (:class:`~exchange.service.pgwatch.EmbeddedGuard`; exit code 1
past its crash-loop limit). SIGTERM and SIGINT are passed on; workers get 30 s
to finish their requests, then are killed; then the embedded server stops.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import FrameType

from exchange.config import NodeConfig, child_env
from exchange.core.signing import generate_key, save_private_key
from exchange.service.pgwatch import EmbeddedGuard
from exchange.storage.database import Database, embedded_max_connections, fit_pool
from exchange.storage.embedded import EmbeddedPostgres

__all__ = ["Supervisor", "worker_command"]

_log = logging.getLogger(__name__)
_FAST_FAIL_S = 10.0
_MAX_FAST_FAILS = 5
_STOP_GRACE_S = 30.0


def worker_command(index: int, passthrough: list[str]) -> list[str]:
    """The command line of worker ``index`` (1-based)."""
    return [
        sys.executable,
        "-m",
        "exchange",
        "node",
        "up",
        "--worker",
        str(index),
        *passthrough,
    ]


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    fast_fails: int = 0
    backoff: float = 1.0
    restart_at: float = 0.0
    pids: list[int] = field(default_factory=list)


class Supervisor:
    """Starts and watches N worker processes of one node.

    Args:
        config: The node's configuration.
        workers: How many worker processes.
        passthrough: Arguments every worker gets (``--config``, ``--data-dir``, ...).
    """

    def __init__(
        self, config: NodeConfig, workers: int, passthrough: list[str]
    ) -> None:
        self.config = config
        self.n = workers
        self.passthrough = passthrough
        self.workers = [_Worker(i + 1) for i in range(workers)]
        self._stop = False
        self._env: dict[str, str] = {}
        self.embedded: EmbeddedPostgres | None = None
        self.guard: EmbeddedGuard | None = None

    # -- once, before the workers ----------------------------------------------------------
    def prepare(self) -> None:
        """Database (embedded if no URL), schema and node key, before any worker starts.

        Raises:
            OperationalError: the database cannot be started, reached or migrated.
        """
        cfg = self.config
        cfg.data_path.mkdir(parents=True, exist_ok=True)
        url = cfg.database.url
        if not url:
            self.embedded = EmbeddedPostgres(
                cfg.data_path / "pg",
                port=cfg.database.embedded_port,
                max_connections=embedded_max_connections(self.n, cfg.database.pool_max),
            )
            self.embedded.start()
            self.guard = EmbeddedGuard(
                self.embedded, max_restarts=cfg.database.embedded_max_restarts
            )  # restarted if it dies
            url = self.embedded.url("exchange")
            self._env["EXCHANGE_DATABASE_URL"] = url
        # [ingest] verify_processes is for the node: share it among the workers.
        self._env["EXCHANGE_INGEST_VERIFY_PROCESSES"] = str(
            max(1, cfg.ingest.verify_processes // self.n)
            if cfg.ingest.verify_processes
            else 0
        )
        pool_max = asyncio.run(self._migrate(url))
        # Every worker's pools, fitted to the server's max_connections (or refused here,
        # before any worker starts).
        self._env["EXCHANGE_DATABASE_POOL_MAX"] = str(pool_max)
        if not cfg.key_path.exists():
            cfg.key_path.parent.mkdir(parents=True, exist_ok=True)
            save_private_key(generate_key(key_id=f"{cfg.node.id}#k1"), cfg.key_path)
            _log.info("created node key %s", cfg.key_path)

    async def _migrate(self, url: str) -> int:
        """Create the database and apply migrations once; the pool size that fits."""
        db = Database(url, min_size=1, max_size=1)
        await db.open()
        await db.close()
        d = self.config.database
        return await fit_pool(
            url,
            workers=self.n,
            pool_min=d.pool_min,
            pool_max=d.pool_max,
            node_id=self.config.node.id,
        )

    # -- the supervision loop ----------------------------------------------------------------
    def _spawn(self, w: _Worker) -> None:
        w.proc = subprocess.Popen(
            worker_command(w.index, [*self.passthrough, "--worker-count", str(self.n)]),
            env=child_env(self._env),
        )
        w.started = time.monotonic()
        w.pids.append(w.proc.pid)
        _log.info("worker %d started (pid %d)", w.index, w.proc.pid)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop = True

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        code = 0
        try:
            self.prepare()
            for w in self.workers:
                self._spawn(w)
            while not self._stop:
                code = self._watch()
                if code:
                    break
                time.sleep(0.2)
        finally:
            self._stop_all()
            if self.embedded is not None and self.embedded.started_here:
                self.embedded.stop()
        return code

    def _watch(self) -> int:
        if self.guard is not None and not self.guard.check():
            _log.error("stopping: %s", self.guard.failed)
            return 1
        now = time.monotonic()
        for w in self.workers:
            if w.proc is None:
                if now >= w.restart_at:
                    self._spawn(w)
                continue
            rc = w.proc.poll()
            if rc is None:
                if now - w.started > 60:
                    w.backoff, w.fast_fails = 1.0, 0
                continue
            ran = now - w.started
            w.fast_fails = w.fast_fails + 1 if ran < _FAST_FAIL_S else 0
            if w.fast_fails >= _MAX_FAST_FAILS:
                _log.error(
                    "worker %d failed %d times within %.0f s of starting; stopping "
                    "(see its output above)",
                    w.index,
                    w.fast_fails,
                    _FAST_FAIL_S,
                )
                return 1
            _log.warning(
                "worker %d (pid %d) exited with %s after %.1f s; restarting in %.0f s",
                w.index,
                w.proc.pid,
                rc,
                ran,
                w.backoff,
            )
            w.proc = None
            w.restart_at = now + w.backoff
            w.backoff = min(30.0, w.backoff * 2)
        return 0

    def _stop_all(self) -> None:
        running = [
            w.proc for w in self.workers if w.proc is not None and w.proc.poll() is None
        ]
        for p in running:
            p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + _STOP_GRACE_S
        for p in running:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _log.warning(
                    "worker pid %d did not stop in %.0f s; killing it",
                    p.pid,
                    _STOP_GRACE_S,
                )
                p.kill()
                p.wait()
