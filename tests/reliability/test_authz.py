"""Authorization matrix: every mounted route × every kind of caller.

Routes come from the app's router (so the ``/dashboard`` and ``/read`` pages are in) and
from :data:`exchange.http.openapi.OPERATIONS` (which says who may call each API route), so
a new route is checked without editing this file. Callers:

=============  ==================================================================
anonymous      no credentials
site_in        a local site in the secret item's audience (circle huaihai)
site_out       a local site outside it (circle yangtze-delta only)
foreign        a site homed on the peer node; its keys came here by replication
mon_in         a monitor whose scope holds the item's author
mon_out        a monitor whose scope does not
peer           the peer node (its key is in the roster)
forged         a node key id of the peer that the roster does not list
=============  ==================================================================

Each cell asserts the exact status where this file knows the route (``EXPECT``), else the
class the operation's ``auth`` implies (refused: exactly 401 for no or bad credentials,
403 for the wrong kind of caller). Every cell asserts that the secret item's title, its
attachment's bytes and (where the request did not name it) its id appear only in cells
that may see them, and no cell answers 5xx.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import Counter
from typing import Any

import aiohttp
import orjson
import pytest

from exchange.core import httpsig
from exchange.core.items import sign_item
from exchange.core.signing import PrivateKey, generate_key
from exchange.http.openapi import OPERATIONS
from exchange.templates import template
from tests.support import wait_until
from tests.support.reliability import lesson, node_entry, roster, write_artifact

pytestmark = pytest.mark.asyncio

ROLES = (
    "anonymous",
    "site_in",
    "site_out",
    "foreign",
    "mon_in",
    "mon_out",
    "peer",
    "forged",
)
SITES = {
    "site_in": "xuzhou-tongshan",
    "site_out": "lianyungang-haizhou",
    "foreign": "suzhou-wuzhong",
}
FED = {
    "backoff_base_ms": 100,
    "backoff_max_s": 1.0,
    "request_timeout_s": 3,
    "pull_interval_ms": 300,
}
SEES = {"site_in", "mon_in"}  # who may see the secret item


def _row(**cells: int) -> dict[str, int]:
    return {r: cells.get(r, cells.get("default", 0)) for r in ROLES}


ITEM_READERS = _row(anonymous=401, forged=401, default=200)
SECRET_READ = _row(anonymous=401, forged=401, site_in=200, mon_in=200, default=404)
PUBLIC = _row(default=200)
EXPECT: dict[tuple[str, str], dict[str, int]] = {
    ("POST", "/v1/items"): _row(
        anonymous=401, forged=401, site_in=201, site_out=201, foreign=403, default=403
    ),
    ("GET", "/v1/items"): ITEM_READERS,
    ("GET", "/v1/items/{id}"): SECRET_READ,
    ("GET", "/v1/items/{id}/receipt"): SECRET_READ,
    ("PUT", "/v1/blobs/{sha256}"): _row(
        anonymous=401, forged=401, site_in=201, site_out=201, foreign=201, default=403
    ),
    ("GET", "/v1/blobs/{sha256}"): SECRET_READ,
    ("POST", "/v1/federation/batch"): _row(
        anonymous=401, forged=401, peer=200, default=403
    ),
    ("GET", "/v1/federation/log"): _row(
        anonymous=401, forged=401, peer=200, default=403
    ),
    ("POST", "/v1/federation/cosign"): _row(
        anonymous=401, forged=401, peer=404, default=403
    ),
    ("GET", "/v1/federation/peers"): _row(
        anonymous=401, forged=401, mon_in=200, mon_out=200, peer=200, default=403
    ),
    ("GET", "/v1/activity"): _row(
        anonymous=401, forged=401, mon_in=200, mon_out=200, default=403
    ),
    ("POST", "/v1/adapters/health"): _row(
        anonymous=401, forged=401, site_in=200, site_out=200, foreign=200, default=403
    ),
    ("GET", "/v1/adapters/health"): _row(
        anonymous=401, forged=401, peer=403, default=200
    ),
    ("GET", "/v1/sites"): PUBLIC,
    ("GET", "/v1/sites/{id}"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/v1/log/checkpoint"): PUBLIC,
    ("GET", "/v1/log/proof/inclusion"): PUBLIC,
    ("GET", "/v1/log/proof/consistency"): PUBLIC,
    ("GET", "/v1/log/entries"): PUBLIC,
    ("GET", "/v1/federation/site-records"): PUBLIC,
    ("GET", "/v1/roster"): PUBLIC,
    ("GET", "/v1/node"): PUBLIC,
    ("GET", "/dashboard"): PUBLIC,
    ("GET", "/dashboard/static/{name}"): PUBLIC,
    ("POST", "/dashboard/login"): _row(
        anonymous=400, mon_in=200, mon_out=200, default=401
    ),
    ("POST", "/dashboard/logout"): PUBLIC,
    ("GET", "/dashboard/events"): _row(
        anonymous=401, forged=401, mon_in=200, mon_out=200, default=403
    ),
}


class World:
    """Node A (under test), its peer B, the principals and the secret."""

    def __init__(self) -> None:
        self.a: Any = None
        self.keys: dict[str, PrivateKey] = {}
        self.tokens: dict[str, str] = {}
        self.secret_id = ""
        self.secret_title = f"机密-AUTHZ-{secrets.token_hex(6)}"
        self.blob = f"BLOBSECRET-{secrets.token_hex(6)}".encode() * 50
        self.blob_sha = hashlib.sha256(self.blob).hexdigest()
        self.public_id = ""
        self.plan_title = f"机密方案-AUTHZ-{secrets.token_hex(6)}"
        self.plan_id = ""


async def _world(node_factory: Any) -> World:
    w = World()
    roster_key = generate_key(key_id="roster#k1")
    pinned = [f"roster#k1 ed25519 {roster_key.public_key.b64()}"]
    a = await node_factory(
        "huaihai",
        federation={"roster_keys": pinned, **FED},
        limits={"site_requests_per_s": 0},
        log={"checkpoint_interval_ms": 50},
    )
    b = await node_factory(
        "yangtze-delta",
        federation={"roster_keys": pinned, **FED},
        log={"checkpoint_interval_ms": 50},
    )
    author = await a.add_site(
        "huaibei-duji", "淮北市杜集区人大常委会", ("huaihai", "yangtze-delta")
    )
    w.keys["site_in"] = await a.add_site(
        "xuzhou-tongshan", "徐州市铜山区人大常委会", ("huaihai",)
    )
    w.keys["site_out"] = await a.add_site(
        "lianyungang-haizhou", "连云港市海州区人大常委会", ("yangtze-delta",)
    )
    w.keys["foreign"] = await b.add_site(
        "suzhou-wuzhong", "苏州市吴中区人大常委会", ("yangtze-delta",)
    )
    w.keys["peer"] = b.node.key
    w.keys["forged"] = generate_key(key_id="yangtze-delta#k7")
    signed = roster(
        [
            node_entry(
                "huaihai",
                a.url,
                a.node.key,
                ["huaibei-duji", "xuzhou-tongshan", "lianyungang-haizhou"],
            ),
            node_entry("yangtze-delta", b.url, b.node.key, ["suzhou-wuzhong"]),
        ],
        {
            "huaihai": ["huaibei-duji", "xuzhou-tongshan"],
            "yangtze-delta": ["huaibei-duji", "lianyungang-haizhou", "suzhou-wuzhong"],
        },
        roster_key,
    )
    for rn in (a, b):
        await rn.node.federation.install(signed)
    w.tokens["mon_in"] = await a.add_monitor("huaibei-municipal", circles=("huaihai",))
    w.tokens["mon_out"] = await a.add_monitor(
        "lianyungang-municipal", sites=("lianyungang-haizhou",)
    )
    async with a.client("huaibei-duji") as c:
        await c.put_blob(w.blob, "application/pdf")
        secret = sign_item(
            lesson(
                "huaibei-duji",
                w.secret_title,
                {"circles": ["huaihai"], "sites": []},
                summary="仅限淮海经济区",
                attachments=[
                    {
                        "name": "机密.pdf",
                        "media_type": "application/pdf",
                        "size": len(w.blob),
                        "sha256": w.blob_sha,
                    }
                ],
            ),
            author,
        )
        w.secret_id = (await c.push(secret))["id"]
        w.public_id = (
            await c.push(sign_item(lesson("huaibei-duji", "公开条目"), author))
        )["id"]
        await c.request("GET", f"/v1/items/{w.public_id}/receipt", params={"wait": 10})
        # A plan only huaihai reads, although site_out participates (the activity cell).
        plan = template("inspection_plan", "huaibei-duji", "lianyungang-haizhou")
        plan["title"] = w.plan_title
        plan["audience"] = {"circles": ["huaihai"], "sites": []}
        w.plan_id = (await c.push(sign_item(plan, author)))["id"]
    # site_out names the secret attachment in an item of its own (the blob cell).
    async with a.client("lianyungang-haizhou") as c:
        borrowed = lesson(
            "lianyungang-haizhou",
            "借用附件",
            attachments=[
                {
                    "name": "x.pdf",
                    "media_type": "application/pdf",
                    "size": len(w.blob),
                    "sha256": w.blob_sha,
                }
            ],
        )
        await c.push(sign_item(borrowed, w.keys["site_out"]))
    # The foreign site's keys reach A the way they always do: with a replicated item.
    async with b.client("suzhou-wuzhong") as c:
        await c.push(
            sign_item(
                lesson(
                    "suzhou-wuzhong",
                    "吴中区经验",
                    {"circles": ["yangtze-delta"], "sites": []},
                ),
                w.keys["foreign"],
            )
        )

    async def foreign_key_known() -> bool:
        return bool(await a.node.sites.keys(["suzhou-wuzhong#k1"]))

    await wait_until(foreign_key_known, 20, "the foreign site's key to replicate")
    w.a = a
    return w


def _request(
    w: World, role: str, method: str, path: str
) -> tuple[str, bytes | None, dict[str, str]]:
    """Concrete target, body and extra headers for one cell."""
    subst = {
        "{id}": w.secret_id,
        "{sha256}": w.blob_sha,
        "{node_id}": "yangtze-delta",
        "{name}": "app.js",
        "{lang}": "en",
    }
    if path == "/v1/sites/{id}":
        subst["{id}"] = "huaibei-duji"
    target = path
    for k, v in subst.items():
        target = target.replace(k, v)
    body: bytes | None = None
    headers: dict[str, str] = {}
    site = SITES.get(role, "huaibei-duji")
    if (method, path) == ("POST", "/v1/items"):
        key = w.keys.get(role) if role in SITES else None
        author_key = key or generate_key(key_id="huaibei-duji#k5")
        body = orjson.dumps(sign_item(lesson(site, f"{role} 推送"), author_key))
    elif (method, path) == ("PUT", "/v1/blobs/{sha256}"):
        body = f"upload by {role} {secrets.token_hex(4)}".encode()
        target = f"/v1/blobs/{hashlib.sha256(body).hexdigest()}"
        headers["Content-Type"] = "application/octet-stream"
    elif (method, path) == ("POST", "/v1/federation/batch"):
        body = b'{"items": []}'
    elif (method, path) == ("POST", "/v1/federation/cosign"):
        body = b'{"size": 1, "note": "x", "cosignature": "y"}'
    elif (method, path) == ("POST", "/v1/adapters/health"):
        body = b'{"started_at": "2026-11-20T09:30:00+08:00", "backlog": 0}'
    elif (method, path) == ("POST", "/dashboard/login"):
        token = w.tokens.get(
            role, "" if role == "anonymous" else secrets.token_urlsafe(32)
        )
        body = orjson.dumps({"token": token})
    elif method in ("POST", "PUT"):
        body = b"{}"
    if path == "/v1/search":
        target += "?q=" + w.secret_title.rsplit("-", 1)[1]  # the secret's own words
    elif path == "/v1/log/proof/inclusion":
        target += "?index=0"
    elif path == "/v1/log/proof/consistency":
        target += "?size1=1&size2=2"
    if body is not None:
        headers.setdefault("Content-Type", "application/json")
    return target, body, headers


async def _call(
    w: World,
    session: aiohttp.ClientSession,
    role: str,
    method: str,
    target: str,
    body: bytes | None,
    headers: dict[str, str],
) -> tuple[int, bytes]:
    authority = w.a.url.split("://", 1)[1]
    hdrs = dict(headers)
    if role in w.tokens and not target.startswith("/dashboard/login"):
        hdrs["Authorization"] = f"Bearer {w.tokens[role]}"
    elif role in w.keys:
        hdrs.update(
            httpsig.sign_request(
                w.keys[role],
                method,
                target,
                authority,
                hdrs,
                body,
                created=int(time.time()),
                nonce=secrets.token_urlsafe(12),
                scheme="http",
            )
        )
    async with session.request(
        method, w.a.url + target, data=body, headers=hdrs, allow_redirects=False
    ) as r:
        if r.headers.get("Content-Type", "").startswith("text/event-stream"):
            return r.status, b""  # a live stream: the status is the answer
        return r.status, await r.read()


async def _plan_step_cells(
    w: World, session: aiohttp.ClientSession, problems: list[str], counts: Counter[str]
) -> dict[str, int]:
    """Each site role pushes an endorsement of the secret plan: a role that may not read
    the plan gets exactly the refusal an unknown plan id gets (no kind, no state)."""
    row = {}
    unknown = "sha256:" + secrets.token_hex(32)
    for role in ("site_in", "site_out"):
        answers = {}
        for name, pid in (("plan", w.plan_id), ("unknown", unknown)):
            step = template("endorsement", SITES[role])
            step["body"]["plan"] = pid
            step["refs"] = [{"rel": "endorses", "id": pid}]
            step["audience"] = {"circles": ["huaihai"], "sites": []}
            body = orjson.dumps({"items": [sign_item(step, w.keys[role])]})
            status, data = await _call(
                w,
                session,
                role,
                "POST",
                "/v1/items",
                body,
                {"Content-Type": "application/json"},
            )
            counts["cells"] += 1
            answers[name] = data.replace(pid.encode(), b"ID")
            row[role] = status
            if status >= 500:
                problems.append(f"plan step as {role}: server error {status}")
        if w.plan_title.encode() in answers["plan"]:
            problems.append(f"plan step as {role}: the refusal names the secret plan")
        if role == "site_out":
            (got,) = orjson.loads(answers["plan"])["results"]
            (unk,) = orjson.loads(answers["unknown"])["results"]
            if got["error"] != unk["error"]:
                problems.append(
                    f"plan step as {role}: refused unlike an unknown plan: "
                    f"{got['error']} vs {unk['error']}"
                )
    return row


def _routes(app: Any) -> list[tuple[str, str]]:
    out = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method in ("HEAD", "OPTIONS", "*") or path is None:
            continue
        out.add((route.method, path))
    return sorted(out)


def _implied(op_auth: tuple[str, ...] | None, role: str) -> set[int] | None:
    """Statuses the operation's ``auth`` implies for a refused cell (None: allowed)."""
    if op_auth is None or not op_auth:
        return None
    kind = {"anonymous": "", "forged": "", "peer": "node"}.get(
        role, "site" if role in SITES else "monitor"
    )
    if not kind:
        return {401}
    return None if kind in op_auth else {403}


async def test_every_route_for_every_caller(node_factory: Any) -> None:
    w = await _world(node_factory)
    ops = {(o.method.upper(), o.path): o for o in OPERATIONS}
    routes = _routes(w.a.server.app)
    assert set(ops) <= set(routes), "documented operations that are not mounted"
    matrix: dict[str, dict[str, int]] = {}
    problems: list[str] = []
    counts: Counter[str] = Counter()
    async with aiohttp.ClientSession() as session:
        for method, path in routes:
            op = ops.get((method, path))
            row = {}
            for role in ROLES:
                target, body, headers = _request(w, role, method, path)
                status, data = await _call(
                    w, session, role, method, target, body, headers
                )
                row[role] = status
                counts["cells"] += 1
                where = f"{method} {path} as {role}"
                expected = EXPECT.get((method, path), {}).get(role)
                implied = _implied(op.auth if op else None, role)
                if expected is not None:
                    counts["exact"] += 1
                    if status != expected:
                        problems.append(
                            f"{where}: {status}, expected {expected}: {data[:200]!r}"
                        )
                elif implied is not None:
                    counts["implied"] += 1
                    if status not in implied:
                        problems.append(
                            f"{where}: {status}, expected one of {implied}: {data[:200]!r}"
                        )
                elif status in (401, 403) and op is not None:
                    problems.append(
                        f"{where}: refused ({status}) but its auth {op.auth} allows it"
                    )
                if status >= 500:
                    problems.append(f"{where}: server error {status}: {data[:200]!r}")
                refused = status in (401, 403)
                counts["refused" if refused else "allowed"] += 1
                if (
                    refused
                    and path.startswith("/v1/")
                    and not data.startswith(b'{"error"')
                ):
                    problems.append(
                        f"{where}: a refusal that is not an error body: {data[:120]!r}"
                    )
                may_see = role in SEES and not refused
                leaks = [
                    m
                    for m, marker in (
                        ("title", w.secret_title.encode()),
                        ("blob", w.blob[:40]),
                        ("plan", w.plan_title.encode()),
                    )
                    if marker in data
                ]
                if (
                    w.secret_id.encode() in data
                    and w.secret_id not in target
                    and not path.startswith("/v1/log/")
                ):
                    leaks.append(
                        "id"
                    )  # log entries are public by design: ids, times only
                if leaks and not may_see:
                    problems.append(
                        f"{where}: leaks the secret item's {', '.join(leaks)}"
                    )
            matrix[f"{method} {path}"] = row
    # The cells that must see the secret do see it (so the leak checks above are not vacuous).
    for route in ("GET /v1/items/{id}", "GET /v1/blobs/{sha256}", "GET /v1/items"):
        assert all(matrix[route][r] == 200 for r in SEES), (route, matrix[route])
    async with aiohttp.ClientSession() as session:
        _, seen = await _call(w, session, "mon_in", "GET", "/v1/activity", None, {})
        assert w.plan_title.encode() in seen  # the activity cells can leak: not vacuous
        matrix["POST /v1/items [plan step]"] = await _plan_step_cells(
            w, session, problems, counts
        )
    write_artifact(
        "authz",
        {
            "routes": len(routes),
            "roles": list(ROLES),
            "cells": counts["cells"],
            "cells_exact": counts["exact"],
            "cells_by_auth_rule": counts["implied"],
            "allowed": counts["allowed"],
            "refused": counts["refused"],
            "problems": len(problems),
            "matrix": matrix,
        },
    )
    assert not problems, "\n".join(problems)
