"""Push replication: one cursor loop per peer.

Design
------
For each peer (a node of the roster) a task delivers this node's *locally authored* items
that the peer serves (someone in their audience is one of its sites or circles), in index
order, in batches, as ``POST /v1/federation/batch`` signed (RFC 9421) with the node key.
The peer's row in ``peers`` holds the delivery cursor (the last local index delivered or
examined), advanced **only after the peer acknowledged** the batch; a crash at any point
means the batch is sent again, which is harmless because the peer stores items
idempotently by id. Each batch carries the current site records of its authors, so the
peer can verify every signature itself (it never takes this node's word for it).

Failures back off exponentially with jitter (``next_attempt_at`` and ``attempts`` are
persisted, so a restart does not hammer a peer that is down). Tasks are independent: one
slow or dead peer never holds up the others. Items a peer refuses for good (a forgery, an
audience it does not serve) are counted and skipped; refusals that may clear up
(database unavailable) fail the whole batch and are retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import TYPE_CHECKING

import orjson

from exchange.client import ExchangeClient
from exchange.errors import ExchangeError
from exchange.service.loop import cancel_and_wait

if TYPE_CHECKING:
    from exchange.node import Node

__all__ = ["Sender"]

_log = logging.getLogger(__name__)
_RETRYABLE = {"database_unavailable", "internal", "rate_limited"}


class Sender:
    """Runs one delivery loop per peer of the installed roster."""

    def __init__(self, node: Node) -> None:
        self.node = node
        cfg = node.config.federation
        self.batch = cfg.batch_size
        self.base_backoff = cfg.backoff_base_ms / 1000
        self.max_backoff = cfg.backoff_max_s
        self.timeout = cfg.request_timeout_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._supervisor: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start supervising peer loops."""
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise(), name="federation-sender")

    async def stop(self) -> None:
        """Stop every loop."""
        tasks = list(self._tasks.values())
        if self._supervisor is not None:
            tasks.append(self._supervisor)
        for t in tasks:
            t.cancel()
        for t in tasks:
            await cancel_and_wait(t)
        self._tasks.clear()
        self._supervisor = None

    async def _supervise(self) -> None:
        fed = self.node.federation
        while True:
            if fed.view is not None:
                wanted = {n.id for n in fed.view.peers(self.node.id)}
                for peer in wanted - set(self._tasks):
                    self._tasks[peer] = asyncio.create_task(self._peer_loop(peer), name=f"push-{peer}")
                for peer in set(self._tasks) - wanted:
                    self._tasks.pop(peer).cancel()
            await asyncio.sleep(1.0)

    async def _peer_loop(self, peer: str) -> None:
        fed = self.node.federation
        store = fed.store
        client: ExchangeClient | None = None
        wake = fed.waker()
        try:
            while True:
                # Clear before looking, so a commit that lands while we query still
                # wakes the next wait (no lost wake-ups).
                wake.clear()
                row = await store.peer(peer)
                if row is None:
                    return
                delay = (row.next_attempt_at.timestamp() - time.time())
                if delay > 0:
                    await asyncio.sleep(min(delay, 5.0))
                    continue
                if client is None or client.base_url != row.base_url.rstrip("/"):
                    if client is not None:
                        await client.close()
                    client = ExchangeClient(row.base_url, key=self.node.key, timeout=self.timeout)
                sent = await self.deliver_once(peer, row.push_cursor, client)
                if sent == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), timeout=2.0)
        finally:
            fed.drop_waker(wake)
            if client is not None:
                await client.close()

    async def deliver_once(self, peer: str, cursor: int, client: ExchangeClient) -> int:
        """Send one batch after ``cursor``; returns items sent (0 if nothing to send)."""
        from exchange.http.routes_items import signed_bytes

        fed = self.node.federation
        reader = fed.node_reader(peer)
        items, examined = await fed.store.local_after(reader, cursor, self.batch, 4 << 20)
        if not items:
            if examined > cursor:
                await fed.store.skip_to(peer, examined)
            return 0
        records = await fed.local_site_records({it.author for it in items})
        body = orjson.dumps({"items": [signed_bytes(it) for it in items], "site_records": records})
        try:
            res = await client.request("POST", "/v1/federation/batch", body=body)
        except ExchangeError as exc:
            await self._failed(peer, f"{exc.code.value}: {exc.message}")
            return 0
        except Exception as exc:  # transport errors of any kind: back off and retry
            await self._failed(peer, f"{type(exc).__name__}: {exc}")
            return 0
        results = res.get("results", []) if isinstance(res, dict) else []
        retry = [r for r in results if r.get("status") == "refused"
                 and (r.get("error") or {}).get("code") in _RETRYABLE]
        if retry or len(results) != len(items):
            await self._failed(peer, f"peer could not store {len(retry)} item(s); retrying")
            return 0
        refused = [r for r in results if r.get("status") == "refused"]
        for r in refused:
            _log.warning("peer %s refused item %s: %s", peer, r.get("id"), (r.get("error") or {}).get("code"))
        await fed.store.push_done(peer, examined, len(items) - len(refused), len(refused))
        return len(items)

    async def _failed(self, peer: str, error: str) -> None:
        row = await self.node.federation.store.peer(peer)
        attempts = row.attempts if row else 0
        delay = min(self.max_backoff, self.base_backoff * (2 ** min(attempts, 20)))
        delay *= random.uniform(0.5, 1.5)
        await self.node.federation.store.failed(peer, error, delay)
        _log.info("delivery to %s failed (%s); next try in %.1f s", peer, error, delay)
