"""Saved queries of sites (``subscriptions``) and their durable cursors."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .database import Database

__all__ = ["SubscriptionRow", "SubscriptionStore"]


@dataclass(frozen=True)
class SubscriptionRow:
    """A saved query as stored."""

    id: str
    site: str
    q: str
    kind: str | None
    tag: str | None
    author: str | None
    cursor: int
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """As a ``Subscription`` body."""
        return {
            "id": self.id,
            "site": self.site,
            "q": self.q,
            "kind": self.kind,
            "tag": self.tag,
            "author": self.author,
            "cursor": self.cursor,
            "created_at": self.created_at.isoformat(),
        }


def _row(r: Any) -> SubscriptionRow:
    return SubscriptionRow(
        r["id"],
        r["site"],
        r["q"],
        r["kind"],
        r["tag"],
        r["author"],
        r["cursor"],
        r["created_at"],
    )


class SubscriptionStore:
    """Queries on ``subscriptions``; every method is scoped to the owning site."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self, site: str, q: str, kind: str | None, tag: str | None, author: str | None
    ) -> SubscriptionRow:
        """Save a query whose cursor starts at the current end of the log (new items only)."""
        sid = "sub_" + secrets.token_urlsafe(12)
        async with self.db.pool.acquire() as c:
            r = await c.fetchrow(
                """INSERT INTO subscriptions (id, site, q, kind, tag, author, cursor)
                   SELECT $1, $2, $3, $4, $5, $6, size - 1 FROM log_head WHERE id = 1
                   RETURNING *""",
                sid,
                site,
                q,
                kind,
                tag,
                author,
            )
        return _row(r)

    async def count(self, site: str) -> int:
        """How many subscriptions ``site`` has."""
        async with self.db.pool.acquire() as c:
            return int(
                await c.fetchval(
                    "SELECT count(*) FROM subscriptions WHERE site = $1", site
                )
            )

    async def list(self, site: str) -> list[SubscriptionRow]:
        """The site's subscriptions, oldest first."""
        async with self.db.pool.acquire() as c:
            rows = await c.fetch(
                "SELECT * FROM subscriptions WHERE site = $1 ORDER BY created_at, id",
                site,
            )
        return [_row(r) for r in rows]

    async def get(self, sub_id: str, site: str) -> SubscriptionRow | None:
        """One subscription of ``site`` (None if absent or another site's)."""
        async with self.db.pool.acquire() as c:
            r = await c.fetchrow(
                "SELECT * FROM subscriptions WHERE id = $1 AND site = $2", sub_id, site
            )
        return _row(r) if r else None

    async def delete(self, sub_id: str, site: str) -> bool:
        """Delete; False if there was no such subscription of ``site``."""
        async with self.db.pool.acquire() as c:
            done = await c.fetchval(
                "DELETE FROM subscriptions WHERE id = $1 AND site = $2 RETURNING 1",
                sub_id,
                site,
            )
        return bool(done)

    async def ack(self, sub_id: str, site: str, upto: int) -> int | None:
        """Move the durable cursor forward to ``upto`` (never back); returns the cursor."""
        async with self.db.pool.acquire() as c:
            cur = await c.fetchval(
                """UPDATE subscriptions SET cursor = greatest(cursor, $3), acked_at = now()
                   WHERE id = $1 AND site = $2 RETURNING cursor""",
                sub_id,
                site,
                upto,
            )
        return int(cur) if cur is not None else None
