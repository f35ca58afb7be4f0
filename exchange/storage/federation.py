"""The installed roster, per-peer cursors and backoff, and received site records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from exchange.core.trust import Reader

from .database import Database
from .items import ENVELOPE_SQL, StoredItem, _stored, _visibility

__all__ = ["FederationStore", "PeerRow"]


@dataclass(frozen=True)
class PeerRow:
    """A peer's delivery state as stored."""

    node_id: str
    base_url: str
    push_cursor: int
    pull_cursor: int
    pushed_total: int
    pulled_total: int
    refused_total: int
    last_success: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    attempts: int
    next_attempt_at: datetime


class FederationStore:
    """Queries on ``roster``, ``peers`` and ``site_records``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- roster --------------------------------------------------------------------------
    async def roster(self) -> tuple[int, dict[str, Any]] | None:
        """The installed signed roster and its version."""
        async with self.db.pool.acquire() as c:
            row = await c.fetchrow("SELECT version, signed FROM roster WHERE id = 1")
        return (int(row["version"]), row["signed"]) if row else None

    async def install_roster_txn(
        self, conn: asyncpg.Connection, version: int, signed: dict[str, Any]
    ) -> bool:
        """Store a roster if newer than the installed one (compare-and-set)."""
        status = await conn.execute(
            """INSERT INTO roster (id, version, signed) VALUES (1, $1, $2)
               ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version,
                 signed = EXCLUDED.signed, installed_at = now()
               WHERE roster.version < EXCLUDED.version""",
            version,
            signed,
        )
        return bool(status.endswith(" 1"))

    async def sync_peers_txn(
        self, conn: asyncpg.Connection, peers: Sequence[tuple[str, str]]
    ) -> None:
        """Make the peers table match the roster's other nodes (cursors kept)."""
        await conn.execute(
            "DELETE FROM peers WHERE node_id <> ALL($1::text[])", [p[0] for p in peers]
        )
        for node_id, url in peers:
            await conn.execute(
                """INSERT INTO peers (node_id, base_url) VALUES ($1, $2)
                   ON CONFLICT (node_id) DO UPDATE SET base_url = EXCLUDED.base_url""",
                node_id,
                url,
            )

    # -- peers ---------------------------------------------------------------------------
    async def peers(self) -> list[PeerRow]:
        """Every peer's state."""
        async with self.db.pool.acquire() as c:
            rows = await c.fetch("SELECT * FROM peers ORDER BY node_id")
        return [PeerRow(**dict(r)) for r in rows]

    async def peer(self, node_id: str) -> PeerRow | None:
        """One peer's state."""
        async with self.db.pool.acquire() as c:
            row = await c.fetchrow("SELECT * FROM peers WHERE node_id = $1", node_id)
        return PeerRow(**dict(row)) if row else None

    async def push_done(
        self,
        node_id: str,
        cursor: int,
        sent: int,
        refused: int,
        refusal: str | None = None,
    ) -> None:
        """Advance the push cursor after the peer acknowledged; clear backoff.

        ``refusal`` (items the peer refused for good, and why) is kept as the last error,
        so ``peer status`` shows refusals, not only failures."""
        async with self.db.pool.acquire() as c:
            await c.execute(
                """UPDATE peers SET push_cursor = greatest(push_cursor, $2),
                     pushed_total = pushed_total + $3, refused_total = refused_total + $4,
                     last_success = now(), attempts = 0, next_attempt_at = now(),
                     last_error = CASE WHEN $5::text IS NULL THEN NULL ELSE $5::text END,
                     last_error_at = CASE WHEN $5::text IS NULL THEN last_error_at
                                          ELSE now() END
                   WHERE node_id = $1""",
                node_id,
                cursor,
                sent,
                refused,
                refusal,
            )

    async def skip_to(
        self, node_id: str, cursor: int, *, delivered: bool = False
    ) -> None:
        """Move the push cursor past local items the peer does not serve, or has.

        ``delivered``: the peer's own catch-up pull says it holds everything up to
        ``cursor``; that is a delivery like an acknowledged push, so when the cursor
        moves, ``last_success`` moves too (``peer status`` would otherwise show a peer
        kept current by its pulls as never reached). The peer is also up, so a backoff
        after failed pushes to it ends now: the sender need not sleep out a long delay
        while the peer that came back pulls (its requests come at most every
        ``pull_interval_ms``, so a peer that is up but refuses pushes is not hammered)."""
        async with self.db.pool.acquire() as c:
            await c.execute(
                """UPDATE peers SET push_cursor = greatest(push_cursor, $2),
                     last_success = CASE WHEN $3 AND push_cursor < $2 THEN now()
                                         ELSE last_success END,
                     attempts = CASE WHEN $3 THEN 0 ELSE attempts END,
                     next_attempt_at = CASE WHEN $3 THEN least(next_attempt_at, now())
                                            ELSE next_attempt_at END
                   WHERE node_id = $1""",
                node_id,
                cursor,
                delivered,
            )

    async def pull_done(self, node_id: str, cursor: int, pulled: int) -> None:
        """Advance the pull cursor after storing what was pulled."""
        async with self.db.pool.acquire() as c:
            await c.execute(
                """UPDATE peers SET pull_cursor = greatest(pull_cursor, $2),
                     pulled_total = pulled_total + $3, last_success = now()
                   WHERE node_id = $1""",
                node_id,
                cursor,
                pulled,
            )

    async def pushed_through(self, node_id: str, after: int, through: int) -> bool:
        """A peer's push covered its log positions ``(after, through]``: move the pull cursor
        over them, so the catch-up pull does not fetch them again. Only when the range
        adjoins what we already have (``pull_cursor >= after``): a gap is left for the
        puller. True if the cursor moved."""
        async with self.db.pool.acquire() as c:
            status = await c.execute(
                """UPDATE peers SET pull_cursor = $3
                   WHERE node_id = $1 AND pull_cursor >= $2 AND pull_cursor < $3""",
                node_id,
                after,
                through,
            )
        return bool(status.endswith(" 1"))

    async def failed(self, node_id: str, error: str, delay_s: float) -> int:
        """Record a failure and the time of the next attempt; returns the attempt count."""
        async with self.db.pool.acquire() as c:
            n = await c.fetchval(
                """UPDATE peers SET attempts = attempts + 1, last_error = $2,
                     last_error_at = now(), next_attempt_at = now() + make_interval(secs => $3)
                   WHERE node_id = $1 RETURNING attempts""",
                node_id,
                error[:300],
                delay_s,
            )
        return int(n or 0)

    async def backlog(self, node_id: str, reader: Reader, cursor: int) -> int:
        """Local items after ``cursor`` that the peer serves (what it is waiting for)."""
        args: list[Any] = [cursor]
        cond = _visibility(reader, args)
        async with self.db.pool.acquire() as c:
            return int(
                await c.fetchval(
                    f"SELECT count(*) FROM items WHERE origin = 'local' AND idx > $1 AND {cond}",
                    *args,
                )
            )

    async def local_after(
        self, reader: Reader, after: int, limit: int, max_bytes: int
    ) -> tuple[list[StoredItem], int]:
        """Local items after ``after`` visible to a peer, and the highest index examined.

        The examined position lets a cursor move past items the peer does not serve.
        """
        rows, examined = await self._local_page(
            reader, after, limit, max_bytes, "w.*, octet_length(w.canonical) AS size"
        )
        return [_stored(r) for r in rows], examined

    async def local_after_json(
        self, reader: Reader, after: int, limit: int, max_bytes: int
    ) -> tuple[list[bytes], set[str], int]:
        """:meth:`local_after` with each item as its ``ItemEnvelope`` JSON, written by
        PostgreSQL (``ENVELOPE_SQL``, byte for byte ``orjson.dumps(item_envelope(i))``),
        and the items' authors."""
        rows, examined = await self._local_page(
            reader,
            after,
            limit,
            max_bytes,
            f"w.idx, {ENVELOPE_SQL} AS env, w.author,"
            " octet_length(w.canonical) AS size",
        )
        return [r["env"] for r in rows], {r["author"] for r in rows}, examined

    async def _local_page(
        self, reader: Reader, after: int, limit: int, max_bytes: int, columns: str
    ) -> tuple[list[Any], int]:
        """Rows of ``columns`` (among them ``idx`` and ``size``, the canonical bytes'
        length) of the local items after ``after`` that ``reader`` sees, cut at
        ``limit`` rows or ``max_bytes`` (the first row always goes), and the highest
        index examined."""
        async with self.db.pool.acquire() as c:
            # The head first: every item at or below a committed head is committed
            # (both are written in one transaction), so nothing is skipped unseen.
            head = int(await c.fetchval("SELECT size - 1 FROM log_head WHERE id = 1"))
            args: list[Any] = [after, head]
            cond = _visibility(reader, args)
            args.append(limit)
            rows = await c.fetch(
                f"""SELECT {columns} FROM items w
                    WHERE origin = 'local' AND idx > $1 AND idx <= $2
                    AND {cond} ORDER BY idx LIMIT ${len(args)}""",
                *args,
            )
        used = 0
        for n, r in enumerate(rows):
            if n and used + r["size"] > max_bytes:
                return rows[:n], rows[n - 1]["idx"]
            used += r["size"]
        if len(rows) == limit and rows:
            return rows, rows[-1]["idx"]
        return rows, head

    # -- site records --------------------------------------------------------------------
    async def site_record_version(self, site_id: str) -> int:
        """Version of the stored record of a site (0 if none)."""
        async with self.db.pool.acquire() as c:
            v = await c.fetchval(
                "SELECT version FROM site_records WHERE site_id = $1", site_id
            )
        return int(v or 0)

    async def site_record_versions(self, site_ids: Sequence[str]) -> dict[str, int]:
        """Versions of the stored records of some sites (absent: none stored)."""
        async with self.db.pool.acquire() as c:
            rows = await c.fetch(
                "SELECT site_id, version FROM site_records WHERE site_id = ANY($1::text[])",
                list(site_ids),
            )
        return {r["site_id"]: int(r["version"]) for r in rows}

    async def store_site_record_txn(
        self,
        conn: asyncpg.Connection,
        site_id: str,
        version: int,
        signed: dict[str, Any],
        received_from: str,
    ) -> None:
        """Keep the newest record per site."""
        await conn.execute(
            """INSERT INTO site_records (site_id, version, signed, received_from)
               VALUES ($1, $2, $3, $4)
               ON CONFLICT (site_id) DO UPDATE SET version = EXCLUDED.version,
                 signed = EXCLUDED.signed, received_from = EXCLUDED.received_from,
                 received_at = now()
               WHERE site_records.version < EXCLUDED.version""",
            site_id,
            version,
            signed,
            received_from,
        )

    async def site_records(self) -> list[dict[str, Any]]:
        """Every stored site record received from peers (signed documents), by site."""
        async with self.db.pool.acquire() as c:
            rows = await c.fetch("SELECT signed FROM site_records ORDER BY site_id")
        return [r["signed"] for r in rows]
