"""Who is calling: RFC 9421 signatures for sites (and nodes), bearer tokens for monitors.

A signed request's key id names its owner. The key must be current (not revoked, already
valid), the signature must cover method, path, query, authority and — for a body — the
``content-digest`` and carry ``alg``; the authority must be this node's own (its public
base URL, listen address or the address the connection reached, never just whatever
``Host`` the client sent); it must be fresh (``created`` within the window) and its nonce unused:
each nonce is remembered until the window has passed, so a captured request cannot be
replayed. Monitors present ``Authorization: Bearer <token>``; only a hash of each token is
stored. Requests with neither are anonymous, which only the public endpoints accept.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import re
import time
import weakref
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web

from exchange.core import httpsig
from exchange.core.signing import PublicKey
from exchange.core.trust import Reader
from exchange.errors import AuthError, Forbidden, RateLimited, VerificationError
from schemas.errors import ErrorCode

from .keys import CLAIMED_SITE, NODE, READER

if TYPE_CHECKING:
    from exchange.node import Node

__all__ = [
    "SESSION_COOKIE",
    "authenticate",
    "came_over_tls",
    "check_login_origin",
    "confirm_not_replayed",
    "own_authorities",
    "require",
]

SESSION_COOKIE = "exchange_session"

_REPLAY_CHECK = web.RequestKey("replay_check", asyncio.Future)

_KEYID = re.compile(r'keyid="([^"\\]{1,200})"')


async def _site_reader(node: Node, site_id: str) -> Reader:
    site = await node.sites.cached_site(site_id)
    if site is None:
        raise AuthError(
            f"site {site_id} is not registered here",
            code=ErrorCode.BAD_REQUEST_SIGNATURE,
        )
    return Reader("site", site.id, circles=frozenset(site.circles))


async def authenticate(
    request: web.Request, body: bytes | None, *, defer_replay_check: bool = False
) -> Reader:
    """Establish the request's principal and store it on the request.

    Args:
        request: The request.
        body: The full body for digest checking, or ``None`` when the handler checks the
            digest itself while streaming (blob uploads).
        defer_replay_check: Start the nonce claim (a database round trip) but do not
            wait for it: the handler does its CPU work meanwhile and must call
            :func:`confirm_not_replayed` before it changes anything (item pushes).

    Raises:
        AuthError: a signature or token is present but not valid.
    """
    node = request.app[NODE]
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        token = auth[7:].strip()
        mon = await node.sites.monitor_by_token(token) if token else None
        if mon is None:
            raise AuthError(
                "unknown or revoked monitor token", code=ErrorCode.UNAUTHENTICATED
            )
        scope = await node.sites.sites_in_scope(mon.circles, mon.sites)
        reader = Reader(
            "monitor", mon.id, circles=frozenset(mon.circles), sites=frozenset(scope)
        )
        request[READER] = reader
        return reader
    if "Signature-Input" not in request.headers and "Signature" not in request.headers:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie and request.method in ("GET", "HEAD"):
            # Dashboard sessions are read-only: SameSite=Strict cookies on safe methods.
            monitor_id = await node.activity.session_monitor(cookie)
            mon = await node.sites.monitor_by_id(monitor_id) if monitor_id else None
            if mon is not None:
                scope = await node.sites.sites_in_scope(mon.circles, mon.sites)
                reader = Reader(
                    "monitor",
                    mon.id,
                    circles=frozenset(mon.circles),
                    sites=frozenset(scope),
                )
                request[READER] = reader
                return reader
        reader = Reader("anonymous")
        request[READER] = reader
        return reader
    m = _KEYID.search(request.headers.get("Signature-Input", ""))
    if m is None:
        raise AuthError(
            "Signature-Input has no keyid", code=ErrorCode.BAD_REQUEST_SIGNATURE
        )
    key_id = m.group(1)
    key_owner = key_id.partition("#")[0]
    fed = getattr(node, "federation", None)
    is_node = fed is not None and fed.is_node(key_owner)
    node_keys: dict[str, PublicKey] = (
        fed.view.node_keys(key_owner)
        if fed is not None and is_node and fed.view
        else {}
    )
    keys = {} if is_node else await node.sites.keys([key_id])
    now = datetime.now(UTC)
    known = node_keys.get(key_id) or keys.get(key_id)
    if key_id in keys:
        request[CLAIMED_SITE] = keys[key_id].owner
    algs = node.ingestor.accepted_suites()
    if known is not None and algs and known.alg not in algs:
        raise VerificationError(
            f"this federation does not accept {known.alg!r} request signatures "
            f"(accepted: {', '.join(sorted(algs))}); sign with a key of an accepted suite",
            code=ErrorCode.UNSUPPORTED_ALGORITHM,
        )

    def lookup(kid: str) -> PublicKey:
        if is_node:
            nk = node_keys.get(kid)
            if nk is None:
                raise VerificationError(
                    f"node key {kid} is not in the roster", code=ErrorCode.UNKNOWN_KEY
                )
            return nk
        rec = keys.get(kid)
        if rec is None:
            raise VerificationError(
                f"key {kid} is not known here", code=ErrorCode.UNKNOWN_KEY
            )
        if rec.revoked_at is not None and rec.revoked_at <= now:
            raise VerificationError(f"key {kid} is revoked", code=ErrorCode.REVOKED_KEY)
        if rec.valid_from > now:
            raise VerificationError(
                f"key {kid} is not valid yet", code=ErrorCode.KEY_NOT_YET_VALID
            )
        return rec.public

    cfg = node.config.http
    _check_authority(request, node)
    verified = httpsig.verify_request(
        request.method,
        request.rel_url.raw_path_qs
        if request.rel_url.raw_query_string
        else request.rel_url.raw_path,
        request.host,
        request.headers,
        body,
        key_lookup=lookup,
        now=int(time.time()),
        max_age=cfg.signature_max_age,
        max_skew=cfg.signature_max_skew,
        scheme=request.scheme,
        digest_deferred=body is None,
    )
    expires = datetime.fromtimestamp(verified.created, UTC) + timedelta(
        seconds=cfg.signature_max_age + cfg.signature_max_skew
    )
    claim = node.nonces.claim(verified.key_id, verified.nonce, expires)
    if defer_replay_check:
        task = asyncio.ensure_future(claim)
        task.add_done_callback(_consume)  # a handler that failed early never awaits it
        request[_REPLAY_CHECK] = task
    elif not await claim:
        raise _replayed()
    if is_node:
        assert fed is not None
        node_reader: Reader = fed.node_reader(key_owner)
        request[READER] = node_reader
        return node_reader
    owner = keys[verified.key_id].owner
    wait = node.rate_limiter.check(owner, time.monotonic())
    if wait > 0:
        raise RateLimited(
            f"too many requests from {owner}; retry in {wait:.1f} s (batch items per push)",
            code=ErrorCode.RATE_LIMITED,
            detail={"retry_after": max(1, math.ceil(wait))},
        )
    reader = await _site_reader(node, owner)
    request[READER] = reader
    return reader


def _authority(value: str, scheme: str) -> str:
    """``host[:port]`` lowercased, without the scheme's default port."""
    value = value.strip().lower()
    default = {"https": ":443", "http": ":80"}.get(scheme, "")
    return value[: -len(default)] if default and value.endswith(default) else value


_CONFIGURED: weakref.WeakKeyDictionary[Any, tuple[Any, str, frozenset[str]]] = (
    weakref.WeakKeyDictionary()
)
"""Per node: the roster view and scheme it was built for, and the authorities the
node's configuration and roster entry name, so a request does not parse URLs again (a
republished roster is a new view, and rebuilds it)."""


def own_authorities(request: web.Request, node: Node) -> set[str]:
    """The authorities a request to this node may be signed for: the configured public
    base URL's (in the node's configuration and in its roster entry), the configured
    listen address, ``http.extra_authorities`` (in-cluster names) and the address the
    connection reached (``localhost`` too when that is a loopback address)."""
    fed = getattr(node, "federation", None)
    view = fed.view if fed is not None else None
    cached = _CONFIGURED.get(node)
    if cached is None or cached[0] is not view or cached[1] != request.scheme:
        entry = view.node(node.id) if view is not None else None
        configured = set()
        for url in (node.config.node.base_url, str(entry.base_url) if entry else ""):
            base = urlsplit(url)
            if base.netloc:
                configured.add(_authority(base.netloc, base.scheme))
        configured.add(_authority(node.config.http.listen, request.scheme))
        configured.update(
            _authority(name, request.scheme)
            for name in node.config.http.extra_authorities
        )
        cached = (view, request.scheme, frozenset(configured))
        _CONFIGURED[node] = cached
    out = set(cached[2])
    sock = request.transport.get_extra_info("sockname") if request.transport else None
    if isinstance(sock, tuple) and len(sock) >= 2:
        host, port = str(sock[0]), int(sock[1])
        shown = f"[{host}]" if ":" in host else host
        out.add(_authority(f"{shown}:{port}", request.scheme))
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(host.split("%")[0]).is_loopback:
                out.add(_authority(f"localhost:{port}", request.scheme))
    return out


def _check_authority(request: web.Request, node: Node) -> None:
    """Refuse a signed request whose ``@authority`` (its Host) is not this node's."""
    host = _authority(request.host, request.scheme)
    if host not in own_authorities(request, node):
        raise AuthError(
            f"the request is signed for {host[:100]!r}, which is not this node "
            f"(sign for {node.config.node.base_url or node.config.http.listen})",
            code=ErrorCode.BAD_REQUEST_SIGNATURE,
        )


def came_over_tls(request: web.Request) -> bool:
    """Whether the browser's connection was TLS: directly, or to a proxy listed in
    ``http.trusted_proxies`` that says so in ``X-Forwarded-Proto`` (the header is
    ignored from anyone else)."""
    if request.secure:
        return True
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    if proto != "https" or not request.remote:
        return False
    try:
        peer = ipaddress.ip_address(request.remote)
    except ValueError:
        return False
    return any(
        peer in ipaddress.ip_network(net, strict=False)
        for net in request.app[NODE].config.http.trusted_proxies
    )


def check_login_origin(request: web.Request) -> None:
    """Refuse a login form posted from another page's origin (login CSRF).

    A browser names the posting page's origin; it must be this node as the browser
    reached it. ``Origin: null`` (sandboxed frames, ``data:`` pages) is refused; no
    ``Origin`` at all means a non-browser client, which a forged form cannot be.

    Raises:
        Forbidden: a foreign or opaque origin.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return
    parts = urlsplit(origin)
    if (
        origin != "null"
        and parts.netloc
        and (
            _authority(parts.netloc, parts.scheme)
            == _authority(request.host, parts.scheme)
        )
    ):
        return
    raise Forbidden(
        "登录请求来自其他网页，已拒绝 / a login posted from another origin is refused",
        code=ErrorCode.FORBIDDEN,
    )


def _replayed() -> AuthError:
    return AuthError(
        "this request was already received (nonce reused); sign each request afresh",
        code=ErrorCode.REPLAYED_REQUEST,
    )


def _consume(task: asyncio.Future[bool]) -> None:
    if not task.cancelled():
        task.exception()


async def confirm_not_replayed(request: web.Request) -> None:
    """Wait for a deferred nonce claim (see :func:`authenticate`).

    Raises:
        AuthError: ``replayed_request``.
    """
    task = request.get(_REPLAY_CHECK)
    if task is not None and not await task:
        raise _replayed()


def require(reader: Reader, *kinds: str) -> None:
    """Refuse unless the principal is one of ``kinds``.

    Raises:
        AuthError: anonymous caller.
        Forbidden: authenticated, but the wrong kind of principal.
    """
    if reader.kind in kinds:
        return
    if reader.kind == "anonymous":
        raise AuthError(
            "this endpoint needs a signed request (site) or a monitor token",
            code=ErrorCode.UNAUTHENTICATED,
        )
    raise Forbidden(f"a {reader.kind} may not do this", code=ErrorCode.FORBIDDEN)
