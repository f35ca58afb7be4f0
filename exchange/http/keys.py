"""Typed application and request state keys."""

from __future__ import annotations

from aiohttp import web

from exchange.core.trust import Reader
from exchange.node import Node

__all__ = ["BODY", "ERROR_CODE", "NODE", "READER", "REQUEST_ID", "reader_of"]

NODE = web.AppKey("node", Node)
READER = web.RequestKey("reader", Reader)
BODY = web.RequestKey("body", bytes)
REQUEST_ID = web.RequestKey("request_id", str)
ERROR_CODE = web.RequestKey("error_code", str)


def reader_of(request: web.Request) -> Reader:
    """The authenticated principal of a request (anonymous if none)."""
    return request.get(READER) or Reader("anonymous")
