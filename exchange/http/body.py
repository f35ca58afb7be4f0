"""Reading request bodies within limits, and strict JSON."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from exchange.core.canonical import parse_json
from exchange.errors import InputError, TooLarge
from schemas.errors import ErrorCode

from .keys import NODE

__all__ = ["read_body", "read_form_field", "read_json"]


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


async def read_form_field(request: web.Request, name: str) -> str:
    """One text field of a form body (urlencoded or multipart); ``""`` when absent.

    Raises:
        InputError: (``bad_request``) a malformed body: no or empty multipart boundary,
            a truncated part, an unknown charset or transfer encoding, bytes that are not
            text.
    """
    try:
        form = await request.post()
        value = form.get(name, "")
    except (ValueError, LookupError, AssertionError, TypeError, UnicodeError,
            RuntimeError) as exc:
        raise InputError(
            f"表单格式有误 / the form body is malformed ({type(exc).__name__}); "
            "send application/x-www-form-urlencoded or multipart/form-data",
            code=ErrorCode.BAD_REQUEST,
        ) from None
    return value if isinstance(value, str) else ""
