"""``/v1/sites``: the public directory of sites and their public keys."""

from __future__ import annotations

from aiohttp import web

from exchange.errors import NotFound
from exchange.storage.directory import SiteRecordRow
from schemas.errors import ErrorCode

from .keys import NODE
from .middleware import json_response

__all__ = ["routes", "site_json"]

routes = web.RouteTableDef()


def site_json(s: SiteRecordRow) -> dict[str, object]:
    """A ``SiteInfo`` body."""
    from exchange.core.signing import b64u_encode

    return {
        "id": s.id,
        "name": s.name,
        "home_node": s.home_node,
        "circles": list(s.circles),
        "keys": [
            {
                "key_id": k.key_id,
                "alg": k.alg,
                "public_key": b64u_encode(k.public_key),
                "valid_from": k.valid_from.isoformat(),
                "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
            }
            for k in s.keys
        ],
    }


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
