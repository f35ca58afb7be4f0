"""Background work that never silently stops: one worker primitive for every loop.

Design
------
Every piece of background work of a node is one of three shapes, and each shape has one
implementation here:

* **A single loop** (:class:`BackgroundLoop`): the puller, the witness, the key watch.
  :meth:`BackgroundLoop.start` runs :meth:`~BackgroundLoop._run` under
  :func:`supervised`: if the body raises, the exception is logged with its traceback and
  the body is started again after a :class:`Backoff` delay. A loop ends only when it is
  cancelled by :meth:`~BackgroundLoop.stop`.
* **Keyed loops** (:class:`KeyedLoops`): one task per key — per peer (the federation
  sender), per webhook subscriber. A supervisor reloads the wanted keys every
  ``poll_s``, starts a task for each new key, cancels the tasks of keys that went away,
  and restarts a task that failed (logged, after its own backoff; the failure count is
  forgotten once a task has run for a minute). With ``lock_space`` set, a key is served
  only by the process holding the PostgreSQL session advisory lock
  ``(lock_space, hash(key))`` on the supervisor's dedicated connection, so with
  ``exchange node up --workers N`` each peer and each subscriber is served by exactly
  one worker process. When that connection is lost (the database restarted) the locks
  are gone with it: every task is cancelled and the locks are taken again on a new
  connection, so a key is never served twice.
* **A database-wide leader** (:func:`run_as_leader`): the log writer (sequencer) and the
  search indexer. Whoever holds the advisory lock on its dedicated connection runs the
  body; the others retry every second; a lost connection ends the leadership. Work that
  follows a leader it does not hold itself (the witness and the attachment fetcher run
  where the log writer runs) loops with :func:`rounds_while`.

The shared :class:`Backoff` doubles from ``base`` up to ``cap``, with "full jitter"
drawn *inside* the cap (``uniform(d/2, d)`` with ``d = min(cap, base * 2**n)``), so a delay
never exceeds ``cap`` — the federation sender and the webhooks use it for their
persisted retry times too.

Errors say whether a retry can help through their class (:attr:`ExchangeError.retryable
<exchange.errors.ExchangeError.retryable>`; :func:`exchange.errors.is_retryable` for a
wire code), not through string sets kept by each loop.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg

__all__ = [
    "Backoff",
    "BackgroundLoop",
    "KeyedLoops",
    "cancel_and_wait",
    "key_lock_id",
    "rounds_while",
    "run_as_leader",
    "supervised",
]

_log = logging.getLogger(__name__)
K = TypeVar("K", bound=Hashable)
_HEALTHY_S = 60.0  # a task that ran this long forgets its earlier failures


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter, capped.

    Args:
        base: The first delay (seconds).
        cap: The longest delay; jitter is drawn inside it, never above.
    """

    base: float = 0.5
    cap: float = 30.0

    def delay(self, failures: int) -> float:
        """The delay before attempt ``failures + 1`` (``failures`` >= 1 failed so far)."""
        d = min(self.cap, self.base * 2 ** min(max(failures - 1, 0), 40))
        return random.uniform(d / 2, d)


async def cancel_and_wait(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait until it has ended, cancelling again if it goes on.

    On Python 3.11, ``asyncio.wait_for`` returns its result and *drops* a cancellation
    that arrives just as the awaited future completes; a loop waiting with
    ``wait_for(event.wait(), timeout)`` can then run on, and a plain ``cancel(); await``
    waits for it forever. The cancellation is therefore repeated until the task is done.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)
    if not task.cancelled():
        with contextlib.suppress(asyncio.CancelledError):
            exc = task.exception()
            if exc is not None:
                raise exc


async def supervised(
    name: str, body: Callable[[], Awaitable[None]], backoff: Backoff = Backoff()
) -> None:
    """Run ``body`` until cancelled: log any exception it raises and run it again.

    A body that returns is run again too (after ``backoff.base``): a loop only ends
    through cancellation.
    """
    failures = 0
    while True:
        started = time.monotonic()
        try:
            await body()
            delay = backoff.base
        except asyncio.CancelledError:
            raise
        except Exception:
            failures = 1 if time.monotonic() - started > _HEALTHY_S else failures + 1
            delay = backoff.delay(failures)
            _log.exception(
                "%s failed (%d in a row); restarting in %.1f s", name, failures, delay
            )
        await asyncio.sleep(delay)


class BackgroundLoop(abc.ABC):
    """Runs :meth:`_run` as one supervised task between :meth:`start` and :meth:`stop`.

    Subclasses set :attr:`task_name` (shown in task dumps and logs) and implement
    :meth:`_run`, which normally loops until cancelled; if it raises, it is logged and
    run again (:func:`supervised`).
    """

    task_name = "background-loop"
    restart_backoff = Backoff()
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop (once; starting a running loop does nothing)."""
        if self._task is None:
            self._task = asyncio.create_task(
                supervised(self.task_name, self._run, self.restart_backoff),
                name=self.task_name,
            )

    async def stop(self) -> None:
        """Cancel the loop and wait until it has ended."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)

    @abc.abstractmethod
    async def _run(self) -> None:
        """The loop's body."""


async def rounds_while(
    leading: Callable[[], bool],
    one_round: Callable[[], Awaitable[object]],
    interval: float,
    what: str,
    *,
    follow_s: float = 0.25,
) -> None:
    """Run ``one_round`` every ``interval`` seconds while ``leading()`` holds; check
    again every ``follow_s`` (at most ``interval``) while it does not. A round that
    raises is logged and the next one runs on time.

    For work that belongs to whichever process holds some leadership already (the
    witness and the attachment fetcher follow the log writer), so it needs no lock of
    its own."""
    while True:
        if not leading():
            await asyncio.sleep(min(interval, follow_s))
            continue
        try:
            await one_round()
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.warning("%s round failed", what, exc_info=True)
        await asyncio.sleep(interval)


def key_lock_id(key: Hashable) -> int:
    """A stable signed 32-bit id for ``key`` (the second half of an advisory lock)."""
    digest = hashlib.blake2b(repr(key).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass
class _Keyed:
    task: asyncio.Task[None] | None = None
    started: float = 0.0
    failures: int = 0
    restart_at: float = 0.0


class KeyedLoops(Generic[K]):
    """One supervised task per key, started and stopped as the wanted keys change.

    Args:
        name: Shown in task names and logs (``name-KEY``).
        keys: Returns the keys that should be served now.
        body: The loop for one key; runs until cancelled (raising means: restart it).
        poll_s: How often the wanted keys are reloaded and failed tasks restarted.
        backoff: Restart delays of a failing key.
        lock_url: With ``lock_space``: the database whose advisory locks pick, among
            processes, the one that serves a key.
        lock_space: First half of the advisory lock ids (one per kind of loop).
        app_name: ``application_name`` of the lock connection (seen in
            ``pg_stat_activity``).
    """

    def __init__(
        self,
        name: str,
        keys: Callable[[], Awaitable[Iterable[K]]],
        body: Callable[[K], Coroutine[Any, Any, None]],
        *,
        poll_s: float = 1.0,
        backoff: Backoff = Backoff(),
        lock_url: str | None = None,
        lock_space: int | None = None,
        app_name: str = "",
    ) -> None:
        self.name = name
        self._keys = keys
        self._body = body
        self.poll_s = poll_s
        self.backoff = backoff
        self._lock_url = lock_url if lock_space is not None else None
        self._lock_space = lock_space
        self._app_name = app_name or f"exchange-{name}"
        self._conn: asyncpg.Connection | None = None
        self._held: set[K] = set()
        self._running: dict[K, _Keyed] = {}
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def serving(self) -> set[K]:
        """Keys whose task runs in this process now."""
        return {
            k
            for k, s in self._running.items()
            if s.task is not None and not s.task.done()
        }

    def start(self) -> None:
        """Start the supervisor (once)."""
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise(), name=self.name)

    async def stop(self) -> None:
        """Cancel every task and the supervisor; release the locks."""
        sup, self._supervisor = self._supervisor, None
        if sup is not None:
            await cancel_and_wait(sup)
        await self._drop_all()
        await self._close_lock_conn()

    async def _drop_all(self) -> None:
        tasks = [s.task for s in self._running.values() if s.task is not None]
        self._running.clear()
        for t in tasks:
            with contextlib.suppress(Exception):
                await cancel_and_wait(t)

    async def _close_lock_conn(self) -> None:
        conn, self._conn = self._conn, None
        self._held.clear()
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=2.0)

    async def _supervise(self) -> None:
        failures = 0
        while True:
            try:
                await self._round()
                failures = 0
                await asyncio.sleep(self.poll_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                delay = self.backoff.delay(failures)
                _log.warning(
                    "%s: supervisor round failed (%s: %s); again in %.1f s",
                    self.name,
                    type(exc).__name__,
                    exc,
                    delay,
                )
                if self._lock_url is not None and (
                    self._conn is None or self._conn.is_closed()
                ):
                    # The locks went with the connection: nobody may serve on without them.
                    await self._drop_all()
                    await self._close_lock_conn()
                await asyncio.sleep(delay)

    async def _round(self) -> None:
        if self._lock_url is not None and (
            self._conn is None or self._conn.is_closed()
        ):
            if self._running:
                _log.warning(
                    "%s: lock connection lost; stopping %d loop(s) until the "
                    "locks are taken again",
                    self.name,
                    len(self._running),
                )
            await self._drop_all()
            await self._close_lock_conn()
            self._conn = await asyncpg.connect(
                self._lock_url, server_settings={"application_name": self._app_name}
            )
        wanted = set(await self._keys())
        for k in set(self._running) - wanted:
            gone = self._running.pop(k)
            if gone.task is not None:
                await cancel_and_wait(gone.task)
            await self._unlock(k)
        now = time.monotonic()
        for k in wanted:
            cur: _Keyed | None = self._running.get(k)
            if cur is not None and cur.task is not None:
                if not cur.task.done():
                    continue
                exc = None if cur.task.cancelled() else cur.task.exception()
                ran = now - cur.started
                cur.failures = 1 if ran > _HEALTHY_S else cur.failures + 1
                delay = (
                    self.backoff.delay(cur.failures)
                    if exc is not None
                    else self.backoff.base
                )
                cur.restart_at = now + delay
                cur.task = None
                if exc is not None:
                    _log.warning(
                        "%s %s failed (%d in a row); restarting in %.1f s",
                        self.name,
                        k,
                        cur.failures,
                        delay,
                        exc_info=exc,
                    )
            if cur is not None and now < cur.restart_at:
                continue
            if not await self._lock(k):
                continue
            state = cur if cur is not None else _Keyed()
            state.task = asyncio.create_task(self._body(k), name=f"{self.name}-{k}")
            state.started = now
            self._running[k] = state

    async def _lock(self, key: K) -> bool:
        if self._lock_url is None or key in self._held:
            return True
        assert self._conn is not None
        got = bool(
            await self._conn.fetchval(
                "SELECT pg_try_advisory_lock($1, $2)",
                self._lock_space,
                key_lock_id(key),
            )
        )
        if got:
            self._held.add(key)
        return got

    async def _unlock(self, key: K) -> None:
        if self._lock_url is None or key not in self._held:
            return
        self._held.discard(key)
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.fetchval(
                "SELECT pg_advisory_unlock($1, $2)", self._lock_space, key_lock_id(key)
            )


async def run_as_leader(
    url: str,
    lock_key: int,
    body: Callable[[asyncpg.Connection], Awaitable[None]],
    *,
    name: str,
    app_name: str,
    on_change: Callable[[bool], None] = lambda _: None,
    retry_s: float = 1.0,
    backoff: Backoff = Backoff(1.0, 30.0),
) -> None:
    """Compete for a database-wide role until cancelled.

    The holder of the session advisory lock ``lock_key`` on a dedicated connection
    (named ``app_name`` in ``pg_stat_activity``) runs ``body(conn)``; the others retry
    every ``retry_s``. A lost connection or a failing body ends the leadership (logged;
    the lock goes with the connection) and the competition starts again after a backoff.
    ``on_change`` is told when this process becomes or stops being the leader.
    """
    failures = 0
    while True:
        conn: asyncpg.Connection | None = None
        leading = False
        started = time.monotonic()
        try:
            conn = await asyncpg.connect(
                url, server_settings={"application_name": app_name}
            )
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_key):
                await conn.close()
                conn = None
                failures = 0
                await asyncio.sleep(retry_s)
                continue
            leading = True
            on_change(True)
            _log.info("this process is now the %s", name)
            await body(conn)
            failures = 0
        except asyncio.CancelledError:
            raise
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            failures += 1
            _log.warning("%s lost its database connection: %s", name, exc)
        except Exception:
            failures = (
                1
                if leading and time.monotonic() - started > _HEALTHY_S
                else failures + 1
            )
            _log.exception("%s failed", name)
        finally:
            if leading:
                on_change(False)
            if conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), timeout=2.0)
        await asyncio.sleep(backoff.delay(failures) if failures else retry_s)
