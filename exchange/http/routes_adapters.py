"""``/v1/adapters/health``: sites' adapter runners report; monitors read the reports."""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from exchange.core.items import schema_error
from schemas.api import AdapterHealth

from .auth import authenticate, require
from .body import read_json, signed_body
from .keys import NODE
from .middleware import json_response

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.post("/v1/adapters/health")
async def post_health(request: web.Request) -> web.Response:
    """Store the calling site's latest adapter health (replaces the previous one)."""
    node = request.app[NODE]
    reader, body = await signed_body(request, "site")
    try:
        health = AdapterHealth.model_validate(read_json(request, body))
    except ValidationError as exc:
        raise schema_error(exc, "health") from None
    doc = health.model_dump(mode="json")
    received = await node.adapter_health.save(reader.id, doc)
    return json_response(
        {"site": reader.id, "received_at": received.isoformat(), "health": doc}
    )


@routes.get("/v1/adapters/health")
async def get_health(request: web.Request) -> web.Response:
    """Latest reports of the sites in a monitor's scope (a site sees its own)."""
    node = request.app[NODE]
    reader = await authenticate(request, b"")
    require(reader, "monitor", "site")
    scope = reader.sites if reader.kind == "monitor" else frozenset({reader.id})
    rows = await node.adapter_health.latest(scope)
    return json_response(
        {
            "reports": [
                {
                    "site": r.site,
                    "received_at": r.received_at.isoformat(),
                    "health": r.report,
                }
                for r in rows
            ]
        }
    )
