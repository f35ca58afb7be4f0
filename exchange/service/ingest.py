"""Ingest: verify signed items, then store and index them with group commit.

Design
------
A push is handled in two halves.

1. **Verify** (per request, CPU only plus one key query): strict schema check, canonical
   bytes and id, trust checks (:class:`exchange.core.trust.Verifier`), who-may-push rules
   and audience validation. Bad items are refused here, each with its own error; nothing of
   them reaches the database.
2. **Commit** (shared): verified items from every concurrent request are queued to the
   :class:`GroupCommitter`, whose single task writes whatever has accumulated in *one*
   transaction: lock the ``log_head`` row, drop ids already stored (idempotent pushes
   return the original index), COPY the rest with consecutive indexes, ``NOTIFY``, commit.
   Only after that commit are the waiting requests answered. One fsync serves many pushes,
   which is where the throughput comes from; nothing is acknowledged before it is durable.

If the transaction fails, every request in it gets the error (nothing partial is
written: it is one transaction). The ``log_head`` row lock makes several worker processes
on one database take turns, so indexes stay gap-free across workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from exchange.core.canonical import parse_json
from exchange.core.items import ParsedItem, parse_signed_item
from exchange.core.placeholders import PLACEHOLDER_MARK, refuse_placeholders
from exchange.core.trust import (
    KeyRecord,
    Reader,
    Verifier,
    accepted_suites,
    parse_timestamp,
)
from exchange.errors import ExchangeError, Forbidden, OperationalError, SchemaError
from exchange.metrics import Metrics
from exchange.service.procpool import start_helper_pool
from exchange.service.verify_pool import (
    ErrorTuple,
    check_body,
    error_from,
    key_ids_in,
    parsed_of,
    split_push_body,
)
from exchange.storage.activity import SECURITY_CODES, ActivityStore
from exchange.storage.database import Database
from exchange.storage.directory import SiteStore
from exchange.storage.items import ItemStore, NewItem
from exchange.storage.search import refs_of
from schemas.errors import ErrorCode

__all__ = [
    "GroupCommitter",
    "Guard",
    "Ingestor",
    "Outcome",
    "VerifiedItem",
    "outcome_counts",
]

_log = logging.getLogger(__name__)
NOTIFY_CHANNEL = "exchange_items"


@dataclass(frozen=True)
class VerifiedItem:
    """An item that passed every check, ready to commit."""

    parsed: ParsedItem
    key: KeyRecord
    row: NewItem


Guard = Callable[[list[VerifiedItem], Reader], Awaitable[dict[int, ExchangeError]]]
"""Checks local items before commit, as the pusher (``Reader``) may see the log."""
"""A pre-commit check on verified local pushes: refusals by position in the list."""


@dataclass
class Outcome:
    """The result of pushing one item."""

    id: str | None
    status: str  # accepted | duplicate | refused
    index: int | None = None
    error: ExchangeError | None = None

    def to_json(self) -> dict[str, Any]:
        """As a ``PushResult`` body."""
        return {
            "id": self.id,
            "status": self.status,
            "index": self.index,
            "error": self.error.to_body()["error"] if self.error else None,
        }


def outcome_counts(outcomes: Sequence[Outcome]) -> dict[str, int]:
    """How many of a push's items were accepted, duplicates and refused (the counts of
    a batch answer)."""
    statuses = [o.status for o in outcomes]
    return {
        "accepted": statuses.count("accepted"),
        "duplicates": statuses.count("duplicate"),
        "refused": statuses.count("refused"),
    }


@dataclass
class _Pending:
    items: list[NewItem]
    future: asyncio.Future[list[tuple[str, int]]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


def _log_start_failure(task: asyncio.Task[ProcessPoolExecutor]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _log.warning(
            "the item-check helpers did not start (%s); checking on the event loop",
            task.exception(),
        )


class GroupCommitter:
    """Batches concurrent appends into shared transactions (one writer task per process).

    Args:
        db: The database.
        items: The item store.
        max_batch: Most items per transaction.
    """

    def __init__(
        self,
        db: Database,
        items: ItemStore,
        *,
        max_batch: int = 2000,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.metrics = metrics
        self.items = items
        self.max_batch = max_batch
        self._queue: list[_Pending] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.commits = 0
        self.committed_items = 0

    def start(self) -> None:
        """Start the writer task."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="group-commit")

    async def stop(self) -> None:
        """Finish queued work and stop."""
        if self._task is None:
            return
        task, self._task = self._task, None
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        for p in self._queue:
            if not p.future.done():
                p.future.set_exception(
                    OperationalError(
                        "node is shutting down", code=ErrorCode.DATABASE_UNAVAILABLE
                    )
                )
        self._queue.clear()

    async def submit(self, items: list[NewItem]) -> list[tuple[str, int]]:
        """Queue items and wait until they are committed.

        Returns:
            For each item, ``("accepted" | "duplicate", index)``.
        """
        if not items:
            return []
        if self._task is None:
            raise OperationalError(
                "node is not accepting writes", code=ErrorCode.DATABASE_UNAVAILABLE
            )
        p = _Pending(items)
        self._queue.append(p)
        self._wake.set()
        return await p.future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch: list[_Pending] = []
                n = 0
                while self._queue and (
                    not batch or n + len(self._queue[0].items) <= self.max_batch
                ):
                    p = self._queue.pop(0)
                    batch.append(p)
                    n += len(p.items)
                try:
                    results = await self._commit(batch)
                except asyncio.CancelledError:
                    for p in batch:
                        if not p.future.done():
                            p.future.set_exception(
                                OperationalError(
                                    "node is shutting down",
                                    code=ErrorCode.DATABASE_UNAVAILABLE,
                                )
                            )
                    raise
                except Exception as exc:  # every waiter must hear about it
                    _log.exception("group commit failed")
                    err = OperationalError(
                        f"could not store items: {type(exc).__name__}; nothing was stored, retry",
                        code=ErrorCode.DATABASE_UNAVAILABLE,
                    )
                    for p in batch:
                        if not p.future.done():
                            p.future.set_exception(err)
                    continue
                for p, res in zip(batch, results, strict=True):
                    if not p.future.done():
                        p.future.set_result(res)

    async def _commit(self, batch: list[_Pending]) -> list[list[tuple[str, int]]]:
        all_items = [it for p in batch for it in p.items]
        distinct: list[NewItem] = []
        seen: set[str] = set()
        for it in all_items:
            if it.id not in seen:
                seen.add(it.id)
                distinct.append(it)
        # One round trip: a single statement skips ids already stored and appends the
        # rest (its own transaction). An id stored meanwhile by another worker fails the
        # statement as a whole; it is retried.
        for attempt in range(3):
            try:
                async with self.db.pool.acquire() as conn:
                    now = datetime.now(UTC)
                    indexes, known = await self.items.append(conn, distinct, now)
                fresh = [it for it in distinct if it.id not in known]
                break
            except asyncpg.UniqueViolationError:
                if attempt == 2:
                    raise
                continue
        self.commits += 1
        self.committed_items += len(fresh)
        if self.metrics is not None:
            self.metrics.group_commits.inc()
            self.metrics.group_commit_items.inc(len(fresh))
        new_index = dict(zip((it.id for it in fresh), indexes, strict=True))
        first_claim: set[str] = set()
        out: list[list[tuple[str, int]]] = []
        for p in batch:
            res = []
            for it in p.items:
                if it.id in new_index and it.id not in first_claim:
                    first_claim.add(it.id)
                    res.append(("accepted", new_index[it.id]))
                else:
                    res.append(
                        ("duplicate", known.get(it.id, new_index.get(it.id, -1)))
                    )
            out.append(res)
        return out


class Ingestor:
    """Verifies pushes and hands verified items to the group committer.

    Args:
        db: Database.
        sites: Directory store (keys, sites, circles).
        committer: The group committer.
        node_id: This node's id (recorded as the origin of local pushes).
        future_skew: Allowed clock skew for ``created_at``.
    """

    INLINE_SLICE = 50  # items a delivery checked on the event loop takes at a time

    def __init__(
        self,
        db: Database,
        sites: SiteStore,
        committer: GroupCommitter,
        node_id: str,
        *,
        future_skew: timedelta = timedelta(minutes=10),
        accepted_algs: frozenset[str] = frozenset(),
        activity: ActivityStore | None = None,
        metrics: Metrics | None = None,
        federation: Any = None,
        verify_processes: int = 0,
        offload_min_bytes: int = 32 * 1024,
    ) -> None:
        self.db = db
        self.verify_processes = verify_processes
        self.offload_min_bytes = offload_min_bytes
        self.helper_timeout_s = 60.0  # one body; a helper that takes longer is given up
        self._pool: ProcessPoolExecutor | None = None
        self._pool_lock = asyncio.Lock()
        self._pool_start: asyncio.Task[ProcessPoolExecutor] | None = None
        self.helper_checked = 0  # items whose CPU checks ran in a helper process
        self.federation = federation
        self.activity = activity
        self.metrics = metrics
        self.sites = sites
        self.committer = committer
        self.node_id = node_id
        self.future_skew = future_skew
        self.accepted_algs = accepted_algs
        # Checks on verified *local* pushes before commit (e.g. plan transitions,
        # exchange.service.plans): each returns {position in its list: refusal}.
        self.guards: list[Guard] = []
        self._directory: tuple[float, set[str], set[str]] = (0.0, set(), set())
        self.refused: dict[str, int] = {}

    async def _known(self) -> tuple[set[str], set[str]]:
        at, sites, circles = self._directory
        if time.monotonic() - at > 2.0:
            sites = await self.sites.site_ids()
            circles = await self.sites.circles()
            self._directory = (time.monotonic(), sites, circles)
        return sites, circles

    def accepted_suites(self) -> frozenset[str]:
        """Suites accepted now: the installed roster's, else ``federation.accepted_algs``
        (empty: any registered suite)."""
        view = self.federation.view if self.federation is not None else None
        if view is not None:
            return accepted_suites(view.roster.accepted_algs, view.roster.required_algs)
        return self.accepted_algs

    def _refuse(self, pid: str | None, err: ExchangeError) -> Outcome:
        self.refused[err.code.value] = self.refused.get(err.code.value, 0) + 1
        return Outcome(pid, "refused", error=err)

    async def verify(
        self, objs: Sequence[Any], pusher: Reader, *, origin: str = "local"
    ) -> list[VerifiedItem | Outcome]:
        """Run every check on each object; return a VerifiedItem or a refusal for each."""
        parsed: list[ParsedItem | Outcome] = []
        for obj in objs:
            try:
                parsed.append(parse_signed_item(obj))
            except ExchangeError as err:
                parsed.append(self._refuse(None, err))
        key_ids = {p.sig["key"] for p in parsed if isinstance(p, ParsedItem)}
        keys = await self.sites.keys(sorted(key_ids)) if key_ids else {}
        verifier = Verifier(keys, self.future_skew, self.accepted_suites())
        known_sites, known_circles = await self._known()
        now = datetime.now(UTC)
        out: list[VerifiedItem | Outcome] = []
        for p in parsed:
            if isinstance(p, Outcome):
                out.append(p)
                continue
            try:
                out.append(
                    self._check_one(
                        p, verifier, pusher, now, origin, known_sites, known_circles
                    )
                )
            except ExchangeError as err:
                out.append(self._refuse(p.id, err))
        return out

    def _check_one(
        self,
        p: ParsedItem,
        verifier: Verifier | None,
        pusher: Reader,
        now: datetime,
        origin: str,
        known_sites: set[str],
        known_circles: set[str],
        pre: tuple[KeyRecord | None, ErrorTuple | None] | None = None,
    ) -> VerifiedItem:
        """Every check of one parsed item; ``pre`` is the signature check's result
        when a helper process already ran it (``(key, None)`` or ``(None, error)``)."""
        item = p.item
        author = item["author"]
        if pusher.kind == "site" and PLACEHOLDER_MARK in p.canonical:
            # a template pushed unchanged: name what to fill in (the byte search spares
            # the walk over every string of the items that hold no placeholder)
            refuse_placeholders(item)
        if pusher.kind == "site" and author != pusher.id:
            raise Forbidden(
                f"site {pusher.id} may push only its own items, not {author}'s",
                code=ErrorCode.FORBIDDEN,
            )
        view = self.federation.view if self.federation is not None else None
        if pusher.kind == "site" and view is not None:
            home = view.home_of(author)
            if home is not None and home != self.node_id:
                raise Forbidden(
                    f"{author}'s home node is {home}; push there (it replicates to this node)",
                    code=ErrorCode.NOT_HOME_NODE,
                )
        audience = item.get("audience") or {}
        circles = list(audience.get("circles", []))
        sites = list(audience.get("sites", []))
        if pusher.kind == "node":
            # A peer may deliver only items authored by its own home sites, and only
            # items whose audience this node serves; the signature is checked below
            # against our own trust chain, never taken on the peer's word.
            home = view.home_of(author) if view is not None else None
            if home != pusher.id:
                raise Forbidden(
                    f"node {pusher.id} is not the home of {author} (home: {home or 'unknown'}); "
                    "a node may relay only its own sites' items",
                    code=ErrorCode.NOT_HOME_NODE,
                )
            if view is not None and not view.serves(self.node_id, circles, sites):
                raise SchemaError(
                    f"this node serves no one in the item's audience ({', '.join(circles + sites)})",
                    code=ErrorCode.AUDIENCE_INVALID,
                )
        if pre is None:
            assert verifier is not None
            key = verifier.check(item, p.sig, p.message, p.signature, now)
        else:
            if pre[1] is not None:
                raise error_from(pre[1])
            assert pre[0] is not None
            key = pre[0]
        unknown_c = sorted(set(circles) - known_circles)
        unknown_s = sorted(set(sites) - known_sites)
        if unknown_c or unknown_s:
            what = ", ".join(
                [*(f"circle {c}" for c in unknown_c), *(f"site {s}" for s in unknown_s)]
            )
            raise SchemaError(
                f"audience names what this federation does not know: {what}",
                code=ErrorCode.AUDIENCE_INVALID,
            )
        row = NewItem(
            id=p.id,
            kind=item["kind"],
            author=author,
            created_at=parse_timestamp(item["created_at"]),
            audience_circles=circles,
            audience_sites=sites,
            tags=list(item.get("tags", [])),
            title=item["title"],
            key_id=key.key_id,
            alg=key.alg,
            sig=p.signature,
            canonical=p.canonical,
            origin=origin,
            attachments=[a["sha256"] for a in item.get("attachments", [])],
            refs=refs_of(item),
        )
        return VerifiedItem(p, key, row)

    async def push(
        self, objs: Sequence[Any], pusher: Reader, *, origin: str = "local"
    ) -> list[Outcome]:
        """Verify and commit; one outcome per object, in order."""
        return await self.commit_checked(
            await self.verify(objs, pusher, origin=origin), pusher, origin
        )

    async def push_body(
        self,
        body: bytes,
        pusher: Reader,
        *,
        max_depth: int,
        max_batch: int,
        before_commit: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[bool, list[Outcome]]:
        """A push request's body (one signed item or a batch): ``(is_batch, outcomes)``.

        Bodies of at least ``offload_min_bytes`` are parsed and checked in a helper
        process (:mod:`exchange.service.verify_pool`), smaller ones on the event loop;
        both run the same checks and give the same outcomes.

        ``before_commit`` runs after the checks and before anything is committed (the
        request's deferred replay check); its error refuses the whole request.

        Raises:
            ExchangeError: the body as a whole is refused (bad JSON, bad batch shape).
        """
        if self.verify_processes and len(body) >= self.offload_min_bytes:
            done = await self._push_offloaded(
                body, pusher, max_depth, max_batch, before_commit
            )
            if done is not None:
                return done
        doc = parse_json(body, max_depth=max_depth, allow_floats=False)
        is_batch, objs = split_push_body(doc, max_batch)
        checked = await self.verify(objs, pusher)
        return is_batch, await self.commit_checked(
            checked, pusher, "local", before_commit
        )

    async def push_delivered(
        self,
        objs: Sequence[Any],
        pusher: Reader,
        *,
        origin: str,
        max_depth: int,
    ) -> list[Outcome]:
        """:meth:`push` for items a peer delivered (its batch or a catch-up page):
        :meth:`check_delivered`, then :meth:`commit_checked`."""
        checked = await self.check_delivered(
            objs, pusher, origin=origin, max_depth=max_depth
        )
        return await self.commit_checked(checked, pusher, origin)

    async def check_delivered(
        self,
        objs: Sequence[Any],
        pusher: Reader,
        *,
        origin: str,
        max_depth: int,
    ) -> list[VerifiedItem | Outcome]:
        """Every check of items a peer delivered; nothing is stored.

        A large delivery is checked in the helper processes, split so that each helper
        takes a share (a peer's backlog arrives one page or batch at a time, and its
        signatures would otherwise be checked on one core); a small one on the event
        loop. Both give the same outcomes.
        """
        checked: list[VerifiedItem | Outcome] | None = None
        if self.verify_processes and objs and self._helpers_ready():
            n = len(objs)
            parts = max(1, min(self.verify_processes, n // 64))
            step = -(-n // parts)
            bodies = [
                orjson.dumps({"items": list(objs[i : i + step])})
                for i in range(0, n, step)
            ]
            if sum(map(len, bodies)) >= self.offload_min_bytes:
                done = await asyncio.gather(
                    *(
                        self._checked_in_helper(b, pusher, origin, max_depth, step)
                        for b in bodies
                    ),
                    return_exceptions=True,
                )
                for d in done:  # a share cancelled by a failed helper: check inline
                    if isinstance(d, BaseException) and not isinstance(
                        d, asyncio.CancelledError
                    ):
                        raise d
                if all(isinstance(d, tuple) for d in done):
                    checked = [c for d in done if isinstance(d, tuple) for c in d[1]]
                    self.helper_checked += len(checked)
        if checked is None:
            # In slices, so that a large delivery checked here (no helpers, or not
            # started yet) holds the event loop for a few milliseconds at a time, not
            # for the whole page.
            checked = []
            for i in range(0, len(objs), self.INLINE_SLICE):
                checked += await self.verify(
                    objs[i : i + self.INLINE_SLICE], pusher, origin=origin
                )
                await asyncio.sleep(0)
        return checked

    def _helpers_ready(self) -> bool:
        """Whether the helper pool runs; if not, start it in the background (a delivery
        is checked inline meanwhile rather than wait the helpers' start-up)."""
        if self._pool is not None:
            return True
        if self._pool_start is None or self._pool_start.done():
            self._pool_start = asyncio.create_task(self._ensure_pool())
            self._pool_start.add_done_callback(_log_start_failure)
        return False

    async def _ensure_pool(self) -> ProcessPoolExecutor:
        async with self._pool_lock:  # concurrent first pushes start one pool
            if self._pool is None:
                self._pool = await start_helper_pool(self.verify_processes)
            return self._pool

    async def _push_offloaded(
        self,
        body: bytes,
        pusher: Reader,
        max_depth: int,
        max_batch: int,
        before_commit: Callable[[], Awaitable[None]] | None,
    ) -> tuple[bool, list[Outcome]] | None:
        """:meth:`push_body` with the CPU checks in a helper; None: do it inline."""
        done = await self._checked_in_helper(
            body, pusher, "local", max_depth, max_batch
        )
        if done is None:
            return None
        is_batch, out = done
        self.helper_checked += len(out)
        return is_batch, await self.commit_checked(out, pusher, "local", before_commit)

    async def _checked_in_helper(
        self,
        body: bytes,
        pusher: Reader,
        origin: str,
        max_depth: int,
        max_batch: int,
    ) -> tuple[bool, list[VerifiedItem | Outcome]] | None:
        """A push body's checks: the CPU half in a helper process, then the rules that
        need the node's state. None: check it on the event loop instead (a helper
        failed, or items name keys found only by parsing).

        Raises:
            ExchangeError: the body as a whole is refused.
        """
        cands = key_ids_in(body)
        keys = await self.sites.keys(sorted(cands)) if cands else {}
        now = datetime.now(UTC)
        pool = await self._ensure_pool()
        job = functools.partial(
            check_body,
            body,
            max_depth=max_depth,
            max_batch=max_batch,
            keys=keys,
            looked_up=frozenset(cands),
            now=now,
            future_skew_s=self.future_skew.total_seconds(),
            accepted=self.accepted_suites(),
        )
        try:
            kind, res = await asyncio.wait_for(
                asyncio.get_running_loop().run_in_executor(pool, job),
                timeout=self.helper_timeout_s,
            )
        except (BrokenProcessPool, TimeoutError) as exc:
            _log.warning(
                "an item-check helper failed (%s); checking on the event loop",
                type(exc).__name__,
            )
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
            return None
        if kind == "error":
            if origin != "local":
                return None  # a delivery: the inline path refuses item by item
            raise error_from(res)
        if kind == "keys":
            return None  # a key id spelt with escapes: the inline path looks it up
        is_batch, checked = res
        known_sites, known_circles = await self._known()
        out: list[VerifiedItem | Outcome] = []
        for c in checked:
            if c.parse_error is not None:
                out.append(self._refuse(None, error_from(c.parse_error)))
                continue
            p = parsed_of(c, orjson.loads(c.canonical))
            try:
                out.append(
                    self._check_one(
                        p,
                        None,
                        pusher,
                        now,
                        origin,
                        known_sites,
                        known_circles,
                        pre=(c.key, c.trust_error),
                    )
                )
            except ExchangeError as err:
                out.append(self._refuse(p.id, err))
        return is_batch, out

    async def stop(self) -> None:
        """End the helper processes (once a background start has finished)."""
        if self._pool_start is not None and not self._pool_start.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._pool_start), 30)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def commit_checked(
        self,
        checked: list[VerifiedItem | Outcome],
        pusher: Reader,
        origin: str,
        before_commit: Callable[[], Awaitable[None]] | None = None,
    ) -> list[Outcome]:
        """Run the guards on verified items (local pushes), commit them; one outcome
        per entry (also what :meth:`check_delivered` verified)."""
        if before_commit is not None:
            await before_commit()
        for guard in self.guards if origin == "local" else ():
            todo = [c for c in checked if isinstance(c, VerifiedItem)]
            refused = await guard(todo, pusher) if todo else {}
            bad = {id(todo[i]): err for i, err in refused.items()}
            checked = [
                self._refuse(c.row.id, bad[id(c)])
                if isinstance(c, VerifiedItem) and id(c) in bad
                else c
                for c in checked
            ]
        good = [c for c in checked if isinstance(c, VerifiedItem)]
        committed = await self.committer.submit([g.row for g in good]) if good else []
        it = iter(committed)
        out: list[Outcome] = []
        for c in checked:
            if isinstance(c, VerifiedItem):
                status, index = next(it)
                out.append(Outcome(c.row.id, status, index))
            else:
                out.append(c)
        await self._record(out, pusher, origin)
        return out

    async def _record(
        self, outcomes: list[Outcome], pusher: Reader, origin: str
    ) -> None:
        """Count outcomes for monitoring (after the commit; never fails the push)."""
        accepted = sum(1 for o in outcomes if o.status == "accepted")
        refused = [o for o in outcomes if o.error is not None]
        if self.metrics is not None:
            if accepted:
                self.metrics.items_accepted.labels(origin).inc(accepted)
            dups = sum(1 for o in outcomes if o.status == "duplicate")
            if dups:
                self.metrics.items_duplicate.inc(dups)
            for o in refused:
                assert o.error is not None
                self.metrics.items_refused.labels(o.error.code.value).inc()
                if o.error.code.value in SECURITY_CODES:
                    self.metrics.security_events.labels(o.error.code.value).inc()
        if self.activity is None or not pusher.id:
            return
        try:
            if accepted:
                await self.activity.bump(pusher.id, "pushed", accepted)
            if refused:
                await self.activity.bump(pusher.id, "refused", len(refused))
            for o in refused[:20]:
                assert o.error is not None
                kind = "security" if o.error.code.value in SECURITY_CODES else "refused"
                await self.activity.event(
                    kind,
                    pusher.id,
                    o.error.code.value,
                    o.error.message,
                    {"item": o.id, "origin": origin},
                )
        except Exception:  # statistics must never fail a committed push
            _log.warning("could not record push activity", exc_info=True)
