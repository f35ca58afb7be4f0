"""Reading request bodies within limits and deadlines, and strict JSON.

A body is read only once its sender is known: :func:`signed_body` checks the request
signature's covered components, key and ``created`` window from the headers (and the
caller's kind) before it reads a byte, then reads at most the route's limit and checks
the ``Content-Digest``. Anonymous bodies (login forms) get ``http.anonymous_body_bytes``.
Every read must bring bytes within ``http.body_stall_s``, and after that much time the
body must average ``http.body_min_rate`` bytes/s: a client that stalls is cut off (408)
instead of holding memory and a connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import BodyPartReader, web

from exchange.core import httpsig
from exchange.core.canonical import parse_json
from exchange.core.trust import Reader
from exchange.errors import InputError, TooLarge
from schemas.errors import ErrorCode

from .auth import authenticate, require
from .guard import body_too_slow
from .keys import NODE

__all__ = [
    "anonymous_body",
    "body_chunks",
    "check_declared",
    "read_body",
    "read_form_field",
    "read_json",
    "signed_body",
]


def _too_large(limit: int, size: int | None = None) -> TooLarge:
    what = f"request body of {size} bytes" if size is not None else "request body"
    return TooLarge(
        f"{what} is over the limit of {limit} bytes; send fewer items per batch",
        code=ErrorCode.TOO_LARGE,
    )


def check_declared(request: web.Request, limit: int) -> None:
    """Refuse a declared ``Content-Length`` over ``limit`` before reading anything.

    Raises:
        TooLarge: declared over the limit.
    """
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit, request.content_length)


async def body_chunks(request: web.Request, limit: int) -> AsyncIterator[bytes]:
    """The body's chunks as they arrive, within ``limit`` bytes and the deadlines.

    Raises:
        TooLarge: the body (declared or actual) is over the limit.
        RequestTimeout: the body stalled or came under the minimum rate.
    """
    cfg = request.app[NODE].config.http
    check_declared(request, limit)
    loop = asyncio.get_running_loop()
    start = loop.time()
    size = 0
    while True:
        try:
            async with asyncio.timeout(cfg.body_stall_s):
                chunk = await request.content.readany()
        except TimeoutError:
            raise body_too_slow(cfg.body_stall_s) from None
        if not chunk:
            return
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        late = loop.time() - start - cfg.body_stall_s
        if cfg.body_min_rate and late > 0 and size < cfg.body_min_rate * late:
            raise body_too_slow(cfg.body_stall_s)
        yield chunk


async def read_body(request: web.Request, limit: int | None = None) -> bytes:
    """The whole body, refusing more than ``limit`` (``http.max_body_bytes``).

    Raises:
        TooLarge: the body (declared or actual) is over the limit.
        RequestTimeout: the body stalled or came under the minimum rate.
    """
    if limit is None:
        limit = request.app[NODE].config.http.max_body_bytes
    content = request.content
    if content.is_eof() and content.total_bytes <= limit:
        # The whole body already arrived with the headers (most small requests): there
        # is nothing to wait for, so no deadline to keep.
        check_declared(request, limit)
        return content.read_nowait()
    return b"".join([c async for c in body_chunks(request, limit)])


async def signed_body(
    request: web.Request, *kinds: str, defer_replay_check: bool = False
) -> tuple[Reader, bytes]:
    """Authenticate from the headers, refuse callers not of ``kinds``, then read the
    body and check its ``Content-Digest`` (see the module docstring).

    Raises:
        AuthError / Forbidden: before any of the body is read.
        TooLarge, RequestTimeout: see :func:`read_body`.
        AuthError: (``digest_mismatch``) the body does not match its signed digest.
    """
    cfg = request.app[NODE].config.http
    check_declared(request, cfg.max_body_bytes)
    reader = await authenticate(request, None, defer_replay_check=defer_replay_check)
    require(reader, *kinds)
    body = await read_body(request, cfg.max_body_bytes)
    if "Signature-Input" in request.headers:
        httpsig.check_content_digest(request.headers.get("Content-Digest"), body)
    return reader, body


async def anonymous_body(request: web.Request) -> bytes:
    """The body of an unauthenticated request (login forms), within
    ``http.anonymous_body_bytes`` and the body deadlines."""
    return await read_body(request, request.app[NODE].config.http.anonymous_body_bytes)


def read_json(request: web.Request, body: bytes) -> Any:
    """Parse a body with the strict parser (no floats, bounded depth).

    Raises:
        JsonError: malformed, duplicate keys, invalid UTF-8, too deep, floats, big ints.
    """
    return parse_json(
        body, max_depth=request.app[NODE].config.limits.max_depth, allow_floats=False
    )


async def _form_value(request: web.Request, name: str) -> object:
    """The field ``name`` of a form body. Multipart bodies are read part by part and
    file parts are skipped unread, so no temporary file is ever made for them."""
    if request.content_type != "multipart/form-data":
        return (await request.post()).get(name, "")
    value: object = ""
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise ValueError("nested multipart")
        if part.name == name and part.filename is None:
            value = await part.text()
        else:
            await part.release()
    return value


async def read_form_field(request: web.Request, name: str) -> str:
    """One text field of a form body (urlencoded or multipart) from an unauthenticated
    caller (login forms); ``""`` when absent. The body must declare its length, within
    ``http.anonymous_body_bytes``, and arrive within ``http.body_stall_s``.

    Raises:
        TooLarge: declared over the limit.
        RequestTimeout: the body did not arrive in time.
        InputError: (``bad_request``) no declared length, or a malformed body: no or
            empty multipart boundary, a truncated part, an unknown charset or transfer
            encoding, bytes that are not text.
    """
    cfg = request.app[NODE].config.http
    check_declared(request, cfg.anonymous_body_bytes)
    if request.content_length is None and request.body_exists:
        raise InputError(
            "表单须声明长度 / a form body needs a Content-Length",
            code=ErrorCode.BAD_REQUEST,
        )
    try:
        async with asyncio.timeout(cfg.body_stall_s):
            value = await _form_value(request, name)
    except TimeoutError:
        raise body_too_slow(cfg.body_stall_s) from None
    except (
        ValueError,
        LookupError,
        AssertionError,
        TypeError,
        UnicodeError,
        RuntimeError,
    ) as exc:
        raise InputError(
            f"表单格式有误 / the form body is malformed ({type(exc).__name__}); "
            "send application/x-www-form-urlencoded or multipart/form-data",
            code=ErrorCode.BAD_REQUEST,
        ) from None
    return value if isinstance(value, str) else ""
