"""Nothing leaks past an audience, and nothing is trusted that was not signed.

Each test here is one hole a hostile partner could use, tried the way that partner would:
a blob fetched by hash through an item of its own, a blob that runs script in the node's
origin, a redirect that leaves the reading view. Real node, real PostgreSQL, real HTTP on
127.0.0.1.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import subprocess
import sys
import time
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from exchange.client import ExchangeClient
from exchange.core import httpsig
from exchange.core.canonical import item_id
from exchange.core.items import sign_item
from exchange.core.signing import generate_key
from exchange.errors import AuthError, ConfigError, ExchangeError, JsonError, NotFound
from exchange.templates import template
from exchange.verify import verify_path
from schemas.items import PLAN_KINDS
from tests.support.plans import Flow
from tests.support.reliability import lesson, node_entry, roster

pytestmark = pytest.mark.asyncio

AUTHOR = "huaibei-duji"  # circles huaihai, yangtze-delta
INSIDE = "xuzhou-tongshan"  # circle huaihai
OUTSIDE = "lianyungang-haizhou"  # circle yangtze-delta only


async def _sites(node: Any) -> None:
    await node.add_site(AUTHOR, "淮北市杜集区人大常委会", ("huaihai", "yangtze-delta"))
    await node.add_site(INSIDE, "徐州市铜山区人大常委会", ("huaihai",))
    await node.add_site(OUTSIDE, "连云港市海州区人大常委会", ("yangtze-delta",))


def _attachment(data: bytes, name: str, media: str) -> dict[str, Any]:
    return {
        "name": name,
        "media_type": media,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def _browser() -> aiohttp.ClientSession:
    """A browser-like client: keeps cookies, also for 127.0.0.1."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def _get(node: Any, site: str, path: str) -> tuple[int, bytes, Any]:
    """A signed GET as ``site``: status, body, headers."""
    async with node.client(site) as c:
        hdrs = c.signed_headers("GET", path, None)
        async with c.session.get(node.url + path, headers=hdrs) as r:
            return r.status, await r.read(), r.headers


# ------------------------------------------------------------------ blobs
async def test_a_blob_is_not_readable_through_an_item_of_another_author(
    node: Any,
) -> None:
    await _sites(node)
    secret = b"SECRET-ATTACHMENT-" + secrets.token_bytes(2000)
    sha = hashlib.sha256(secret).hexdigest()
    async with node.client(AUTHOR) as c:
        await c.put_blob(secret, "application/pdf")
        await c.push(
            sign_item(
                lesson(
                    AUTHOR,
                    "机密方案",
                    {"circles": ["huaihai"], "sites": []},
                    attachments=[_attachment(secret, "机密.pdf", "application/pdf")],
                ),
                node.keys[AUTHOR],
            )
        )
    async with node.client(INSIDE) as c:  # in the audience: reads it
        assert await c.get_blob(sha) == secret
    # The outsider pushes an item of its own, public, naming the secret's hash.
    async with node.client(OUTSIDE) as c:
        await c.push(
            sign_item(
                lesson(
                    OUTSIDE,
                    "借用附件",
                    attachments=[_attachment(secret, "x.pdf", "application/pdf")],
                ),
                node.keys[OUTSIDE],
            )
        )
        with pytest.raises(NotFound):
            await c.get_blob(sha)
        # Claiming the hash by upload without the bytes does not help either.
        with pytest.raises(ExchangeError):
            await c.request(
                "PUT",
                f"/v1/blobs/{sha}",
                body=b"not the bytes",
                headers={"Content-Type": "application/pdf"},
            )
        with pytest.raises(NotFound):
            await c.get_blob(sha)
    # No existence oracle: the refusal is the one an unknown hash gets.
    unknown = hashlib.sha256(secrets.token_bytes(16)).hexdigest()
    s1, b1, _ = await _get(node, OUTSIDE, f"/v1/blobs/{sha}")
    s2, b2, _ = await _get(node, OUTSIDE, f"/v1/blobs/{unknown}")
    assert (s1, b1.replace(sha.encode(), b"H")) == (
        s2,
        b2.replace(unknown.encode(), b"H"),
    )
    assert s1 == 404
    # The reading view applies the same rule.
    token = await node.node.read_access.issue_token(OUTSIDE)
    async with _browser() as s:
        async with s.post(
            node.url + "/read/login", data={"token": token}, allow_redirects=False
        ) as r:
            assert r.status == 303
        async with s.get(node.url + f"/read/blobs/{sha}") as r:
            assert r.status == 404


async def test_a_site_that_uploads_the_same_bytes_may_attach_them(node: Any) -> None:
    await _sites(node)
    data = b"PUBLIC-LAW-TEXT-" + secrets.token_bytes(500)
    sha = hashlib.sha256(data).hexdigest()
    async with node.client(AUTHOR) as c:
        await c.put_blob(data, "application/pdf")
    async with node.client(OUTSIDE) as c:
        await c.put_blob(data, "application/pdf")  # has the bytes: may attach them
        await c.push(
            sign_item(
                lesson(
                    OUTSIDE,
                    "法规原文",
                    attachments=[_attachment(data, "法规.pdf", "application/pdf")],
                ),
                node.keys[OUTSIDE],
            )
        )
    async with node.client(INSIDE) as c:
        assert await c.get_blob(sha) == data


async def _put(node: Any, site: str, data: bytes, media: str) -> tuple[int, Any]:
    """A signed blob upload as ``site``: status and body."""
    path = f"/v1/blobs/{hashlib.sha256(data).hexdigest()}"
    async with node.client(site) as c:
        hdrs = c.signed_headers("PUT", path, data, {"Content-Type": media})
        async with c.session.put(node.url + path, data=data, headers=hdrs) as r:
            return r.status, await r.json()


async def test_an_upload_does_not_tell_whether_another_site_sent_the_bytes(
    node_factory: Any,
) -> None:
    """Confirmation of a file: a site that guesses a document (a draft report, a list
    of names) used to learn from the answer whether another congress had uploaded it:
    200 and the other uploader's media type for bytes already stored, 201 for new ones,
    and no quota check on the first. Now the answer depends only on what this site
    sent before."""
    node = await node_factory(limits={"blob_quota_bytes": 1500})
    await _sites(node)
    known = b"DRAFT-REPORT-" + secrets.token_bytes(600)
    fresh = b"OWN-NOTES-" + secrets.token_bytes(600)
    assert (await _put(node, AUTHOR, known, "application/pdf"))[0] == 201
    got_known = await _put(node, OUTSIDE, known, "text/plain")
    got_fresh = await _put(node, OUTSIDE, fresh, "text/plain")
    assert got_known[0] == got_fresh[0] == 201
    assert got_known[1]["media_type"] == got_fresh[1]["media_type"] == "text/plain"
    # Sent again by the same site: the same "already yours" answer for both.
    assert (await _put(node, OUTSIDE, known, "text/plain"))[0] == 200
    assert (await _put(node, OUTSIDE, fresh, "text/plain"))[0] == 200
    # Past its quota, the site is refused whether or not the bytes are stored.
    other = b"SECOND-DRAFT-" + secrets.token_bytes(600)
    assert (await _put(node, AUTHOR, other, "application/pdf"))[0] == 201
    refused_known = await _put(node, OUTSIDE, other, "text/plain")
    refused_fresh = await _put(
        node, OUTSIDE, b"MORE-" + secrets.token_bytes(600), "text/plain"
    )
    assert refused_known[0] == refused_fresh[0] == 413
    assert refused_known[1]["error"]["code"] == refused_fresh[1]["error"]["code"]


@pytest.mark.parametrize(
    ("declared", "served"),
    [
        ("text/html", "application/octet-stream"),
        ("image/svg+xml", "application/octet-stream"),
        ("application/xhtml+xml", "application/octet-stream"),
        ("text/javascript", "application/octet-stream"),
        ("application/pdf", "application/pdf"),
        ("image/png", "image/png"),
    ],
)
async def test_blobs_never_render_in_the_nodes_origin(
    node: Any, declared: str, served: str
) -> None:
    await _sites(node)
    data = b"<html><script>fetch('/v1/activity')</script></html>" + secrets.token_bytes(
        8
    )
    sha = hashlib.sha256(data).hexdigest()
    async with node.client(AUTHOR) as c:
        await c.put_blob(data, declared)
        await c.push(
            sign_item(
                lesson(
                    AUTHOR, "附件", attachments=[_attachment(data, "a.html", declared)]
                ),
                node.keys[AUTHOR],
            )
        )
    status, body, headers = await _get(node, INSIDE, f"/v1/blobs/{sha}")
    assert status == 200 and body == data
    assert headers["Content-Type"].split(";")[0] == served
    assert headers["Content-Disposition"].startswith("attachment")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in headers["Content-Security-Policy"]
    token = await node.node.read_access.issue_token(INSIDE)
    async with _browser() as s:
        async with s.post(
            node.url + "/read/login", data={"token": token}, allow_redirects=False
        ) as r:
            assert r.status == 303
        async with s.get(
            node.url + f"/read/blobs/{sha}", params={"name": "a.html"}
        ) as r:
            assert r.status == 200 and await r.read() == data
            assert r.headers["Content-Type"].split(";")[0] == served
            assert r.headers["Content-Disposition"].startswith("attachment")
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            assert "sandbox" in r.headers["Content-Security-Policy"]


async def test_pages_carry_their_own_csp_and_the_language_switch_stays_local(
    node: Any,
) -> None:
    async with aiohttp.ClientSession() as s:
        for page in ("/dashboard", "/read"):
            async with s.get(node.url + page) as r:
                csp = r.headers.get("Content-Security-Policy", "")
            assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, page
            assert "object-src 'none'" in csp and "base-uri 'none'" in csp, page
        sha = "a" * 64
        for nxt, want in [
            ("/read?q=%E6%B3%95", "/read?q=%E6%B3%95"),
            ("/read/items/sha256:" + "1" * 64, "/read/items/sha256:" + "1" * 64),
            ("/read/../v1/blobs/" + sha, "/read"),
            ("/read/%2e%2e/v1/blobs/" + sha, "/read"),
            ("/read/%2E%2E/dashboard", "/read"),
            ("/read/./../v1/activity", "/read"),
            ("/read/blobs/" + sha, "/read"),
            ("/readx", "/read"),
            ("//evil.example/read", "/read"),
            ("/read\\..\\v1", "/read"),
            ("https://evil.example/read", "/read"),
            ("/read/\t/x", "/read"),
        ]:
            async with s.get(
                node.url + "/read/lang/en", params={"next": nxt}, allow_redirects=False
            ) as r:
                assert r.status == 303, nxt
                assert r.headers["Location"] == want, nxt


# ------------------------------------------------------------------ request signatures
def _hand_signed(
    key: Any,
    method: str,
    target: str,
    authority: str,
    *,
    components: tuple[str, ...] = ("@method", "@path", "@query", "@authority"),
    alg: bool = True,
) -> dict[str, str]:
    """Signature headers made by hand, so a test can leave a component or ``alg`` out."""
    params: dict[str, Any] = {"created": int(time.time()), "keyid": key.key_id}
    if alg:
        params["alg"] = key.alg
    params["nonce"] = secrets.token_urlsafe(12)
    inner = httpsig.InnerList(tuple(httpsig.Item(c) for c in components), params)
    ser = httpsig.serialize_inner_list(inner)
    base = httpsig.signature_base(
        method, target, authority, {}, components, ser, scheme="http"
    )
    return {
        "Signature-Input": f"sig1={ser}",
        "Signature": httpsig.serialize_dictionary(
            {"sig1": httpsig.Item(key.sign(base))}
        ),
    }


async def _status(url: str, target: str, headers: dict[str, str]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url + target, headers=headers) as r:
        body = await r.json(content_type=None)
        return r.status, (body.get("error") or {}).get("code", "") if body else ""


async def test_request_signatures_must_cover_authority_and_carry_alg(node: Any) -> None:
    await _sites(node)
    key = node.keys[INSIDE]
    here = node.url.split("://", 1)[1]
    ok = _hand_signed(key, "GET", "/v1/items", here)
    assert (await _status(node.url, "/v1/items", ok))[0] == 200
    no_authority = _hand_signed(
        key, "GET", "/v1/items", here, components=("@method", "@path", "@query")
    )
    assert await _status(node.url, "/v1/items", no_authority) == (
        401,
        "bad_request_signature",
    )
    no_alg = _hand_signed(key, "GET", "/v1/items", here, alg=False)
    assert await _status(node.url, "/v1/items", no_alg) == (
        401,
        "bad_request_signature",
    )


async def test_a_request_signed_for_another_node_is_refused(node_factory: Any) -> None:
    node = await node_factory(
        node={"id": "huaihai", "base_url": "https://huaihai.example"}
    )
    await _sites(node)
    key = node.keys[INSIDE]
    # Signed for node Y and presented to this node with Y's Host: refused.
    for other in ("yangtze.example", "yangtze.example:8700", "127.0.0.2:8700"):
        hdrs = {**_hand_signed(key, "GET", "/v1/items", other), "Host": other}
        assert await _status(node.url, "/v1/items", hdrs) == (
            401,
            "bad_request_signature",
        ), other
    # Signed for this node's public URL (as through its TLS proxy), or its listen address.
    public = {
        **_hand_signed(key, "GET", "/v1/items", "huaihai.example"),
        "Host": "huaihai.example",
    }
    assert (await _status(node.url, "/v1/items", public))[0] == 200
    direct = _hand_signed(key, "GET", "/v1/items", node.url.split("://", 1)[1])
    assert (await _status(node.url, "/v1/items", direct))[0] == 200
    # The client and the templates sign what the node expects.
    async with node.client(INSIDE) as c:
        assert "items" in await c.list_items()


async def test_an_in_cluster_name_is_accepted_only_when_configured(
    node_factory: Any,
) -> None:
    """Clients inside a cluster reach the node by its service name and sign for that
    name; they were refused, with no setting to allow it."""
    internal = "congress-exchange.exchange.svc:8700"
    plain = await node_factory(
        node={"id": "huaihai", "base_url": "https://huaihai.example"}
    )
    named = await node_factory(
        "yangtze-delta",
        node={"base_url": "https://yangtze.example"},
        http={"extra_authorities": ["Congress-Exchange.exchange.svc:8700"]},
    )
    for rn, status in ((plain, 401), (named, 200)):
        await _sites(rn)
        hdrs = {
            **_hand_signed(rn.keys[INSIDE], "GET", "/v1/items", internal),
            "Host": internal,
        }
        assert (await _status(rn.url, "/v1/items", hdrs))[0] == status
    other = {
        **_hand_signed(named.keys[INSIDE], "GET", "/v1/items", "elsewhere.svc:8700"),
        "Host": "elsewhere.svc:8700",
    }
    assert (await _status(named.url, "/v1/items", other))[0] == 401


# ------------------------------------------------------------------ plans and their steps
PARTNER = "suzhou-wuzhong"  # circle yangtze-delta; a participant of the secret plan
RESTRICTED = {"circles": ["huaihai"], "sites": [PARTNER]}


async def _plan_world(node: Any) -> Flow:
    await _sites(node)
    await node.add_site(PARTNER, "苏州市吴中区人大常委会", ("yangtze-delta",))
    flow = Flow(dict(node.keys), participants=(INSIDE, PARTNER))
    flow.plan_item["audience"] = dict(RESTRICTED)
    flow.plan_item["title"] = "机密联合检查方案"
    flow.plan_id = item_id(flow.plan_item)
    async with node.client(AUTHOR) as c:
        await c.push(flow.signed(flow.plan_item))
    return flow


def _step(item: dict[str, Any], audience: dict[str, list[str]]) -> dict[str, Any]:
    item["audience"] = {k: list(v) for k, v in audience.items()}
    return item


async def _push_refusal(node: Any, flow: Flow, item: dict[str, Any]) -> dict[str, Any]:
    """Push and return the refusal (error body) the pusher sees."""
    async with node.client(item["author"]) as c:
        res = await c.request(
            "POST",
            "/v1/items",
            params={},
            body=orjson.dumps({"items": [flow.signed(item)]}),
        )
    (result,) = res["results"]
    assert result["status"] == "refused", result
    return dict(result["error"])


async def test_a_monitor_sees_only_plans_its_scope_may_read(node: Any) -> None:
    flow = await _plan_world(node)
    async with node.client(INSIDE) as c:
        await c.push(flow.signed(_step(flow.endorse(INSIDE), RESTRICTED)))
    # The partner is in this monitor's scope and participates, but did not write the plan.
    token = await node.add_monitor("suzhou-municipal", sites=(PARTNER,))
    async with node.client(token=token) as c:
        activity = await c.request("GET", "/v1/activity")
        with pytest.raises(NotFound):
            await c.request("GET", f"/v1/plans/{flow.plan_id}")
        plans = await c.request("GET", "/v1/plans")
    raw = orjson.dumps(activity).decode()
    assert flow.plan_id not in raw and "机密联合检查方案" not in raw
    assert flow.plan_id not in orjson.dumps(plans).decode()
    # A monitor whose scope holds the author sees it, with the endorsement.
    token = await node.add_monitor("huaibei-municipal", sites=(AUTHOR, INSIDE))
    async with node.client(token=token) as c:
        activity = await c.request("GET", "/v1/activity")
    (plan,) = [p for p in activity["plans"] if p["id"] == flow.plan_id]
    assert [e["site"] for e in plan["endorsements"]] == [INSIDE]


async def test_a_refused_step_never_reveals_a_plan_the_pusher_cannot_read(
    node: Any,
) -> None:
    flow = await _plan_world(node)
    hidden_lesson = lesson(AUTHOR, "内部经验", {"circles": ["huaihai"], "sites": []})
    async with node.client(AUTHOR) as c:
        hidden_id = (await c.push(sign_item(hidden_lesson, node.keys[AUTHOR])))["id"]
    unknown = "sha256:" + secrets.token_hex(32)

    def endorsement(plan_id: str) -> dict[str, Any]:
        it = _step(flow.endorse(OUTSIDE), {"circles": [], "sites": [OUTSIDE]})
        it["body"]["plan"] = plan_id
        it["refs"] = [{"rel": "endorses", "id": plan_id}]
        return it

    answers = {}
    for name, pid in (
        ("plan", flow.plan_id),
        ("lesson", hidden_id),
        ("unknown", unknown),
    ):
        err = await _push_refusal(node, flow, endorsement(pid))
        answers[name] = orjson.dumps(err).decode().replace(pid, "ID")
    assert answers["plan"] == answers["unknown"], answers
    assert answers["lesson"] == answers["unknown"], answers
    assert (
        "inspection_plan" not in answers["plan"] and "lesson" not in answers["lesson"]
    )


async def test_a_plan_step_may_not_reach_beyond_its_plans_audience(node: Any) -> None:
    flow = await _plan_world(node)
    for wider in (
        {"circles": [], "sites": []},  # every partner
        {"circles": ["huaihai", "yangtze-delta"], "sites": []},
        {"circles": ["huaihai"], "sites": [PARTNER, OUTSIDE]},
    ):
        err = await _push_refusal(node, flow, _step(flow.endorse(INSIDE), wider))
        assert err["code"] == "invalid_transition", err
        assert err["detail"]["reason"] == "audience_wider", err
    async with node.client(
        INSIDE
    ) as c:  # the plan's own audience (or narrower) is fine
        await c.push(flow.signed(_step(flow.endorse(INSIDE), RESTRICTED)))
    async with node.client(PARTNER) as c:
        await c.push(
            flow.signed(
                _step(flow.endorse(PARTNER), {"circles": [], "sites": [PARTNER]})
            )
        )


async def test_plan_step_templates_copy_the_plans_audience(tmp_path: Any) -> None:
    flow = Flow(participants=(INSIDE, PARTNER))
    flow.plan_item["audience"] = dict(RESTRICTED)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(orjson.dumps(flow.plan_item).decode(), encoding="utf-8")
    for kind in PLAN_KINDS:
        it = template(kind, INSIDE, PARTNER, plan=flow.plan_item)
        assert it["audience"] == RESTRICTED, kind
        assert it["body"]["plan"] == item_id(flow.plan_item), kind
        assert {"rel": PLAN_KINDS[kind], "id": item_id(flow.plan_item)} in it["refs"], (
            kind
        )
    out = tmp_path / "step.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "exchange",
            "item",
            "new",
            "--kind",
            "endorsement",
            "--author",
            INSIDE,
            "--plan",
            str(plan_file),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert orjson.loads(out.read_bytes())["audience"] == RESTRICTED


# ------------------------------------------------------------------ sessions and tokens
async def _cli(
    tmp_path: Any, node: Any, *args: str
) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "node.toml"
    cfg.write_text(
        f'[node]\nid = "huaihai"\ndata_dir = "{tmp_path / "data"}"\n'
        f'[database]\nurl = "{node.node.db.url}"\n',
        encoding="utf-8",
    )
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "exchange", *args, "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )


async def _dashboard_session(node: Any, token: str) -> str:
    async with (
        aiohttp.ClientSession() as s,
        s.post(node.url + "/dashboard/login", json={"token": token}) as r,
    ):
        assert r.status == 200, await r.text()
        return r.cookies["exchange_session"].value


async def _with_cookie(node: Any, path: str, name: str, value: str) -> int:
    async with (
        aiohttp.ClientSession(cookies={name: value}) as s,
        s.get(node.url + path, allow_redirects=False) as r,
    ):
        await r.read()
        return r.status


async def test_rotating_or_revoking_a_token_ends_its_sessions(
    node: Any, tmp_path: Any
) -> None:
    await _sites(node)
    old = await node.add_monitor("huaibei-municipal", circles=("huaihai",))
    cookie = await _dashboard_session(node, old)
    assert await _with_cookie(node, "/v1/activity", "exchange_session", cookie) == 200
    new = await node.add_monitor("huaibei-municipal", circles=("huaihai",))  # re-issued
    assert await _with_cookie(node, "/v1/activity", "exchange_session", cookie) == 401
    cookie = await _dashboard_session(node, new)
    assert await _with_cookie(node, "/v1/activity", "exchange_session", cookie) == 200
    listed = await _cli(tmp_path, node, "monitor", "list")
    assert listed.returncode == 0, listed.stderr
    assert "huaibei-municipal" in listed.stdout and new not in listed.stdout
    revoked = await _cli(tmp_path, node, "monitor", "revoke", "huaibei-municipal")
    assert revoked.returncode == 0, revoked.stderr
    assert await _with_cookie(node, "/v1/activity", "exchange_session", cookie) == 401
    async with node.client(token=new) as c:
        with pytest.raises(AuthError):
            await c.request("GET", "/v1/activity")
    listed = await _cli(tmp_path, node, "monitor", "list")
    assert "revoked" in listed.stdout
    assert (await _cli(tmp_path, node, "monitor", "revoke", "nobody")).returncode == 1
    # The reading view: a revoked read token ends its sessions and cannot sign in again.
    token = await node.node.read_access.issue_token(INSIDE)
    async with _browser() as s:
        async with s.post(
            node.url + "/read/login", data={"token": token}, allow_redirects=False
        ) as r:
            assert r.status == 303
        session = r.cookies["exchange_read"].value
    assert await _with_cookie(node, "/read", "exchange_read", session) == 200
    done = await _cli(tmp_path, node, "site", "token", INSIDE, "--revoke")
    assert done.returncode == 0, done.stderr
    async with _browser() as s:
        async with s.get(node.url + "/read", cookies={"exchange_read": session}) as r:
            assert 'name="token"' in await r.text()  # signed out: the login form
        async with s.post(
            node.url + "/read/login", data={"token": token}, allow_redirects=False
        ) as r:
            assert r.status == 401


@pytest.mark.parametrize(
    "origin", ["null", "https://evil.example", "http://127.0.0.2:1"]
)
async def test_login_forms_refuse_foreign_origins(node: Any, origin: str) -> None:
    await _sites(node)
    mon = await node.add_monitor("huaibei-municipal", circles=("huaihai",))
    read = await node.node.read_access.issue_token(INSIDE)
    async with aiohttp.ClientSession() as s:
        async with s.post(
            node.url + "/dashboard/login",
            data={"token": mon},
            headers={"Origin": origin},
        ) as r:
            assert r.status == 403 and "exchange_session" not in r.cookies
        async with s.post(
            node.url + "/read/login",
            data={"token": read},
            headers={"Origin": origin},
            allow_redirects=False,
        ) as r:
            assert r.status == 403 and "exchange_read" not in r.cookies
        own = node.url  # the page's own origin is fine
        async with s.post(
            node.url + "/dashboard/login", data={"token": mon}, headers={"Origin": own}
        ) as r:
            assert r.status == 200
        async with s.post(
            node.url + "/read/login",
            data={"token": read},
            headers={"Origin": own},
            allow_redirects=False,
        ) as r:
            assert r.status == 303


async def test_cookies_are_secure_behind_a_trusted_tls_proxy(node_factory: Any) -> None:
    trusting = await node_factory("huaihai", http={"trusted_proxies": ["127.0.0.1/32"]})
    other = await node_factory("yangtze-delta")  # trusts no proxy
    for rn, secure in ((trusting, True), (other, False)):
        await rn.add_site(INSIDE, "徐州市铜山区人大常委会", ("huaihai",))
        mon = await rn.add_monitor("m", circles=("huaihai",))
        read = await rn.node.read_access.issue_token(INSIDE)
        fwd = {"X-Forwarded-Proto": "https"}
        async with aiohttp.ClientSession() as s:
            async with s.post(
                rn.url + "/dashboard/login", json={"token": mon}, headers=fwd
            ) as r:
                assert r.status == 200
                assert bool(r.cookies["exchange_session"]["secure"]) is secure
            async with s.post(
                rn.url + "/read/login",
                data={"token": read},
                headers=fwd,
                allow_redirects=False,
            ) as r:
                assert r.status == 303
                assert bool(r.cookies["exchange_read"]["secure"]) is secure


# ------------------------------------------------------------------ strict JSON at every input
DUPLICATE = b'{"items": [], "next_cursor": 5, "next_cursor": -1}'


async def _serve(body: bytes) -> tuple[Any, str]:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    return server, str(server.make_url("")).rstrip("/")


@pytest.mark.parametrize(
    "body",
    [
        DUPLICATE,
        b'{"items": [], "next_cursor": 18446744073709551616}',
        b'{"items": []}\xff',
        b"[" * 80 + b"]" * 80,
    ],
)
async def test_client_and_puller_parse_answers_strictly(node: Any, body: bytes) -> None:
    server, url = await _serve(body)
    try:
        async with ExchangeClient(url, key=generate_key(key_id="huaihai#k1")) as c:
            with pytest.raises(JsonError):
                await c.request("GET", "/v1/federation/log")
        with pytest.raises(JsonError):  # the puller reads peers through the client
            await node.node.puller.pull_peer("yangtze-delta", url, -1)
    finally:
        await server.close()


async def test_the_roster_file_is_read_strictly(
    node_factory: Any, tmp_path: Any
) -> None:
    roster_key = generate_key(key_id="roster#k1")
    signed = roster(
        [
            node_entry(
                "huaihai", "http://127.0.0.1:1", generate_key(key_id="huaihai#k1")
            )
        ],
        {"huaihai": []},
        roster_key,
    )
    first = next(iter(signed))
    raw = orjson.dumps(signed)
    doubled = (
        b'{"' + first.encode() + b'": {"forged": true},' + raw[1:]
    )  # last one wins
    path = tmp_path / "roster.json"
    path.write_bytes(doubled)
    pinned = [f"roster#k1 ed25519 {roster_key.public_key.b64()}"]
    with pytest.raises(ConfigError, match="duplicate_key"):
        await node_factory(
            "huaihai", federation={"roster_keys": pinned, "roster_file": str(path)}
        )


async def test_offline_verify_reads_its_files_strictly(tmp_path: Any) -> None:
    key = generate_key(key_id=f"{AUTHOR}#k1")
    signed = sign_item(lesson(AUTHOR, "离线核验"), key)
    item = tmp_path / "item.json"
    item.write_bytes(orjson.dumps(signed))
    good = {
        "id": AUTHOR,
        "keys": [
            {"key_id": key.key_id, "alg": key.alg, "public_key": key.public_key.b64()}
        ],
    }
    sites = tmp_path / "sites.json"
    sites.write_bytes(orjson.dumps({"sites": [good]}))
    assert verify_path(item, sites_file=sites).ok
    # The same directory with a second "sites" member that a lenient parser would read.
    sites.write_bytes(b'{"sites": [], "sites": ' + orjson.dumps([good]) + b"}")
    report = verify_path(item, sites_file=sites)
    assert not report.ok and "duplicate_key" in "\n".join(report.lines)
