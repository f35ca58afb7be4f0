"""Saved queries: a site is told of new matches, each once, from a durable cursor.

Design
------
A subscription is a saved query (text, kind, tag, author) of one site plus a **durable
cursor**: the log index up to which every match has been delivered *and acknowledged*.
It starts at the end of the log when the query is saved, so only new items match.

Delivery reads the log after a position, in windows of :data:`WINDOW` indexes, with the
same index and audience rule as search (the site sees only what it may read), and never
writes anything on the way out. The cursor moves only when the receiver acknowledges:

* **pull** (adapters, sinks): ``GET …/matches?after=N`` acknowledges everything up to
  ``N`` and returns the matches after it plus ``next_after``, the highest index
  examined — pass it next time. Without ``after`` it starts at the durable cursor.
* **server-sent events**: each match is an event whose ``id`` is its log index; a
  client reconnecting with ``Last-Event-ID: N`` (browsers do it by themselves)
  acknowledges up to ``N`` and resumes right after it. Between matches the stream
  waits for the node's ``exchange_items`` notification (or 15 s, then a ping).

So a receiver that acknowledges what it has stored gets every match exactly once, even
across crashes on either side; one that never acknowledges gets them again from its
cursor. Scanning is bounded per request (:data:`MAX_SCAN`), so a long stretch of
non-matching items costs several cheap requests, never one long scan.
"""

from __future__ import annotations

from exchange.core.search_text import parse_query
from exchange.core.trust import Reader
from exchange.errors import InputError, NotFound
from exchange.storage.database import Database
from exchange.storage.items import StoredItem
from exchange.storage.search import SearchFilter, SearchStore
from exchange.storage.subscriptions import SubscriptionRow, SubscriptionStore
from schemas.errors import ErrorCode

__all__ = ["MAX_PER_SITE", "MAX_SCAN", "WINDOW", "SubscriptionService"]

WINDOW = 5_000
"""Log indexes examined per statement."""

MAX_SCAN = 50_000
"""Log indexes examined per request at most."""

MAX_PER_SITE = 100
"""Subscriptions one site may hold."""


class SubscriptionService:
    """Create, list and delete saved queries; deliver their matches.

    Args:
        db: The database.
        search: The search store (matching uses the search index).
    """

    fresh_wait = 3.0
    """Seconds a pull of matches waits for the search index to reach the log head."""

    def __init__(self, db: Database, search: SearchStore) -> None:
        self.store = SubscriptionStore(db)
        self.search = search

    async def create(
        self, site: str, q: str, kind: str | None, tag: str | None, author: str | None
    ) -> SubscriptionRow:
        """Save a query for ``site``.

        Raises:
            InputError: the text is not a valid query, or the site has too many.
        """
        if q.strip():
            parse_query(q)
        if await self.store.count(site) >= MAX_PER_SITE:
            raise InputError(
                f"a site may keep at most {MAX_PER_SITE} subscriptions; delete unused ones",
                code=ErrorCode.BAD_REQUEST,
            )
        return await self.store.create(site, q.strip(), kind, tag, author)

    async def get(self, sub_id: str, site: str) -> SubscriptionRow:
        """The site's subscription.

        Raises:
            NotFound: none with this id belongs to ``site``.
        """
        sub = await self.store.get(sub_id, site) if len(sub_id) <= 80 else None
        if sub is None:
            raise NotFound(
                f"no subscription {sub_id} of yours", code=ErrorCode.NOT_FOUND
            )
        return sub

    async def delete(self, sub_id: str, site: str) -> None:
        """Delete the site's subscription.

        Raises:
            NotFound: none with this id belongs to ``site``.
        """
        if len(sub_id) > 80 or not await self.store.delete(sub_id, site):
            raise NotFound(
                f"no subscription {sub_id} of yours", code=ErrorCode.NOT_FOUND
            )

    async def ack(self, sub: SubscriptionRow, upto: int) -> int:
        """Acknowledge every match up to ``upto``; returns the durable cursor."""
        cur = await self.store.ack(sub.id, sub.site, upto)
        if cur is None:
            raise NotFound(
                f"subscription {sub.id} was deleted", code=ErrorCode.NOT_FOUND
            )
        return cur

    async def matches(
        self, reader: Reader, sub: SubscriptionRow, after: int, *, limit: int = 100
    ) -> tuple[list[StoredItem], int]:
        """Matches with index above ``after`` (at most ``limit``), by index.

        Returns:
            The matches and the highest index examined (the next ``after``).
        """
        query = parse_query(sub.q) if sub.q else None
        flt = SearchFilter(kind=sub.kind, author=sub.author, tag=sub.tag)
        # Matches come from the search index, built just behind the log: give it a
        # moment to cover what was acknowledged (the cursor never passes it anyway).
        await self.search.wait_fresh(self.fresh_wait)
        found: list[StoredItem] = []
        pos = after
        while pos - after < MAX_SCAN and len(found) < limit:
            items, upto = await self.search.matches_after(
                reader,
                query.tsquery if query else None,
                flt,
                after=pos,
                window=WINDOW,
                limit=limit - len(found),
            )
            found.extend(items)
            if upto == pos:  # the end of the log
                break
            pos = upto
        return found, pos
