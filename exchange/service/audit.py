"""``exchange log audit``: recompute the whole log from the items and compare.

For every item, in index order: its id must be the SHA-256 of its stored canonical bytes
(content not altered), the columns copied from that content for queries and audience
rules (kind, author, title, created_at, tags, audience, attachments) must equal it, its
signature must verify with the key it names (revoked or not: it was valid when accepted),
and its leaf (index, id, acceptance time) is appended to a
fresh tree. Every subtree hash that tree completes must equal the stored one (and must be
stored, if it lies inside the integrated tree), the recomputed root at the integrated size
must equal the stored state's, and at every signed checkpoint's size the recomputed root
must equal the checkpoint's, whose signature must verify with the node key. A checkpoint
beyond the items that exist is a problem too. The first problems are reported with their
index. Safe to run while the node serves: it compares against the integrated size read
when it starts, and the log only grows.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson

from exchange.core.logleaf import leaf_hash_for
from exchange.core.merkle import EMPTY_ROOT, CompactRange
from exchange.core.note import NoteVerifier, verify_checkpoint
from exchange.core.signing import CONTEXT_ITEM, signing_message
from exchange.core.trust import parse_timestamp
from exchange.errors import ProofError
from exchange.storage.log import AuditRow

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


def _derived_mismatches(row: AuditRow) -> list[str]:
    """Columns copied from the signed item (for queries and audience rules) that differ."""
    try:
        item = orjson.loads(row.canonical)
        audience = item.get("audience") or {}
        want: dict[str, object] = {
            "kind": item["kind"],
            "author": item["author"],
            "title": item["title"],
            "created_at": parse_timestamp(item["created_at"]),
            "tags": list(item.get("tags", [])),
            "audience_circles": list(audience.get("circles", [])),
            "audience_sites": list(audience.get("sites", [])),
            "attachments": [a["sha256"] for a in item.get("attachments", [])],
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        return ["content (not a signed item)"]
    return [col for col, value in want.items() if getattr(row, col) != value]


async def audit_log(
    node: Node, progress: Callable[[int, int], None] | None = None
) -> AuditReport:
    """Recompute and compare everything; see the module docstring."""
    report = AuditReport()
    t0 = time.perf_counter()
    integrated, state_root = await node.log.state()
    total = await node.items.size()
    checkpoints = {cp.size: cp for cp in await node.log.all_checkpoints()}
    verifier = NoteVerifier.for_key(node.sequencer.origin, node.key.public_key.raw)  # type: ignore[union-attr]
    keys = {k.key_id: k.public for k in await node.sites.all_keys()}
    tree = CompactRange()
    expected = 0
    async for batch in node.log.scan_items():
        computed: dict[tuple[int, int], bytes] = {}
        for row in batch:
            idx, item_id, accepted = row.idx, row.id, row.received_at
            if idx != expected:
                report.problem(f"index gap: expected entry {expected}, found {idx}")
                expected = idx
            if "sha256:" + hashlib.sha256(row.canonical).hexdigest() != item_id:
                report.problem(
                    f"entry {idx}: stored content does not hash to its id {item_id} (altered)"
                )
            else:
                for column in _derived_mismatches(row):
                    report.problem(
                        f"entry {idx}: stored {column} differs from the signed content "
                        "(altered)"
                    )
            key = keys.get(row.key_id)
            if key is None or not key.verify(
                signing_message(CONTEXT_ITEM, row.canonical), row.sig
            ):
                report.problem(
                    f"entry {idx}: signature by {row.key_id or '?'} does not verify"
                )
            for level, nidx, h in tree.append(leaf_hash_for(item_id, idx, accepted)):
                computed[(level, nidx)] = h
            expected += 1
            if tree.size == integrated and tree.root() != state_root:
                report.problem(
                    f"log state: stored root of size {integrated} differs from the recomputed one"
                )
            if tree.size in checkpoints:
                cp = checkpoints[tree.size]
                report.checkpoints += 1
                if cp.root != tree.root():
                    report.problem(
                        f"checkpoint {tree.size}: stored root differs from the recomputed one"
                    )
                try:
                    signed = verify_checkpoint(cp.note, [verifier])
                except ProofError as exc:
                    report.problem(f"checkpoint {tree.size}: signature: {exc.message}")
                else:
                    if (signed.size, signed.root_hash) != (tree.size, tree.root()):
                        report.problem(
                            f"checkpoint {tree.size}: its signed note states size {signed.size} "
                            "and a root that differ from the recomputed tree"
                        )
        stored = await node.log.nodes(computed.keys())
        for key_, h in computed.items():
            got = stored.get(key_)
            if got is None:
                if (key_[1] + 1) << key_[0] <= integrated:
                    report.problem(
                        f"tree node level {key_[0]} index {key_[1]}: missing"
                    )
                continue  # not yet integrated
            report.nodes_checked += 1
            if got != h:
                report.problem(
                    f"tree node level {key_[0]} index {key_[1]}: stored hash differs"
                )
        report.items += len(batch)
        if progress:
            progress(report.items, total)
    if integrated > report.items:
        report.problem(
            f"log state claims {integrated} entries but only {report.items} items exist"
        )
    elif integrated == 0 and state_root != EMPTY_ROOT:
        report.problem(
            "log state: the empty log's stored root is not the empty-tree hash"
        )
    for size in sorted(checkpoints):
        if size > report.items:
            report.problem(
                f"checkpoint {size}: covers entries that do not exist (only {report.items})"
            )
    report.seconds = time.perf_counter() - t0
    return report
