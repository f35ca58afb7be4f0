"""Prometheus metrics of one node process.

Each :class:`Metrics` owns its own registry (no global state, so several nodes can live in
one test process). Counters and histograms are updated on the request path; gauges that
reflect database state (log size, pool use, peer backlog) are refreshed just before each
scrape by :meth:`Metrics.refresh`, so a scrape costs a few queries and nothing is polled
in the background. Names follow Prometheus conventions (``_total`` counters, base units,
``exchange_`` prefix) and the output passes ``promtool check metrics``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["Metrics"]

_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Metrics:
    """The node's collectors."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "exchange_http_requests",
            "HTTP requests handled, by route and status class.",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "exchange_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["route", "method"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.items_accepted = Counter(
            "exchange_items_accepted",
            "Items stored, by origin (local push or peer).",
            ["origin"],
            registry=r,
        )
        self.blob_fetches = Counter(
            "exchange_blob_fetches",
            "Attempts to fetch a replicated item's attachment from its author's home "
            "node, by result (fetched, failed).",
            ["result"],
            registry=r,
        )
        self.items_duplicate = Counter(
            "exchange_items_duplicate",
            "Pushes of items already stored (idempotent).",
            registry=r,
        )
        self.items_refused = Counter(
            "exchange_items_refused",
            "Items refused, by reason code.",
            ["reason"],
            registry=r,
        )
        self.security_events = Counter(
            "exchange_security_events",
            "Security events (forged or replayed requests, "
            "revoked or unknown keys, log inconsistencies), by code.",
            ["code"],
            registry=r,
        )
        self.log_size = Gauge(
            "exchange_log_entries",
            "Items in this node's log (its size).",
            registry=r,
        )
        self.log_integrated = Gauge(
            "exchange_log_integrated_entries",
            "Log entries integrated into the Merkle tree.",
            registry=r,
        )
        self.log_lag = Gauge(
            "exchange_log_integration_lag_entries",
            "Log entries accepted but not yet integrated into a signed checkpoint.",
            registry=r,
        )
        self.peer_backlog = Gauge(
            "exchange_peer_backlog_items",
            "Items waiting to be delivered to a peer.",
            ["peer"],
            registry=r,
        )
        self.peer_last_success = Gauge(
            "exchange_peer_last_success_timestamp_seconds",
            "Unix time of the last successful delivery to a peer.",
            ["peer"],
            registry=r,
        )
        self.search_lag = Gauge(
            "exchange_search_index_lag_entries",
            "Log entries not yet in the search index (it is built behind the log).",
            registry=r,
        )
        self.group_commits = Counter(
            "exchange_group_commits",
            "Append statements of this process; items per commit = "
            "exchange_group_commit_items_total / exchange_group_commits_total.",
            registry=r,
        )
        self.group_commit_items = Counter(
            "exchange_group_commit_items",
            "Items appended by this process's group commits.",
            registry=r,
        )
        self.pool = Gauge(
            "exchange_db_pool_connections",
            "Database pool connections by state.",
            ["state"],
            registry=r,
        )
        self._refreshers: list[Callable[[Metrics], Awaitable[None]]] = []

    def add_refresher(self, fn: Callable[[Metrics], Awaitable[None]]) -> None:
        """Register a coroutine that updates gauges before each scrape."""
        self._refreshers.append(fn)

    async def refresh(self) -> None:
        """Run every refresher (a failing one leaves its gauges as they were)."""
        for fn in self._refreshers:
            try:
                await fn(self)
            except Exception:  # a broken source must not break the scrape
                continue

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
