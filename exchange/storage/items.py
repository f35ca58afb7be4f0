"""Items and their gap-free log index.

Appends go through :meth:`ItemStore.append_txn`, which must run inside the caller's
transaction: it locks the single ``log_head`` row, so concurrent writers (several API
workers on one database) take turns and every committed item gets the next index with no
gaps. Group commit happens one level up (:mod:`exchange.service.ingest`): many pushes
share one transaction, one lock and one fsync.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from exchange.core.trust import Reader

from .database import Database

__all__ = ["ItemFilter", "ItemStore", "NewItem", "StoredItem"]

_COLUMNS = (
    "idx", "id", "kind", "author", "created_at", "received_at", "audience_circles",
    "audience_sites", "tags", "title", "key_id", "alg", "sig", "canonical", "attachments", "origin",
)


_INSERT = (
    f"INSERT INTO items ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(_COLUMNS) + 1))})"
)


@dataclass(frozen=True)
class NewItem:
    """A verified item ready to append."""

    id: str
    kind: str
    author: str
    created_at: datetime
    audience_circles: list[str]
    audience_sites: list[str]
    tags: list[str]
    title: str
    key_id: str
    alg: str
    sig: bytes
    canonical: bytes
    origin: str
    attachments: list[str] = field(default_factory=list)
    # The search index's tsvector text (exchange.core.search_text), computed by ingest
    # outside the commit lock; built in append_txn when absent.
    search_doc: str | None = None


@dataclass(frozen=True)
class StoredItem:
    """An item as stored, with its index."""

    idx: int
    id: str
    kind: str
    author: str
    received_at: datetime
    key_id: str
    alg: str
    sig: bytes
    canonical: bytes
    origin: str
    audience_circles: tuple[str, ...] = ()
    audience_sites: tuple[str, ...] = ()


@dataclass(frozen=True)
class ItemFilter:
    """Filters for listing items."""

    after: int = -1
    kind: str | None = None
    author: str | None = None
    tag: str | None = None
    circle: str | None = None
    since: datetime | None = None


def _stored(r: Any) -> StoredItem:
    return StoredItem(
        idx=r["idx"], id=r["id"], kind=r["kind"], author=r["author"],
        received_at=r["received_at"], key_id=r["key_id"], alg=r["alg"],
        sig=bytes(r["sig"]), canonical=bytes(r["canonical"]), origin=r["origin"],
        audience_circles=tuple(r["audience_circles"]), audience_sites=tuple(r["audience_sites"]),
    )


def _visibility(reader: Reader, args: list[Any]) -> str:
    """SQL condition restricting rows to what ``reader`` may see (mirrors audience_allows)."""
    if reader.sees_everything:
        return "TRUE"
    if reader.kind == "site":
        args.append(reader.id)
        s = f"${len(args)}"
        args.append(sorted(reader.circles))
        c = f"${len(args)}::text[]"
        return (
            f"(author = {s} OR (cardinality(audience_circles) = 0 AND "
            f"cardinality(audience_sites) = 0) OR {s} = ANY(audience_sites) "
            f"OR audience_circles && {c})"
        )
    if reader.kind == "monitor":
        args.append(sorted(reader.sites))
        return f"author = ANY(${len(args)}::text[])"
    if reader.kind == "node":
        args.append(sorted(reader.circles))
        c = f"${len(args)}::text[]"
        args.append(sorted(reader.sites))
        s = f"${len(args)}::text[]"
        return (
            "((cardinality(audience_circles) = 0 AND cardinality(audience_sites) = 0) "
            f"OR audience_circles && {c} OR audience_sites && {s})"
        )
    return "FALSE"


async def _index_txn(conn: asyncpg.Connection, items: Sequence[NewItem], start: int) -> None:
    """Search rows and refs of appended items, in the same transaction (one statement each)."""
    import orjson

    from .search import index_txn, make_doc

    await index_txn(conn, [
        make_doc(
            start + i, orjson.loads(it.canonical), kind=it.kind, author=it.author,
            created_at=it.created_at, audience_circles=it.audience_circles,
            audience_sites=it.audience_sites, tags=it.tags, doc=it.search_doc,
        )
        for i, it in enumerate(items)
    ])


class ItemStore:
    """Queries on ``items`` and ``log_head``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def existing_txn(
        self, conn: asyncpg.Connection, ids: Sequence[str]
    ) -> dict[str, int]:
        """Index of each id already stored (inside the caller's transaction)."""
        rows = await conn.fetch(
            "SELECT id, idx FROM items WHERE id = ANY($1::text[])", list(ids)
        )
        return {r["id"]: r["idx"] for r in rows}

    async def append_txn(
        self, conn: asyncpg.Connection, items: Sequence[NewItem], received_at: datetime
    ) -> list[int]:
        """Append items with consecutive indexes; call inside a transaction.

        Returns:
            The index given to each item, in order.
        """
        if not items:
            return []
        # One round trip moves the head and queues the NOTIFY (sent at commit).
        start = await conn.fetchval(
            """UPDATE log_head SET size = size + $1 WHERE id = 1
               RETURNING size - $1 AS start, pg_notify('exchange_items', size::text)""",
            len(items),
        )
        records = [
            (
                start + i, it.id, it.kind, it.author, it.created_at, received_at,
                it.audience_circles, it.audience_sites, it.tags, it.title, it.key_id,
                it.alg, it.sig, it.canonical, it.attachments, it.origin,
            )
            for i, it in enumerate(items)
        ]
        if len(records) <= 64:
            # Small batches (the common case under many small pushes): a pipelined
            # prepared INSERT; COPY would first spend a round trip on introspection.
            await conn.executemany(_INSERT, records)
        else:
            await conn.copy_records_to_table("items", records=records, columns=_COLUMNS)
        await _index_txn(conn, items, start)
        return [start + i for i in range(len(items))]

    async def size(self, *, conn: asyncpg.Connection | None = None) -> int:
        """Number of items in the log."""
        async with self.db.connect(conn) as c:
            return int(await c.fetchval("SELECT size FROM log_head WHERE id = 1"))

    async def get(
        self, item_id: str, reader: Reader, *, conn: asyncpg.Connection | None = None
    ) -> StoredItem | None:
        """One item by id if ``reader`` may see it."""
        args: list[Any] = [item_id]
        cond = _visibility(reader, args)
        async with self.db.connect(conn) as c:
            row = await c.fetchrow(f"SELECT * FROM items WHERE id = $1 AND {cond}", *args)
        return _stored(row) if row else None

    async def page(
        self,
        reader: Reader,
        flt: ItemFilter,
        *,
        limit: int,
        max_bytes: int,
        read_replica: bool = True,
    ) -> tuple[list[StoredItem], int | None]:
        """Items after ``flt.after`` visible to ``reader``, by index.

        The page ends at ``limit`` items or once ``max_bytes`` of canonical bytes are
        collected, whichever is first.

        Returns:
            The items and the cursor for the next page (None at the end).
        """
        args: list[Any] = [flt.after]
        conds = ["idx > $1", _visibility(reader, args)]
        if flt.kind:
            args.append(flt.kind)
            conds.append(f"kind = ${len(args)}")
        if flt.author:
            args.append(flt.author)
            conds.append(f"author = ${len(args)}")
        if flt.tag:
            args.append([flt.tag])
            conds.append(f"tags @> ${len(args)}::text[]")
        if flt.circle:
            args.append([flt.circle])
            conds.append(f"audience_circles @> ${len(args)}::text[]")
        if flt.since:
            args.append(flt.since)
            conds.append(f"created_at >= ${len(args)}")
        args.append(limit + 1)
        sql = (
            f"SELECT * FROM items WHERE {' AND '.join(conds)} "
            f"ORDER BY idx LIMIT ${len(args)}"
        )
        pool = self.db.read_pool if read_replica else self.db.pool
        async with pool.acquire() as c:
            rows = await c.fetch(sql, *args)
        out: list[StoredItem] = []
        used = 0
        for r in rows[:limit]:
            if out and used + len(r["canonical"]) > max_bytes:
                return out, out[-1].idx
            out.append(_stored(r))
            used += len(r["canonical"])
        more = len(rows) > limit
        return out, (out[-1].idx if more and out else None)

    async def blob_visible(
        self, sha256: str, reader: Reader, *, conn: asyncpg.Connection | None = None
    ) -> bool:
        """Whether some item ``reader`` may see attaches the blob ``sha256``."""
        args: list[Any] = [[sha256]]
        cond = _visibility(reader, args)
        async with self.db.connect(conn) as c:
            found = await c.fetchval(
                f"SELECT 1 FROM items WHERE attachments @> $1::text[] AND {cond} LIMIT 1",
                *args,
            )
        return bool(found)

    async def range(
        self, start: int, end: int, *, conn: asyncpg.Connection | None = None
    ) -> list[StoredItem]:
        """Items with ``start <= idx < end`` regardless of audience (log internals)."""
        async with self.db.connect(conn) as c:
            rows = await c.fetch(
                "SELECT * FROM items WHERE idx >= $1 AND idx < $2 ORDER BY idx", start, end
            )
        return [_stored(r) for r in rows]
