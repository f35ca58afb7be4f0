"""Items and their gap-free log index.

Appends go through :meth:`ItemStore.append`: one statement that locks the single
``log_head`` row, so concurrent writers (several API workers on one database) take turns
and every committed item gets the next index with no gaps. Group commit happens one level
up (:mod:`exchange.service.ingest`): many pushes share one statement, one lock and one
fsync.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from exchange.core.trust import Reader

from .database import Database

__all__ = [
    "ENVELOPE_SQL",
    "ItemFilter",
    "ItemStore",
    "NewItem",
    "StoredItem",
    "json_list",
    "page_json_query",
]

_APPEND = """
WITH u AS (
    SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[],
                         $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                         $12::bytea[], $13::bytea[], $14::text[], $15::text[])
        WITH ORDINALITY AS u(id, kind, author, created_at, circles, sites, tags, title,
                             key_id, alg, sig, canonical, attachments, origin, ord)
), known AS (
    SELECT i.id, i.idx FROM items i WHERE i.id = ANY($2::text[])
), fresh AS (
    SELECT u.*, row_number() OVER (ORDER BY u.ord) AS rn
    FROM u WHERE u.id NOT IN (SELECT id FROM known)
), h AS (
    UPDATE log_head SET size = size + (SELECT count(*) FROM fresh)
    WHERE id = 1 AND EXISTS (SELECT 1 FROM fresh)
    RETURNING size - (SELECT count(*) FROM fresh) AS start,
              pg_notify('exchange_items', size::text) AS notified
), ins AS (
    INSERT INTO items (idx, id, kind, author, created_at, received_at, audience_circles,
                       audience_sites, tags, title, key_id, alg, sig, canonical,
                       attachments, origin)
    SELECT h.start + f.rn - 1, f.id, f.kind, f.author, f.created_at, $1,
           f.circles::text[], f.sites::text[], f.tags::text[], f.title, f.key_id, f.alg,
           f.sig, f.canonical, f.attachments::text[], f.origin
    FROM h, fresh f
), refs AS (
    INSERT INTO item_refs (dst, src, rel)
    SELECT r.dst, h.start + f.rn - 1, r.rel
    FROM h, unnest($16::text[], $17::bigint[], $18::text[]) AS r(dst, pos, rel)
         JOIN fresh f ON f.ord = r.pos + 1
    ON CONFLICT DO NOTHING
)
SELECT (SELECT start FROM h) AS start,
       (SELECT coalesce(array_agg(id), '{}') FROM known) AS known_ids,
       (SELECT coalesce(array_agg(idx), '{}') FROM known) AS known_idx
"""


def _pg_array(values: Sequence[str]) -> str:
    """A ``text[]`` literal: a column of arrays goes through ``unnest`` as text."""
    return (
        "{"
        + ",".join(
            '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values
        )
        + "}"
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
    # ``(rel, id)`` of the item's refs (``item_refs`` rows, written with the item).
    refs: list[tuple[str, str]] = field(default_factory=list)


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


_STORED_COLUMNS = (
    "idx, id, kind, author, received_at, key_id, alg, sig, canonical, origin, "
    "audience_circles, audience_sites"
)


_ENVELOPE_COLUMNS = "idx, id, received_at, key_id, alg, sig, canonical"

# One ``ItemEnvelope`` (``exchange.wire.item_envelope``) as orjson writes it, built by
# PostgreSQL from a row ``w`` of the page window with the stored canonical bytes spliced
# in as they are: ``to_json`` of text escapes exactly what orjson escapes (``"``, ``\``
# and the controls below U+0020, as ``\b \t \n \f \r`` or lower-case ``\u00xx``), the
# time is ``datetime.isoformat()`` of the UTC value (no fraction on a whole second) and
# the signature base64url without padding (``b64u_encode``). Per row this costs
# PostgreSQL less than the Python it replaces costs the node (bench/pull_bench.py).
ENVELOPE_SQL = """
    convert_to('{"index":' || w.idx || ',"id":' || to_json(w.id)::text
               || ',"received_at":"'
               || replace(to_char(w.received_at AT TIME ZONE 'UTC',
                                  'YYYY-MM-DD"T"HH24:MI:SS.US'), '.000000', '')
               || '+00:00","signed":{"item":', 'UTF8')
    || w.canonical
    || convert_to(',"sig":{"key":' || to_json(w.key_id)::text
                  || ',"alg":' || to_json(w.alg)::text || ',"value":"'
                  || rtrim(replace(replace(replace(encode(w.sig, 'base64'),
                                                   chr(10), ''), '+', '-'), '/', '_'), '=')
                  || '"}}}', 'UTF8')"""


def json_list(head: bytes, elements: Sequence[bytes], tail: bytes) -> bytes:
    """``head + b",".join(elements) + tail``, the elements copied once (a page of
    envelopes is megabytes)."""
    if not elements:
        return head + tail
    parts = [b","] * (2 * len(elements) + 1)
    parts[0] = head
    parts[1::2] = elements
    parts[-1] = tail
    return b"".join(parts)


def _filters(flt: Any, args: list[Any]) -> list[str]:
    """SQL conditions of a listing or search filter (``kind``, ``author``, ``tag``,
    ``circle``, ``since`` and, when it has one, ``until``); their values go to ``args``."""
    conds: list[str] = []
    for value, cond in ((flt.kind, "kind = $"), (flt.author, "author = $")):
        if value:
            args.append(value)
            conds.append(f"{cond}{len(args)}")
    for value, cond in ((flt.tag, "tags @> $"), (flt.circle, "audience_circles @> $")):
        if value:
            args.append([value])
            conds.append(f"{cond}{len(args)}::text[]")
    for value, cond in (
        (flt.since, "created_at >= $"),
        (getattr(flt, "until", None), "created_at < $"),
    ):
        if value:
            args.append(value)
            conds.append(f"{cond}{len(args)}")
    return conds


def _page_window(
    reader: Reader, flt: ItemFilter, limit: int, max_bytes: int, columns: str
) -> tuple[list[Any], str]:
    """The rows of a page (``columns`` plus ``fetched``) and the query's arguments.

    The byte budget is applied by PostgreSQL (a running sum over the limited rows), so a
    page of large items does not ship rows only to drop them; the first row always goes,
    whatever its size. ``fetched`` counts the rows looked at (``limit`` + 1 at most): a
    page with fewer rows than that has a next page.

    The visibility condition is wrapped in ``coalesce(…, false)`` (the same rows: NULL
    never passes a WHERE) so that the planner estimates it at one row in two: it cannot
    know which items a reader sees (``cardinality(…) = 0`` of public items counts as
    0.5 % each, an unanalyzed table as a guess), and on such an underestimate it fetched
    *every* visible row after the cursor and sorted them for each page, which made a
    full pull quadratic. With the estimate at one in two it walks ``items_pkey`` in
    order and stops after ``limit`` + 1 rows; filters (tag, author, ...) keep their own
    estimates."""
    args: list[Any] = [flt.after]
    vis = _visibility(reader, args)
    conds = [
        "idx > $1",
        vis if vis == "TRUE" else f"coalesce({vis}, false)",
        *_filters(flt, args),
    ]
    args += [limit + 1, max_bytes, limit]
    n = len(args)
    return (
        args,
        f"""
        SELECT * FROM (
            SELECT p.*, count(*) OVER () AS fetched,
                   row_number() OVER (ORDER BY p.idx) AS rn,
                   sum(octet_length(p.canonical)) OVER (ORDER BY p.idx)
                       - octet_length(p.canonical) AS before
            FROM (SELECT {columns} FROM items WHERE {" AND ".join(conds)}
                  ORDER BY idx LIMIT ${n - 2}) p
        ) q
        WHERE (q.before = 0 OR q.before + octet_length(q.canonical) <= ${n - 1})
          AND q.rn <= ${n}""",
    )


def page_json_query(
    reader: Reader, flt: ItemFilter, limit: int, max_bytes: int
) -> tuple[list[Any], str]:
    """The arguments and statement of :meth:`ItemStore.page_json`: the page's rows,
    each as ``env`` (its envelope's JSON), ``idx`` and ``fetched``."""
    args, window = _page_window(reader, flt, limit, max_bytes, _ENVELOPE_COLUMNS)
    return args, (
        f"SELECT {ENVELOPE_SQL} AS env, w.idx, w.fetched"
        f" FROM ({window}) w ORDER BY w.idx"
    )


def _stored(r: Any) -> StoredItem:
    return StoredItem(
        idx=r["idx"],
        id=r["id"],
        kind=r["kind"],
        author=r["author"],
        received_at=r["received_at"],
        key_id=r["key_id"],
        alg=r["alg"],
        sig=bytes(r["sig"]),
        canonical=bytes(r["canonical"]),
        origin=r["origin"],
        audience_circles=tuple(r["audience_circles"]),
        audience_sites=tuple(r["audience_sites"]),
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


class ItemStore:
    """Queries on ``items`` and ``log_head``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def append(
        self, conn: asyncpg.Connection, items: Sequence[NewItem], received_at: datetime
    ) -> tuple[list[int], dict[str, int]]:
        """Append the items not stored yet, in ONE statement (its own transaction).

        The statement finds which ids are already stored, moves ``log_head`` by the
        number of new ones (taking its row lock, so concurrent writers take turns and
        every committed item gets the next index with no gaps, in commit order), inserts
        them and their refs from arrays, and queues the NOTIFY: one round trip and one
        WAL flush for the whole group. Call it outside a transaction, with distinct ids.
        An item stored meanwhile under the same id by another worker makes the statement
        fail with ``UniqueViolationError`` and change nothing; the caller retries.

        Returns:
            The index of each new item (in order, skipping those already stored), and
            the index of each id that was already stored.
        """
        if not items:
            return [], {}
        refs = [(dst, i, rel) for i, it in enumerate(items) for rel, dst in it.refs]
        row = await conn.fetchrow(
            _APPEND,
            received_at,
            [it.id for it in items],
            [it.kind for it in items],
            [it.author for it in items],
            [it.created_at for it in items],
            [_pg_array(it.audience_circles) for it in items],
            [_pg_array(it.audience_sites) for it in items],
            [_pg_array(it.tags) for it in items],
            [it.title for it in items],
            [it.key_id for it in items],
            [it.alg for it in items],
            [it.sig for it in items],
            [it.canonical for it in items],
            [_pg_array(it.attachments) for it in items],
            [it.origin for it in items],
            [r[0] for r in refs],
            [r[1] for r in refs],
            [r[2] for r in refs],
        )
        known = dict(zip(row["known_ids"], row["known_idx"], strict=True))
        start = row["start"]
        n_new = sum(1 for it in items if it.id not in known)
        return [start + i for i in range(n_new)] if n_new else [], known

    async def size(self, *, conn: asyncpg.Connection | None = None) -> int:
        """Number of items in the log."""
        async with self.db.connect(conn) as c:
            return int(await c.fetchval("SELECT size FROM log_head WHERE id = 1"))

    async def authors_of(
        self, ids: list[str], *, conn: asyncpg.Connection | None = None
    ) -> dict[str, str]:
        """``id -> author`` of the given items that are stored here (any audience)."""
        async with self.db.connect(conn) as c:
            rows = await c.fetch(
                "SELECT id, author FROM items WHERE id = ANY($1::text[])", ids
            )
        return {r["id"]: r["author"] for r in rows}

    async def get(
        self, item_id: str, reader: Reader, *, conn: asyncpg.Connection | None = None
    ) -> StoredItem | None:
        """One item by id if ``reader`` may see it."""
        args: list[Any] = [item_id]
        cond = _visibility(reader, args)
        async with self.db.connect(conn) as c:
            row = await c.fetchrow(
                f"SELECT * FROM items WHERE id = $1 AND {cond}", *args
            )
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
        args, window = _page_window(reader, flt, limit, max_bytes, _STORED_COLUMNS)
        rows = await self._fetch(
            f"SELECT * FROM ({window}) w ORDER BY w.idx", args, read_replica
        )
        out = [_stored(r) for r in rows]
        more = bool(rows) and (len(out) < rows[0]["fetched"])
        return out, (out[-1].idx if more else None)

    async def _fetch(self, sql: str, args: list[Any], read_replica: bool) -> list[Any]:
        pool = self.db.read_pool if read_replica else self.db.pool
        async with pool.acquire() as c:
            return list(await c.fetch(sql, *args))

    async def page_json(
        self,
        reader: Reader,
        flt: ItemFilter,
        *,
        limit: int,
        max_bytes: int,
        read_replica: bool = True,
    ) -> tuple[bytes, int, int | None]:
        """The same page as :meth:`page`, as the JSON of an ``ItemPage``
        (``{"items": [ItemEnvelope, ...], "next_cursor": ...}``): PostgreSQL writes each
        envelope from the row and the stored canonical bytes (``ENVELOPE_SQL``), and
        the node joins them once, with no item objects, dictionaries or serialiser walk.
        Byte for byte what ``orjson.dumps({"items": [item_envelope(i) for i in page],
        "next_cursor": cursor})`` gives (``exchange.wire``).

        Returns:
            The JSON, the number of items in it and the next cursor (None at the end).
        """
        args, sql = page_json_query(reader, flt, limit, max_bytes)
        rows = await self._fetch(sql, args, read_replica)
        nxt: int | None = None
        if rows and len(rows) < rows[0][2]:
            nxt = rows[-1][1]
        tail = b'],"next_cursor":%b}' % (b"null" if nxt is None else b"%d" % nxt)
        return json_list(b'{"items":[', [r[0] for r in rows], tail), len(rows), nxt

    async def blob_visible(
        self, sha256: str, reader: Reader, *, conn: asyncpg.Connection | None = None
    ) -> bool:
        """Whether some item ``reader`` may see attaches the blob ``sha256`` and was
        written by a site that uploaded it (naming a hash in one's own item does not
        make another site's file readable)."""
        args: list[Any] = [[sha256], sha256]
        cond = _visibility(reader, args)
        async with self.db.connect(conn) as c:
            found = await c.fetchval(
                f"""SELECT 1 FROM items WHERE attachments @> $1::text[] AND {cond}
                    AND EXISTS (SELECT 1 FROM blob_uploaders u
                                WHERE u.sha256 = $2 AND u.site = items.author)
                    LIMIT 1""",
                *args,
            )
        return bool(found)

    async def range(
        self, start: int, end: int, *, conn: asyncpg.Connection | None = None
    ) -> list[StoredItem]:
        """Items with ``start <= idx < end`` regardless of audience (log internals)."""
        async with self.db.connect(conn) as c:
            rows = await c.fetch(
                "SELECT * FROM items WHERE idx >= $1 AND idx < $2 ORDER BY idx",
                start,
                end,
            )
        return [_stored(r) for r in rows]
