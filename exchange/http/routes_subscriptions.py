"""``/v1/subscriptions``: a site's saved queries, their matches (pull) and live events.

See :mod:`exchange.service.subscriptions` for the delivery rules (durable cursor, each
match once when acknowledged). Every endpoint needs a request signed by the site that
owns the subscription; another site's subscription is a 404.
"""

from __future__ import annotations

import asyncio
import contextlib

import orjson
from aiohttp import web
from pydantic import ValidationError

from exchange.core.items import schema_error
from exchange.errors import InputError
from exchange.wire import item_envelope as envelope
from schemas.errors import ErrorCode
from schemas.search import SubscriptionRequest

from .auth import authenticate, require
from .body import read_json, signed_body
from .keys import NODE
from .middleware import json_response
from .routes_dashboard import BROADCASTER
from .routes_search import parse_limit

__all__ = ["routes"]

routes = web.RouteTableDef()
_PING_S = 15.0


def _after(raw: str | None, name: str) -> int | None:
    if raw is None or raw == "":
        return None
    if (
        not (raw.isascii() and raw.lstrip("-").isdigit())
        or len(raw) > 18
        or int(raw) < -1
    ):
        raise InputError(
            f"{name} must be a log index (an integer ≥ -1)", code=ErrorCode.BAD_REQUEST
        )
    return int(raw)


@routes.post("/v1/subscriptions")
async def create(request: web.Request) -> web.Response:
    """Save a query; the subscription sees items pushed from now on."""
    node = request.app[NODE]
    reader, body = await signed_body(request, "site")
    doc = read_json(request, body)
    try:
        req = SubscriptionRequest.model_validate(doc)
    except ValidationError as exc:
        raise schema_error(exc) from None
    if "\x00" in req.q:  # PostgreSQL text cannot hold it; a query never needs it
        raise InputError(
            "q contains a NUL character (\\u0000); remove it",
            code=ErrorCode.QUERY_INVALID,
        )
    sub = await node.subscriptions.create(
        reader.id, req.q, req.kind, req.tag, req.author
    )
    return json_response(sub.to_json(), 201)


@routes.get("/v1/subscriptions")
async def listing(request: web.Request) -> web.Response:
    """The calling site's subscriptions."""
    node = request.app[NODE]
    reader = await authenticate(request, b"")
    require(reader, "site")
    subs = await node.subscriptions.store.list(reader.id)
    return json_response({"subscriptions": [s.to_json() for s in subs]})


@routes.delete("/v1/subscriptions/{id}")
async def delete(request: web.Request) -> web.Response:
    """Delete one of the caller's subscriptions."""
    node = request.app[NODE]
    reader = await authenticate(request, b"")
    require(reader, "site")
    await node.subscriptions.delete(request.match_info["id"], reader.id)
    return web.Response(status=204)


@routes.get("/v1/subscriptions/{id}/matches")
async def matches(request: web.Request) -> web.Response:
    """New matches after ``after`` (default: the durable cursor); ``after`` acknowledges."""
    node = request.app[NODE]
    reader = await authenticate(request, b"")
    require(reader, "site")
    svc = node.subscriptions
    sub = await svc.get(request.match_info["id"], reader.id)
    after = _after(request.query.get("after"), "after")
    limit = parse_limit(request.query, default=100, hi=500)
    if after is None:
        after = sub.cursor
    else:
        head = await node.items.size() - 1
        if after > head:
            raise InputError(
                f"after={after} is beyond the end of the log ({head})",
                code=ErrorCode.BAD_REQUEST,
            )
        await svc.ack(sub, after)
    items, nxt = await svc.matches(reader, sub, after, limit=limit)
    return json_response({"matches": [envelope(i) for i in items], "next_after": nxt})


@routes.get("/v1/subscriptions/{id}/events")
async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``match`` (id = log index, data = ItemEnvelope), ``ping``."""
    node = request.app[NODE]
    reader = await authenticate(request, b"")
    require(reader, "site")
    svc = node.subscriptions
    sub = await svc.get(request.match_info["id"], reader.id)
    last = _after(request.headers.get("Last-Event-ID"), "Last-Event-ID")
    pos = sub.cursor
    if last is not None:
        head = await node.items.size() - 1
        last = min(last, head)
        if last > sub.cursor:
            await svc.ack(sub, last)
        pos = last
    b = request.app[BROADCASTER]
    q = b.subscribe()
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await resp.prepare(request)
    try:
        await resp.write(b"retry: 3000\nevent: hello\ndata: {}\n\n")
        while True:
            items, nxt = await svc.matches(reader, sub, pos)
            for it in items:
                data = orjson.dumps(envelope(it))
                await resp.write(b"id: %d\nevent: match\ndata: %s\n\n" % (it.idx, data))
            progressed, pos = nxt > pos, nxt
            if progressed:  # maybe more right away; at the end of the log, wait
                continue
            try:
                await asyncio.wait_for(q.get(), timeout=_PING_S)
                with contextlib.suppress(asyncio.QueueEmpty):
                    while True:
                        q.get_nowait()
            except TimeoutError:
                await resp.write(b"event: ping\ndata: {}\n\n")
    except ConnectionResetError:  # the client left; cancellation propagates
        pass
    finally:
        b.unsubscribe(q)
    return resp
