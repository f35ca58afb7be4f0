"""One LISTEN connection per node process, fanning notifications out.

Ingest notifies ``exchange_items`` after each commit and the directory notifies
``exchange_keys`` when keys change. Rather than each consumer (federation sender,
log writer, search indexer, dashboard, key cache) holding its own LISTEN connection,
a :class:`Notifier` holds one and calls every subscriber's callback. When the
connection is lost it reconnects with the shared backoff; after every (re)connect each
subscriber that asked for it is *nudged* (called with an empty payload), because
notifications sent while nobody listened are lost. :attr:`Notifier.live` (and the
``on_live`` callbacks) tell whether notifications are flowing — the key cache is used
only while they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from exchange.service.loop import BackgroundLoop, Backoff

__all__ = ["Notifier"]

_log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Sub:
    channel: str
    callback: Callable[[str], None]
    nudge: bool


class Notifier(BackgroundLoop):
    """Holds one LISTEN connection and fans notifications out to subscribers.

    Args:
        url: The database URL.
        app_name: ``application_name`` of the connection.
    """

    task_name = "notifier"

    def __init__(self, url: str, app_name: str = "exchange-notify") -> None:
        self.url = url
        self.app_name = app_name
        self.live = False
        self._subs: list[_Sub] = []
        self._on_live: list[Callable[[bool], None]] = []
        self._conn: asyncpg.Connection | None = None
        self._listening: set[str] = set()
        self._pending: set[asyncio.Task[None]] = set()
        self.backoff = Backoff(0.2, 5.0)

    def subscribe(
        self, channel: str, callback: Callable[[str], None], *, nudge: bool = True
    ) -> Callable[[], None]:
        """Call ``callback(payload)`` on each notification of ``channel``.

        With ``nudge``, it is also called with ``""`` after each (re)connect. Returns a
        function that unsubscribes.
        """
        sub = _Sub(channel, callback, nudge)
        self._subs.append(sub)
        if self._conn is not None and channel not in self._listening:
            task = asyncio.get_running_loop().create_task(
                self._listen(self._conn, channel)
            )
            self._pending.add(task)  # keep a reference until it is done
            task.add_done_callback(self._pending.discard)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subs.remove(sub)

        return unsubscribe

    def on_live(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(live)`` whenever notifications start or stop flowing."""
        self._on_live.append(callback)

    def off_live(self, callback: Callable[[bool], None]) -> None:
        """Forget an :meth:`on_live` callback."""
        with contextlib.suppress(ValueError):
            self._on_live.remove(callback)

    def _dispatch(self, _conn: object, _pid: int, channel: str, payload: str) -> None:
        for sub in list(self._subs):
            if sub.channel == channel:
                try:
                    sub.callback(payload)
                except Exception:  # one subscriber never stops the others
                    _log.exception("notification subscriber of %s failed", channel)

    async def _listen(self, conn: asyncpg.Connection, channel: str) -> None:
        with contextlib.suppress(Exception):  # a lost connection is seen by _run
            await conn.add_listener(channel, self._dispatch)
            self._listening.add(channel)

    def _set_live(self, live: bool) -> None:
        if live == self.live:
            return
        self.live = live
        for cb in list(self._on_live):
            cb(live)

    async def _run(self) -> None:
        failures = 0
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self.url, server_settings={"application_name": self.app_name}
                )
                self._listening = set()
                for channel in {s.channel for s in self._subs}:
                    await conn.add_listener(channel, self._dispatch)
                    self._listening.add(channel)
                self._conn = conn
                failures = 0
                self._set_live(True)
                for sub in list(self._subs):
                    if sub.nudge:
                        sub.callback("")
                while not conn.is_closed():
                    await asyncio.sleep(0.5)
                _log.warning("notification connection lost; reconnecting")
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                failures += 1
                if failures == 1:
                    _log.warning("notification connection failed: %s", exc)
            finally:
                self._conn = None
                self._set_live(False)
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), timeout=2.0)
            await asyncio.sleep(self.backoff.delay(max(failures, 1)))
