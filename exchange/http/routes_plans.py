"""``/v1/plans``: joint inspection plans with their computed state.

Thin handlers: authenticate, parse the query, one call to
:class:`~exchange.service.plans.PlanService`, respond. The state is computed from the
signed items the caller may see; nothing here writes.
"""

from __future__ import annotations

from datetime import date

from aiohttp import web

from exchange.errors import InputError
from schemas.errors import ErrorCode

from .auth import authenticate, require
from .keys import NODE
from .middleware import json_response

__all__ = ["routes"]

routes = web.RouteTableDef()


def _int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name, "")
    try:
        value = int(raw) if raw else default
    except ValueError:
        value = lo - 1
    if not lo <= value <= hi:
        raise InputError(
            f"query parameter {name} must be an integer in {lo}..{hi}",
            code=ErrorCode.QUERY_INVALID,
        )
    return value


def _today(request: web.Request) -> date | None:
    raw = request.query.get("today")
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InputError(
            "today must be a date YYYY-MM-DD", code=ErrorCode.QUERY_INVALID
        ) from None


@routes.get("/v1/plans")
async def list_plans(request: web.Request) -> web.Response:
    """Plans visible to the caller, each with its computed state and overdue flag."""
    node = request.app[NODE]
    reader = await authenticate(request, b"")
    require(reader, "site", "monitor", "node")
    body = await node.plans.list_plans(
        reader,
        cursor=_int(request, "cursor", -1, -1, 2**62),
        limit=_int(request, "limit", 50, 1, 200),
        today=_today(request),
    )
    return json_response(body)


@routes.get("/v1/plans/{id}")
async def get_plan(request: web.Request) -> web.Response:
    """One plan: state, timeline, who has and has not endorsed or filed, deadlines."""
    node = request.app[NODE]
    reader = await authenticate(request, b"")
    require(reader, "site", "monitor", "node")
    body = await node.plans.view(request.match_info["id"], reader, _today(request))
    return json_response(body)
