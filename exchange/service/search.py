"""Search: parse the query, page through ranked hits with an opaque cursor, cut snippets.

Design
------
A search is ``tsquery`` matching on ``item_search`` (see :mod:`exchange.storage.search`)
restricted to the reader's audience, ranked by cover density (``ts_rank_cd``) times a
recency factor. The first page fixes two things that every later page reuses, carried in
the opaque cursor: the reference time of the recency factor and the highest log index
considered, so pages never shift or repeat when new items arrive meanwhile. The cursor
also carries a fingerprint of the query and filters; a cursor used with another query
is refused. Hits carry no count of anything: a reader learns nothing about items outside
its audience, not even how many there are.

Bad queries are refused before any SQL runs (:func:`exchange.core.search_text.parse_query`:
empty, too long, too many terms, nothing searchable), and every search statement runs
under a ``statement_timeout``: a query too broad to answer in time gets a 400 that says
to narrow it, never a 5xx.

The index is built behind the log by the :class:`Indexer` (one per database, by
advisory lock, like the log writer): it follows the items by index, tokenizes them in a
helper process so the event loop that acknowledges pushes never pays for it, and writes
a batch of rows per transaction. A search first waits (briefly) for the index to cover
every item acknowledged before the search began, so a reader finds what it just pushed.
The backfill (:meth:`SearchService.run_backfill`) rebuilds rows written by an older
tokenizer, and indexes items stored before the search index existed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import math
import os
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from exchange.core.search_text import (
    SearchQuery,
    highlight,
    item_texts,
    parse_query,
    snippet,
)
from exchange.core.trust import Reader
from exchange.errors import InputError
from exchange.service.loop import BackgroundLoop, run_as_leader
from exchange.service.notify import Notifier
from exchange.service.procpool import lower_priority, start_helper_pool
from exchange.storage.database import Database
from exchange.storage.items import StoredItem
from exchange.storage.search import SearchFilter, SearchStore, item_docs
from schemas.errors import ErrorCode

__all__ = ["Hit", "Indexer", "SearchResult", "SearchService"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hit:
    """One search hit, ready to render."""

    item: StoredItem
    doc: dict[str, Any]
    title_html: str
    snippet_html: str


@dataclass(frozen=True)
class SearchResult:
    """A page of hits and the cursor of the next page."""

    hits: list[Hit]
    next_cursor: str | None
    query: SearchQuery | None


def _fingerprint(q: str, flt: SearchFilter) -> str:
    raw = orjson.dumps(
        [
            q,
            flt.kind,
            flt.author,
            flt.circle,
            flt.tag,
            flt.since.isoformat() if flt.since else None,
            flt.until.isoformat() if flt.until else None,
        ]
    )
    return hashlib.sha256(raw).hexdigest()[:16]


def _encode_cursor(
    fp: str, asof: datetime, max_idx: int, score: float, idx: int
) -> str:
    doc = orjson.dumps(
        {"f": fp, "t": int(asof.timestamp()), "m": max_idx, "s": score, "i": idx}
    )
    return base64.urlsafe_b64encode(doc).decode().rstrip("=")


_MAX_TS = 253402300800  # 10000-01-01T00:00:00Z


def _decode_cursor(cursor: str, fp: str) -> tuple[datetime, int, float, int]:
    bad = InputError(
        "cursor is not valid for this search; start again without cursor",
        code=ErrorCode.BAD_REQUEST,
    )
    if len(cursor) > 400:
        raise bad
    try:
        doc = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        t, max_idx, score, idx = doc["t"], doc["m"], doc["s"], doc["i"]
        same = doc["f"] == fp
    except (ValueError, TypeError, KeyError, orjson.JSONDecodeError):
        raise bad from None
    # Only what this node writes: whole seconds within years 1970..9999, log indexes
    # PostgreSQL's bigint holds, a finite score.
    ints = all(
        isinstance(v, int) and not isinstance(v, bool) for v in (t, max_idx, idx)
    )
    if not (same and ints and isinstance(score, (int, float)) and math.isfinite(score)):
        raise bad
    if not (0 <= t < _MAX_TS and -1 <= idx < 2**62 and -1 <= max_idx < 2**62):
        raise bad
    return datetime.fromtimestamp(t, UTC), max_idx, float(score), idx


def render_hit(item: StoredItem, query: SearchQuery | None) -> Hit:
    """Title and snippet of one item for a query (HTML-escaped, matches in ``<mark>``)."""
    doc = orjson.loads(item.canonical)
    title = str(doc.get("title", ""))
    if query is None:
        empty = SearchQuery("", ())
        return Hit(item, doc, highlight(title, empty), snippet(item_texts(doc), empty))
    return Hit(item, doc, highlight(title, query), snippet(item_texts(doc), query))


class SearchService:
    """Search over the items a reader may see.

    Args:
        db: The database.
        timeout: Seconds one search statement may run.
    """

    def __init__(
        self, db: Database, *, timeout: float = 5.0, fresh_wait: float = 3.0
    ) -> None:
        self.db = db
        self.store = SearchStore(db, timeout=timeout)
        self.fresh_wait = fresh_wait
        self._backfill: asyncio.Task[int] | None = None

    async def search(
        self,
        reader: Reader,
        q: str,
        flt: SearchFilter,
        *,
        cursor: str | None = None,
        limit: int = 20,
    ) -> SearchResult:
        """One page of hits for ``q`` (or, if ``q`` is empty and ``browse``, the newest).

        Args:
            reader: Who reads; only items in its audience are considered.
            q: The query as typed; an empty ``q`` browses (newest first).
            flt: Filters.
            cursor: ``next_cursor`` of the previous page.
            limit: Page size.

        Raises:
            InputError: a bad query (``query_invalid``) or cursor, or a query too broad
                to answer within the time limit.
        """
        query = parse_query(q) if q.strip() else None
        fp = _fingerprint(query.text if query else "", flt)
        if cursor:
            asof, max_idx, score, idx = _decode_cursor(cursor, fp)
            after: tuple[float, int] | None = (score, idx)
        else:
            asof = datetime.now(UTC).replace(microsecond=0)  # exact in the cursor
            size, upto = await self.store.wait_fresh(self.fresh_wait)
            if upto < size:
                _log.warning("search index is %d item(s) behind the log", size - upto)
            max_idx = upto - 1
            after = None
        try:
            rows = await self.store.search(
                reader,
                query.tsquery if query else None,
                flt,
                tsquery_any=query.tsquery_any if query else None,
                asof=asof,
                max_idx=max_idx,
                after=after,
                limit=limit + 1,
            )
        except asyncpg.QueryCanceledError:
            raise InputError(
                "检索范围过大 / this search is too broad to answer in time; add words or "
                "filters (kind, author, date)",
                code=ErrorCode.QUERY_INVALID,
            ) from None
        more = len(rows) > limit
        rows = rows[:limit]
        hits = [render_hit(r.item, query) for r in rows]
        nxt = (
            _encode_cursor(fp, asof, max_idx, rows[-1].score, rows[-1].item.idx)
            if more and rows
            else None
        )
        return SearchResult(hits, nxt, query)

    # -- backfill ---------------------------------------------------------------------
    def start_backfill(self) -> None:
        """Index, in the background, items that have no current search row."""
        if self._backfill is None:
            self._backfill = asyncio.create_task(
                self.run_backfill(), name="search-backfill"
            )

    async def run_backfill(self, batch: int = 500) -> int:
        """Index every item lacking a current search row; returns how many."""
        total = 0
        while True:
            try:
                n = await self.store.backfill_batch(batch)
            except asyncio.CancelledError:
                raise
            except Exception:  # retried; the index must never stop the node
                _log.warning("search backfill failed; retrying in 5 s", exc_info=True)
                await asyncio.sleep(5)
                continue
            total += n
            if n < batch:
                if total:
                    _log.info(
                        "search index: %d item(s) indexed in the background", total
                    )
                return total
            await asyncio.sleep(0)

    async def stop(self) -> None:
        """Stop the backfill."""
        task, self._backfill = self._backfill, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass


INDEXER_LOCK_KEY = 0x45584958  # "EXIX": one search indexer per database


class Indexer(BackgroundLoop):
    """Writes ``item_search`` rows behind the log, in batches.

    One process per database indexes: the holder of the advisory lock
    :data:`INDEXER_LOCK_KEY` on the indexer's own connection (others wait for it, as
    spare log writers do). It wakes on every commit (``LISTEN exchange_items``) and at
    least once a second, and moves ``search_state.upto`` in the transaction that writes
    the rows, so a crash repeats a batch at most (rows are upserts).

    Args:
        db: The database.
        store: The search store.
        batch: Most items per transaction.
        process: Tokenize in a helper process (the default: tokenizing a 2 KB Chinese
            item costs more CPU than verifying it, and the second core is idle while
            the first serves requests). ``False`` tokenizes on the event loop, a few
            items at a time.
        name: Shown as the lock holder's ``application_name``.
    """

    GATHER_S = 0.1

    def __init__(
        self,
        db: Database,
        store: SearchStore,
        *,
        batch: int = 200,
        process: bool = True,
        name: str = "exchange",
        notifier: Notifier | None = None,
        nice: int = 0,
        nice_backend: bool = False,
    ) -> None:
        self.db = db
        self.store = store
        self.nice = nice
        self.nice_backend = nice_backend
        self.notifier = notifier
        self.batch = batch
        self.process = process
        self.name = name
        self.is_indexer = False
        self.helper_timeout_s = (
            120.0  # one batch; a helper that takes longer is given up
        )
        self.indexed_total = 0
        self._pool: Executor | None = None
        self._task: asyncio.Task[None] | None = None

    task_name = "search-indexer"

    async def stop(self) -> None:
        """Stop, release the lock and end the helper process."""
        await super().stop()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def _run(self) -> None:
        await run_as_leader(
            self.db.url,
            INDEXER_LOCK_KEY,
            self._index_loop,
            name="search indexer",
            app_name=f"{self.name}-indexer-{os.getpid()}",
            on_change=self._lead,
        )

    def _lead(self, leading: bool) -> None:
        self.is_indexer = leading

    async def _index_loop(self, conn: asyncpg.Connection) -> None:
        # Indexing runs behind the log: it yields the CPU to acknowledgements (its
        # tokenizer and, on the embedded PostgreSQL, its server process run at a lower
        # priority) and catches up when pushes leave room.
        if self.nice_backend:
            lower_priority(await conn.fetchval("SELECT pg_backend_pid()"), self.nice)
        wake = asyncio.Event()
        unsubscribe = (
            self.notifier.subscribe("exchange_items", lambda _: wake.set())
            if self.notifier is not None
            else (lambda: None)
        )
        try:
            while not conn.is_closed():
                await self.catch_up(conn)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=1.0)
                wake.clear()
                # Let commits gather: one index transaction per ~100 ms at most, not
                # one per small push (searches wait for the index to catch up).
                await asyncio.sleep(self.GATHER_S)
        finally:
            unsubscribe()

    async def catch_up(self, conn: asyncpg.Connection) -> int:
        """Index every item past ``upto``; returns how many were indexed."""
        done = 0
        while True:
            upto = await self.store.indexed_upto(conn=conn)
            rows = await self.store.pending_rows(conn, upto, self.batch)
            if not rows:
                return done
            docs = await self._tokenize([c for _, c in rows])
            new = rows[-1][0] + 1
            async with conn.transaction():
                await self.store.write_docs(conn, [i for i, _ in rows], docs)
                if not await self.store.advance_txn(conn, upto, new):
                    raise asyncpg.InterfaceError("search_state moved under the indexer")
            done += len(rows)
            self.indexed_total += len(rows)

    async def _tokenize(self, canonicals: list[bytes]) -> list[tuple[str, str]]:
        if self.process:
            if self._pool is None:
                self._pool = await start_helper_pool(1, nice=self.nice)
            try:
                return await asyncio.wait_for(
                    asyncio.get_running_loop().run_in_executor(
                        self._pool, item_docs, canonicals
                    ),
                    timeout=self.helper_timeout_s,
                )
            except (BrokenProcessPool, TimeoutError) as exc:
                _log.warning(
                    "search tokenizer process failed (%s); tokenizing in-process",
                    type(exc).__name__,
                )
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
                self.process = False
        out: list[tuple[str, str]] = []
        for i in range(0, len(canonicals), 8):  # a few at a time: requests go between
            out.extend(item_docs(canonicals[i : i + 8]))
            await asyncio.sleep(0)
        return out
