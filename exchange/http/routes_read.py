"""``/read``: the reading view for partner staff (server-rendered, Chinese first).

Staff of a site sign in with the site's **read token** (``exchange site token SITE``
issues one; only its hash is stored). ``POST /read/login`` exchanges it for a session
cookie — ``HttpOnly``, ``SameSite=Strict``, path ``/read`` — and every page then reads as
that site: the list and search show only items in the site's audience, an item page
404s for anything else, attachments download only through an item the site may see.

Pages are rendered on the server from Jinja2 templates with autoescaping; highlighted
titles and snippets come pre-escaped from :mod:`exchange.core.search_text` with only
``<mark>`` added. The JS and CSS are served by the node (no CDN) under a strict
Content-Security-Policy. The language is a cookie, switched at ``/read/lang/{zh|en}``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from importlib import resources
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from exchange.core.trust import Reader
from exchange.errors import ExchangeError, InputError
from exchange.service.reading import item_view
from schemas.errors import ErrorCode
from schemas.items import KINDS

from .keys import NODE, READER
from .read.i18n import FIELDS, KIND_LABELS, LANGS, RELS, strings
from .routes_blobs import blob_response
from .routes_search import parse_filter

__all__ = ["READ_COOKIE", "routes"]

routes = web.RouteTableDef()
READ_COOKIE = "exchange_read"
_LANG_COOKIE = "exchange_read_lang"
_TTL = timedelta(hours=8)
_STATIC = {"read.css": "text/css", "read.js": "text/javascript"}
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self'; script-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "object-src 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_env = jinja2.Environment(
    loader=jinja2.PackageLoader("exchange.http", "read/templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _lang(request: web.Request) -> str:
    lang = request.cookies.get(_LANG_COOKIE, "zh")
    return lang if lang in LANGS else "zh"


async def _site_reader(request: web.Request) -> tuple[Reader, Any] | None:
    node = request.app[NODE]
    site_id = await node.read_access.session_site(request.cookies.get(READ_COOKIE, ""))
    site = await node.sites.cached_site(site_id) if site_id else None
    if site is None:
        return None
    reader = Reader("site", site.id, circles=frozenset(site.circles))
    request[READER] = reader
    return reader, site


async def _render(
    request: web.Request, name: str, status: int = 200, **ctx: Any
) -> web.Response:
    lang = _lang(request)
    node = request.app[NODE]
    names = {s.id: s.name for s in await node.sites.list_sites()}
    html = _env.get_template(name).render(
        t=strings(lang),
        f=FIELDS[lang],
        k=KIND_LABELS[lang],
        rels=RELS[lang],
        lang=lang,
        names=names,
        path=request.path_qs,
        kinds=KINDS,
        **ctx,
    )
    return web.Response(
        text=html,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers=_HEADERS,
    )


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    return (
        origin is None
        or origin in ("null",)
        or origin.split("://", 1)[-1] == request.host
    )


@routes.get("/read")
async def index(request: web.Request) -> web.Response:
    """The list: search box, filters, hits (or the newest items); login when signed out."""
    who = await _site_reader(request)
    if who is None:
        return await _render(request, "login.html", error=None)
    reader, site = who
    node = request.app[NODE]
    q = request.query
    text = (q.get("q") or "").strip()
    error = None
    result = None
    try:
        flt = parse_filter(q)
        result = await node.search.search(
            reader, text, flt, cursor=q.get("cursor") or None, limit=20
        )
    except InputError as err:
        error = err.message
    nxt = None
    if result is not None and result.next_cursor:
        params = {k: v for k, v in q.items() if k != "cursor" and v}
        nxt = "/read?" + urlencode({**params, "cursor": result.next_cursor})
    circles = sorted(await node.sites.circles())
    return await _render(
        request,
        "list.html",
        status=400 if error else 200,
        site=site,
        q=q,
        text=text,
        result=result,
        error=error,
        next_url=nxt,
        circles=circles,
    )


@routes.get("/read/items/{id}")
async def item(request: web.Request) -> web.Response:
    """One item, rendered for its kind, with its signature and log receipt checked."""
    who = await _site_reader(request)
    if who is None:
        return await _render(request, "login.html", status=401, error=None)
    reader, site = who
    try:
        view = await item_view(request.app[NODE], request.match_info["id"], reader)
    except ExchangeError as err:
        return await _render(
            request, "missing.html", status=err.status, site=site, message=err.message
        )
    return await _render(
        request,
        "item.html",
        site=site,
        v=view,
        doc=view.doc,
        body=view.doc.get("body") or {},
    )


@routes.get("/read/blobs/{sha256}")
async def blob(request: web.Request) -> web.StreamResponse:
    """An attachment of an item the signed-in site may see (``?name=`` for the file name)."""
    who = await _site_reader(request)
    if who is None:
        raise web.HTTPUnauthorized()
    reader, _ = who
    node = request.app[NODE]
    sha = request.match_info["sha256"]
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise web.HTTPNotFound()
    if not await node.items.blob_visible(sha, reader):
        raise web.HTTPNotFound()
    return await blob_response(
        request, sha, filename=request.query.get("name") or sha, cache="private, no-store"
    )


@routes.post("/read/login")
async def login(request: web.Request) -> web.Response:
    """Exchange the site's read token (form field ``token``) for a session cookie."""
    node = request.app[NODE]
    if not _same_origin(request):
        raise web.HTTPForbidden()
    form = await request.post()
    token = str(form.get("token", "")).strip()
    t = strings(_lang(request))
    if not token or len(token) > 200:
        return await _render(request, "login.html", status=400, error=t["no_token"])
    site_id = await node.read_access.site_for_token(token)
    if site_id is None:
        return await _render(request, "login.html", status=401, error=t["bad_login"])
    session = await node.read_access.new_session(site_id, _TTL)
    resp = web.HTTPSeeOther("/read")
    resp.set_cookie(
        READ_COOKIE,
        session,
        httponly=True,
        samesite="Strict",
        path="/read",
        max_age=int(_TTL.total_seconds()),
        secure=request.secure,
    )
    raise resp


@routes.post("/read/logout")
async def logout(request: web.Request) -> web.Response:
    """End the session."""
    if not _same_origin(request):
        raise web.HTTPForbidden()
    cookie = request.cookies.get(READ_COOKIE)
    if cookie:
        await request.app[NODE].read_access.end_session(cookie)
    resp = web.HTTPSeeOther("/read")
    resp.del_cookie(READ_COOKIE, path="/read")
    raise resp


_SAFE_NEXT = re.compile(r"^/read(?:/items/[A-Za-z0-9:_-]{1,100})?(?:\?[^#\s\\]*)?$")


def _local_next(nxt: str) -> str:
    """``nxt`` if it is a page of the reading view (the list or an item), else ``/read``:
    no other origin, no dot segments (also percent-encoded), no attachment."""
    return nxt if _SAFE_NEXT.match(nxt) else "/read"


@routes.get("/read/lang/{lang}")
async def switch_language(request: web.Request) -> web.Response:
    """Set the language cookie and go back (``?next=`` within /read)."""
    lang = request.match_info["lang"]
    if lang not in LANGS:
        raise InputError(
            f"language must be one of {', '.join(LANGS)}", code=ErrorCode.BAD_REQUEST
        )
    resp = web.HTTPSeeOther(_local_next(request.query.get("next", "/read")))
    resp.set_cookie(
        _LANG_COOKIE,
        lang,
        path="/read",
        samesite="Strict",
        max_age=365 * 86400,
        httponly=True,
    )
    raise resp


@routes.get("/read/static/{name}")
async def static(request: web.Request) -> web.Response:
    """The view's CSS and JS."""
    name = request.match_info["name"]
    if name not in _STATIC:
        raise web.HTTPNotFound()
    data = resources.files("exchange.http.read").joinpath("static", name).read_bytes()
    return web.Response(
        body=data,
        content_type=_STATIC[name],
        charset="utf-8",
        headers={
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "public, max-age=300",
        },
    )
