"""The aiohttp application: wiring only.

``make_app(node)`` mounts one route table per API area, the error middleware, and the
node's background work as ``cleanup_ctx`` entries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web

from exchange.service.sequencer import sequencer_ctx
from exchange.service.webhooks import webhooks_ctx

from . import (
    routes_activity,
    routes_adapters,
    routes_blobs,
    routes_dashboard,
    routes_directory,
    routes_federation,
    routes_items,
    routes_log,
    routes_monitoring,
    routes_node,
    routes_plans,
    routes_read,
    routes_search,
    routes_subscriptions,
)
from .guard import deadline_middleware, free_streams
from .keys import NODE
from .middleware import error_middleware, observe_middleware

if TYPE_CHECKING:
    from exchange.node import Node

__all__ = ["make_app"]

_log = logging.getLogger(__name__)


async def _nonce_purger(app: web.Application) -> AsyncIterator[None]:
    node = app[NODE]

    async def loop() -> None:
        while True:
            await asyncio.sleep(60)
            try:
                await node.nonces.purge(datetime.now(UTC))
                await node.activity.purge_events(
                    node.config.limits.event_retention_days
                )
            except Exception:  # keep purging on the next round
                _log.warning("nonce or event purge failed", exc_info=True)

    task = asyncio.create_task(loop(), name="nonce-purge")
    yield
    task.cancel()


async def _indexer(app: web.Application) -> AsyncIterator[None]:
    """Build the search index behind the log while serving (``[search] indexer``)."""
    node = app[NODE]
    if node.config.search.indexer:
        node.indexer.start()
    try:
        yield
    finally:
        await node.indexer.stop()


async def _serving(app: web.Application) -> AsyncIterator[None]:
    """The node's background loops (federation, key watch, counters) while serving."""
    async with app[NODE].serving():
        yield


def make_app(node: Node) -> web.Application:
    """Build the HTTP application for a started :class:`~exchange.node.Node`."""
    app = web.Application(
        middlewares=[observe_middleware, error_middleware, deadline_middleware],
        client_max_size=node.config.http.max_body_bytes,
    )
    app[NODE] = node
    app.on_response_prepare.append(free_streams)
    for module in (
        routes_items,
        routes_blobs,
        routes_directory,
        routes_monitoring,
        routes_activity,
        routes_dashboard,
        routes_log,
        routes_federation,
        routes_node,
    ):
        app.add_routes(module.routes)
    app.add_routes(routes_adapters.routes)
    app.add_routes(routes_plans.routes)  # joint inspection plans
    for module in (routes_search, routes_subscriptions, routes_read):  # discovery
        app.add_routes(module.routes)
    app.cleanup_ctx.append(_serving)
    app.cleanup_ctx.append(_nonce_purger)
    app.cleanup_ctx.append(sequencer_ctx(node))
    app.cleanup_ctx.append(_indexer)
    app.cleanup_ctx.append(routes_dashboard.broadcaster_ctx)
    app.cleanup_ctx.append(webhooks_ctx(node))
    return app
