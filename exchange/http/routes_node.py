"""``GET /v1/node``: who this node is and its public key(s), for anyone to pin.

Sites use the key to check deliveries the node signs (outbound webhooks,
:mod:`exchange.core.webhook`); partners use it to check checkpoints.
"""

from __future__ import annotations

from aiohttp import web

from .keys import NODE
from .middleware import json_response

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.get("/v1/node")
async def node_info(request: web.Request) -> web.Response:
    """The node's id, name, base URL and public signing keys (public information)."""
    node = request.app[NODE]
    cfg = node.config.node
    keys = []
    if node.key is not None:
        pub = node.key.public_key
        keys.append(
            {"key_id": node.key.key_id, "alg": pub.alg, "public_key": pub.b64()}
        )
    # The roster keys this node pins (public): adapters pin them on first contact.
    roster_keys = list(node.config.federation.roster_keys)
    return json_response(
        {
            "id": node.id,
            "name": cfg.name,
            "base_url": cfg.base_url,
            "keys": keys,
            "roster_keys": roster_keys,
        }
    )
