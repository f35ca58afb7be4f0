"""Request ids, body limits and the one place errors become JSON.

Every :class:`~exchange.errors.ExchangeError` is rendered as
``{"error": {"code", "message"}}`` with its status. aiohttp's own HTTP errors (404 for
unknown routes, 405, 413) are rendered the same way. Anything else is a bug: it is
logged with the request id and answered with a generic 500 that reveals nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from exchange.errors import ExchangeError, InputError, printable
from exchange.logs import REQUEST_ID as REQUEST_ID_VAR
from exchange.storage.activity import SECURITY_CODES
from exchange.storage.database import UNAVAILABLE_ERRORS
from schemas.errors import ErrorCode

from .keys import CLAIMED_SITE, ERROR_CODE, NODE, READER, REQUEST_ID

__all__ = [
    "CLIENT_CLOSED",
    "client_gone",
    "error_middleware",
    "error_response",
    "json_response",
    "observe_middleware",
]

_log = logging.getLogger("exchange.http")
_access = logging.getLogger("exchange.access")
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
        {"error": {"code": code.value, "message": printable(message)}}, status, headers
    )


def _refuse_nul(request: web.Request) -> None:
    """No URL of this API contains NUL; refuse it before it reaches a query."""
    if "\x00" in request.path or any(
        "\x00" in k or "\x00" in v for k, v in request.query.items()
    ):
        raise InputError(
            "the URL contains a NUL character (%00); remove it",
            code=ErrorCode.BAD_REQUEST,
        )


_RID_PREFIX = secrets.token_hex(4)  # per process: workers are started, not forked
_RID_COUNTER = itertools.count()


def _new_request_id() -> str:
    """A request id unique to this process's life (16 hex digits: a random prefix per
    process, then a counter): ids correlate log lines, they are not secrets, so no
    system call for fresh randomness on every request."""
    return f"{_RID_PREFIX}{next(_RID_COUNTER) & 0xFFFFFFFF:08x}"


_HTTP_CODES = {
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.BAD_REQUEST,
    413: ErrorCode.TOO_LARGE,
}


def _unavailable(request: web.Request, rid: str, exc: BaseException) -> web.Response:
    """The database is down or restarting: a temporary condition, not a bug."""
    _log.warning(
        "database unavailable in %s %s [%s]: %s",
        request.method,
        request.path,
        rid,
        type(exc).__name__,
    )
    request[ERROR_CODE] = ErrorCode.DATABASE_UNAVAILABLE.value
    resp503 = error_response(
        ErrorCode.DATABASE_UNAVAILABLE,
        "数据库暂不可用，请稍后重试 / the database is unavailable; retry shortly",
        503,
        rid,
    )
    resp503.headers["Retry-After"] = "1"
    return resp503


@web.middleware
async def error_middleware(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    """Assign a request id and render every error as JSON."""
    rid = request.headers.get("X-Request-Id", "")
    if not rid or len(rid) > 64 or not rid.replace("-", "").isalnum():
        rid = _new_request_id()
    request[REQUEST_ID] = rid
    REQUEST_ID_VAR.set(rid)
    try:
        _refuse_nul(request)
        resp = await handler(request)
    except ExchangeError as err:
        # A refused signing key names its reason (revoked_key, unknown_key, ...).
        reason = err.detail.get("reason")
        request[ERROR_CODE] = reason if reason in SECURITY_CODES else err.code.value
        headers = {"X-Request-Id": rid}
        if "retry_after" in err.detail:  # rate limited, not yet integrated, ...
            headers["Retry-After"] = str(err.detail["retry_after"])
        body = err.to_body()
        body["error"]["message"] = printable(body["error"]["message"])
        return json_response(body, err.status, headers)
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
    except (ConnectionResetError, BrokenPipeError) as exc:
        if not client_gone(request):  # the database's connection, not the client's
            return _unavailable(request, rid, exc)
        _log.info(
            "client closed the connection during %s %s [%s]",
            request.method,
            request.path,
            rid,
        )
        request[ERROR_CODE] = "client_closed"
        return web.Response(status=CLIENT_CLOSED)
    except UNAVAILABLE_ERRORS as exc:  # the database is down or restarting
        return _unavailable(request, rid, exc)
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


CLIENT_CLOSED = 499
"""The status logged and counted for a request whose client hung up (nginx's 499)."""


def client_gone(request: web.Request) -> bool:
    """Whether the client's connection is closed (it hung up)."""
    transport = request.transport
    return transport is None or transport.is_closing()


def _route_name(request: web.Request) -> str:
    info = request.match_info.route.resource
    if info is None:
        return "unmatched"
    return info.canonical


@web.middleware
async def observe_middleware(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    """Time each request, count it, log one JSON access line, note security events."""
    start = time.perf_counter()
    status = 500
    try:
        resp = await handler(request)
        status = resp.status
        return resp
    except (asyncio.CancelledError, ConnectionResetError):
        if client_gone(request):  # cancelled or cut off because the client hung up
            status = CLIENT_CLOSED
        raise
    finally:
        elapsed = time.perf_counter() - start
        node = request.app[NODE]
        route = _route_name(request)
        metrics = getattr(node, "metrics", None)
        if metrics is not None:
            metrics.requests.labels(route, request.method, f"{status // 100}xx").inc()
            metrics.latency.labels(route, request.method).observe(elapsed)
        reader = request.get(READER)
        code = request.get(ERROR_CODE, "")
        _access.info(
            "%s %s %s",
            request.method,
            route,
            status,
            extra={
                "fields": {
                    "route": route,
                    "method": request.method,
                    "status": status,
                    "ms": round(elapsed * 1000, 2),
                    "principal": f"{reader.kind}:{reader.id}"
                    if reader
                    else "anonymous",
                    "request_id": request.get(REQUEST_ID, ""),
                    **({"code": code} if code else {}),
                }
            },
        )
        if code in SECURITY_CODES and status in (401, 403):
            if metrics is not None:
                metrics.security_events.labels(code).inc()
            activity = getattr(node, "activity", None)
            if activity is not None:
                # A stranger's failure is node-wide, counted per source and minute; one
                # naming a registered key is that site's own event.
                site = (
                    reader.id
                    if reader and reader.kind == "site"
                    else request.get(CLAIMED_SITE, "")
                )
                try:
                    await activity.event(
                        "security",
                        site,
                        code,
                        f"{request.method} {route} refused: {code}",
                        {"remote": request.remote or ""},
                        source=request.remote or "",
                    )
                except Exception:  # statistics never fail a request
                    _log.warning("could not record security event", exc_info=True)
