"""``exchange export``: a self-contained, offline-verifiable bundle of items.

A bundle is a folder::

    manifest.json     node id, log origin, the log's note verifier key, the signed
                      checkpoint every proof refers to, filters, counts
    sites.json        the site directory (public keys, revocations) the signatures need
    items/NNNNNNNN-<id12>.json
                      {"index", "id", "received_at" (leaf form), "signed": {item, sig},
                       "inclusion": [base64 hashes]}

``exchange verify BUNDLE`` checks every item signature and schema, rebuilds every leaf,
checks every inclusion proof against the checkpoint root, and the checkpoint signature
against the bundled key — with no network and no database. (Pinning that key to a
federation roster is the reader's step: compare it with the roster's entry for the node.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from exchange.core.logleaf import accepted_at_text
from exchange.core.trust import Reader
from exchange.errors import ConfigError, NotFound
from exchange.service.proofs import b64
from exchange.storage.items import ItemFilter
from schemas.errors import ErrorCode

if TYPE_CHECKING:
    from exchange.node import Node

__all__ = ["export_bundle"]


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


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

    Raises:
        ConfigError: ``out`` exists and is not empty.
        NotFound: the log has no signed checkpoint yet.
    """
    from exchange.http.routes_directory import site_json
    from exchange.http.routes_items import signed_bytes

    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty; choose a new folder")
    cp = await node.log.latest_checkpoint()
    if cp is None:
        raise NotFound("the log has no signed checkpoint yet; wait a second and retry",
                       code=ErrorCode.NOT_YET_INTEGRATED)
    (out / "items").mkdir(parents=True, exist_ok=True)
    operator = Reader("operator")
    flt = ItemFilter(after=-1, kind=kind, author=author, since=since)
    n = 0
    while True:
        page, nxt = await node.items.page(operator, flt, limit=500, max_bytes=8 << 20,
                                          read_replica=False)
        for it in page:
            if it.idx >= cp.size:
                nxt = None
                break
            proof = await node.proofs.inclusion(it.idx, cp.size)
            doc = {
                "index": it.idx, "id": it.id, "received_at": accepted_at_text(it.received_at),
                "signed": signed_bytes(it), "inclusion": [b64(h) for h in proof],
            }
            _write(out / "items" / f"{it.idx:08d}-{it.id[7:19]}.json", orjson.dumps(doc))
            n += 1
        if progress:
            progress(n, None)
        if nxt is None or not page:
            break
        flt = ItemFilter(after=nxt, kind=kind, author=author, since=since)
    sites = await node.sites.list_sites()
    _write(out / "sites.json", json.dumps({"sites": [site_json(s) for s in sites]},
                                          ensure_ascii=False, indent=2).encode())
    manifest = {
        "format": "congress-exchange-bundle/1",
        "node": node.id,
        "origin": node.sequencer.origin,
        "log_key": node.sequencer.vkey,
        "checkpoint": cp.note,
        "size": cp.size,
        "items": n,
        "filters": {"author": author, "kind": kind, "since": since.isoformat() if since else None},
        "exported_at": datetime.now(timezone.utc).isoformat(),
    }
    _write(out / "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2).encode())
    return manifest
