"""What the reading view shows of one item: signer, checks, references, attachments.

Every check is done here, on the server, against what the node itself trusts: the
signature with the stored public key of the signing key id (never a key the item names
for itself), and the log receipt — the node's signed checkpoint covering the item's
index, verified with the node's log key, and the inclusion proof of the item's leaf
against that checkpoint's root. References are shown in both directions, but only
items the reader may see; a reference to anything else is shown as unavailable.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from exchange.core.items import signing_input
from exchange.core.logleaf import leaf_hash_for
from exchange.core.merkle import verify_inclusion
from exchange.core.note import verify_checkpoint
from exchange.core.trust import Reader
from exchange.errors import ExchangeError, NotFound
from exchange.storage.items import StoredItem
from schemas.errors import ErrorCode

__all__ = [
    "Directory",
    "ItemView",
    "ReceiptCheck",
    "RefView",
    "SignatureCheck",
    "directory",
    "item_view",
]


@dataclass(frozen=True)
class Directory:
    """Display names of sites, circles and monitors (ids stay where no name is known)."""

    sites: dict[str, str]
    circles: dict[str, str]
    monitors: dict[str, str]


async def directory(node: Any) -> Directory:
    """Names from the node's site table, monitors table and installed roster (circle
    names of ``[node] circle_names`` where the roster names none)."""
    sites = {s.id: s.name for s in await node.sites.list_sites()}
    circles: dict[str, str] = dict(node.config.node.circle_names)
    monitors: dict[str, str] = {}
    row = await node.federation.store.roster()
    if row is not None:
        roster = row[1].get("document", row[1])
        for c in roster.get("circles") or []:
            circles[str(c.get("id"))] = str(c.get("name") or c.get("id"))
        for m in roster.get("monitors") or []:
            monitors[str(m.get("id"))] = str(m.get("name") or m.get("id"))
    async with node.db.pool.acquire() as c:
        for r in await c.fetch("SELECT id, name FROM monitors"):
            monitors.setdefault(r["id"], r["name"])
    return Directory(sites, circles, monitors)


@dataclass(frozen=True)
class SignatureCheck:
    """The result of checking an item's signature with the stored key."""

    ok: bool
    key_id: str
    alg: str
    reason: str = ""
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class ReceiptCheck:
    """The log receipt: ``verified``, ``pending`` (no checkpoint yet) or ``failed``."""

    status: str
    index: int
    tree_size: int | None = None
    origin: str = ""
    reason: str = ""


@dataclass(frozen=True)
class RefView:
    """A reference: its relation, the other item's id, and that item if visible."""

    rel: str
    id: str
    item: StoredItem | None = None
    title: str = ""
    kind: str = ""
    author: str = ""


@dataclass
class ItemView:
    """Everything the item page renders."""

    item: StoredItem
    doc: dict[str, Any]
    signature: SignatureCheck
    receipt: ReceiptCheck
    refs_out: list[RefView] = field(default_factory=list)
    refs_in: list[RefView] = field(default_factory=list)
    retracted_by: RefView | None = None


async def check_signature(node: Any, it: StoredItem) -> SignatureCheck:
    """Verify ``it``'s signature with the key this node stores for its key id."""
    keys = await node.sites.keys([it.key_id])
    rec = keys.get(it.key_id)
    if rec is None:
        return SignatureCheck(False, it.key_id, it.alg, "unknown_key")
    if rec.owner != it.author:
        return SignatureCheck(False, it.key_id, it.alg, "author_mismatch")
    if rec.alg != it.alg or not rec.public.verify(signing_input(it.canonical), it.sig):
        return SignatureCheck(False, it.key_id, it.alg, "bad_signature")
    revoked = rec.revoked_at
    if revoked is not None and revoked <= it.received_at:
        return SignatureCheck(False, it.key_id, it.alg, "revoked_key", revoked)
    return SignatureCheck(True, it.key_id, it.alg, revoked_at=revoked)


async def check_receipt(node: Any, it: StoredItem) -> ReceiptCheck:
    """Fetch the item's receipt from the log and verify checkpoint and inclusion."""
    try:
        rc = await node.proofs.receipt(it.id, it.idx, 0.0)
    except NotFound as err:
        if err.code is ErrorCode.NOT_YET_INTEGRATED:
            return ReceiptCheck("pending", it.idx)
        raise
    try:
        cp = verify_checkpoint(rc["checkpoint"], [node.sequencer.vkey])
        proof = [base64.b64decode(h) for h in rc["inclusion"]["hashes"]]
        leaf = leaf_hash_for(it.id, it.idx, it.received_at)
        verify_inclusion(leaf, it.idx, cp.size, proof, cp.root_hash)
    except (ExchangeError, ValueError) as err:
        return ReceiptCheck("failed", it.idx, reason=str(getattr(err, "message", err)))
    return ReceiptCheck("verified", it.idx, cp.size, cp.origin)


def _ref_view(rel: str, rid: str, it: StoredItem | None) -> RefView:
    if it is None:
        return RefView(rel, rid)
    doc = orjson.loads(it.canonical)
    return RefView(rel, rid, it, str(doc.get("title", "")), it.kind, it.author)


async def item_view(node: Any, item_id: str, reader: Reader) -> ItemView:
    """The item page's data for ``reader``.

    Raises:
        NotFound: no such item visible to ``reader`` (existence is not revealed).
    """
    it = (
        await node.items.get(item_id, reader) if item_id.startswith("sha256:") else None
    )
    if it is None:
        raise NotFound(f"no item {item_id} visible to you", code=ErrorCode.NOT_FOUND)
    doc = orjson.loads(it.canonical)
    out_refs = [
        (str(r.get("rel")), str(r.get("id")))
        for r in doc.get("refs") or []
        if isinstance(r, dict)
    ]
    visible = await node.search.store.by_ids([rid for _, rid in out_refs], reader)
    incoming = await node.search.store.referencing(it.id, reader)
    view = ItemView(
        it,
        doc,
        await check_signature(node, it),
        await check_receipt(node, it),
        refs_out=[_ref_view(rel, rid, visible.get(rid)) for rel, rid in out_refs],
        refs_in=[_ref_view(rel, src.id, src) for rel, src in incoming],
    )
    for r in view.refs_in:
        if r.rel == "retracts" and r.author == it.author:
            view.retracted_by = r
    return view
