"""The search index and the reference table: ``item_search`` and ``item_refs``.

Rows are written by :func:`index_txn` inside the transaction that appends the items
(:meth:`exchange.storage.items.ItemStore.append_txn`), as two multi-row statements per
batch (``INSERT … SELECT FROM unnest(…)``): no round trip per item. Items stored before
the index existed, or indexed by an older tokenizer, are (re)indexed by
:meth:`SearchStore.backfill_batch`, which the node runs in the background at start.

Every query here restricts rows to what the reader may see with the one audience rule,
:func:`exchange.storage.items._visibility`; the columns it names are repeated in
``item_search``, so searches read that table alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from exchange.core.search_text import TOKENIZER_VERSION, tsvector_literal
from exchange.core.trust import Reader

from .database import Database
from .items import StoredItem, _stored, _visibility

__all__ = [
    "RANK_CAP",
    "SearchFilter",
    "SearchRow",
    "SearchStore",
    "index_txn",
    "make_doc",
    "refs_of",
]

RANK_CAP = 5000
"""Matches (newest first) that one search ranks; narrow broader queries with filters."""

# How strongly recency lifts a score: x1.5 for today, halving over about four months.
# (float8 throughout: numeric exp() would cost more than the ranking itself.)
_RECENCY = "(1 + 0.5 * exp(-greatest(0, extract(epoch FROM {asof} - created_at)::float8) / 1.5e7))"


def refs_of(item: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(rel, id)`` of an item's well-formed refs."""
    out = []
    for r in item.get("refs") or []:
        if (
            isinstance(r, Mapping)
            and isinstance(r.get("id"), str)
            and isinstance(r.get("rel"), str)
        ):
            out.append((r["rel"], r["id"]))
    return out


@dataclass(frozen=True)
class _Doc:
    idx: int
    kind: str
    author: str
    created_at: datetime
    audience_circles: list[str]
    audience_sites: list[str]
    tags: list[str]
    doc: str
    head: str
    refs: list[tuple[str, str]]


async def index_txn(conn: asyncpg.Connection, docs: Sequence[_Doc]) -> None:
    """Write search rows and refs for freshly appended items (inside their transaction)."""
    if not docs:
        return
    await conn.execute(
        """INSERT INTO item_search
             (idx, v, kind, author, created_at, audience_circles, audience_sites, tags, doc, head)
           SELECT u.idx, $1, u.kind, u.author, u.created_at, u.circles::text[],
                  u.sites::text[], u.tags::text[], u.doc::tsvector, u.head::tsvector
           FROM unnest($2::bigint[], $3::text[], $4::text[], $5::timestamptz[], $6::text[],
                       $7::text[], $8::text[], $9::text[], $10::text[])
                AS u(idx, kind, author, created_at, circles, sites, tags, doc, head)
           ON CONFLICT (idx) DO UPDATE
           SET v = EXCLUDED.v, doc = EXCLUDED.doc, head = EXCLUDED.head""",
        TOKENIZER_VERSION,
        [d.idx for d in docs],
        [d.kind for d in docs],
        [d.author for d in docs],
        [d.created_at for d in docs],
        [_pg_array(d.audience_circles) for d in docs],
        [_pg_array(d.audience_sites) for d in docs],
        [_pg_array(d.tags) for d in docs],
        [d.doc for d in docs],
        [d.head for d in docs],
    )
    refs = [(dst, d.idx, rel) for d in docs for rel, dst in d.refs]
    if refs:
        await conn.execute(
            """INSERT INTO item_refs (dst, src, rel)
               SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[])
               ON CONFLICT DO NOTHING""",
            [r[0] for r in refs],
            [r[1] for r in refs],
            [r[2] for r in refs],
        )


def _pg_array(values: Sequence[str]) -> str:
    """A text[] literal (arrays of arrays cannot be unnested row by row)."""
    return (
        "{"
        + ",".join(
            '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values
        )
        + "}"
    )


def make_doc(
    idx: int,
    item: Mapping[str, Any],
    *,
    kind: str,
    author: str,
    created_at: datetime,
    audience_circles: list[str],
    audience_sites: list[str],
    tags: list[str],
    doc: str | None = None,
) -> _Doc:
    """The index row of one item (``doc`` precomputed by ingest, or built here)."""
    return _Doc(
        idx,
        kind,
        author,
        created_at,
        audience_circles,
        audience_sites,
        tags,
        doc if doc is not None else tsvector_literal(item),
        tsvector_literal(item, head=True),
        refs_of(item),
    )


@dataclass(frozen=True)
class SearchFilter:
    """Filters of a search, all optional."""

    kind: str | None = None
    author: str | None = None
    circle: str | None = None
    tag: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class SearchRow:
    """One hit: the stored item and its score."""

    score: float
    item: StoredItem
    created_at: datetime


def _filters(flt: SearchFilter, args: list[Any]) -> list[str]:
    conds: list[str] = []
    if flt.kind:
        args.append(flt.kind)
        conds.append(f"kind = ${len(args)}")
    if flt.author:
        args.append(flt.author)
        conds.append(f"author = ${len(args)}")
    if flt.circle:
        args.append([flt.circle])
        conds.append(f"audience_circles @> ${len(args)}::text[]")
    if flt.tag:
        args.append([flt.tag])
        conds.append(f"tags @> ${len(args)}::text[]")
    if flt.since:
        args.append(flt.since)
        conds.append(f"created_at >= ${len(args)}")
    if flt.until:
        args.append(flt.until)
        conds.append(f"created_at < ${len(args)}")
    return conds


class SearchStore:
    """Queries on ``item_search`` and ``item_refs``.

    Args:
        db: The database.
        timeout: Seconds a search statement may run before it is cancelled.
    """

    def __init__(self, db: Database, *, timeout: float = 5.0) -> None:
        self.db = db
        self.timeout = timeout

    async def search(
        self,
        reader: Reader,
        tsquery: str | None,
        flt: SearchFilter,
        *,
        tsquery_any: str | None = None,
        asof: datetime,
        max_idx: int,
        after: tuple[float, int] | None,
        limit: int,
    ) -> list[SearchRow]:
        """Hits visible to ``reader``, best first: relevance × recency, then newest.

        Matching uses the whole text; ranking reads only title, tags and summary and
        considers the newest :data:`RANK_CAP` matches, so a broad query costs a bounded
        amount of work.

        Without ``tsquery`` (browsing) every visible item matching the filters is a hit,
        newest first (score 0).

        Args:
            reader: Who is reading (audience rules).
            tsquery: ``tsquery`` text from :func:`exchange.core.search_text.parse_query`.
            tsquery_any: The same lexemes ORed (partial matches rank too).
            flt: Filters.
            asof: Reference time for recency (fixed for all pages of one search).
            max_idx: Highest log index considered (fixed for all pages).
            after: ``(score, idx)`` of the last hit of the previous page.
            limit: Page size.

        Raises:
            asyncpg.QueryCanceledError: the statement ran past ``timeout``.
        """
        args: list[Any] = [max_idx]
        conds = ["idx <= $1", _visibility(reader, args), *_filters(flt, args)]
        if tsquery:
            args.append(tsquery)
            conds.append(f"doc @@ ${len(args)}::tsquery")
            args.append(tsquery_any or tsquery)
            q_any = f"${len(args)}::tsquery"
            args.append(asof)
            # Cover density of the query's lexemes in title, tags and summary (all of
            # them close together ranks highest, some of them still counts); a match
            # in the body alone ranks by recency. One ts_rank_cd per row: it is the cost.
            score = f"(ts_rank_cd(head, {q_any}, 1) + 0.01) * " + _RECENCY.format(
                asof=f"${len(args)}"
            )
        else:
            score = "0::float8"
        args.append(RANK_CAP)
        cap = f"${len(args)}"
        page = ""
        if after is not None:
            args.extend(after)
            page = (
                f"WHERE (score, idx) < (${len(args) - 1}::float8, ${len(args)}::bigint)"
            )
        args.append(limit)
        sql = f"""
            WITH matches AS MATERIALIZED (
                SELECT idx FROM item_search WHERE {" AND ".join(conds)}
                ORDER BY idx DESC LIMIT {cap}
            ), hits AS (
                SELECT idx, created_at, ({score})::float8 AS score
                FROM matches JOIN item_search USING (idx)
            ), top AS (
                SELECT * FROM hits {page} ORDER BY score DESC, idx DESC LIMIT ${len(args)}
            )
            SELECT top.score, top.created_at AS hit_created_at, i.*
            FROM top JOIN items i USING (idx) ORDER BY top.score DESC, top.idx DESC"""
        async with self.db.read_pool.acquire() as c, c.transaction(readonly=True):
            settings = f"SET LOCAL statement_timeout = {int(self.timeout * 1000)}"
            if tsquery:
                # Match through the GIN index only: a plain scan (or walking the primary
                # key newest-first) would test `doc @@ q` row by row, decompressing every
                # body; the bitmap from the index needs no body at all.
                settings += (
                    "; SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = off"
                )
            await c.execute(settings)
            rows = await c.fetch(sql, *args)
        return [
            SearchRow(float(r["score"]), _stored(r), r["hit_created_at"]) for r in rows
        ]

    async def matches_after(
        self,
        reader: Reader,
        tsquery: str | None,
        flt: SearchFilter,
        *,
        after: int,
        window: int,
        limit: int,
    ) -> tuple[list[StoredItem], int]:
        """Items with ``after < idx <= after + window`` that match, by index.

        Returns:
            The matches (at most ``limit``) and the highest index examined: the next
            ``after`` (the last match's index when the page is full).
        """
        async with self.db.read_pool.acquire() as c:
            head = int(await c.fetchval("SELECT size FROM log_head WHERE id = 1")) - 1
            upto = min(after + window, head)
            if upto <= after:
                return [], after
            args: list[Any] = [after, upto]
            conds = [
                "idx > $1",
                "idx <= $2",
                _visibility(reader, args),
                *_filters(flt, args),
            ]
            if tsquery:
                args.append(tsquery)
                conds.append(f"doc @@ ${len(args)}::tsquery")
            args.append(limit)
            rows = await c.fetch(
                f"""SELECT i.* FROM items i JOIN (
                        SELECT idx FROM item_search WHERE {" AND ".join(conds)}
                        ORDER BY idx LIMIT ${len(args)}) m USING (idx)
                    ORDER BY idx""",
                *args,
            )
        items = [_stored(r) for r in rows]
        if len(items) >= limit:
            return items, items[-1].idx
        return items, upto

    async def referencing(
        self, item_id: str, reader: Reader, *, limit: int = 200
    ) -> list[tuple[str, StoredItem]]:
        """Items visible to ``reader`` that reference ``item_id``: ``(rel, item)``."""
        args: list[Any] = [item_id]
        cond = _visibility(reader, args)
        args.append(limit)
        async with self.db.read_pool.acquire() as c:
            rows = await c.fetch(
                f"""SELECT r.rel, i.* FROM item_refs r JOIN items i ON i.idx = r.src
                    WHERE r.dst = $1 AND {cond} ORDER BY i.idx LIMIT ${len(args)}""",
                *args,
            )
        return [(r["rel"], _stored(r)) for r in rows]

    async def by_ids(self, ids: Sequence[str], reader: Reader) -> dict[str, StoredItem]:
        """The items among ``ids`` that ``reader`` may see, by id."""
        if not ids:
            return {}
        args: list[Any] = [list(ids)]
        cond = _visibility(reader, args)
        async with self.db.read_pool.acquire() as c:
            rows = await c.fetch(
                f"SELECT * FROM items WHERE id = ANY($1::text[]) AND {cond}", *args
            )
        return {r["id"]: _stored(r) for r in rows}

    async def backfill_batch(self, batch: int = 500) -> int:
        """Index up to ``batch`` items that have no current search row.

        Returns:
            How many were indexed (0 when everything is current).
        """
        async with self.db.pool.acquire() as c, c.transaction():
            rows = await c.fetch(
                """SELECT i.idx, i.kind, i.author, i.created_at, i.audience_circles,
                          i.audience_sites, i.tags, i.canonical
                   FROM items i LEFT JOIN item_search s ON s.idx = i.idx
                   WHERE s.idx IS NULL OR s.v < $1
                   ORDER BY i.idx LIMIT $2 FOR UPDATE OF i SKIP LOCKED""",
                TOKENIZER_VERSION,
                batch,
            )
            docs = [
                make_doc(
                    r["idx"],
                    orjson.loads(bytes(r["canonical"])),
                    kind=r["kind"],
                    author=r["author"],
                    created_at=r["created_at"],
                    audience_circles=list(r["audience_circles"]),
                    audience_sites=list(r["audience_sites"]),
                    tags=list(r["tags"]),
                )
                for r in rows
            ]
            await index_txn(c, docs)
        return len(docs)

    async def pending(self) -> int:
        """Items not yet (or not currently) indexed."""
        async with self.db.pool.acquire() as c:
            return int(
                await c.fetchval(
                    """SELECT count(*) FROM items i LEFT JOIN item_search s ON s.idx = i.idx
                   WHERE s.idx IS NULL OR s.v < $1""",
                    TOKENIZER_VERSION,
                )
            )
