"""Sites, their keys, and monitors."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from exchange.core.trust import KeyRecord
from exchange.errors import Conflict, NotFound
from schemas.errors import ErrorCode

from .database import Database

__all__ = ["MonitorRecord", "SiteRecordRow", "SiteStore"]


@dataclass(frozen=True)
class SiteRecordRow:
    """A site as stored on this node."""

    id: str
    name: str
    home_node: str
    circles: tuple[str, ...]
    keys: tuple[KeyRecord, ...]


@dataclass(frozen=True)
class MonitorRecord:
    """A monitor (read-only) and its scope."""

    id: str
    name: str
    circles: tuple[str, ...]
    sites: tuple[str, ...]


def _key(row: Any) -> KeyRecord:
    return KeyRecord(
        key_id=row["key_id"],
        owner=row["site_id"],
        alg=row["alg"],
        public_key=bytes(row["public_key"]),
        valid_from=row["valid_from"],
        revoked_at=row["revoked_at"],
    )


def token_hash(token: str) -> bytes:
    """What is stored for a bearer token: SHA-256 of it (tokens are 256-bit random)."""
    return hashlib.sha256(token.encode("utf-8")).digest()


class SiteStore:
    """Queries on ``sites``, ``site_keys`` and ``monitors``."""

    def __init__(self, db: Database, *, cache_seconds: float = 2.0) -> None:
        self.db = db
        self._cache_seconds = cache_seconds
        self._site_cache: dict[str, tuple[float, SiteRecordRow | None]] = {}
        self._key_cache: dict[str, KeyRecord | None] = {}
        self._key_generation = 0
        self.key_cache_live = False

    async def cached_site(self, site_id: str) -> SiteRecordRow | None:
        """Like :meth:`get_site`, but answered from memory for a couple of seconds.

        For request authentication only (circles and names change rarely). Keys are
        never taken from this cache: revocation must take effect at once.
        """
        now = time.monotonic()
        hit = self._site_cache.get(site_id)
        if hit is not None and now - hit[0] < self._cache_seconds:
            return hit[1]
        site = await self.get_site(site_id)
        if len(self._site_cache) > 10_000:
            self._site_cache.clear()
        self._site_cache[site_id] = (now, site)
        return site

    async def add_site(
        self,
        site_id: str,
        name: str,
        home_node: str,
        circles: Sequence[str],
        *,
        conn: asyncpg.Connection | None = None,
    ) -> None:
        """Register a site (or update its name, home and circles)."""
        async with self.db.connect(conn) as c:
            await c.execute(
                """INSERT INTO sites (id, name, home_node, circles) VALUES ($1, $2, $3, $4)
                   ON CONFLICT (id) DO UPDATE
                   SET name = EXCLUDED.name, home_node = EXCLUDED.home_node,
                       circles = EXCLUDED.circles""",
                site_id,
                name,
                home_node,
                list(circles),
            )

    async def add_key(
        self,
        key_id: str,
        site_id: str,
        alg: str,
        public_key: bytes,
        valid_from: datetime | None = None,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> None:
        """Add a public key to a site.

        Raises:
            NotFound: no such site.
            Conflict: the key id exists with other key material.
        """
        async with self.db.connect(conn) as c:
            if not await c.fetchval("SELECT 1 FROM sites WHERE id=$1", site_id):
                raise NotFound(f"site {site_id} is not registered; add it first")
            existing = await c.fetchrow(
                "SELECT public_key, alg FROM site_keys WHERE key_id=$1", key_id
            )
            if existing is not None:
                if (
                    bytes(existing["public_key"]) == public_key
                    and existing["alg"] == alg
                ):
                    return
                raise Conflict(
                    f"key id {key_id} is already used by another key; pick the next kN",
                    code=ErrorCode.CONFLICT,
                )
            await c.execute(
                """INSERT INTO site_keys (key_id, site_id, alg, public_key, valid_from)
                   VALUES ($1, $2, $3, $4, coalesce($5, now()))""",
                key_id,
                site_id,
                alg,
                public_key,
                valid_from,
            )
        self.invalidate_keys()

    async def revoke_key(
        self,
        key_id: str,
        at: datetime | None = None,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> datetime:
        """Revoke a key from ``at`` (now by default); returns the revocation time.

        Raises:
            NotFound: no such key.
        """
        async with self.db.connect(conn) as c:
            when = await c.fetchval(
                """UPDATE site_keys SET revoked_at = coalesce(revoked_at, coalesce($2, now()))
                   WHERE key_id=$1 RETURNING revoked_at""",
                key_id,
                at,
            )
        self.invalidate_keys()  # at once here; other processes hear the NOTIFY
        if when is None:
            raise NotFound(f"key {key_id} is not known")
        return when  # type: ignore[no-any-return]

    async def keys(
        self, key_ids: Sequence[str], *, conn: asyncpg.Connection | None = None
    ) -> dict[str, KeyRecord]:
        """Key records for the given ids (missing ones are absent).

        Answered from memory while the key watcher is connected (every change to
        ``site_keys`` NOTIFYs ``exchange_keys`` and drops the cache); straight from the
        database otherwise, so a revocation is never missed.
        """
        wanted = list(key_ids)
        if self.key_cache_live and conn is None:
            hits = {k: self._key_cache[k] for k in wanted if k in self._key_cache}
            missing = [k for k in wanted if k not in self._key_cache]
            if not missing:
                return {k: v for k, v in hits.items() if v is not None}
        else:
            hits, missing = {}, wanted
        generation = self._key_generation
        async with self.db.connect(conn) as c:
            rows = await c.fetch(
                "SELECT * FROM site_keys WHERE key_id = ANY($1::text[])", missing
            )
        found = {r["key_id"]: _key(r) for r in rows}
        if self.key_cache_live and generation == self._key_generation:
            if len(self._key_cache) > 50_000:
                self._key_cache.clear()
            for k in missing:
                self._key_cache[k] = found.get(k)
        out = {k: v for k, v in hits.items() if v is not None}
        out.update(found)
        return out

    def invalidate_keys(self) -> None:
        """Drop cached keys (called on every ``exchange_keys`` notification)."""
        self._key_generation += 1
        self._key_cache.clear()

    def set_key_cache_live(self, live: bool) -> None:
        """Enable the key cache only while change notifications are being received."""
        self.invalidate_keys()
        self.key_cache_live = live

    async def place_site_txn(
        self,
        conn: asyncpg.Connection,
        site_id: str,
        home_node: str,
        circles: Sequence[str],
    ) -> None:
        """Record a roster site's home and circles (name kept, or the id until known)."""
        await conn.execute(
            """INSERT INTO sites (id, name, home_node, circles) VALUES ($1, $1, $2, $3)
               ON CONFLICT (id) DO UPDATE SET home_node = EXCLUDED.home_node,
                 circles = EXCLUDED.circles""",
            site_id,
            home_node,
            list(circles),
        )
        self._site_cache.pop(site_id, None)

    async def apply_site_record_txn(
        self, conn: asyncpg.Connection, rec: Any, circles: Sequence[str]
    ) -> None:
        """Apply a verified remote site record: name, home, keys and revocations.

        A key id already bound to other key material is left as it is (keys are never
        re-bound); a revocation, once known, is never lifted.
        """
        from exchange.core.signing import b64u_decode
        from exchange.core.trust import parse_timestamp

        await conn.execute(
            """INSERT INTO sites (id, name, home_node, circles) VALUES ($1, $2, $3, $4)
               ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name,
                 home_node = EXCLUDED.home_node, circles = EXCLUDED.circles""",
            rec.id,
            rec.name,
            rec.home_node,
            list(circles),
        )
        for k in rec.keys:
            revoked = parse_timestamp(k.revoked_at) if k.revoked_at else None
            await conn.execute(
                """INSERT INTO site_keys (key_id, site_id, alg, public_key, valid_from, revoked_at)
                   VALUES ($1, $2, $3, $4, $5, $6)
                   ON CONFLICT (key_id) DO UPDATE
                   SET revoked_at = coalesce(site_keys.revoked_at, EXCLUDED.revoked_at)
                   WHERE site_keys.public_key = EXCLUDED.public_key""",
                k.key_id,
                rec.id,
                k.alg,
                b64u_decode(k.public_key),
                parse_timestamp(k.valid_from),
                revoked,
            )
        self._site_cache.pop(rec.id, None)

    async def all_keys(
        self, *, conn: asyncpg.Connection | None = None
    ) -> list[KeyRecord]:
        """Every key, revoked or not (for re-verifying stored items)."""
        async with self.db.connect(conn) as c:
            rows = await c.fetch("SELECT * FROM site_keys ORDER BY key_id")
        return [_key(r) for r in rows]

    async def get_site(
        self, site_id: str, *, conn: asyncpg.Connection | None = None
    ) -> SiteRecordRow | None:
        """One site with its keys, or None."""
        sites = await self.list_sites([site_id], conn=conn)
        return sites[0] if sites else None

    async def list_sites(
        self,
        ids: Sequence[str] | None = None,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> list[SiteRecordRow]:
        """All sites (or those named), with keys, ordered by id."""
        async with self.db.connect(conn) as c:
            if ids is None:
                rows = await c.fetch("SELECT * FROM sites ORDER BY id")
                krows = await c.fetch("SELECT * FROM site_keys ORDER BY key_id")
            else:
                rows = await c.fetch(
                    "SELECT * FROM sites WHERE id = ANY($1::text[]) ORDER BY id",
                    list(ids),
                )
                krows = await c.fetch(
                    "SELECT * FROM site_keys WHERE site_id = ANY($1::text[]) ORDER BY key_id",
                    list(ids),
                )
        by_site: dict[str, list[KeyRecord]] = {}
        for k in krows:
            by_site.setdefault(k["site_id"], []).append(_key(k))
        return [
            SiteRecordRow(
                id=r["id"],
                name=r["name"],
                home_node=r["home_node"],
                circles=tuple(r["circles"]),
                keys=tuple(by_site.get(r["id"], ())),
            )
            for r in rows
        ]

    async def circles(self, *, conn: asyncpg.Connection | None = None) -> set[str]:
        """Every circle some registered site belongs to."""
        async with self.db.connect(conn) as c:
            rows = await c.fetch("SELECT DISTINCT unnest(circles) AS c FROM sites")
        return {r["c"] for r in rows}

    async def site_ids(self, *, conn: asyncpg.Connection | None = None) -> set[str]:
        """Ids of every registered site."""
        async with self.db.connect(conn) as c:
            rows = await c.fetch("SELECT id FROM sites")
        return {r["id"] for r in rows}

    # -- monitors ----------------------------------------------------------------
    async def add_monitor(
        self,
        monitor_id: str,
        name: str,
        token: str,
        circles: Sequence[str],
        sites: Sequence[str],
        *,
        conn: asyncpg.Connection | None = None,
    ) -> None:
        """Register a monitor with a bearer token (only its hash is stored).

        Re-registering replaces the token and ends every dashboard session made with
        the old one."""
        async with self.db.connect(conn) as c, c.transaction():
            await c.execute(
                """INSERT INTO monitors (id, name, circles, sites, token_hash)
                   VALUES ($1, $2, $3, $4, $5)
                   ON CONFLICT (id) DO UPDATE SET name=EXCLUDED.name,
                     circles=EXCLUDED.circles, sites=EXCLUDED.sites,
                     token_hash=EXCLUDED.token_hash, revoked_at=NULL""",
                monitor_id,
                name,
                list(circles),
                list(sites),
                token_hash(token),
            )
            await c.execute(
                "DELETE FROM monitor_sessions WHERE monitor_id = $1", monitor_id
            )

    async def revoke_monitor(
        self, monitor_id: str, *, conn: asyncpg.Connection | None = None
    ) -> bool:
        """Revoke a monitor's token and end its sessions; False if there is no such
        active monitor."""
        async with self.db.connect(conn) as c, c.transaction():
            done = await c.fetchval(
                """UPDATE monitors SET revoked_at = now()
                   WHERE id = $1 AND revoked_at IS NULL RETURNING id""",
                monitor_id,
            )
            await c.execute(
                "DELETE FROM monitor_sessions WHERE monitor_id = $1", monitor_id
            )
        return done is not None

    async def list_monitors(
        self, *, conn: asyncpg.Connection | None = None
    ) -> list[dict[str, Any]]:
        """Every monitor (never its token): id, name, scope, times, live sessions."""
        async with self.db.connect(conn) as c:
            rows = await c.fetch(
                """SELECT m.id, m.name, m.circles, m.sites, m.created_at, m.revoked_at,
                          (SELECT count(*) FROM monitor_sessions s
                           WHERE s.monitor_id = m.id AND s.expires_at > now()) AS sessions
                   FROM monitors m ORDER BY m.id"""
            )
        return [dict(r) for r in rows]

    async def monitor_by_token(
        self, token: str, *, conn: asyncpg.Connection | None = None
    ) -> MonitorRecord | None:
        """The active monitor holding ``token``, or None.

        The lookup is by SHA-256 of the token, an index probe on a uniformly random
        value, so its timing does not reveal how much of a guess was right.
        """
        async with self.db.connect(conn) as c:
            row = await c.fetchrow(
                "SELECT * FROM monitors WHERE token_hash=$1 AND revoked_at IS NULL",
                token_hash(token),
            )
        if row is None:
            return None
        return MonitorRecord(
            row["id"], row["name"], tuple(row["circles"]), tuple(row["sites"])
        )

    async def monitor_by_id(
        self, monitor_id: str, *, conn: asyncpg.Connection | None = None
    ) -> MonitorRecord | None:
        """An active monitor by id, or None."""
        async with self.db.connect(conn) as c:
            row = await c.fetchrow(
                "SELECT * FROM monitors WHERE id=$1 AND revoked_at IS NULL", monitor_id
            )
        if row is None:
            return None
        return MonitorRecord(
            row["id"], row["name"], tuple(row["circles"]), tuple(row["sites"])
        )

    async def sites_in_scope(
        self,
        circles: Sequence[str],
        sites: Sequence[str],
        *,
        conn: asyncpg.Connection | None = None,
    ) -> set[str]:
        """Sites covered by a monitor scope: the named sites plus members of the circles."""
        async with self.db.connect(conn) as c:
            rows = await c.fetch(
                "SELECT id FROM sites WHERE id = ANY($1::text[]) OR circles && $2::text[]",
                list(sites),
                list(circles),
            )
        return {r["id"] for r in rows}
