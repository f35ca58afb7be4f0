"""AdapterHealthStore: the latest adapter-runner report of each site."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from .database import Database

__all__ = ["AdapterHealthRow", "AdapterHealthStore"]


@dataclass(frozen=True)
class AdapterHealthRow:
    """One site's latest report."""

    site: str
    report: dict[str, Any]
    received_at: datetime


class AdapterHealthStore:
    """Queries on ``adapter_health``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def save(
        self,
        site: str,
        report: dict[str, Any],
        *,
        conn: asyncpg.Connection | None = None,
    ) -> datetime:
        """Replace a site's report; returns when the node received it."""
        async with self.db.connect(conn) as c:
            received: datetime = await c.fetchval(
                """INSERT INTO adapter_health (site, report) VALUES ($1, $2)
                   ON CONFLICT (site) DO UPDATE
                   SET report = EXCLUDED.report, received_at = now()
                   RETURNING received_at""",
                site,
                report,
            )
        return received

    async def latest(
        self, sites: Collection[str] | None, *, conn: asyncpg.Connection | None = None
    ) -> list[AdapterHealthRow]:
        """Reports of the given sites (all sites when ``None``), by site id."""
        async with self.db.connect(conn) as c:
            rows = await c.fetch(
                """SELECT site, report, received_at FROM adapter_health
                   WHERE $1::text[] IS NULL OR site = ANY($1::text[])
                   ORDER BY site""",
                None if sites is None else list(sites),
            )
        return [
            AdapterHealthRow(r["site"], r["report"], r["received_at"]) for r in rows
        ]
