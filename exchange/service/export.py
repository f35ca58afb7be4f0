"""``exchange export``: a self-contained, offline-verifiable bundle of items.

A bundle is a folder (copy it, zip it, burn it to a disc — it needs nothing else)::

    manifest.json     format, node id, log origin, the log's note verifier key
                      (``log_key``), the signed checkpoint every proof refers to
                      (``checkpoint``) with the witnesses' cosignature lines
                      (``cosignatures``), the node's pinned roster keys
                      (``roster_keys``), filters, counts
    sites.json        the site directory (public keys, validity, revocations) as this node
                      holds it: what every item signature is checked against
    federation/roster.json
                      the installed signed roster (absent when the node has none)
    federation/site-records.json
                      {"records": [...]} signed site records: this node's own sites
                      (signed at export) and those received from their home nodes
    items/NNNNNNNN-<id12>.json
                      {"index", "id", "received_at" (leaf form), "signed": {item, sig},
                       "inclusion": [base64 hashes]}

``exchange verify BUNDLE`` (:func:`exchange.verify.verify_bundle`) checks every item's
schema and signature, rebuilds every leaf, checks every inclusion proof against the
checkpoint root and the checkpoint signature against the bundled log key — with no
network and no database. When the roster is bundled it also checks the roster against
the pinned keys, that the log key is the node's key in the roster, every cosignature and
every site record, and that item keys appear in their site's signed record. A reader who
pins the roster key themselves compares it with ``roster_keys`` in the manifest.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from exchange.core.logleaf import accepted_at_text
from exchange.core.trust import Reader
from exchange.errors import ConfigError, NotFound
from exchange.service.proofs import b64
from exchange.storage.items import ItemFilter
from exchange.wire import signed_item, site_json
from schemas.errors import ErrorCode

if TYPE_CHECKING:
    from exchange.node import Node

__all__ = ["BUNDLE_FORMAT", "export_bundle"]

BUNDLE_FORMAT = "congress-exchange-bundle/1"
_PAGE = 500


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _json(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, indent=2).encode()


async def _federation(node: Node, out: Path) -> dict[str, str | None]:
    """Write the roster and site records when the node has them."""
    where: dict[str, str | None] = {"roster": None, "site_records": None}
    fed = getattr(node, "federation", None)
    if fed is None:
        return where
    roster = await fed.store.roster()
    records: list[dict[str, Any]] = []
    if roster is not None:
        records = await fed.local_site_records() + await fed.store.site_records()
    if roster is None and not records:
        return where
    (out / "federation").mkdir(exist_ok=True)
    if roster is not None:
        _write(out / "federation" / "roster.json", _json(roster[1]))
        where["roster"] = "federation/roster.json"
    if records:
        _write(out / "federation" / "site-records.json", _json({"records": records}))
        where["site_records"] = "federation/site-records.json"
    return where


async def export_bundle(
    node: Node,
    out: Path,
    *,
    author: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> dict[str, Any]:
    """Write a bundle of the items matching the filters; returns the manifest.

    Every exported item is covered by the latest signed checkpoint (items accepted after
    it are left for the next export).

    Args:
        node: The started node.
        out: A new (or empty) folder.
        author: Only items by this site.
        kind: Only items of this kind.
        since: Only items created at or after this time.
        progress: Optional ``callable(done, total)`` (total unknown: None).

    Raises:
        ConfigError: ``out`` exists and is not empty.
        NotFound: (``not_yet_integrated``) the log has no signed checkpoint yet.
    """
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty; choose a new folder")
    cp = await node.log.latest_checkpoint()
    if cp is None:
        raise NotFound(
            "the log has no signed checkpoint yet; wait a second and retry",
            code=ErrorCode.NOT_YET_INTEGRATED,
        )
    (out / "items").mkdir(parents=True, exist_ok=True)
    operator = Reader("operator")
    after = -1
    n = 0
    while True:
        flt = ItemFilter(after=after, kind=kind, author=author, since=since)
        page, nxt = await node.items.page(
            operator, flt, limit=_PAGE, max_bytes=8 << 20, read_replica=False
        )
        page = [it for it in page if it.idx < cp.size]
        proofs = await node.proofs.inclusions([it.idx for it in page], cp.size)
        for it, proof in zip(page, proofs, strict=True):
            doc = {
                "index": it.idx,
                "id": it.id,
                "received_at": accepted_at_text(it.received_at),
                "signed": signed_item(it),
                "inclusion": [b64(h) for h in proof],
            }
            _write(
                out / "items" / f"{it.idx:08d}-{it.id[7:19]}.json", orjson.dumps(doc)
            )
        n += len(page)
        if progress:
            progress(n, None)
        if nxt is None or nxt >= cp.size - 1 or not page:
            break
        after = nxt
    sites = await node.sites.list_sites()
    _write(out / "sites.json", _json({"sites": [site_json(s) for s in sites]}))
    federation = await _federation(node, out)
    witness = getattr(node, "witness", None)
    cosignatures = (
        await witness.store.cosignatures(cp.size) if witness is not None else []
    )
    manifest = {
        "format": BUNDLE_FORMAT,
        "node": node.id,
        "origin": node.sequencer.origin,
        "log_key": node.sequencer.vkey,
        "checkpoint": cp.note,
        "cosignatures": cosignatures,
        "size": cp.size,
        "items": n,
        "federation": federation,
        "roster_keys": list(node.config.federation.roster_keys),
        "filters": {
            "author": author,
            "kind": kind,
            "since": since.isoformat() if since else None,
        },
        "exported_at": datetime.now(UTC).isoformat(),
    }
    _write(out / "manifest.json", _json(manifest))
    return manifest
