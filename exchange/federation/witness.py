"""Witnessing: verify and cosign peers' checkpoints; catch forks and rewrites.

Design
------
Every ``witness_interval`` this node fetches each peer's latest signed checkpoint, checks
its signature against the peer's node key from the roster, and checks that it is
consistent with the last checkpoint of that peer it accepted (an RFC 9162 consistency
proof fetched from the peer). Only then is the new checkpoint stored (compare-and-set on
the old size) and cosigned (C2SP tlog-cosignature, by this node's key), and the
cosignature sent back to the peer, which publishes it with the checkpoint.

A checkpoint that is smaller than one already seen, has the same size but another root,
or fails the consistency proof means the peer forked or rewrote its log. The witness
then keeps both notes and the proof as evidence, counts a ``checkpoint_invalid`` security
event (metric, activity API, log line), and does not advance: the inconsistency stays
visible until operators resolve it.

The same round asks each peer what it last witnessed of *this* node's log. A node whose
database was restored from an old backup learns from its peers how far it had already
signed, and its sequencer refuses to sign anything smaller.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from exchange.client import ExchangeClient
from exchange.core.logleaf import log_origin
from exchange.core.merkle import verify_consistency
from exchange.core.note import NoteVerifier, cosign_checkpoint, verify_checkpoint
from exchange.errors import ExchangeError, ProofError
from exchange.service.loop import BackgroundLoop, rounds_while
from exchange.storage.witness import WitnessStore
from schemas.errors import ErrorCode

if TYPE_CHECKING:
    from exchange.node import Node

__all__ = ["Witness"]

_log = logging.getLogger(__name__)


class Witness(BackgroundLoop):
    """Witnesses every peer's log and learns how far peers witnessed ours.

    Rounds run in the process that writes this node's log (``Sequencer.is_writer``):
    with ``--workers N`` the peers are asked once per interval, not N times, and a
    fork is recorded and counted once.
    """

    def __init__(self, node: Node) -> None:
        self.node = node
        self.store = WitnessStore(node.db)  # type: ignore[arg-type]
        self.interval = node.config.federation.witness_interval_ms / 1000
        self.timeout = node.config.federation.request_timeout_s
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0

    task_name = "witness"

    def start(self) -> None:
        """Start the loop (the sequencer waits for its first round before signing)."""
        if self._task is None:
            self.node.sequencer.floor_checked = False
        super().start()

    async def _run(self) -> None:
        # One witness per database: the process whose sequencer writes the log (the
        # one that signs, and so the one that must learn its floor first). Every
        # ``--workers`` process runs this loop; the others wait, and take over with
        # the log writer's lock.
        await rounds_while(
            lambda: self.node.sequencer.is_writer, self._round, self.interval, "witness"
        )

    async def _round(self) -> None:
        await self.round()
        self.rounds += 1

    def peer_verifier(self, peer: str) -> NoteVerifier | None:
        """The note verifier of a peer's log, from its node key in the roster."""
        view = self.node.federation.view
        keys = view.node_keys(peer) if view else {}
        if not keys:
            return None
        key = next(iter(keys.values()))
        return NoteVerifier.for_key(log_origin(peer), key.raw)

    async def round(self) -> dict[str, str]:
        """Witness every peer once; returns a status per peer."""
        out: dict[str, str] = {}
        view = self.node.federation.view
        if view is None:
            self.node.sequencer.floor_checked = True
            return out
        for peer in view.peers(self.node.id):
            try:
                async with ExchangeClient(
                    str(peer.base_url),
                    key=self.node.key,
                    timeout=self.timeout,
                    lean=True,
                ) as c:
                    out[peer.id] = await self.witness_peer(peer.id, c)
                    await self.learn_own_floor(peer.id, c)
            except ExchangeError as exc:
                out[peer.id] = f"{exc.code.value}: {exc.message}"
            except Exception as exc:  # unreachable peers are normal; next round
                out[peer.id] = f"unreachable: {type(exc).__name__}"
        self.node.sequencer.floor_checked = True  # peers were asked (reachable or not)
        return out

    async def _alarm(
        self, peer: str, reason: str, old_note: str, new_note: str, proof: list[str]
    ) -> str:
        await self.store.evidence(peer, reason, old_note, new_note, proof)
        self.node.metrics.security_events.labels("checkpoint_invalid").inc()
        msg = f"node {peer}'s log is inconsistent: {reason}"
        await self.node.activity.event(
            "security", "", "checkpoint_invalid", msg, {"node": peer}
        )
        _log.error("%s (evidence kept)", msg)
        return f"inconsistent: {reason}"

    async def witness_peer(self, peer: str, client: ExchangeClient) -> str:
        """Verify, check consistency, store and cosign one peer's latest checkpoint."""
        verifier = self.peer_verifier(peer)
        if verifier is None:
            return "no key in roster"
        try:
            cp = await client.request("GET", "/v1/log/checkpoint")
        except ExchangeError as exc:
            if exc.code is ErrorCode.NOT_YET_INTEGRATED:
                return "no checkpoint yet"
            raise
        note = str(cp["note"])
        try:
            new = verify_checkpoint(note, [verifier])
        except ProofError as exc:
            return await self._alarm(
                peer, f"checkpoint does not verify ({exc.message})", "", note, []
            )
        last = await self.store.last_seen(peer)
        proof_b64: list[str] = []
        if last is not None:
            size0, root0, note0 = last
            if new.size < size0:
                return await self._alarm(
                    peer, f"log shrank from {size0} to {new.size}", note0, note, []
                )
            if new.size == size0:
                if new.root_hash != root0:
                    return await self._alarm(
                        peer, f"two different roots for size {size0}", note0, note, []
                    )
                return "unchanged"
            pr = await client.request(
                "GET",
                "/v1/log/proof/consistency",
                params={"size1": size0, "size2": new.size},
            )
            proof_b64 = list(pr["hashes"])
            try:
                verify_consistency(
                    size0,
                    new.size,
                    [base64.b64decode(h) for h in proof_b64],
                    root0,
                    new.root_hash,
                )
            except ProofError as exc:
                return await self._alarm(
                    peer,
                    f"not consistent with size {size0}: {exc.message}",
                    note0,
                    note,
                    proof_b64,
                )
        if not await self.store.advance(
            peer, last[0] if last else None, new.size, new.root_hash, note
        ):
            return "raced"
        assert self.node.key is not None
        line = cosign_checkpoint(
            note, log_origin(self.node.id), self.node.key, int(time.time())
        )
        await client.request(
            "POST",
            "/v1/federation/cosign",
            body=orjson.dumps({"size": new.size, "note": note, "cosignature": line}),
        )
        return f"cosigned {new.size}"

    async def learn_own_floor(self, peer: str, client: ExchangeClient) -> int:
        """Ask a peer how far it witnessed our log; raise our signing floor to that."""
        try:
            doc: dict[str, Any] = await client.request(
                "GET", f"/v1/federation/witnessed/{self.node.id}"
            )
        except ExchangeError:
            return 0
        assert self.node.key is not None
        mine = NoteVerifier.for_key(
            log_origin(self.node.id), self.node.key.public_key.raw
        )
        try:
            cp = verify_checkpoint(str(doc["note"]), [mine])
        except (ProofError, KeyError):
            return (
                0  # not signed by us: ignore (a peer cannot raise our floor by lying)
            )
        self.node.sequencer.raise_floor(cp.size, cp.root_hash)
        return cp.size
