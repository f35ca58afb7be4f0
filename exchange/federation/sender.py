"""Push replication: one cursor loop per peer.

Design
------
For each peer (a node of the roster) a task delivers this node's *locally authored* items
that the peer serves (someone in their audience is one of its sites or circles), in index
order, in batches, as ``POST /v1/federation/batch`` signed (RFC 9421) with the node key.
The peer's row in ``peers`` holds the delivery cursor (the last local index delivered or
examined), advanced **only after the peer acknowledged** the batch; a crash at any point
means the batch is sent again, which is harmless because the peer stores items
idempotently by id. Each batch also names the log range it completes
(``log_range``: the positions after the last acknowledged one up to the examined one), so
the peer's catch-up cursor moves with the pushes and each item crosses once. Each batch carries the current site records of its authors, so the
peer can verify every signature itself (it never takes this node's word for it).

Failures back off exponentially with jitter inside ``backoff_max_s`` (the shared
:class:`~exchange.service.loop.Backoff`; ``next_attempt_at`` and ``attempts`` are
persisted, so a restart does not hammer a peer that is down). Tasks are independent: one
slow or dead peer never holds up the others. Items a peer refuses for good (a forgery, an
audience it does not serve) are counted and skipped; refusals that may clear up (their
error class is ``retryable``: database unavailable, rate limited) fail the whole batch
and are retried.

The per-peer tasks are :class:`~exchange.service.loop.KeyedLoops`: a task that fails (this
node's database went away under it) is logged and restarted, and each peer is served by
exactly one process of the node (an advisory lock per peer), however many ``--workers``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import TYPE_CHECKING

import orjson

from exchange.client import ExchangeClient
from exchange.errors import ExchangeError, is_retryable
from exchange.service.loop import Backoff, KeyedLoops
from exchange.wire import signed_item

if TYPE_CHECKING:
    from exchange.node import Node

__all__ = ["PUSH_LOCK_SPACE", "Sender"]

_log = logging.getLogger(__name__)
PUSH_LOCK_SPACE = 0x45585053  # "EXPS": advisory locks (space, peer) of the push loops


class Sender:
    """Runs one delivery loop per peer of the installed roster."""

    def __init__(self, node: Node) -> None:
        self.node = node
        cfg = node.config.federation
        self.batch = cfg.batch_size
        self.backoff = Backoff(cfg.backoff_base_ms / 1000, cfg.backoff_max_s)
        self.timeout = cfg.request_timeout_s
        # Per peer: the last log position it acknowledged (see ``deliver_once``).
        self._told: dict[str, int] = {}
        assert node.db is not None
        self.loops: KeyedLoops[str] = KeyedLoops(
            "push",
            self._peers,
            self._peer_loop,
            poll_s=1.0,
            lock_url=node.db.url,
            lock_space=PUSH_LOCK_SPACE,
            app_name=f"exchange-push-{node.id}-{os.getpid()}",
        )

    def start(self) -> None:
        """Start supervising peer loops."""
        self.loops.start()

    async def stop(self) -> None:
        """Stop every loop."""
        await self.loops.stop()

    async def _peers(self) -> list[str]:
        view = self.node.federation.view
        return [n.id for n in view.peers(self.node.id)] if view is not None else []

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
                delay = row.next_attempt_at.timestamp() - time.time()
                if delay > 0:
                    await asyncio.sleep(min(delay, 5.0))
                    continue
                if client is None or client.base_url != row.base_url.rstrip("/"):
                    if client is not None:
                        await client.close()
                    client = ExchangeClient(
                        row.base_url, key=self.node.key, timeout=self.timeout
                    )
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
        fed = self.node.federation
        reader = fed.node_reader(peer)
        items, examined = await fed.store.local_after(
            reader, cursor, self.batch, 4 << 20
        )
        if not items:
            if examined > cursor:
                await fed.store.skip_to(peer, examined)
            return 0
        records = await fed.local_site_records({it.author for it in items})
        # The log range this batch completes: from the last position the peer has heard
        # of (skipped positions hold nothing it serves) to the examined one. The peer
        # moves its catch-up cursor over it, so its puller does not fetch these again.
        told = min(self._told.get(peer, cursor), cursor)
        body = orjson.dumps(
            {
                "items": [signed_item(it) for it in items],
                "site_records": records,
                "log_range": {"after": told, "through": examined},
            }
        )
        try:
            res = await client.request("POST", "/v1/federation/batch", body=body)
        except ExchangeError as exc:
            await self._failed(peer, f"{exc.code.value}: {exc.message}")
            return 0
        except Exception as exc:  # transport errors of any kind: back off and retry
            await self._failed(peer, f"{type(exc).__name__}: {exc}")
            return 0
        results = res.get("results", []) if isinstance(res, dict) else []
        retry = [
            r
            for r in results
            if r.get("status") == "refused"
            and is_retryable(str((r.get("error") or {}).get("code", "")))
        ]
        if retry or len(results) != len(items):
            await self._failed(
                peer, f"peer could not store {len(retry)} item(s); retrying"
            )
            return 0
        refused = [r for r in results if r.get("status") == "refused"]
        for r in refused:
            _log.warning(
                "peer %s refused item %s: %s",
                peer,
                r.get("id"),
                (r.get("error") or {}).get("code"),
            )
        refusal = None
        if refused:
            codes = sorted({str((r.get("error") or {}).get("code")) for r in refused})
            refusal = f"refused {len(refused)} item(s): {', '.join(codes)}"
        await fed.store.push_done(
            peer, examined, len(items) - len(refused), len(refused), refusal
        )
        self._told[peer] = examined
        return len(items)

    async def _failed(self, peer: str, error: str) -> None:
        row = await self.node.federation.store.peer(peer)
        attempts = row.attempts if row else 0
        delay = self.backoff.delay(attempts + 1)
        await self.node.federation.store.failed(peer, error, delay)
        _log.info("delivery to %s failed (%s); next try in %.1f s", peer, error, delay)
