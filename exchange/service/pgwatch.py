"""A node that heals: the embedded PostgreSQL is restarted when it dies.

Design
------
The process that started the embedded PostgreSQL (``exchange node up``; with
``--workers N``, the supervisor) checks every half second that its postmaster is alive
(:meth:`EmbeddedGuard.check`). When it is gone — killed, crashed, OOM-killed — the guard
starts it again on the same port and data folder (PostgreSQL replays its WAL, so every
acknowledged item is still there), retrying while the old backends let go of the shared
memory. The pools reconnect on their own; requests made meanwhile get 503 with
``Retry-After``.

A crash loop is not hidden: after ``max_restarts`` restarts within ``window_s`` seconds,
or when a restart keeps failing, the guard gives up and records why
(:attr:`EmbeddedGuard.failed`). ``/healthz`` then answers 503, so ``exchange
healthcheck``, the Docker ``HEALTHCHECK`` and systemd act on the node; with ``--workers``
the supervisor stops everything with exit code 1.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time

from exchange.errors import OperationalError
from exchange.storage.embedded import EmbeddedPostgres

__all__ = ["EmbeddedGuard"]

_log = logging.getLogger(__name__)


class EmbeddedGuard:
    """Restarts a dead embedded PostgreSQL, within a crash-loop limit.

    Args:
        embedded: The server to watch.
        max_restarts: Restarts allowed within ``window_s``.
        window_s: The crash-loop window.
        start_attempts: Start attempts per restart (every ``retry_s``) before giving up.
        retry_s: Pause between start attempts.
    """

    def __init__(
        self,
        embedded: EmbeddedPostgres,
        *,
        max_restarts: int = 5,
        window_s: float = 300.0,
        start_attempts: int = 60,
        retry_s: float = 0.25,
    ) -> None:
        self.embedded = embedded
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.start_attempts = start_attempts
        self.retry_s = retry_s
        self.failed: str | None = None
        self.restarts_total = 0
        self.last_restart_s: float | None = None
        self._recent: collections.deque[float] = collections.deque()

    def check(self) -> bool:
        """Restart the server if it is not running. False once it cannot be (gave up)."""
        if self.failed is not None:
            return False
        if self.embedded.running_pid() is not None:
            return True
        now = time.monotonic()
        while self._recent and now - self._recent[0] > self.window_s:
            self._recent.popleft()
        if len(self._recent) >= self.max_restarts:
            self.failed = (
                f"embedded PostgreSQL died {len(self._recent) + 1} times within "
                f"{self.window_s:.0f} s; not restarting it again (see "
                f"{self.embedded.pgdata / 'server.log'})"
            )
            _log.error("%s", self.failed)
            return False
        _log.error(
            "embedded PostgreSQL in %s is not running; restarting it",
            self.embedded.pgdata,
        )
        last: Exception | None = None
        for _ in range(self.start_attempts):
            try:
                self.embedded.start()
                break
            except OperationalError as exc:  # old backends may still hold shared memory
                last = exc
                time.sleep(self.retry_s)
        else:
            self.failed = f"embedded PostgreSQL could not be restarted: {last}"
            _log.error("%s", self.failed)
            return False
        self._recent.append(now)
        self.restarts_total += 1
        self.last_restart_s = time.monotonic() - now
        _log.warning(
            "embedded PostgreSQL restarted in %.1f s (%d restart(s) so far)",
            self.last_restart_s,
            self.restarts_total,
        )
        return True

    async def watch(self, interval: float = 0.5) -> None:
        """Check every ``interval`` seconds until cancelled or given up."""
        while await asyncio.to_thread(self.check):
            await asyncio.sleep(interval)
