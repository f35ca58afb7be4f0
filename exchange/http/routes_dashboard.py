"""``/dashboard``: the municipal committee's live view (static page + SSE).

Login exchanges a monitor's bearer token for an ``HttpOnly``, ``SameSite=Strict`` session
cookie; the page then reads ``/v1/activity`` with that cookie and listens on
``/dashboard/events`` (server-sent events), which says "changed" whenever this node's log
grows, so the numbers update without a reload. Everything (HTML, JS, CSS, the chart) is
served by the node: no CDN.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from importlib import resources
from typing import Any

from aiohttp import web

from exchange.errors import AuthError, InputError
from schemas.errors import ErrorCode
from schemas.labels import (
    ERROR_LABELS,
    KIND_LABELS,
    LANGS,
    SECURITY_ADVICE,
    STATE_LABELS,
    text,
)

from .auth import (
    SESSION_COOKIE,
    authenticate,
    came_over_tls,
    check_login_origin,
    require,
)
from .body import anonymous_body, read_form_field, read_json
from .keys import NODE
from .middleware import json_response

__all__ = ["Broadcaster", "broadcaster_ctx", "routes"]

routes = web.RouteTableDef()
_log = logging.getLogger(__name__)
_STATIC = {
    "app.js": "text/javascript",
    "style.css": "text/css",
    "index.html": "text/html",
}
_SESSION_TTL = timedelta(hours=8)


class Broadcaster:
    """Fans LISTEN notifications of new items out to SSE subscribers."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[str]] = set()

    def subscribe(self) -> asyncio.Queue[str]:
        q: asyncio.Queue[str] = asyncio.Queue(maxsize=16)
        self._queues.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[str]) -> None:
        self._queues.discard(q)

    def publish(self, data: str) -> None:
        for q in list(self._queues):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(data)


BROADCASTER = web.AppKey("broadcaster", Broadcaster)


async def broadcaster_ctx(app: web.Application) -> AsyncIterator[None]:
    """Fan the node's ``exchange_items`` notifications out to SSE subscribers."""
    b = Broadcaster()
    app[BROADCASTER] = b
    unsubscribe = app[NODE].notifier.subscribe(
        "exchange_items", lambda payload: b.publish(str(payload)), nudge=False
    )
    try:
        yield
    finally:
        unsubscribe()


def _asset(name: str) -> bytes:
    return resources.files("exchange.http.dashboard").joinpath(name).read_bytes()


@routes.get("/dashboard")
async def page(request: web.Request) -> web.Response:
    """The dashboard page (login form when there is no session)."""
    return web.Response(
        body=_asset("index.html"),
        content_type="text/html",
        charset="utf-8",
        headers={
            "Content-Security-Policy": "default-src 'self'; style-src 'self'; "
            "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
            "form-action 'self'; object-src 'none'; base-uri 'none'",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        },
    )


@routes.get("/dashboard/static/{name}")
async def static(request: web.Request) -> web.Response:
    """JS and CSS of the dashboard."""
    name = request.match_info["name"]
    if name not in _STATIC or name == "index.html":
        raise web.HTTPNotFound()
    return web.Response(
        body=_asset(name),
        content_type=_STATIC[name],
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


def _labels() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for lang in LANGS:
        out[lang] = {
            "kinds": {k: text(v, lang) for k, v in KIND_LABELS.items()},
            "states": {k: text(v, lang) for k, v in STATE_LABELS.items()},
            "errors": {k: text(v, lang) for k, v in ERROR_LABELS.items()},
            "security": {
                k: [text(what, lang), text(todo, lang)]
                for k, (what, todo) in SECURITY_ADVICE.items()
            },
        }
    return out


@routes.get("/dashboard/labels.json")
async def labels(request: web.Request) -> web.Response:
    """Names of kinds, plan states and codes in both languages (from schemas.labels)."""
    return json_response(_labels(), headers={"Cache-Control": "public, max-age=300"})


@routes.post("/dashboard/login")
async def login(request: web.Request) -> web.Response:
    """Exchange a monitor token (form or JSON ``token``) for a session cookie."""
    node = request.app[NODE]
    check_login_origin(request)
    if request.content_type == "application/json":
        body = read_json(
            request, await anonymous_body(request)
        )  # strict: 400 on bad JSON
        token = str(body.get("token", "")) if isinstance(body, dict) else ""
    else:
        token = await read_form_field(request, "token")
    if not token or len(token) > 200:
        raise InputError(
            "请输入监督令牌 / a monitor token is required", code=ErrorCode.BAD_REQUEST
        )
    mon = await node.sites.monitor_by_token(token)
    if mon is None:
        raise AuthError(
            "令牌无效或已吊销 / unknown or revoked token",
            code=ErrorCode.UNAUTHENTICATED,
        )
    session = await node.activity.new_session(mon.id, _SESSION_TTL)
    resp = json_response({"monitor": mon.id, "name": mon.name})
    resp.set_cookie(
        SESSION_COOKIE,
        session,
        httponly=True,
        samesite="Strict",
        path="/",
        max_age=int(_SESSION_TTL.total_seconds()),
        secure=came_over_tls(request),
    )
    return resp


@routes.post("/dashboard/logout")
async def logout(request: web.Request) -> web.Response:
    """End the session."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        await request.app[NODE].activity.end_session(cookie)
    resp = json_response({"ok": True})
    resp.del_cookie(SESSION_COOKIE, path="/")
    return resp


@routes.get("/dashboard/events")
async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``changed`` when the log grows, ``ping`` every 15 s."""
    reader = await authenticate(request, b"")
    require(reader, "monitor")
    b = request.app[BROADCASTER]
    q = b.subscribe()
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await resp.prepare(request)
    try:
        await resp.write(b"retry: 3000\nevent: hello\ndata: {}\n\n")
        while True:
            try:
                size = await asyncio.wait_for(q.get(), timeout=15)
                await resp.write(
                    f'event: changed\ndata: {{"log_size": {int(size)}}}\n\n'.encode()
                )
            except TimeoutError:
                await resp.write(b"event: ping\ndata: {}\n\n")
    except ConnectionResetError:  # the client left; cancellation propagates
        pass
    finally:
        b.unsubscribe(q)
    return resp
