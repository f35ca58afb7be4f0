"""Request ids, body limits and the one place errors become JSON.

Every :class:`~exchange.errors.ExchangeError` is rendered as
``{"error": {"code", "message"}}`` with its status. aiohttp's own HTTP errors (404 for
unknown routes, 405, 413) are rendered the same way. Anything else is a bug: it is
logged with the request id and answered with a generic 500 that reveals nothing.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from exchange.errors import ExchangeError
from schemas.errors import ErrorCode

from .keys import REQUEST_ID

__all__ = ["error_middleware", "error_response", "json_response"]

_log = logging.getLogger("exchange.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(
    body: object, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON response serialised with orjson."""
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_response(
    code: ErrorCode, message: str, status: int, request_id: str = ""
) -> web.Response:
    """A JSON error response."""
    headers = {"X-Request-Id": request_id} if request_id else None
    return json_response(
        {"error": {"code": code.value, "message": message}}, status, headers
    )


_HTTP_CODES = {
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.BAD_REQUEST,
    413: ErrorCode.TOO_LARGE,
}


@web.middleware
async def error_middleware(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    """Assign a request id and render every error as JSON."""
    rid = request.headers.get("X-Request-Id", "")
    if not rid or len(rid) > 64 or not rid.replace("-", "").isalnum():
        rid = secrets.token_hex(8)
    request[REQUEST_ID] = rid
    try:
        resp = await handler(request)
    except ExchangeError as err:
        headers = {"X-Request-Id": rid}
        if err.code is ErrorCode.RATE_LIMITED and "retry_after" in err.detail:
            headers["Retry-After"] = str(err.detail["retry_after"])
        return json_response(err.to_body(), err.status, headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, ErrorCode.BAD_REQUEST)
        msg = exc.reason or "request refused"
        if exc.status == 404:
            msg = f"no such endpoint: {request.method} {request.path}"
        elif exc.status == 405:
            msg = f"{request.method} is not allowed on {request.path}"
        elif exc.status == 413:
            msg = "request body is over the size limit"
        return error_response(code, msg, exc.status, rid)
    except Exception:
        _log.exception(
            "unhandled error in %s %s [%s]", request.method, request.path, rid
        )
        return error_response(
            ErrorCode.INTERNAL,
            f"internal error; quote request id {rid} to the operator",
            500,
            rid,
        )
    resp.headers.setdefault("X-Request-Id", rid)
    return resp
