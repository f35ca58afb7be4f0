"""Typed application and request state keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from exchange.core.trust import Reader

if TYPE_CHECKING:
    from exchange.node import Node

__all__ = [
    "BODY",
    "CLAIMED_SITE",
    "ERROR_CODE",
    "NODE",
    "READER",
    "REQUEST_ID",
    "reader_of",
]

NODE: web.AppKey[Node] = web.AppKey("node")
READER = web.RequestKey("reader", Reader)
BODY = web.RequestKey("body", bytes)
REQUEST_ID = web.RequestKey("request_id", str)
ERROR_CODE = web.RequestKey("error_code", str)
CLAIMED_SITE = web.RequestKey("claimed_site", str)
"""The registered site whose key a request's signature names (set before it is checked:
a refusal is then that site's security event, not a stranger's)."""


def reader_of(request: web.Request) -> Reader:
    """The authenticated principal of a request (anonymous if none)."""
    return request.get(READER) or Reader("anonymous")
