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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from exchange.client import ExchangeClient
from exchange.errors import ExchangeError, is_retryable
from exchange.service.loop import Backoff, KeyedLoops
from exchange.wire import signed_item, site_record_version
from schemas.errors import ErrorCode

if TYPE_CHECKING:
    from exchange.node import Node

__all__ = ["PUSH_LOCK_SPACE", "Sender"]

_log = logging.getLogger(__name__)
PUSH_LOCK_SPACE = 0x45585053  # "EXPS": advisory locks (space, peer) of the push loops
GATHER_ITEMS = 16  # a batch of fewer items waits up to push_gather_ms for more
PULL_YIELD_S = 3.0  # a page the peer pulled holds pushes back this long at most


@dataclass
class _PeerState:
    """What this process knows of one peer (in memory: a restart starts afresh, which
    costs one batch in format 1 with every record, never correctness)."""

    format: int = 1  # 2 once the peer said it reads the compact format
    held: dict[str, int] = field(default_factory=dict)  # site -> record version it has
    told: int | None = None  # the last log position it acknowledged


@dataclass(frozen=True)
class _Ack:
    """A batch's answer: refusals as (id, code), and the site records the peer wants."""

    refused: list[tuple[str, str]]
    wanted: frozenset[str] = frozenset()


def _results_ack(res: Any, n: int) -> _Ack | str:
    """A format 1 answer (one result per item); a string says why it is not one."""
    results = res.get("results") if isinstance(res, dict) else None
    if not isinstance(results, list) or len(results) != n:
        return "peer answered something that is not a result for each item; retrying"
    refused = []
    for r in results:
        if not isinstance(r, dict):
            return "peer answered a result that is not an object; retrying"
        if r.get("status") == "refused":
            err = r.get("error")
            code = err.get("code", "") if isinstance(err, dict) else ""
            refused.append((str(r.get("id")), str(code)))
    return _Ack(refused)


def _compact_ack(res: Any, n: int) -> _Ack | str:
    """A format 2 answer: counts, the refused items only, or the records it wants."""
    if not isinstance(res, dict):
        return "peer answered something that is not a batch result; retrying"
    wanted = res.get("site_records_wanted")
    if wanted is not None:
        if not isinstance(wanted, list) or not all(isinstance(w, str) for w in wanted):
            return "peer answered a malformed site_records_wanted; retrying"
        return _Ack([], frozenset(wanted))
    counts = [res.get(k) for k in ("accepted", "duplicates", "refused")]
    refusals = res.get("refusals", [])
    if (
        not all(type(c) is int and c >= 0 for c in counts)
        or sum(counts) != n  # type: ignore[arg-type]
        or not isinstance(refusals, list)
        or len(refusals) != counts[2]
    ):
        return "peer answered counts that do not add up to the batch; retrying"
    refused = []
    for r in refusals:
        if not isinstance(r, dict) or not isinstance(r.get("error"), dict):
            return "peer answered a malformed refusal; retrying"
        refused.append((str(r.get("id")), str(r["error"].get("code", ""))))
    return _Ack(refused)


class Sender:
    """Runs one delivery loop per peer of the installed roster."""

    def __init__(self, node: Node) -> None:
        self.node = node
        cfg = node.config.federation
        self.batch = cfg.batch_size
        self.backoff = Backoff(cfg.backoff_base_ms / 1000, cfg.backoff_max_s)
        self.timeout = cfg.request_timeout_s
        self.gather_s = cfg.push_gather_ms / 1000
        self._peers_state: dict[str, _PeerState] = {}
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

    def _state(self, peer: str) -> _PeerState:
        st = self._peers_state.get(peer)
        if st is None:
            st = self._peers_state[peer] = _PeerState()
        return st

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
                    # Backing off; a wake-up looks again (the peer's catch-up pull ends
                    # the backoff when it comes back: see FederationStore.skip_to).
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), timeout=min(delay, 5.0))
                    continue
                if client is None or client.base_url != row.base_url.rstrip("/"):
                    if client is not None:
                        await client.close()
                    client = ExchangeClient(
                        row.base_url, key=self.node.key, timeout=self.timeout, lean=True
                    )
                sent = await self.deliver_once(peer, row.push_cursor, client)
                if sent < 0:  # send again at once (records, or the older format)
                    continue
                if sent == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), timeout=2.0)
        finally:
            fed.drop_waker(wake)
            if client is not None:
                await client.close()

    async def deliver_once(self, peer: str, cursor: int, client: ExchangeClient) -> int:
        """Send one batch after ``cursor``; returns items sent (0 if nothing to send or
        the batch failed, -1 if it must be sent again at once: the peer asked for site
        records or does not read the compact format)."""
        fed = self.node.federation
        pulling = fed.pulling_since.get(peer)
        if pulling is not None and time.monotonic() - pulling < PULL_YIELD_S:
            # The peer is catching up by pulling pages from us (it came back): each
            # page moves this cursor, so pushing now would send the same items twice.
            # Pushes go on once its pull reaches the end (an empty page) or stops.
            return 0
        st = self._state(peer)
        reader = fed.node_reader(peer)
        items, examined = await fed.store.local_after(
            reader, cursor, self.batch, 4 << 20
        )
        if not items:
            if examined > cursor:
                await fed.store.skip_to(peer, examined)
            return 0
        if len(items) < min(self.batch, GATHER_ITEMS) and self.gather_s > 0:
            # A small batch: let it gather until its oldest item is ``push_gather_ms``
            # old (fewer, fuller requests at low rates; a busy or backlogged peer's
            # batches are full or old enough and never wait).
            wait = self.gather_s - (time.time() - items[0].received_at.timestamp())
            if wait > 0:
                await asyncio.sleep(min(wait, self.gather_s))
                items, examined = await fed.store.local_after(
                    reader, cursor, self.batch, 4 << 20
                )
        own = await fed.own_sites({it.author for it in items})
        versions = {s.id: site_record_version(s) for s in own}
        # The log range this batch completes: from the last position the peer has heard
        # of (skipped positions hold nothing it serves) to the examined one. The peer
        # moves its catch-up cursor over it, so its puller does not fetch these again.
        told = min(st.told if st.told is not None else cursor, cursor)
        log_range = {"after": told, "through": examined}
        signed = [signed_item(it) for it in items]
        if st.format >= 2:
            # Records only of the versions the peer is not known to hold; the versions
            # of all the batch's authors, so a peer that lost one asks for it.
            send = [s for s in own if st.held.get(s.id) != versions[s.id]]
            doc: dict[str, Any] = {"format": 2, "items": signed}
            if send:
                doc["site_records"] = [fed.sign_site_record(s) for s in send]
            doc["site_versions"] = versions
            doc["log_range"] = log_range
        else:
            send = own
            doc = {
                "items": signed,
                "site_records": [fed.sign_site_record(s) for s in own],
                "log_range": log_range,
            }
        try:
            res = await client.request(
                "POST", "/v1/federation/batch", body=orjson.dumps(doc)
            )
        except ExchangeError as exc:
            if st.format >= 2 and exc.code is ErrorCode.SCHEMA_INVALID:
                # A peer that no longer reads the compact format (it was downgraded):
                # speak the first format to it again, at once.
                _log.info("peer %s refused a format 2 batch; sending format 1", peer)
                st.format = 1
                return -1
            await self._failed(peer, f"{exc.code.value}: {exc.message}")
            return 0
        except Exception as exc:  # transport errors of any kind: back off and retry
            await self._failed(peer, f"{type(exc).__name__}: {exc}")
            return 0
        if st.format >= 2:
            ack = _compact_ack(res, len(items))
        else:
            ack = _results_ack(res, len(items))
            if isinstance(res, dict) and res.get("batch_format") == 2:
                st.format = 2  # it reads the compact format: use it from now on
        if isinstance(ack, str):
            await self._failed(peer, ack)
            return 0
        if ack.wanted:
            # The peer lacks (or lost) a record it needs to check this batch; it
            # stored nothing. Send again with the records, unless they were in it.
            sent_ids = {s.id for s in send}
            for site in ack.wanted:
                st.held.pop(site, None)
            if ack.wanted & sent_ids or not ack.wanted <= versions.keys():
                await self._failed(
                    peer, f"peer wants site records {sorted(ack.wanted)} again"
                )
                return 0
            return -1
        st.held.update(versions)  # it acknowledged: it holds these versions (or newer)
        retry = [r for r in ack.refused if is_retryable(r[1])]
        if retry:
            await self._failed(
                peer, f"peer could not store {len(retry)} item(s); retrying"
            )
            return 0
        for item_id, code in ack.refused:
            _log.warning("peer %s refused item %s: %s", peer, item_id, code)
        refusal = None
        if ack.refused:
            codes = sorted({code for _, code in ack.refused})
            refusal = f"refused {len(ack.refused)} item(s): {', '.join(codes)}"
        await fed.store.push_done(
            peer, examined, len(items) - len(ack.refused), len(ack.refused), refusal
        )
        st.told = examined
        return len(items)

    async def _failed(self, peer: str, error: str) -> None:
        row = await self.node.federation.store.peer(peer)
        attempts = row.attempts if row else 0
        delay = self.backoff.delay(attempts + 1)
        await self.node.federation.store.failed(peer, error, delay)
        _log.info("delivery to %s failed (%s); next try in %.1f s", peer, error, delay)
