"""``/v1/items``: push signed items, list and fetch them."""

from __future__ import annotations

from aiohttp import web

from exchange.errors import InputError, NotFound
from exchange.service.ingest import outcome_counts
from exchange.storage.items import ItemFilter
from exchange.wire import item_envelope as envelope
from schemas.errors import ErrorCode

from .auth import authenticate, confirm_not_replayed, require
from .body import signed_body
from .keys import NODE
from .middleware import json_response
from .routes_search import query_time

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.post("/v1/items")
async def push_items(request: web.Request) -> web.Response:
    """Push one signed item, or ``{"items": [...]}`` (up to ``http.max_batch``)."""
    node = request.app[NODE]
    # Signed headers first, then the body; the nonce claim's round trip overlaps the
    # item checks and is settled before anything is committed (a replayed push stores
    # nothing and gets 401).
    reader, body = await signed_body(request, "site", defer_replay_check=True)
    is_batch, outcomes = await node.ingestor.push_body(
        body,
        reader,
        max_depth=node.config.limits.max_depth,
        max_batch=node.config.http.max_batch,
        before_commit=lambda: confirm_not_replayed(request),
    )
    if is_batch:
        results = [o.to_json() for o in outcomes]
        return json_response({"results": results, **outcome_counts(outcomes)})
    (outcome,) = outcomes
    if outcome.error is not None:
        raise outcome.error
    status = 201 if outcome.status == "accepted" else 200
    return json_response(outcome.to_json(), status)


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        raise InputError(
            f"query parameter {name} must be an integer", code=ErrorCode.BAD_REQUEST
        ) from None
    if not lo <= v <= hi:
        raise InputError(
            f"query parameter {name} must be between {lo} and {hi}",
            code=ErrorCode.BAD_REQUEST,
        )
    return v


@routes.get("/v1/items")
async def list_items(request: web.Request) -> web.Response:
    """Items after ``cursor`` visible to the caller, filtered by kind/author/tag/circle/since."""
    node = request.app[NODE]
    reader = await authenticate(request, b"")
    require(reader, "site", "monitor", "node")
    q = request.query
    since = query_time("since", q["since"]) if q.get("since") else None
    flt = ItemFilter(
        after=_int_param(request, "cursor", -1, -1, 2**62),
        kind=q.get("kind") or None,
        author=q.get("author") or None,
        tag=q.get("tag") or None,
        circle=q.get("circle") or None,
        since=since,
    )
    limit = _int_param(request, "limit", 100, 1, 1000)
    # PostgreSQL writes each envelope from the stored bytes; the page is joined once.
    body, n, _ = await node.items.page_json(
        reader, flt, limit=limit, max_bytes=node.config.http.page_max_bytes
    )
    if n and reader.kind == "site":
        await node.activity.bump(reader.id, "pulled", n)
    return web.Response(body=body, content_type="application/json")


@routes.get("/v1/items/{id}")
async def get_item(request: web.Request) -> web.Response:
    """One item by id, if the caller may see it (404 otherwise: existence is not revealed)."""
    node = request.app[NODE]
    reader = await authenticate(request, b"")
    require(reader, "site", "monitor", "node")
    item_id = request.match_info["id"]
    it = (
        await node.items.get(item_id, reader) if item_id.startswith("sha256:") else None
    )
    if it is None:
        raise NotFound(f"no item {item_id} visible to you", code=ErrorCode.NOT_FOUND)
    return json_response(envelope(it))
