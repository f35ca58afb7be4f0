"""Catch-up: pull what we missed from each peer's log.

Design
------
Push replication delivers new items within moments, but a node that was down, cut off, or
restored can miss some. Every ``pull_interval`` (and at start) this loop asks each peer
for its locally authored items after our per-peer pull cursor
(``GET /v1/federation/log?after=N``), verifies and stores them exactly like pushed ones
(idempotent by id), and advances the cursor to the position the peer says it examined,
only after storing. So push and pull repair each other: whichever arrives first stores
the item, the other finds it already there.

Each item crosses once: a push batch names the range of the sender's log it completes,
and the receiver moves this same pull cursor over it when the range adjoins the cursor
(:meth:`~exchange.storage.federation.FederationStore.pushed_through`). A round skips a peer
whose cursor pushes moved since the last round (the pushes are contiguous, so there is no
gap behind them), and a page starts after whatever pushes have covered meanwhile. What is
left for the puller is exactly what pushes did not deliver: a gap after downtime, a
restore, or a push that could not be stored. When pushes move the cursor while a round
pulls pages (a peer that just came back pushes its backlog), the round stops and leaves
the rest to them; and each page request tells the peer how far this node has everything
(``after``), so the peer's pushes skip what was pulled. A node that comes back catches up
by pulling: until a page comes empty (a round ends with one) the peer holds its pushes
back (they would carry the same items), then pushes go on from where the pull ended.

One process per database pulls (the holder of :data:`PULL_LOCK_KEY`, on its own
connection, as the log writer): with ``--workers``, every worker pulling would fetch and
check each page once per worker.

A backlog is pulled at the pace of the helper processes, not of one event loop: the
next page is fetched and checked while this one is stored, and a page's signatures are
checked by every helper, each taking a share (:meth:`~exchange.service.ingest.Ingestor.push_delivered`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import TYPE_CHECKING, Any

import asyncpg

from exchange.client import ExchangeClient
from exchange.errors import ExchangeError
from exchange.service.loop import BackgroundLoop, run_as_leader

if TYPE_CHECKING:
    from exchange.node import Node
    from exchange.service.ingest import Outcome, VerifiedItem

__all__ = ["PULL_LOCK_KEY", "Puller"]

_log = logging.getLogger(__name__)

PULL_LOCK_KEY = 0x45585055  # "EXPU": one catch-up puller per database

Page = tuple[int, list["VerifiedItem | Outcome"]]
"""A fetched page: its ``next_cursor`` and each item's checks."""


class Puller(BackgroundLoop):
    """Periodic catch-up from every peer."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.interval = node.config.federation.pull_interval_ms / 1000
        self.timeout = node.config.federation.request_timeout_s
        self.task_name = "federation-puller"
        self.leading = False  # this process holds PULL_LOCK_KEY and runs the rounds
        # Per peer: the pull cursor as the last round left it.
        self._seen: dict[str, int] = {}

    async def _run(self) -> None:
        db = self.node.db
        assert db is not None
        await run_as_leader(
            db.url,
            PULL_LOCK_KEY,
            self._pull_loop,
            name="catch-up puller",
            app_name=f"exchange-pull-{self.node.id}-{os.getpid()}",
            on_change=self._lead,
        )

    def _lead(self, leading: bool) -> None:
        self.leading = leading

    async def _pull_loop(self, conn: asyncpg.Connection) -> None:
        """The leader's rounds, while its lock connection lasts."""
        while not conn.is_closed():
            try:
                await self.pull_all()
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.warning("catch-up round failed", exc_info=True)
            await asyncio.sleep(self.interval)

    async def pull_all(self) -> int:
        """One round over every peer; returns items stored."""
        fed = self.node.federation
        if fed.view is None:
            return 0
        total = 0
        for peer in await fed.store.peers():
            seen = self._seen.get(peer.node_id)
            self._seen[peer.node_id] = peer.pull_cursor
            if seen is not None and peer.pull_cursor > seen:
                continue  # pushes are arriving in order: nothing for catch-up to fetch
            try:
                total += await self.pull_peer(
                    peer.node_id, peer.base_url, peer.pull_cursor
                )
            except ExchangeError as exc:
                _log.info("catch-up from %s failed: %s", peer.node_id, exc.message)
            except Exception as exc:  # unreachable peers are normal; try next round
                _log.info("catch-up from %s failed: %s", peer.node_id, exc)
        return total

    async def pull_peer(
        self, peer: str, url: str, cursor: int, *, max_pages: int = 50
    ) -> int:
        """Pull pages from one peer until it has nothing more (bounded by ``max_pages``)."""
        fed = self.node.federation
        stored = 0
        async with ExchangeClient(
            url, key=self.node.key, timeout=self.timeout, lean=True
        ) as client:

            async def fetch(after: int) -> Page:
                """A page, its site records taken in and its items checked."""
                page: dict[str, Any] = await client.request(
                    "GET", "/v1/federation/log", params={"after": after, "limit": 1000}
                )
                await fed.accept_site_records(page.get("site_records", []), peer)
                objs = [env["signed"] for env in page.get("items", [])]
                checked = (
                    await self.node.ingestor.check_delivered(
                        objs,
                        fed.node_reader(peer),
                        origin=peer,
                        max_depth=self.node.config.limits.max_depth,
                    )
                    if objs
                    else []
                )
                return int(page.get("next_cursor", after)), checked

            # The next page is fetched and checked while this one is stored.
            ahead: asyncio.Task[Page] | None = None
            try:
                for n in range(max_pages):
                    row = await fed.store.peer(peer)
                    if row is not None and row.pull_cursor > cursor:
                        if n > 0:
                            break  # pushes are delivering meanwhile: leave the rest to them
                        cursor = row.pull_cursor
                    nxt, checked = await (ahead if ahead is not None else fetch(cursor))
                    ahead = None
                    if nxt > cursor and n + 1 < max_pages:
                        ahead = asyncio.ensure_future(fetch(nxt))
                    if checked:
                        outcomes = await self.node.ingestor.commit_checked(
                            checked, fed.node_reader(peer), peer
                        )
                        bad = [
                            o
                            for o in outcomes
                            if o.error is not None and o.error.retryable
                        ]
                        if bad:  # do not advance past what could not be stored
                            return stored
                        stored += sum(1 for o in outcomes if o.status == "accepted")
                    if nxt <= cursor:
                        break
                    await fed.store.pull_done(peer, nxt, len(checked))
                    cursor = nxt
            finally:
                if ahead is not None:
                    ahead.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await ahead
        self._seen[peer] = cursor
        return stored
