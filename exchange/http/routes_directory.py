"""``/v1/sites``: the public directory of sites and their public keys."""

from __future__ import annotations

from aiohttp import web

from exchange.errors import NotFound
from exchange.wire import site_json
from schemas.errors import ErrorCode

from .keys import NODE
from .middleware import json_response

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.get("/v1/sites")
async def list_sites(request: web.Request) -> web.Response:
    """Every site registered on this node, with public keys (public information)."""
    sites = await request.app[NODE].sites.list_sites()
    return json_response({"sites": [site_json(s) for s in sites]})


@routes.get("/v1/sites/{id}")
async def get_site(request: web.Request) -> web.Response:
    """One site."""
    site = await request.app[NODE].sites.get_site(request.match_info["id"])
    if site is None:
        raise NotFound(f"no site {request.match_info['id']}", code=ErrorCode.NOT_FOUND)
    return json_response(site_json(site))
