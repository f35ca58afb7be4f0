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
import orjson
from aiohttp import web

from exchange.core.plans import STATES, PlanStatus
from exchange.core.present import body_blocks
from exchange.core.trust import Reader
from exchange.errors import ExchangeError, InputError, NotFound
from exchange.service.reading import directory, item_view
from schemas.errors import ErrorCode
from schemas.items import KINDS, PLAN_KINDS
from schemas.labels import (
    ERROR_LABELS,
    KIND_LABELS,
    REL_LABELS,
    STATE_LABELS,
    STEP_LABELS,
)
from schemas.labels import (
    text as label_text,
)

from .auth import came_over_tls, check_login_origin
from .body import read_form_field
from .keys import NODE, READER
from .read.i18n import LANGS, strings
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
    "Referrer-Policy": "same-origin",
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
    names = ctx.pop("dir", None) or await directory(node)
    html = _env.get_template(name).render(
        t=strings(lang),
        k={kd: label_text(lab, lang) for kd, lab in KIND_LABELS.items()},
        rels={r: label_text(lab, lang) for r, lab in REL_LABELS.items()},
        errors={c: label_text(lab, lang) for c, lab in ERROR_LABELS.items()},
        lang=lang,
        names=names.sites,
        circle_names=names.circles,
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
    names = await directory(node)
    hits = result.hits if result is not None else []
    retracted = await node.search.store.retracted([h.item.id for h in hits], reader)
    lang = _lang(request)
    facts = {
        h.item.id: [
            b
            for b in body_blocks(
                h.item.kind, h.doc.get("body") or {}, lang, names=names.sites
            )
            if b.fact and b.shape not in ("items", "sites")
        ][:3]
        for h in hits
    }
    return await _render(
        request,
        "list.html",
        status=400 if error else 200,
        dir=names,
        retracted=retracted,
        facts=facts,
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
    node = request.app[NODE]
    lang = _lang(request)
    try:
        view = await item_view(node, request.match_info["id"], reader)
    except ExchangeError as err:
        return await _render(
            request, "missing.html", status=err.status, site=site, message=err.message
        )
    names = await directory(node)
    body = view.doc.get("body") or {}
    ids = sorted(_item_ids(body))
    titles = {
        i: str(orjson.loads(it.canonical).get("title", ""))
        for i, it in (await node.search.store.by_ids(ids, reader)).items()
    }
    plan = await _plan_panel(
        node, view.item.kind, view.item.id, body, reader, lang, names.sites
    )
    shas = [
        str(a.get("sha256"))
        for a in view.doc.get("attachments") or []
        if isinstance(a, dict)
    ]
    return await _render(
        request,
        "item.html",
        site=site,
        v=view,
        doc=view.doc,
        here=await node.blobs.stored(shas),
        blocks=body_blocks(
            view.item.kind, body, lang, names=names.sites, titles=titles
        ),
        plan=plan,
        dir=names,
    )


def _item_ids(value: Any) -> set[str]:
    """Every item id named anywhere in a body."""
    if isinstance(value, str):
        return {value} if value.startswith("sha256:") and len(value) == 71 else set()
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return set().union(*(_item_ids(v) for v in value)) if value else set()
    return set()


async def _plan_panel(
    node: Any,
    kind: str,
    item_id: str,
    body: dict[str, Any],
    reader: Reader,
    lang: str,
    names: dict[str, str],
) -> dict[str, Any] | None:
    """The plan's current state and its steps in order, for a plan or one of its steps."""
    if kind == "inspection_plan":
        plan_id = item_id
    elif kind in PLAN_KINDS and isinstance(body.get("plan"), str):
        plan_id = body["plan"]
    else:
        return None
    try:
        st: PlanStatus = (await node.plans.status(plan_id, reader))[0]
    except NotFound:
        return None
    cst = timedelta(hours=8)
    return {
        "id": plan_id,
        "title": st.plan.title,
        "is_step": plan_id != item_id,
        "state": st.state,
        "state_label": label_text(STATE_LABELS[st.state], lang),
        "state_index": STATES.index(st.state),
        "states": [(s, label_text(STATE_LABELS[s], lang)) for s in STATES],
        "round": st.round,
        "retracted": st.retracted,
        "steps": [
            {
                "id": t.id,
                "when": (
                    t.created_at + cst - (t.created_at.utcoffset() or timedelta())
                ).strftime("%Y-%m-%d %H:%M"),
                "label": label_text(STEP_LABELS[t.action], lang),
                "detail": t.detail(lang),
                "author": names.get(t.author, t.author),
                "applied": t.applied,
                "state": label_text(STATE_LABELS[t.state_after], lang),
                "reason": t.refusal.text(lang, names) if t.refusal else "",
            }
            for t in st.timeline
            if t.action != "related"
        ],
    }


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
        request,
        sha,
        filename=request.query.get("name") or sha,
        cache="private, no-store",
    )


@routes.post("/read/login")
async def login(request: web.Request) -> web.Response:
    """Exchange the site's read token (form field ``token``) for a session cookie."""
    node = request.app[NODE]
    check_login_origin(request)
    token = (await read_form_field(request, "token")).strip()
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
        secure=came_over_tls(request),
    )
    raise resp


@routes.post("/read/logout")
async def logout(request: web.Request) -> web.Response:
    """End the session."""
    check_login_origin(request)
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
