"""The reading view over HTTP: read tokens, session cookies, audience, escaping, files."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import aiohttp
import pytest

from exchange.core.items import sign_item
from exchange.templates import template

from .conftest import Corpus
from .corpus import SITES

pytestmark = pytest.mark.asyncio


def _session() -> aiohttp.ClientSession:
    """A browser-like client: keeps cookies, also for 127.0.0.1."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def _login(
    session: aiohttp.ClientSession, url: str, token: str
) -> aiohttp.ClientResponse:
    return await session.post(
        url + "/read/login", data={"token": token}, allow_redirects=False
    )


async def test_token_session_cookie_logout(node: Any) -> None:
    await node.add_site("huaibei-duji", "淮北市杜集区人大常委会", ("huaihai",))
    token = await node.node.read_access.issue_token("huaibei-duji")
    async with _session() as s:
        r = await s.get(node.url + "/read")
        page = await r.text()
        assert r.status == 200 and 'id="login"' in page and "阅读令牌" in page
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        for bad, status in (("", 400), ("rt_wrong", 401), ("x" * 300, 400)):
            r = await _login(s, node.url, bad)
            assert r.status == status and 'id="login-error"' in await r.text()
        r = await _login(s, node.url, token)
        assert r.status == 303 and r.headers["Location"] == "/read"
        cookie = r.headers["Set-Cookie"]
        assert (
            "HttpOnly" in cookie
            and "SameSite=Strict" in cookie
            and "Path=/read" in cookie
        )
        assert token not in cookie
        page = await (await s.get(node.url + "/read")).text()
        assert "淮北市杜集区人大常委会" in page and 'id="q"' in page
        # A cross-site POST is refused outright.
        r = await s.post(
            node.url + "/read/logout",
            headers={"Origin": "https://evil.example"},
            allow_redirects=False,
        )
        assert r.status == 403
        r = await s.post(node.url + "/read/logout", allow_redirects=False)
        assert r.status == 303
        assert 'id="login"' in await (await s.get(node.url + "/read")).text()
    # Issuing a new token ends the old one and its sessions.
    async with _session() as s:
        assert (await _login(s, node.url, token)).status == 303
        new = await node.node.read_access.issue_token("huaibei-duji")
        assert 'id="login"' in await (await s.get(node.url + "/read")).text()
        assert (await _login(s, node.url, token)).status == 401
        assert (await _login(s, node.url, new)).status == 303
    async with node.node.db.pool.acquire() as c:
        stored = await c.fetchval("SELECT token_hash FROM read_tokens")
    assert bytes(stored) == hashlib.sha256(new.encode()).digest()


async def test_list_item_and_audience(shared: Corpus) -> None:
    node = shared.node
    token = await node.node.read_access.issue_token(
        "suzhou-wuzhong"
    )  # yangtze-delta only
    hidden = [
        c
        for c in shared.items
        if c.item["audience"]["circles"] == ["huaihai"]
        and c.item["author"] != "suzhou-wuzhong"
    ]
    assert hidden
    async with _session() as s:
        await _login(s, node.url, token)
        page = await (
            await s.get(node.url + "/read", params={"q": "安全生产法"})
        ).text()
        ids = re.findall(r'data-id="(sha256:[0-9a-f]{64})"', page)
        assert ids and "<mark>安全生产法</mark>" in page
        assert not set(ids) & {c.id for c in hidden}
        for c in hidden[:5]:  # not by URL either: a 404 that reveals nothing
            r = await s.get(node.url + f"/read/items/{c.id}")
            assert r.status == 404 and c.item["title"] not in await r.text()
        plan = next(
            c
            for c in shared.items
            if c.item["kind"] == "inspection_plan"
            and not c.item["audience"]["circles"]
            and not c.item["audience"]["sites"]
        )
        r = await s.get(node.url + f"/read/items/{plan.id}")
        text = await r.text()
        assert r.status == 200 and 'id="timeline"' in text and "签名有效" in text
        assert f"{plan.item['author']}#k1" in text
        assert text.count('class="phase"') == len(plan.item["body"]["phases"])
        # Bad query: a clear message on the page, 400, never a 500.
        r = await s.get(node.url + "/read", params={"q": "！！！"})
        assert r.status == 400 and 'id="search-error"' in await r.text()
        r = await s.get(node.url + "/read", params={"q": "安全", "kind": "poem"})
        assert r.status == 400
        # Browsing with filters, no query: newest first.
        r = await s.get(
            node.url + "/read", params={"kind": "lesson", "author": "hangzhou-xihu"}
        )
        assert r.status == 200 and 'data-kind="lesson"' in await r.text()
        # English.
        r = await s.get(node.url + "/read/lang/en", params={"next": "/read?q=APP"})
        assert "Results" in await r.text()
        r = await s.get(
            node.url + "/read/lang/en",
            params={"next": "https://evil.example/"},
            allow_redirects=False,
        )
        assert r.headers["Location"] == "/read"
        assert (await s.get(node.url + "/read/static/read.css")).status == 200
        assert (await s.get(node.url + "/read/static/..%2Fi18n.py")).status == 404


async def test_escaping_refs_and_attachments(node: Any) -> None:
    for site, (name, circles) in SITES.items():
        await node.add_site(site, name, circles)
    key = node.keys["huaibei-duji"]
    data = "检查方案正文".encode() * 100
    sha = hashlib.sha256(data).hexdigest()
    async with node.client("huaibei-duji") as c:
        await c.put_blob(data, "application/pdf")
        plan = template("inspection_plan", "huaibei-duji", "suzhou-wuzhong")
        plan["title"] = '<script>alert("x")</script>安全生产法方案'
        plan["attachments"] = [
            {
                "name": "检查方案.pdf",
                "media_type": "application/pdf",
                "size": len(data),
                "sha256": sha,
            }
        ]
        plan["audience"] = {"circles": ["huaihai"], "sites": []}
        signed = sign_item(plan, key)
        pid = (await c.push(signed))["id"]
        lesson = template("lesson", "huaibei-duji")
        lesson["refs"] = [
            {"rel": "cites", "id": pid},
            {"rel": "cites", "id": "sha256:" + "1" * 64},
        ]
        lid = (await c.push(sign_item(lesson, key)))["id"]
    reader_token = await node.node.read_access.issue_token("xuzhou-tongshan")  # huaihai
    outsider = await node.node.read_access.issue_token("hangzhou-xihu")  # not huaihai
    async with _session() as s:
        await _login(s, node.url, reader_token)
        page = await (
            await s.get(node.url + "/read", params={"q": "安全生产法"})
        ).text()
        assert "<script>alert" not in page and "&lt;script&gt;" in page
        text = await (await s.get(node.url + f"/read/items/{pid}")).text()
        assert "&lt;script&gt;" in text and "<script>alert" not in text
        assert "检查方案.pdf" in text and f"/read/blobs/{sha}" in text
        assert f'href="/read/items/{lid}"' in text  # referenced by the lesson
        r = await s.get(
            node.url + f"/read/blobs/{sha}", params={"name": "检查方案.pdf"}
        )
        assert r.status == 200 and await r.read() == data
        assert "attachment" in r.headers["Content-Disposition"]
        text = await (await s.get(node.url + f"/read/items/{lid}")).text()
        assert f'href="/read/items/{pid}"' in text and "不在本节点或无权查看" in text
    async with _session() as s:
        await _login(s, node.url, outsider)
        assert (await s.get(node.url + f"/read/blobs/{sha}")).status == 404
        text = await (await s.get(node.url + f"/read/items/{lid}")).text()
        assert (
            pid[:23] in text and "安全生产法方案" not in text
        )  # the ref, but not its title
    async with _session() as s:  # signed out
        assert (await s.get(node.url + f"/read/blobs/{sha}")).status == 401
