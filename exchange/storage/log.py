"""The Merkle log's tables: subtree hashes, integrated state, signed checkpoints.

Only hashes of *complete* subtrees are stored, addressed ``(level, idx)``; any proof for
any tree size is assembled from O(log n) of them (see :mod:`exchange.core.merkle`'s proof
plans), fetched here in one query.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from .database import Database

__all__ = ["AuditRow", "CheckpointRow", "LogStore"]


@dataclass(frozen=True)
class CheckpointRow:
    """A signed checkpoint as stored."""

    size: int
    root: bytes
    note: str
    signed_at: datetime


@dataclass(frozen=True)
class AuditRow:
    """An item row with the columns derived from its signed content."""

    idx: int
    id: str
    received_at: datetime
    canonical: bytes
    key_id: str
    sig: bytes
    kind: str
    author: str
    title: str
    created_at: datetime
    tags: list[str]
    audience_circles: list[str]
    audience_sites: list[str]
    attachments: list[str]


_AUDIT_COLUMNS = ", ".join(AuditRow.__dataclass_fields__)


def _audit_row(r: Any) -> AuditRow:
    return AuditRow(
        r["idx"],
        r["id"],
        r["received_at"],
        bytes(r["canonical"]),
        r["key_id"],
        bytes(r["sig"]),
        r["kind"],
        r["author"],
        r["title"],
        r["created_at"],
        list(r["tags"] or []),
        list(r["audience_circles"] or []),
        list(r["audience_sites"] or []),
        list(r["attachments"] or []),
    )


def _cp(r: Any) -> CheckpointRow:
    return CheckpointRow(r["size"], bytes(r["root"]), r["note"], r["signed_at"])


class LogStore:
    """Queries on ``log_nodes``, ``log_state`` and ``log_checkpoints``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def state(
        self, *, conn: asyncpg.Connection | None = None
    ) -> tuple[int, bytes]:
        """Integrated size and root."""
        async with self.db.connect(conn) as c:
            row = await c.fetchrow("SELECT size, root FROM log_state WHERE id = 1")
        return int(row["size"]), bytes(row["root"])

    async def nodes(
        self, keys: Iterable[tuple[int, int]], *, conn: asyncpg.Connection | None = None
    ) -> dict[tuple[int, int], bytes]:
        """Hashes of the given complete subtrees (missing ones are absent)."""
        keys = list(keys)
        if not keys:
            return {}
        async with self.db.connect(conn) as c:
            rows = await c.fetch(
                """SELECT n.level, n.idx, n.hash FROM log_nodes n
                   JOIN unnest($1::smallint[], $2::bigint[]) AS k(level, idx)
                     ON n.level = k.level AND n.idx = k.idx""",
                [k[0] for k in keys],
                [k[1] for k in keys],
            )
        return {(r["level"], r["idx"]): bytes(r["hash"]) for r in rows}

    async def pending_leaves(
        self, start: int, limit: int, *, conn: asyncpg.Connection | None = None
    ) -> list[tuple[int, str, datetime]]:
        """Items from index ``start`` not yet integrated: (index, id, accepted_at)."""
        async with self.db.connect(conn) as c:
            rows = await c.fetch(
                """SELECT idx, id, received_at FROM items WHERE idx >= $1
                   ORDER BY idx LIMIT $2""",
                start,
                limit,
            )
        return [(r["idx"], r["id"], r["received_at"]) for r in rows]

    async def integrate_txn(
        self,
        conn: asyncpg.Connection,
        old_size: int,
        new_nodes: Sequence[tuple[int, int, bytes]],
        size: int,
        root: bytes,
    ) -> bool:
        """Store new subtree nodes and the new state, inside the caller's transaction.

        Compare-and-set on the old size: returns False (and writes nothing) if another
        writer moved the state meanwhile.
        """
        moved = await conn.fetchval(
            "UPDATE log_state SET size = $2, root = $3 WHERE id = 1 AND size = $1 "
            "RETURNING size",
            old_size,
            size,
            root,
        )
        if moved is None:
            return False
        if len(new_nodes) <= 128:  # one statement from arrays (COPY costs more setup)
            levels, idxs, hashes = (
                zip(*new_nodes, strict=True) if new_nodes else ((),) * 3
            )
            await conn.execute(
                "INSERT INTO log_nodes (level, idx, hash) SELECT * FROM "
                "unnest($1::smallint[], $2::bigint[], $3::bytea[])",
                levels,
                idxs,
                hashes,
            )
        else:
            await conn.copy_records_to_table(
                "log_nodes", records=list(new_nodes), columns=["level", "idx", "hash"]
            )
        return True

    async def add_checkpoint(self, size: int, root: bytes, note: str) -> None:
        """Record a signed checkpoint (idempotent per size)."""
        async with self.db.pool.acquire() as c:
            await c.execute(
                """INSERT INTO log_checkpoints (size, root, note) VALUES ($1, $2, $3)
                   ON CONFLICT (size) DO NOTHING""",
                size,
                root,
                note,
            )

    async def latest_checkpoint(self) -> CheckpointRow | None:
        """The largest signed checkpoint."""
        async with self.db.pool.acquire() as c:
            row = await c.fetchrow(
                "SELECT * FROM log_checkpoints ORDER BY size DESC LIMIT 1"
            )
        return _cp(row) if row else None

    async def checkpoint_covering(self, index: int) -> CheckpointRow | None:
        """The latest checkpoint whose tree contains entry ``index``."""
        async with self.db.pool.acquire() as c:
            row = await c.fetchrow(
                "SELECT * FROM log_checkpoints WHERE size > $1 ORDER BY size DESC LIMIT 1",
                index,
            )
        return _cp(row) if row else None

    async def checkpoint_of_size(self, size: int) -> CheckpointRow | None:
        """The checkpoint signed for exactly ``size``, if any."""
        async with self.db.pool.acquire() as c:
            row = await c.fetchrow(
                "SELECT * FROM log_checkpoints WHERE size = $1", size
            )
        return _cp(row) if row else None

    async def entries(self, start: int, end: int) -> list[tuple[int, str, datetime]]:
        """Log entries ``start <= index < end`` (ids and acceptance times only)."""
        async with self.db.read_pool.acquire() as c:
            rows = await c.fetch(
                """SELECT idx, id, received_at FROM items WHERE idx >= $1 AND idx < $2
                   ORDER BY idx""",
                start,
                end,
            )
        return [(r["idx"], r["id"], r["received_at"]) for r in rows]

    # -- full scans for the audit ---------------------------------------------------------
    async def scan_items(self, batch: int = 5000) -> AsyncIterator[list[AuditRow]]:
        """Every item row as the audit checks it, in batches, by index (one query each)."""
        after = -1
        while True:
            async with self.db.pool.acquire() as c:
                rows = await c.fetch(
                    f"SELECT {_AUDIT_COLUMNS} FROM items WHERE idx > $1 ORDER BY idx LIMIT $2",
                    after,
                    batch,
                )
            if not rows:
                return
            yield [_audit_row(r) for r in rows]
            after = rows[-1]["idx"]

    async def scan_nodes(
        self, batch: int = 20000
    ) -> AsyncIterator[list[tuple[int, int, bytes]]]:
        """Every stored subtree node (level, idx, hash), in batches."""
        last = (-1, -1)
        while True:
            async with self.db.pool.acquire() as c:
                rows = await c.fetch(
                    """SELECT level, idx, hash FROM log_nodes WHERE (level, idx) > ($1, $2)
                       ORDER BY level, idx LIMIT $3""",
                    last[0],
                    last[1],
                    batch,
                )
            if not rows:
                return
            yield [(r["level"], r["idx"], bytes(r["hash"])) for r in rows]
            last = (rows[-1]["level"], rows[-1]["idx"])

    async def all_checkpoints(self) -> list[CheckpointRow]:
        """Every signed checkpoint, by size."""
        async with self.db.pool.acquire() as c:
            rows = await c.fetch("SELECT * FROM log_checkpoints ORDER BY size")
        return [_cp(r) for r in rows]
