"""``GET /v1/search``: full-text search over the items the caller may see."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from exchange.errors import InputError
from exchange.service.search import Hit, SearchResult
from exchange.storage.search import SearchFilter
from schemas.errors import ErrorCode
from schemas.items import KINDS

from .auth import authenticate, require
from .keys import NODE
from .middleware import json_response

__all__ = ["hit_json", "parse_filter", "parse_limit", "query_time", "routes"]

routes = web.RouteTableDef()
_CST = timezone(timedelta(hours=8))  # whole-day filters mean days in China
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


def _bad(msg: str) -> InputError:
    return InputError(msg, code=ErrorCode.BAD_REQUEST)


def query_time(name: str, raw: str, *, end: bool = False) -> datetime:
    """A query parameter that is an ISO date (a whole day in China; ``end`` makes it the
    exclusive next midnight) or a timestamp (UTC when it has no offset), as an aware
    datetime that PostgreSQL and Python can both hold (years 1 to 9999 in UTC).

    Raises:
        InputError: not such a date or timestamp, or outside that range once in UTC.
    """
    bad = _bad(
        f"{name} must be an ISO 8601 date or timestamp between the years 1 and "
        "9999, e.g. 2026-11-01"
    )
    if len(raw) > 40:
        raise bad
    try:
        if len(raw) == 10:
            d = datetime.fromisoformat(raw).replace(tzinfo=_CST)
            ts = d + timedelta(days=1) if end else d
        else:
            ts = datetime.fromisoformat(raw)
            ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
        return ts.astimezone(UTC)
    except (ValueError, OverflowError):
        raise bad from None


def parse_filter(q: MultiMapping[str]) -> SearchFilter:
    """Search filters from query parameters.

    Raises:
        InputError: an unknown kind, a malformed site/circle id, tag or date.
    """
    kind = q.get("kind") or None
    if kind is not None and kind not in KINDS:
        raise _bad(f"kind must be one of {', '.join(KINDS)}")
    for name in ("author", "circle"):
        v = q.get(name)
        if v and not _SLUG.match(v):
            raise _bad(f"{name} must be an id like huaibei-duji")
    tag = q.get("tag") or None
    if tag is not None and len(tag) > 40:
        raise _bad("tag is at most 40 characters")
    since = query_time("since", q["since"]) if q.get("since") else None
    until = query_time("until", q["until"], end=True) if q.get("until") else None
    if since and until and until <= since:
        raise _bad("until must be after since")
    return SearchFilter(
        kind=kind,
        author=q.get("author") or None,
        circle=q.get("circle") or None,
        tag=tag,
        since=since,
        until=until,
    )


def parse_limit(q: MultiMapping[str], default: int = 20, hi: int = 50) -> int:
    """The ``limit`` parameter.

    Raises:
        InputError: not an integer in 1..hi.
    """
    raw = q.get("limit") or ""
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= hi:
        raise _bad(f"limit must be an integer from 1 to {hi}")
    return int(raw)


def hit_json(h: Hit, retracted: bool = False) -> dict[str, Any]:
    """A ``SearchHit`` body."""
    it = h.item
    return {
        "retracted": retracted,
        "index": it.idx,
        "id": it.id,
        "kind": it.kind,
        "author": it.author,
        "created_at": str(h.doc.get("created_at", "")),
        "title": str(h.doc.get("title", "")),
        "title_html": h.title_html,
        "snippet_html": h.snippet_html,
        "tags": list(h.doc.get("tags") or []),
        "circles": list(it.audience_circles),
    }


def page_json(res: SearchResult, retracted: set[str]) -> dict[str, Any]:
    """A ``SearchPage`` body (``retracted``: ids of hits withdrawn by their author)."""
    return {
        "hits": [hit_json(h, h.item.id in retracted) for h in res.hits],
        "next_cursor": res.next_cursor,
        "terms": [t.text for t in res.query.terms] if res.query else [],
    }


@routes.get("/v1/search")
async def search(request: web.Request) -> web.Response:
    """Items matching ``q`` that the caller may see, best first (filters as /v1/items)."""
    node = request.app[NODE]
    reader = await authenticate(request, b"")
    require(reader, "site", "monitor", "node")
    q = request.query
    if "q" not in q:
        raise InputError(
            "q is required, e.g. ?q=安全生产法", code=ErrorCode.QUERY_INVALID
        )
    text = q["q"]
    if not text.strip():
        raise InputError(
            "搜索词为空 / the query is empty: type a word, e.g. 安全生产法",
            code=ErrorCode.QUERY_INVALID,
        )
    res = await node.search.search(
        reader,
        text,
        parse_filter(q),
        cursor=q.get("cursor") or None,
        limit=parse_limit(q),
    )
    retracted = await node.search.store.retracted([h.item.id for h in res.hits], reader)
    return json_response(page_json(res, retracted))
