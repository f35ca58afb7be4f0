"""Outbound webhook subscribers and their delivery cursors (``webhooks`` table)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from exchange.errors import Conflict, NotFound
from schemas.errors import ErrorCode

from .database import Database

__all__ = ["Webhook", "WebhookStore"]


@dataclass(frozen=True)
class Webhook:
    """One subscriber: a site's own system that receives the site's visible items."""

    id: int
    site_id: str
    url: str
    cursor: int
    created_at: datetime
    delivered_total: int
    attempts: int
    next_attempt_at: datetime
    last_success: datetime | None
    last_status: int | None
    last_error: str | None
    last_error_at: datetime | None


def _row(r: Any) -> Webhook:
    return Webhook(**{k: r[k] for k in Webhook.__dataclass_fields__})


class WebhookStore:
    """Queries on ``webhooks``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, site_id: str, url: str, cursor: int) -> Webhook:
        """Subscribe ``url`` to ``site_id``'s items after index ``cursor``.

        Raises:
            NotFound: no such site.
            Conflict: this site already has this URL.
        """
        async with self.db.pool.acquire() as c:
            try:
                r = await c.fetchrow(
                    "INSERT INTO webhooks (site_id, url, cursor) VALUES ($1, $2, $3) "
                    "RETURNING *",
                    site_id,
                    url,
                    cursor,
                )
            except asyncpg.ForeignKeyViolationError:
                raise NotFound(
                    f"no site {site_id} on this node; register it first "
                    "(exchange site add)",
                    code=ErrorCode.NOT_FOUND,
                ) from None
            except asyncpg.UniqueViolationError:
                raise Conflict(
                    f"site {site_id} already has a webhook to {url}",
                    code=ErrorCode.CONFLICT,
                ) from None
        return _row(r)

    async def remove(self, webhook_id: int) -> Webhook | None:
        """Delete a subscriber; returns what was deleted (None if none)."""
        async with self.db.pool.acquire() as c:
            r = await c.fetchrow(
                "DELETE FROM webhooks WHERE id = $1 RETURNING *", webhook_id
            )
        return _row(r) if r else None

    async def list(self, site_id: str | None = None) -> list[Webhook]:
        """Every subscriber (of one site if given), by id."""
        async with self.db.pool.acquire() as c:
            rows = await c.fetch(
                "SELECT * FROM webhooks WHERE $1::text IS NULL OR site_id = $1 "
                "ORDER BY id",
                site_id,
            )
        return [_row(r) for r in rows]

    async def get(self, webhook_id: int) -> Webhook | None:
        """One subscriber."""
        async with self.db.pool.acquire() as c:
            r = await c.fetchrow("SELECT * FROM webhooks WHERE id = $1", webhook_id)
        return _row(r) if r else None

    async def advance(
        self,
        webhook_id: int,
        cursor: int,
        delivered: int,
        at: datetime,
        status: int | None,
    ) -> None:
        """Move the cursor forward after an acknowledged delivery; clear the backoff.

        ``cursor`` only grows (``GREATEST``): a stale writer cannot move it back.
        """
        async with self.db.pool.acquire() as c:
            await c.execute(
                """UPDATE webhooks SET cursor = GREATEST(cursor, $2),
                       delivered_total = delivered_total + $3, attempts = 0,
                       next_attempt_at = $4, last_success = CASE WHEN $3 > 0 THEN $4
                       ELSE last_success END, last_status = coalesce($5, last_status)
                   WHERE id = $1""",
                webhook_id,
                cursor,
                delivered,
                at,
                status,
            )

    async def failed(
        self,
        webhook_id: int,
        attempts: int,
        retry_at: datetime,
        status: int | None,
        error: str,
        at: datetime,
    ) -> None:
        """Record a failed attempt and when to try again (the cursor stays)."""
        async with self.db.pool.acquire() as c:
            await c.execute(
                """UPDATE webhooks SET attempts = $2, next_attempt_at = $3,
                       last_status = $4,
                       last_error = $5, last_error_at = $6 WHERE id = $1""",
                webhook_id,
                attempts,
                retry_at,
                status,
                error[:1000],
                at,
            )
