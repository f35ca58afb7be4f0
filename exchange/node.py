"""The composition root: one object that owns a node's parts and their lifecycle.

Lifecycle
---------
A node is opened with ``async with Node(config) as node:`` (or ``await node.start()`` ...
``await node.stop()``). Opening starts the embedded PostgreSQL when no URL is configured,
opens the pools (applying migrations), loads the node key and the roster and builds the
stores and services. Every part that was started is pushed on one
:class:`contextlib.AsyncExitStack`, so whatever fails part-way (a bad roster, a
migration error) stops exactly what had been started, in reverse order — never leaving
an embedded PostgreSQL running behind a failed start.

Opening a node is **command use**: storage and services, no background traffic. CLI
commands (``exchange site list`` ...) stop there. **Serving** adds the background loops
(the notifier's LISTEN connection, federation sender, puller, witness, activity flush) through
:meth:`Node.serving`, which the HTTP app enters in its ``cleanup_ctx``
(:func:`exchange.http.app.make_app`) next to the sequencer, indexer and webhooks. So a
read-only command never calls a peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

from exchange.config import NodeConfig
from exchange.core.ratelimit import RateLimiter
from exchange.core.signing import (
    PrivateKey,
    generate_key,
    load_private_key,
    save_private_key,
)
from exchange.core.trust import Reader
from exchange.federation.blobs import BlobFetcher
from exchange.federation.puller import Puller
from exchange.federation.sender import Sender
from exchange.federation.service import Federation, peer_problem
from exchange.federation.witness import Witness
from exchange.metrics import Metrics
from exchange.service.ingest import GroupCommitter, Ingestor
from exchange.service.loop import cancel_and_wait, supervised
from exchange.service.notify import Notifier
from exchange.service.pgwatch import EmbeddedGuard
from exchange.service.plans import PlanService
from exchange.service.proofs import ProofService
from exchange.service.retractions import RetractionGuard
from exchange.service.search import Indexer, SearchService
from exchange.service.sequencer import Sequencer
from exchange.service.subscriptions import SubscriptionService
from exchange.storage.activity import ActivityStore
from exchange.storage.adapters import AdapterHealthStore
from exchange.storage.blobs import BlobStore
from exchange.storage.database import (
    UNAVAILABLE_ERRORS,
    Database,
    embedded_max_connections,
    fit_pool,
)
from exchange.storage.directory import SiteStore
from exchange.storage.embedded import EmbeddedPostgres
from exchange.storage.items import ItemStore
from exchange.storage.log import LogStore
from exchange.storage.nonces import NonceStore
from exchange.storage.read_access import ReadAccessStore

__all__ = ["Node"]

_log = logging.getLogger(__name__)


class Node:
    """A running node's parts.

    Args:
        config: Validated configuration.
    """

    def __init__(self, config: NodeConfig, *, workers: int = 1) -> None:
        self.config = config
        self.workers = workers  # serving processes of this node sharing the database
        self.id = config.node.id
        self.embedded: EmbeddedPostgres | None = None
        self.db: Database | None = None
        self.key: PrivateKey | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self.db_guard: EmbeddedGuard | None = None

    @property
    def health_problem(self) -> str | None:
        """Why this node cannot heal itself (``/healthz`` fails), or None."""
        return self.db_guard.failed if self.db_guard is not None else None

    async def __aenter__(self) -> Node:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self, *, run_migrations: bool = True) -> None:
        """Bring the node's storage and services up.

        Raises:
            OperationalError: the database cannot be started or reached.
            ConfigError: the node key is unusable.
        """
        if self._stack is not None:
            return
        stack = contextlib.AsyncExitStack()
        try:
            await self._open(stack, run_migrations=run_migrations)
        except BaseException:
            await stack.aclose()
            self.db = None
            self.embedded = None
            raise
        self._stack = stack

    async def _open(
        self, stack: contextlib.AsyncExitStack, *, run_migrations: bool
    ) -> None:
        cfg = self.config
        data = cfg.data_path
        data.mkdir(parents=True, exist_ok=True)
        url = cfg.database.url
        if not url:
            embedded = EmbeddedPostgres(
                data / "pg",
                port=cfg.database.embedded_port,
                max_connections=embedded_max_connections(
                    self.workers, cfg.database.pool_max
                ),
            )
            self.embedded = embedded
            try:
                await asyncio.to_thread(embedded.start)
            finally:
                # Registered even when start() failed part-way: it stops only a server
                # this process launched.
                stack.push_async_callback(self._stop_embedded, embedded)
            url = embedded.url("exchange")
        pool_max = await fit_pool(
            url,
            workers=self.workers,
            pool_min=cfg.database.pool_min,
            pool_max=cfg.database.pool_max,
            node_id=self.id,
        )
        db = Database(
            url,
            cfg.database.read_url,
            min_size=cfg.database.pool_min,
            max_size=pool_max,
            app_name=f"exchange-pool-{self.id}-{os.getpid()}",
        )
        await db.open(run_migrations=run_migrations)
        stack.push_async_callback(db.close)
        self.db = db
        # One LISTEN connection for the whole process (started while serving).
        self.notifier = Notifier(db.url, f"exchange-notify-{self.id}-{os.getpid()}")
        self.key = self._load_or_create_key()
        self.sites = SiteStore(self.db)
        self.items = ItemStore(self.db)
        # Discovery (search index, saved queries, reading-view sessions).
        self.search = SearchService(self.db, fresh_wait=cfg.search.fresh_wait_s)
        # Started, like the log writer, by the HTTP app's cleanup_ctx (serving processes).
        self.indexer = Indexer(
            self.db,
            self.search.store,
            batch=cfg.search.batch_size,
            process=cfg.search.indexer_process,
            name=f"exchange-{self.id}",
            notifier=self.notifier,
            nice=cfg.search.indexer_nice,
            nice_backend=self.embedded is not None,  # a server process of this host
        )
        self.subscriptions = SubscriptionService(self.db, self.search.store)
        self.read_access = ReadAccessStore(self.db)
        self.search.start_backfill()
        stack.push_async_callback(self.search.stop)
        stack.push_async_callback(self.indexer.stop)
        self.blobs = BlobStore(self.db)
        self.nonces = NonceStore(self.db)
        self.rate_limiter = RateLimiter(
            cfg.limits.site_requests_per_s, cfg.limits.site_burst
        )
        self.activity = ActivityStore(self.db)
        stack.push_async_callback(self._flush_counters)
        self.adapter_health = AdapterHealthStore(self.db)
        self.metrics = Metrics()
        self.metrics.add_refresher(self._refresh_metrics)
        # Extra sections of GET /v1/activity (federation lag, adapter health, ...):
        # name -> coroutine taking the monitor's Reader and returning JSON-able data.
        self.activity_sections: dict[str, Callable[[Reader], Awaitable[Any]]] = {}
        self.committer = GroupCommitter(self.db, self.items, metrics=self.metrics)
        self.committer.start()
        stack.push_async_callback(self.committer.stop)
        self.log = LogStore(self.db)
        self.proofs = ProofService(self.log)
        self.sequencer = Sequencer(
            self,
            interval=cfg.log.checkpoint_interval_ms / 1000,
            batch=cfg.log.batch_size,
        )
        # The sequencer competes for the writer lock only in a serving process: started
        # by the HTTP app's cleanup_ctx (exchange.http.app), never by CLI commands.
        stack.push_async_callback(self.sequencer.stop)
        self.federation = Federation(self)
        stack.push_async_callback(self.federation.stop)
        await self.federation.load()
        self.ingestor = Ingestor(
            self.db,
            self.sites,
            self.committer,
            self.id,
            future_skew=timedelta(seconds=cfg.limits.future_skew_seconds),
            activity=self.activity,
            metrics=self.metrics,
            federation=self.federation,
            accepted_algs=frozenset(cfg.federation.accepted_algs),
            verify_processes=cfg.ingest.verify_processes,
            offload_min_bytes=cfg.ingest.offload_min_bytes,
        )
        stack.push_async_callback(self.ingestor.stop)
        self.plans = PlanService(self)
        self.ingestor.guards.append(self.plans.guard)  # plan steps checked at push time
        self.ingestor.guards.append(RetractionGuard(self.items))  # only held items
        self.activity_sections["federation"] = self._federation_section
        self.activity_sections["adapters"] = self._adapters_section
        self.sender = Sender(self)
        self.puller = Puller(self)
        self.witness = Witness(self)
        self.blob_fetcher = BlobFetcher(self)

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        """Run the node's background loops while the body runs (serving processes only).

        The federation loops run when ``[federation] replicate`` is on. Usage (the HTTP
        app does this in its ``cleanup_ctx``): ``async with node.serving(): ...``.
        """
        async with contextlib.AsyncExitStack() as stack:
            # The key cache is live only while key-change notifications flow.
            self.notifier.on_live(self.sites.set_key_cache_live)
            stack.callback(self.notifier.off_live, self.sites.set_key_cache_live)
            stack.callback(
                self.notifier.subscribe(
                    "exchange_keys", lambda _: self.sites.invalidate_keys()
                )
            )
            self.notifier.start()
            stack.push_async_callback(self.notifier.stop)
            if self.embedded is not None:  # restart our PostgreSQL if it dies
                self.db_guard = EmbeddedGuard(
                    self.embedded,
                    max_restarts=self.config.database.embedded_max_restarts,
                )
                guard = asyncio.create_task(
                    self.db_guard.watch(), name="embedded-guard"
                )
                stack.push_async_callback(cancel_and_wait, guard)
            watch = asyncio.create_task(
                supervised("roster-watch", self.federation.watch_roster),
                name="roster-watch",
            )
            stack.push_async_callback(cancel_and_wait, watch)
            if self.config.federation.replicate:
                self.federation.start_listener()
                stack.push_async_callback(self.federation.stop)
                for loop in (
                    self.sender,
                    self.puller,
                    self.witness,
                    self.blob_fetcher,
                ):
                    loop.start()
                    stack.push_async_callback(loop.stop)
            flusher = asyncio.create_task(self._flush_activity(), name="activity-flush")
            stack.push_async_callback(self._stop_flusher, flusher)
            yield

    async def _flush_counters(self) -> None:
        with contextlib.suppress(Exception):
            await self.activity.flush()

    async def _stop_flusher(self, task: asyncio.Task[None]) -> None:
        await cancel_and_wait(task)
        await self._flush_counters()

    @staticmethod
    async def _stop_embedded(embedded: EmbeddedPostgres) -> None:
        if embedded.started_here:
            await asyncio.to_thread(embedded.stop)

    async def _adapters_section(self, reader: Reader) -> dict[str, Any]:
        """Adapter health per site in the monitor's scope (as the runners last reported)."""
        out: dict[str, Any] = {}
        for row in await self.adapter_health.latest(sorted(reader.sites)):
            rep = row.report
            delivered = sum(
                int(a.get("items", 0))
                for a in rep.get("adapters", [])
                if a.get("role") == "sink"
            )
            errors = [
                a.get("last_error")
                for a in rep.get("adapters", [])
                if a.get("last_error")
            ]
            out[row.site] = {
                "last_run": rep.get("last_run"),
                "backlog": rep.get("backlog", 0),
                "last_error": rep.get("last_error") or (errors[0] if errors else None),
                "delivered": delivered,
                "reported_at": row.received_at.isoformat(),
            }
        return out

    async def _federation_section(self, reader: Reader) -> dict[str, Any]:
        peers = await self.federation.peer_status()
        for p in peers:  # the dashboard shows what an error means, not its text
            p["problem"] = peer_problem(p["last_error"])
        return {"peers": peers}

    async def _flush_activity(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.activity.flush()
            except (
                UNAVAILABLE_ERRORS
            ) as exc:  # the database is away; kept for the next tick
                _log.info("could not write activity counters: %s", type(exc).__name__)
            except Exception:  # statistics; retried on the next tick
                _log.warning("could not write activity counters", exc_info=True)

    async def _refresh_metrics(self, m: Metrics) -> None:
        assert self.db is not None
        if self.federation.view is not None:
            for p in await self.federation.store.peers():
                backlog = await self.federation.store.backlog(
                    p.node_id, self.federation.node_reader(p.node_id), p.push_cursor
                )
                m.peer_backlog.labels(p.node_id).set(backlog)
                if p.last_success is not None:
                    m.peer_last_success.labels(p.node_id).set(
                        p.last_success.timestamp()
                    )
        size = await self.items.size()
        integrated, _ = await self.log.state()
        m.log_size.set(size)
        m.log_integrated.set(integrated)
        m.log_lag.set(size - integrated)
        m.search_lag.set(max(0, size - await self.search.store.indexed_upto()))
        stats = self.db.pool_stats()
        m.pool.labels("idle").set(stats["idle"])
        m.pool.labels("busy").set(stats["size"] - stats["idle"])
        m.pool.labels("max").set(stats["max"])

    def _load_or_create_key(self) -> PrivateKey:
        path = self.config.key_path
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            save_private_key(generate_key(key_id=f"{self.id}#k1"), path)
            _log.info("created node key %s", path)
        return load_private_key(path)

    async def stop(self) -> None:
        """Stop services, close pools and stop the embedded server (if we run one)."""
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
