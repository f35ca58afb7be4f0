"""Reading request bodies within limits, and strict JSON."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from exchange.core.canonical import parse_json
from exchange.errors import TooLarge
from schemas.errors import ErrorCode

from .keys import NODE

__all__ = ["read_body", "read_json"]


async def read_body(request: web.Request) -> bytes:
    """The whole body, refusing more than ``http.max_body_bytes``.

    Raises:
        TooLarge: the body (declared or actual) is over the limit.
    """
    limit = request.app[NODE].config.http.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(
            f"request body of {request.content_length} bytes is over the limit of {limit}; "
            "send fewer items per batch",
            code=ErrorCode.TOO_LARGE,
        )
    chunks: list[bytes] = []
    size = 0
    # StreamReader.read(n) may return fewer bytes than are coming: read to the end.
    async for chunk in request.content.iter_chunked(256 * 1024):
        size += len(chunk)
        if size > limit:
            raise TooLarge(
                f"request body is over the limit of {limit} bytes; send fewer items per batch",
                code=ErrorCode.TOO_LARGE,
            )
        chunks.append(chunk)
    return b"".join(chunks)


def read_json(request: web.Request, body: bytes) -> Any:
    """Parse a body with the strict parser (no floats, bounded depth).

    Raises:
        JsonError: malformed, duplicate keys, invalid UTF-8, too deep, floats, big ints.
    """
    return parse_json(
        body, max_depth=request.app[NODE].config.limits.max_depth, allow_floats=False
    )
