"""``exchange log audit``: recompute the whole log from the items and compare.

For every item, in index order: its id must be the SHA-256 of its stored canonical bytes
(content not altered), its signature must verify with the key it names (revoked or not:
it was valid when accepted), and its leaf (index, id, acceptance time) is appended to a
fresh tree. Every subtree hash that tree completes must equal the stored one, and at every
signed checkpoint's size the recomputed root must equal the checkpoint's, whose signature
must verify with the node key. The first problems are reported with their index.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from exchange.core.logleaf import leaf_hash_for
from exchange.core.merkle import CompactRange
from exchange.core.note import NoteVerifier, verify_checkpoint
from exchange.core.signing import CONTEXT_ITEM, signing_message
from exchange.errors import ProofError

if TYPE_CHECKING:
    from exchange.node import Node

__all__ = ["AuditReport", "audit_log"]


@dataclass
class AuditReport:
    """What the audit found."""

    items: int = 0
    nodes_checked: int = 0
    checkpoints: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing was wrong."""
        return not self.problems

    def problem(self, msg: str) -> None:
        """Record a problem (the first 50 are kept)."""
        if len(self.problems) < 50:
            self.problems.append(msg)


async def audit_log(node: Node, progress: Callable[[int, int], None] | None = None) -> AuditReport:
    """Recompute and compare everything; see the module docstring."""
    report = AuditReport()
    t0 = time.perf_counter()
    total = await node.items.size()
    checkpoints = {cp.size: cp for cp in await node.log.all_checkpoints()}
    verifier = NoteVerifier.for_key(node.sequencer.origin, node.key.public_key.raw)  # type: ignore[union-attr]
    keys = {k.key_id: k.public for k in await node.sites.all_keys()}
    tree = CompactRange()
    expected = 0
    async for batch in node.log.scan_items():
        sigs = await node.log.signatures(batch[0][0], batch[-1][0])
        computed: dict[tuple[int, int], bytes] = {}
        for idx, item_id, accepted, canonical in batch:
            if idx != expected:
                report.problem(f"index gap: expected entry {expected}, found {idx}")
                expected = idx
            if "sha256:" + hashlib.sha256(canonical).hexdigest() != item_id:
                report.problem(f"entry {idx}: stored content does not hash to its id {item_id} (altered)")
            key_id, sig = sigs.get(idx, ("", b""))
            key = keys.get(key_id)
            if key is None or not key.verify(signing_message(CONTEXT_ITEM, canonical), sig):
                report.problem(f"entry {idx}: signature by {key_id or '?'} does not verify")
            for level, nidx, h in tree.append(leaf_hash_for(item_id, idx, accepted)):
                computed[(level, nidx)] = h
            expected += 1
            if tree.size in checkpoints:
                cp = checkpoints[tree.size]
                report.checkpoints += 1
                if cp.root != tree.root():
                    report.problem(f"checkpoint {tree.size}: stored root differs from the recomputed one")
                try:
                    verify_checkpoint(cp.note, [verifier])
                except ProofError as exc:
                    report.problem(f"checkpoint {tree.size}: signature: {exc.message}")
        stored = await node.log.nodes(computed.keys())
        for key_, h in computed.items():
            got = stored.get(key_)
            if got is None:
                continue  # not yet integrated
            report.nodes_checked += 1
            if got != h:
                report.problem(f"tree node level {key_[0]} index {key_[1]}: stored hash differs")
        report.items += len(batch)
        if progress:
            progress(report.items, total)
    integrated, root = await node.log.state()
    if integrated > report.items:
        report.problem(f"log state claims {integrated} entries but only {report.items} items exist")
    report.seconds = time.perf_counter() - t0
    return report
