"""``GET /v1/activity`` (monitors) and ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

from aiohttp import web

from exchange.errors import InputError
from exchange.service.activity import activity_report
from schemas.errors import ErrorCode

from .auth import authenticate, require
from .keys import NODE
from .middleware import json_response

__all__ = ["routes"]

routes = web.RouteTableDef()


def _days(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name, "")
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 366:
        raise InputError(
            f"{name} must be a whole number of days, 1–366", code=ErrorCode.BAD_REQUEST
        )
    return int(raw)


@routes.get("/v1/activity")
async def activity(request: web.Request) -> web.Response:
    """Exchange activity of the sites in the monitor's scope."""
    reader = await authenticate(request, b"")
    require(reader, "monitor")
    report = await activity_report(
        request.app[NODE],
        reader,
        days=_days(request, "days", 30),
        inactive_days=_days(request, "inactive_days", 14),
    )
    return json_response(report)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition (counts and gauges only, no item content)."""
    m = request.app[NODE].metrics
    await m.refresh()
    return web.Response(
        body=m.render(),
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )
