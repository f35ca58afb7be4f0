"""The search index and the reference table: ``item_search`` and ``item_refs``.

``item_refs`` rows are written with their items, by the statement that appends them
(:meth:`exchange.storage.items.ItemStore.append`): plans and the reading view read them
right after a push.

``item_search`` rows are written *behind* the log by the indexer
(:class:`exchange.service.search.Indexer`): it follows ``items`` by index from
``search_state.upto`` and writes a batch of rows per transaction
(:meth:`SearchStore.write_docs`, one ``INSERT … SELECT FROM unnest(…)``). Tokenizing a
2 KB Chinese item costs more CPU than verifying its signature, and each row adds
hundreds of GIN entries, so none of it holds up an acknowledgement. Readers that need
the index to cover what was acknowledged wait for ``upto`` to pass the log head they
saw (:meth:`SearchStore.wait_indexed`); saved-query cursors never pass ``upto``. Rows
indexed by an older tokenizer are rebuilt by :meth:`SearchStore.backfill_batch`.

Every query here restricts rows to what the reader may see with the one audience rule,
:func:`exchange.storage.items._visibility`; the columns it names are repeated in
``item_search``, so searches read that table alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from exchange.core.search_text import TOKENIZER_VERSION, tsvector_literals
from exchange.core.trust import Reader

from .database import Database
from .items import StoredItem, _filters, _stored, _visibility

__all__ = [
    "RANK_CAP",
    "SearchFilter",
    "SearchRow",
    "SearchStore",
    "item_docs",
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


def item_docs(canonicals: Sequence[bytes]) -> list[tuple[str, str]]:
    """The ``(doc, head)`` ``tsvector`` literals of each stored item (pure CPU: runs in
    the indexer process)."""
    return [tsvector_literals(orjson.loads(c)) for c in canonicals]


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
            # Only as far as the index reaches: a cursor that passed an item not yet
            # indexed would never deliver it.
            head = (
                int(
                    await c.fetchval(
                        "SELECT least((SELECT size FROM log_head WHERE id = 1),"
                        " (SELECT upto FROM search_state WHERE id = 1))"
                    )
                )
                - 1
            )
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

    async def retracted(self, ids: Sequence[str], reader: Reader) -> set[str]:
        """The items among ``ids`` withdrawn by their author, as far as ``reader`` sees.

        A retraction counts when ``reader`` may see it and its author is the author of
        the item it retracts.
        """
        if not ids:
            return set()
        args: list[Any] = [list(ids)]
        cond = _visibility(reader, args)
        async with self.db.read_pool.acquire() as c:
            rows = await c.fetch(
                f"""SELECT DISTINCT r.dst FROM item_refs r
                    JOIN (SELECT idx, author FROM items
                          WHERE kind = 'retraction' AND {cond}) s ON s.idx = r.src
                    JOIN items t ON t.id = r.dst AND t.author = s.author
                    WHERE r.rel = 'retracts' AND r.dst = ANY($1::text[])""",
                *args,
            )
        return {r["dst"] for r in rows}

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

    async def write_docs(
        self,
        conn: asyncpg.Connection,
        idxs: Sequence[int],
        docs: Sequence[tuple[str, str]],
    ) -> None:
        """Write (or rewrite) the search rows of stored items, one statement per batch.

        ``docs`` holds each item's ``(doc, head)`` literals (:func:`item_docs`): ``head``
        (what ranks: title, tags, summary) is the A and B weighted part of ``doc``, cut
        by the tokenizer in the same pass (PostgreSQL's ``ts_filter`` would parse and
        filter every row again).
        """
        if not idxs:
            return
        await conn.execute(
            """INSERT INTO item_search
                 (idx, v, kind, author, created_at, audience_circles, audience_sites, tags,
                  doc, head)
               SELECT i.idx, $1, i.kind, i.author, i.created_at, i.audience_circles,
                      i.audience_sites, i.tags, u.doc::tsvector, u.head::tsvector
               FROM unnest($2::bigint[], $3::text[], $4::text[]) AS u(idx, doc, head)
                 JOIN items i USING (idx)
               ON CONFLICT (idx) DO UPDATE
               SET v = EXCLUDED.v, doc = EXCLUDED.doc, head = EXCLUDED.head""",
            TOKENIZER_VERSION,
            list(idxs),
            [d for d, _ in docs],
            [h for _, h in docs],
        )

    async def indexed_upto(self, *, conn: asyncpg.Connection | None = None) -> int:
        """How many leading items (``idx < upto``) the indexer has handled."""
        async with self.db.connect(conn) as c:
            return int(await c.fetchval("SELECT upto FROM search_state WHERE id = 1"))

    async def lag(self) -> tuple[int, int]:
        """``(log size, indexed upto)`` read together."""
        async with self.db.read_pool.acquire() as c:
            row = await c.fetchrow(
                "SELECT (SELECT size FROM log_head WHERE id = 1) AS size, "
                "(SELECT upto FROM search_state WHERE id = 1) AS upto"
            )
        return int(row["size"]), int(row["upto"])

    async def wait_indexed(self, size: int, timeout: float) -> bool:
        """Wait until the index covers the first ``size`` items; False on timeout."""
        deadline = asyncio.get_running_loop().time() + timeout
        delay = 0.005
        while True:
            _, upto = await self.lag()
            if upto >= size:
                return True
            if asyncio.get_running_loop().time() + delay > deadline:
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def wait_fresh(self, timeout: float) -> tuple[int, int]:
        """Wait (at most ``timeout``) until the index covers the log as it is now.

        Returns:
            ``(log size, indexed upto)`` at the end of the wait.
        """
        size, upto = await self.lag()
        if upto < size and await self.wait_indexed(size, timeout):
            upto = size
        return size, upto

    async def pending_rows(
        self, conn: asyncpg.Connection, upto: int, batch: int
    ) -> list[tuple[int, bytes]]:
        """``(idx, canonical)`` of the next items to index, from ``upto`` on, in order."""
        rows = await conn.fetch(
            "SELECT idx, canonical FROM items WHERE idx >= $1 ORDER BY idx LIMIT $2",
            upto,
            batch,
        )
        return [(r["idx"], bytes(r["canonical"])) for r in rows]

    async def advance_txn(self, conn: asyncpg.Connection, old: int, new: int) -> bool:
        """Move ``upto`` from ``old`` to ``new`` (False if someone else moved it)."""
        done = await conn.fetchval(
            "UPDATE search_state SET upto = $2 WHERE id = 1 AND upto = $1 RETURNING upto",
            old,
            new,
        )
        return done is not None

    async def backfill_batch(self, batch: int = 500) -> int:
        """Rebuild up to ``batch`` rows the indexer has passed but that are not current.

        These are items stored before the index existed and rows written by an older
        tokenizer (:data:`TOKENIZER_VERSION`).

        Returns:
            How many were indexed (0 when everything is current).
        """
        async with self.db.pool.acquire() as c, c.transaction():
            rows = await c.fetch(
                """SELECT i.idx, i.canonical
                   FROM items i LEFT JOIN item_search s ON s.idx = i.idx
                   WHERE i.idx < (SELECT upto FROM search_state WHERE id = 1)
                     AND (s.idx IS NULL OR s.v < $1)
                   ORDER BY i.idx LIMIT $2 FOR UPDATE OF i SKIP LOCKED""",
                TOKENIZER_VERSION,
                batch,
            )
            docs = item_docs([bytes(r["canonical"]) for r in rows])
            await self.write_docs(c, [r["idx"] for r in rows], docs)
        return len(rows)

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
