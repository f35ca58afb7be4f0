"""``/v1/log/*`` and receipts: the node's Merkle log, public for transparency.

Entries reveal only item ids (hashes) and acceptance times, never content; receipts
follow the item's audience rules.
"""

from __future__ import annotations

from aiohttp import web

from exchange.errors import InputError, NotFound
from exchange.service.proofs import b64
from schemas.errors import ErrorCode

from .auth import authenticate, require
from .keys import NODE
from .middleware import json_response

__all__ = ["routes"]

routes = web.RouteTableDef()
_MAX_ENTRIES = 1000


def _int(request: web.Request, name: str, default: int | None = None) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        if default is None:
            raise InputError(
                f"query parameter {name} is required", code=ErrorCode.BAD_REQUEST
            )
        return default
    if not (raw.isascii() and raw.lstrip("-").isdigit()) or len(raw) > 18:
        raise InputError(
            f"query parameter {name} must be an integer", code=ErrorCode.BAD_REQUEST
        )
    return int(raw)


@routes.get("/v1/log/checkpoint")
async def checkpoint(request: web.Request) -> web.Response:
    """The latest signed checkpoint (``?format=text`` for the bare signed note)."""
    node = request.app[NODE]
    cp = await node.log.latest_checkpoint()
    if cp is None:
        raise NotFound(
            "this log has no signed checkpoint yet; retry in a second",
            code=ErrorCode.NOT_YET_INTEGRATED,
            detail={"retry_after": 1},
        )
    if request.query.get("format") == "text":
        return web.Response(text=cp.note, content_type="text/plain", charset="utf-8")
    return json_response(
        {
            "origin": node.sequencer.origin,
            "size": cp.size,
            "root_hash": b64(cp.root),
            "note": cp.note,
            "key": node.sequencer.vkey,
            "cosignatures": await node.witness.store.cosignatures(cp.size),
        }
    )


@routes.get("/v1/log/proof/inclusion")
async def inclusion(request: web.Request) -> web.Response:
    """Inclusion proof for ``index`` in the tree of ``size`` (default: latest checkpoint)."""
    node = request.app[NODE]
    index = _int(request, "index")
    size = request.query.get("size")
    if not size:
        cp = await node.log.latest_checkpoint()
        if cp is None:
            raise NotFound(
                "no signed checkpoint yet; retry in a second",
                code=ErrorCode.NOT_YET_INTEGRATED,
                detail={"retry_after": 1},
            )
        tree = cp.size
    else:
        tree = _int(request, "size")
    proof = await node.proofs.inclusion(index, tree)
    return json_response(
        {"index": index, "size": tree, "hashes": [b64(h) for h in proof]}
    )


@routes.get("/v1/log/proof/consistency")
async def consistency(request: web.Request) -> web.Response:
    """Consistency proof between two tree sizes."""
    node = request.app[NODE]
    size1, size2 = _int(request, "size1"), _int(request, "size2")
    proof = await node.proofs.consistency(size1, size2)
    return json_response(
        {"size1": size1, "size2": size2, "hashes": [b64(h) for h in proof]}
    )


@routes.get("/v1/log/entries")
async def entries(request: web.Request) -> web.Response:
    """Entries ``start <= index < end`` (at most 1000): ids and acceptance times."""
    from exchange.core.logleaf import accepted_at_text

    node = request.app[NODE]
    start = _int(request, "start", 0)
    end = _int(request, "end", start + 100)
    if start < 0 or end < start:
        raise InputError("need 0 <= start <= end", code=ErrorCode.BAD_REQUEST)
    end = min(end, start + _MAX_ENTRIES)
    rows = await node.log.entries(start, end)
    return json_response(
        {
            "entries": [
                {"index": i, "item_id": iid, "accepted_at": accepted_at_text(at)}
                for i, iid, at in rows
            ]
        }
    )


@routes.get("/v1/items/{id}/receipt")
async def receipt(request: web.Request) -> web.Response:
    """Signed checkpoint + inclusion proof for an item the caller may see."""
    node = request.app[NODE]
    reader = await authenticate(request, b"")
    require(reader, "site", "monitor", "node")
    item_id = request.match_info["id"]
    it = (
        await node.items.get(item_id, reader) if item_id.startswith("sha256:") else None
    )
    if it is None:
        raise NotFound(f"no item {item_id} visible to you", code=ErrorCode.NOT_FOUND)
    raw = request.query.get("wait", "0")
    try:
        wait = min(max(float(raw), 0.0), 30.0)
    except ValueError:
        raise InputError(
            "wait must be a number of seconds (at most 30)", code=ErrorCode.BAD_REQUEST
        ) from None
    return json_response(await node.proofs.receipt(it.id, it.idx, wait))
