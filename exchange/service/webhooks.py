"""Outbound webhooks: one cursor loop per subscriber, POSTing items to a site's system.

Design
------
A subscriber (``exchange webhook add SITE --url URL``; a row of ``webhooks``) is a
site's own system that wants each new item the site may see, pushed rather than
pulled. For each subscriber a task walks the items index after the subscriber's
**durable cursor**, in index order, reading only the items visible to that site (the
same audience rule as ``GET /v1/items``), and POSTs each one, signed with RFC 9421 by
the **node key** (:mod:`exchange.core.webhook`), so the site can check it came from
its node.

The cursor advances **only after a 2xx answer**, one item at a time, so a crash or
an error at any point means the same item is sent again — receivers are idempotent by
item id. Anything else (a 3xx/4xx/5xx answer, a timeout, a refused connection) keeps
the cursor, counts an attempt and schedules the next one with exponential backoff,
jittered inside the cap (``webhooks.backoff_base_ms`` doubling up to
``webhooks.backoff_max_s``; the shared :class:`~exchange.service.loop.Backoff`);
``attempts`` and ``next_attempt_at`` are persisted, so a restarted node does not hammer
a receiver that is down. Tasks are independent: one dead receiver never holds up the
others.

The loops are :class:`~exchange.service.loop.KeyedLoops`: a supervisor reloads the
subscriber list every ``webhooks.poll_interval_ms``, starts or stops loops for added or
removed subscribers, and restarts (logged, with backoff) a loop that failed — the
database went away under it. Idle loops look for new items at the same interval. Each
subscriber is served by exactly one process of the node, whatever ``--workers``: the
one holding its advisory lock. Started and stopped through ``app.cleanup_ctx``
(:func:`webhooks_ctx`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import aiohttp

from exchange.core.trust import Reader
from exchange.core.webhook import delivery_body, sign_delivery
from exchange.service.loop import Backoff, KeyedLoops
from exchange.storage.items import ItemFilter, StoredItem
from exchange.storage.webhooks import Webhook, WebhookStore
from exchange.wire import signed_item_bytes

if TYPE_CHECKING:
    from aiohttp import web

    from exchange.node import Node

__all__ = ["WEBHOOK_LOCK_SPACE", "WebhookSender", "webhooks_ctx"]

WEBHOOK_LOCK_SPACE = 0x45585748  # "EXWH": advisory locks (space, subscriber id)

_log = logging.getLogger(__name__)


class WebhookSender:
    """Runs one delivery loop per subscriber.

    Args:
        node: The started node (database, key, config).
    """

    def __init__(self, node: Node) -> None:
        self.node = node
        assert node.db is not None
        self.store = WebhookStore(node.db)
        cfg = node.config.webhooks
        self.interval = cfg.poll_interval_ms / 1000
        self.backoff = Backoff(cfg.backoff_base_ms / 1000, cfg.backoff_max_s)
        self.timeout = cfg.request_timeout_s
        self.batch = cfg.batch_size
        self.loops: KeyedLoops[int] = KeyedLoops(
            "webhook",
            self._hooks,
            self._loop,
            poll_s=self.interval,
            lock_url=node.db.url,
            lock_space=WEBHOOK_LOCK_SPACE,
            app_name=f"exchange-webhooks-{node.id}-{os.getpid()}",
        )
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        """Start supervising subscriber loops."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout)
            )
        self.loops.start()

    async def stop(self) -> None:
        """Stop every loop and close the HTTP session."""
        await self.loops.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _hooks(self) -> list[int]:
        return [w.id for w in await self.store.list()]

    async def _loop(self, wid: int) -> None:
        while True:
            hook = await self.store.get(wid)
            if hook is None:
                return
            wait = (hook.next_attempt_at - datetime.now(UTC)).total_seconds()
            if wait > 0:
                await asyncio.sleep(min(wait, self.interval))
                continue
            if not await self.deliver_some(hook):
                await asyncio.sleep(self.interval)

    async def deliver_some(self, hook: Webhook) -> bool:
        """Deliver the next items after the subscriber's cursor, stopping at a failure.

        Returns:
            True if something was attempted (the caller loops at once), False when
            there was nothing new.
        """
        node = self.node
        site = await node.sites.get_site(hook.site_id)
        if site is None:
            return False
        reader = Reader("site", site.id, circles=frozenset(site.circles))
        items, _ = await node.items.page(
            reader,
            ItemFilter(after=hook.cursor),
            limit=self.batch,
            max_bytes=node.config.http.page_max_bytes,
            read_replica=False,
        )
        if not items:
            return False
        attempts = hook.attempts
        for it in items:
            status, error = await self._post(hook, it)
            now = datetime.now(UTC)
            if error is None:
                await self.store.advance(hook.id, it.idx, 1, now, status)
                await node.activity.bump(hook.site_id, "pulled", 1)
                attempts = 0
                continue
            attempts += 1
            delay = self.backoff.delay(attempts)
            await self.store.failed(
                hook.id, attempts, now + timedelta(seconds=delay), status, error, now
            )
            _log.info(
                "webhook %s to %s: %s; retry in %.1fs", hook.id, hook.url, error, delay
            )
            break
        return True

    async def _post(
        self, hook: Webhook, it: StoredItem
    ) -> tuple[int | None, str | None]:
        """POST one item; ``(status, None)`` on 2xx, else ``(status, error text)``."""
        node = self.node
        assert node.key is not None and self._session is not None
        body = delivery_body(
            node.id, it.idx, it.id, it.received_at.isoformat(), signed_item_bytes(it)
        )
        headers = sign_delivery(
            node.key,
            hook.url,
            body,
            node_id=node.id,
            created=int(time.time()),
            nonce=secrets.token_urlsafe(12),
        )
        headers["X-Exchange-Delivery"] = f"{hook.id}-{it.idx}"
        try:
            async with self._session.post(
                hook.url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                await resp.read()
                if 200 <= resp.status < 300:
                    return resp.status, None
                return resp.status, f"answered HTTP {resp.status}"
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return None, f"{type(exc).__name__}: {exc}"


def webhooks_ctx(
    node: Node,
) -> Callable[[web.Application], AbstractAsyncContextManager[None]]:
    """A ``cleanup_ctx`` entry running the delivery loops while the app runs.

    Usage: ``app.cleanup_ctx.append(webhooks_ctx(node))``.
    """

    @contextlib.asynccontextmanager
    async def run(app: web.Application) -> AsyncIterator[None]:
        sender: WebhookSender | None = None
        if node.config.webhooks.enabled:
            sender = WebhookSender(node)
            sender.start()
        try:
            yield
        finally:
            if sender is not None:
                await sender.stop()

    return run
