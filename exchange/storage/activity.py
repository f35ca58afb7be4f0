"""What monitors see: daily counters, refusal and security events, dashboard sessions.

Counter and event writes go through the relaxed pool (no wait for the WAL flush): they
are statistics, and losing the last few in a crash is acceptable, while adding an fsync
to every request is not.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from exchange.errors import escape_controls

from .database import Database

__all__ = ["ActivityStore", "SECURITY_CODES"]

_MAX_PENDING_EVENTS = 2000

# Error codes that are security events when they happen (forgery, misuse of keys,
# replays, log inconsistencies), as opposed to ordinary malformed input.
SECURITY_CODES = frozenset(
    {
        "bad_signature",
        "unknown_key",
        "revoked_key",
        "author_mismatch",
        "key_not_yet_valid",
        "bad_request_signature",
        "replayed_request",
        "not_home_node",
        "checkpoint_invalid",
        "proof_invalid",
        "roster_invalid",
    }
)


class ActivityStore:
    """Queries on ``activity_daily``, ``activity_events`` and ``monitor_sessions``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: dict[tuple[date, str, str], int] = {}
        self._events: dict[tuple[datetime, str, str, str, str], list[Any]] = {}
        self._flushing = asyncio.Lock()

    async def bump(
        self, site: str, metric: str, n: int = 1, day: date | None = None
    ) -> None:
        """Add ``n`` to a site's counter for ``day`` (today, UTC+8, by default).

        Counts accumulate in memory and are written by :meth:`flush` (the node flushes
        every second and on shutdown): one statement for all of them instead of one
        write per request.
        """
        if n <= 0 or not site:
            return
        key = (day or china_today(), site, metric)
        self._pending[key] = self._pending.get(key, 0) + n

    async def flush(self) -> int:
        """Write accumulated counters and events; returns how many rows were written.

        One flush at a time: a reader that flushes first (the activity report) waits
        for a flush already under way instead of reading before it lands."""
        async with self._flushing:
            return await self._flush()

    async def _flush(self) -> int:
        written = await self._flush_events()
        if not self._pending:
            return written
        pending, self._pending = self._pending, {}
        keys = list(pending)
        try:
            async with self.db.relaxed_pool.acquire() as c:
                await c.execute(
                    """INSERT INTO activity_daily (day, site, metric, n)
                       SELECT * FROM unnest($1::date[], $2::text[], $3::text[], $4::bigint[])
                       ON CONFLICT (day, site, metric)
                       DO UPDATE SET n = activity_daily.n + EXCLUDED.n""",
                    [k[0] for k in keys],
                    [k[1] for k in keys],
                    [k[2] for k in keys],
                    [pending[k] for k in keys],
                )
        except BaseException:
            for k, v in pending.items():  # keep them for the next flush
                self._pending[k] = self._pending.get(k, 0) + v
            raise
        return written + len(keys)

    async def event(
        self,
        kind: str,
        site: str,
        code: str,
        message: str,
        detail: dict[str, Any] | None = None,
        *,
        source: str = "",
    ) -> None:
        """Note a refusal or security event (message must hold no secrets).

        Events are counted in memory per minute, kind, site, code and ``source`` (the
        client address) and written by :meth:`flush`: a thousand junk requests from one
        address in a minute are one row with ``count`` 1000, not a thousand rows. The
        first message and detail of each minute are kept."""
        now = datetime.now(UTC)
        key = (now.replace(second=0, microsecond=0), kind, site, code, source[:100])
        held = self._events.get(key)
        if held is None:  # text PostgreSQL can store: no NUL, no control characters
            self._events[key] = [
                1,
                now,
                escape_controls(message)[:500],
                _storable(detail or {}),
            ]
        else:
            held[0] += 1
            held[1] = now
        if len(self._events) > _MAX_PENDING_EVENTS:  # a flood of sources: write now
            await self.flush()

    async def _flush_events(self) -> int:
        if not self._events:
            return 0
        pending, self._events = self._events, {}
        rows = [
            (k[0], k[1], k[2], k[3], k[4], v[0], v[1], v[2], v[3])
            for k, v in pending.items()
        ]
        try:
            async with self.db.relaxed_pool.acquire() as c:
                await c.executemany(
                    """INSERT INTO activity_events
                           (bucket, kind, site, code, source, count, at, message, detail)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                       ON CONFLICT (bucket, kind, site, code, source)
                           WHERE bucket IS NOT NULL
                       DO UPDATE SET count = activity_events.count + EXCLUDED.count,
                                     at = greatest(activity_events.at, EXCLUDED.at)""",
                    rows,
                )
        except BaseException:
            for k, v in pending.items():  # keep them for the next flush
                held = self._events.setdefault(k, [0, v[1], v[2], v[3]])
                held[0] += v[0]
            raise
        return len(rows)

    async def purge_events(self, days: int) -> int:
        """Delete events older than ``days``; returns how many rows went."""
        async with self.db.relaxed_pool.acquire() as c:
            done = await c.execute(
                "DELETE FROM activity_events WHERE at < now() - make_interval(days => $1)",
                days,
            )
        return int(done.split()[-1])

    async def daily(self, sites: Sequence[str], since: date) -> list[dict[str, Any]]:
        """Counters per day, site and metric for ``sites`` from ``since``."""
        async with self.db.pool.acquire() as c:
            rows = await c.fetch(
                """SELECT day, site, metric, n FROM activity_daily
                   WHERE site = ANY($1::text[]) AND day >= $2 ORDER BY day, site, metric""",
                list(sites),
                since,
            )
        return [dict(r) for r in rows]

    async def pushed_by_kind(
        self, sites: Sequence[str], since: datetime
    ) -> list[dict[str, Any]]:
        """Items authored per day (China time), author, kind and audience circle."""
        async with self.db.pool.acquire() as c:
            rows = await c.fetch(
                """SELECT (received_at AT TIME ZONE 'Asia/Shanghai')::date AS day,
                          author AS site, kind,
                          coalesce(circle, '') AS circle, count(*) AS n
                   FROM items LEFT JOIN LATERAL unnest(audience_circles) AS circle ON TRUE
                   WHERE author = ANY($1::text[]) AND received_at >= $2
                   GROUP BY 1, 2, 3, 4 ORDER BY 1""",
                list(sites),
                since,
            )
        return [dict(r) for r in rows]

    async def new_items(self, sites: Sequence[str], since: datetime) -> int:
        """Items authored by ``sites`` and received since ``since``, each once."""
        async with self.db.pool.acquire() as c:
            n = await c.fetchval(
                """SELECT count(*) FROM items
                   WHERE author = ANY($1::text[]) AND received_at >= $2""",
                list(sites),
                since,
            )
        return int(n)

    async def site_summary(self, sites: Sequence[str]) -> list[dict[str, Any]]:
        """Per site: items shared, last push, last pull, refusals in 7 days."""
        async with self.db.pool.acquire() as c:
            rows = await c.fetch(
                """SELECT s.id AS site, s.name, s.circles,
                          (SELECT count(*) FROM items i WHERE i.author = s.id) AS items_shared,
                          (SELECT max(received_at) FROM items i WHERE i.author = s.id) AS last_push,
                          (SELECT max(day) FROM activity_daily d
                            WHERE d.site = s.id AND d.metric = 'pulled') AS last_pull_day,
                          (SELECT coalesce(sum(n), 0)::bigint FROM activity_daily d
                            WHERE d.site = s.id AND d.metric = 'refused'
                              AND d.day >= current_date - 7) AS refused_7d
                   FROM sites s WHERE s.id = ANY($1::text[]) ORDER BY s.id""",
                list(sites),
            )
        return [dict(r) for r in rows]

    async def events(
        self, sites: Sequence[str], kinds: Sequence[str], limit: int = 50
    ) -> list[dict[str, Any]]:
        """Recent events for ``sites``, and node-wide ones (no site), newest first.

        Each list has its own ``limit``: however many node-wide events strangers cause,
        the sites' own events stay in view."""
        await self.flush()
        async with self.db.pool.acquire() as c:
            rows = await c.fetch(
                """(SELECT id, at, kind, site, code, message, detail, count, source
                      FROM activity_events
                     WHERE kind = ANY($2::text[]) AND site = ANY($1::text[])
                     ORDER BY at DESC LIMIT $3)
                   UNION ALL
                   (SELECT id, at, kind, site, code, message, detail, count, source
                      FROM activity_events
                     WHERE kind = ANY($2::text[]) AND site = ''
                     ORDER BY at DESC LIMIT $3)
                   ORDER BY at DESC""",
                [s for s in sites if s],
                list(kinds),
                limit,
            )
        return [dict(r) for r in rows]

    async def plans(self, sites: Sequence[str]) -> list[dict[str, Any]]:
        """Joint inspection plans a monitor of ``sites`` may read (written by one of
        them), with the endorsements it may read. A plan is not shown because a site in
        scope merely participates: its author and audience decide, as for any item."""
        async with self.db.pool.acquire() as c:
            rows = await c.fetch(
                """WITH p AS (
                     SELECT id, author, received_at,
                            convert_from(canonical, 'UTF8')::jsonb AS doc FROM items
                     WHERE kind = 'inspection_plan')
                   SELECT p.id, p.author, p.received_at, p.doc->>'title' AS title,
                          p.doc->'body'->>'law' AS law,
                          p.doc->'body'->'participating_sites' AS participants,
                          p.doc->'body'->'phases' AS phases,
                          coalesce((SELECT jsonb_agg(jsonb_build_object(
                                       'site', e.author,
                                       'decision', convert_from(e.canonical, 'UTF8')::jsonb
                                                   ->'body'->>'decision'))
                                    FROM items e WHERE e.kind = 'endorsement'
                                      AND e.author = ANY($1::text[])
                                      AND convert_from(e.canonical, 'UTF8')::jsonb
                                          ->'body'->>'plan' = p.id), '[]') AS endorsements
                   FROM p
                   WHERE p.author = ANY($1::text[])
                   ORDER BY p.received_at DESC LIMIT 100""",
                list(sites),
            )
        return [dict(r) for r in rows]

    # -- dashboard sessions ------------------------------------------------------------
    async def new_session(self, monitor_id: str, ttl: timedelta) -> str:
        """Create a session for a monitor; returns the cookie value (stored hashed)."""
        token = secrets.token_urlsafe(32)
        async with self.db.pool.acquire() as c:
            await c.execute(
                """INSERT INTO monitor_sessions (token_hash, monitor_id, expires_at)
                   VALUES ($1, $2, now() + $3)""",
                _h(token),
                monitor_id,
                ttl,
            )
            await c.execute("DELETE FROM monitor_sessions WHERE expires_at < now()")
        return token

    async def session_monitor(self, token: str) -> str | None:
        """The monitor id of a live session, or None."""
        async with self.db.pool.acquire() as c:
            return await c.fetchval(  # type: ignore[no-any-return]
                """SELECT s.monitor_id FROM monitor_sessions s JOIN monitors m
                     ON m.id = s.monitor_id AND m.revoked_at IS NULL
                   WHERE s.token_hash = $1 AND s.expires_at > now()""",
                _h(token),
            )

    async def end_session(self, token: str) -> None:
        """Log out."""
        async with self.db.pool.acquire() as c:
            await c.execute(
                "DELETE FROM monitor_sessions WHERE token_hash = $1", _h(token)
            )


def _h(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def china_today() -> date:
    """Today's date in China (UTC+8), the day boundary users expect."""
    return (datetime.now(UTC) + timedelta(hours=8)).date()


def _storable(value: Any) -> Any:
    """``value`` with control characters escaped in every string (PostgreSQL text and
    jsonb refuse NUL; a refused request's detail may carry one from the request)."""
    if isinstance(value, str):
        return escape_controls(value)
    if isinstance(value, dict):
        return {escape_controls(str(k)): _storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_storable(v) for v in value]
    return value
