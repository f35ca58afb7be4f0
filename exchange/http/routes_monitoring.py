"""Health, readiness and the API description."""

from __future__ import annotations

import asyncio

from aiohttp import web

from .keys import NODE
from .middleware import json_response
from .openapi import build_openapi

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers and can still heal itself (503 once it gave up
    restarting its embedded PostgreSQL, so that the supervisor acts)."""
    problem = getattr(request.app[NODE], "health_problem", None)
    if problem:
        return json_response(
            {
                "status": "failed",
                "checks": {"process": "ok", "database": f"down: {problem}"},
            },
            503,
        )
    return json_response({"status": "ok", "checks": {"process": "ok"}})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Readiness: the database answers within a second."""
    node = request.app[NODE]
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(1.0):
            async with node.db.pool.acquire() as c:  # type: ignore[union-attr]
                await c.fetchval("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready", with the reason
        checks["database"] = f"unavailable: {type(exc).__name__}"
    seq = getattr(node, "sequencer", None)
    if seq is not None:
        checks["log"] = seq.refusal or ("writer" if seq.is_writer else "standby")
    ok = checks["database"] == "ok" and not checks.get("log", "").startswith("refusing")
    return json_response(
        {"status": "ok" if ok else "degraded", "checks": checks}, 200 if ok else 503
    )


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 description, generated from the wire models."""
    return json_response(build_openapi(request.app))
