"""Nothing leaks past an audience, and nothing is trusted that was not signed.

Each test here is one hole a hostile partner could use, tried the way that partner would:
a blob fetched by hash through an item of its own, a blob that runs script in the node's
origin, a redirect that leaves the reading view. Real node, real PostgreSQL, real HTTP on
127.0.0.1.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import aiohttp
import pytest

from exchange.core.items import sign_item
from exchange.errors import NotFound

from .helpers import lesson

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
async def test_a_blob_is_not_readable_through_an_item_of_another_author(node: Any) -> None:
    await _sites(node)
    secret = b"SECRET-ATTACHMENT-" + secrets.token_bytes(2000)
    sha = hashlib.sha256(secret).hexdigest()
    async with node.client(AUTHOR) as c:
        await c.put_blob(secret, "application/pdf")
        await c.push(sign_item(
            lesson(AUTHOR, "机密方案", {"circles": ["huaihai"], "sites": []},
                   attachments=[_attachment(secret, "机密.pdf", "application/pdf")]),
            node.keys[AUTHOR],
        ))
    async with node.client(INSIDE) as c:  # in the audience: reads it
        assert await c.get_blob(sha) == secret
    # The outsider pushes an item of its own, public, naming the secret's hash.
    async with node.client(OUTSIDE) as c:
        await c.push(sign_item(
            lesson(OUTSIDE, "借用附件", attachments=[
                _attachment(secret, "x.pdf", "application/pdf")]),
            node.keys[OUTSIDE],
        ))
        with pytest.raises(NotFound):
            await c.get_blob(sha)
        # Claiming the hash by upload without the bytes does not help either.
        with pytest.raises(Exception):
            await c.request("PUT", f"/v1/blobs/{sha}", body=b"not the bytes",
                            headers={"Content-Type": "application/pdf"})
        with pytest.raises(NotFound):
            await c.get_blob(sha)
    # No existence oracle: the refusal is the one an unknown hash gets.
    unknown = hashlib.sha256(secrets.token_bytes(16)).hexdigest()
    s1, b1, _ = await _get(node, OUTSIDE, f"/v1/blobs/{sha}")
    s2, b2, _ = await _get(node, OUTSIDE, f"/v1/blobs/{unknown}")
    assert (s1, b1.replace(sha.encode(), b"H")) == (s2, b2.replace(unknown.encode(), b"H"))
    assert s1 == 404
    # The reading view applies the same rule.
    token = await node.node.read_access.issue_token(OUTSIDE)
    async with _browser() as s:
        async with s.post(node.url + "/read/login", data={"token": token},
                          allow_redirects=False) as r:
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
        await c.push(sign_item(
            lesson(OUTSIDE, "法规原文", attachments=[
                _attachment(data, "法规.pdf", "application/pdf")]),
            node.keys[OUTSIDE],
        ))
    async with node.client(INSIDE) as c:
        assert await c.get_blob(sha) == data


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
    data = b"<html><script>fetch('/v1/activity')</script></html>" + secrets.token_bytes(8)
    sha = hashlib.sha256(data).hexdigest()
    async with node.client(AUTHOR) as c:
        await c.put_blob(data, declared)
        await c.push(sign_item(
            lesson(AUTHOR, "附件", attachments=[_attachment(data, "a.html", declared)]),
            node.keys[AUTHOR],
        ))
    status, body, headers = await _get(node, INSIDE, f"/v1/blobs/{sha}")
    assert status == 200 and body == data
    assert headers["Content-Type"].split(";")[0] == served
    assert headers["Content-Disposition"].startswith("attachment")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in headers["Content-Security-Policy"]
    token = await node.node.read_access.issue_token(INSIDE)
    async with _browser() as s:
        async with s.post(node.url + "/read/login", data={"token": token},
                          allow_redirects=False) as r:
            assert r.status == 303
        async with s.get(node.url + f"/read/blobs/{sha}", params={"name": "a.html"}) as r:
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
            async with s.get(node.url + "/read/lang/en", params={"next": nxt},
                             allow_redirects=False) as r:
                assert r.status == 303, nxt
                assert r.headers["Location"] == want, nxt
