"""Attachments travel with replicated items: a reader on the peer opens them there.

Real nodes (separate apps and databases) replicating over HTTP on 127.0.0.1; the peer
fetches each attachment from the author's home node, checks its size and hash, and
records the author as its uploader, so the same visibility rule as for local uploads
applies.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import aiohttp

from exchange.core.items import sign_item
from exchange.templates import template
from tests.support.federation import build, item_ids, wait_until

TO_YD = {"circles": ["yangtze-delta"], "sites": []}


async def _with_attachment(
    rn: Any, site: str, data: bytes, *, upload_as: str | None = None
) -> tuple[str, str]:
    """Upload ``data`` (as ``upload_as``, the author by default) and push an item of
    ``site`` for the Yangtze Delta attaching it; returns the item id and the hash."""
    sha = hashlib.sha256(data).hexdigest()
    async with rn.client(upload_as or site) as c:
        await c.put_blob(data, "application/pdf")
    it = template("lesson", site)
    it["title"] = f"联合检查方案附件 {sha[:8]}"
    it["audience"] = TO_YD
    it["attachments"] = [
        {
            "name": "检查方案.pdf",
            "media_type": "application/pdf",
            "size": len(data),
            "sha256": sha,
        }
    ]
    async with rn.client(site) as c:
        pushed = await c.push(sign_item(it, rn.keys[site]))
    return pushed["id"], sha


async def _replicated(rn: Any, item: str) -> None:
    async def there() -> bool:
        return item in await item_ids(rn)

    await wait_until(there, 20, "the item on the peer")


async def _pending(rn: Any, sha: str, *, error: str) -> Any:
    async def failed() -> Any:
        rows = [f for f in await rn.node.blobs.pending_fetches() if f.sha256 == sha]
        return rows[0] if rows and error in (rows[0].last_error or "") else None

    return await wait_until(failed, 20, f"a failed fetch ({error})")


async def test_an_attachment_follows_its_item_to_the_peer(node_factory: Any) -> None:
    fed = await build(node_factory, regions=("huaihai", "yangtze-delta"))
    hh, yd = fed.nodes["huaihai"], fed.nodes["yangtze-delta"]
    data = b"%PDF-1.7 " + secrets.token_bytes(600_000)  # three 256 KiB chunks
    item, sha = await _with_attachment(hh, "huaibei-duji", data)
    await _replicated(yd, item)

    async def arrived() -> bool:
        return await yd.node.blobs.meta(sha) is not None

    await wait_until(arrived, 20, "the attachment on the peer")
    async with yd.client("suzhou-wuzhong") as c:  # a reader whose node is the peer
        assert await c.get_blob(sha) == data
    assert await yd.node.blobs.uploaded_by(sha, "huaibei-duji")
    assert await yd.node.blobs.pending_fetches() == []
    assert yd.node.blob_fetcher.fetched_total == 1


async def test_wrong_bytes_are_never_stored_and_are_fetched_again(
    node_factory: Any,
) -> None:
    fed = await build(node_factory, regions=("huaihai", "yangtze-delta"))
    hh, yd = fed.nodes["huaihai"], fed.nodes["yangtze-delta"]
    data = b"%PDF-1.7 " + secrets.token_bytes(2_000)
    sha = hashlib.sha256(data).hexdigest()
    async with hh.client("huaibei-duji") as c:
        await c.put_blob(data, "application/pdf")
    async with hh.node.db.pool.acquire() as conn:  # the home node's copy is damaged
        await conn.execute(
            "UPDATE blob_chunks SET data = $2 WHERE sha256 = $1",
            sha,
            secrets.token_bytes(len(data)),
        )
    item, _ = await _with_attachment(hh, "huaibei-duji", data)
    await _replicated(yd, item)
    await _pending(yd, sha, error="blob_hash_mismatch")
    assert await yd.node.blobs.meta(sha) is None  # nothing stored, not even in part
    async with hh.node.db.pool.acquire() as conn:  # repaired at home
        await conn.execute(
            "UPDATE blob_chunks SET data = $2 WHERE sha256 = $1", sha, data
        )

    async def arrived() -> bool:
        return await yd.node.blobs.meta(sha) is not None

    await wait_until(arrived, 20, "the attachment after the repair")
    async with yd.client("suzhou-wuzhong") as c:
        assert await c.get_blob(sha) == data


async def test_a_hash_its_author_never_uploaded_stays_unreadable(
    node_factory: Any,
) -> None:
    """Naming another site's file in one's own item must not carry that file to the
    peer: the home node serves a blob only through an item whose author uploaded it."""
    fed = await build(node_factory, regions=("huaihai", "yangtze-delta"))
    hh, yd = fed.nodes["huaihai"], fed.nodes["yangtze-delta"]
    secret = b"TONGSHAN-INTERNAL-" + secrets.token_bytes(2_000)
    item, sha = await _with_attachment(
        hh, "huaibei-duji", secret, upload_as="xuzhou-tongshan"
    )
    await _replicated(yd, item)
    await _pending(yd, sha, error="blob_missing")
    assert await yd.node.blobs.meta(sha) is None


async def test_an_attachment_over_the_peers_limit_is_not_fetched(
    node_factory: Any,
) -> None:
    fed = await build(
        node_factory,
        regions=("huaihai", "yangtze-delta"),
        per_node={"yangtze-delta": {"http": {"max_blob_bytes": 100_000}}},
    )
    hh, yd = fed.nodes["huaihai"], fed.nodes["yangtze-delta"]
    data = b"%PDF-1.7 " + secrets.token_bytes(200_000)
    item, sha = await _with_attachment(hh, "huaibei-duji", data)
    await _replicated(yd, item)
    row = await _pending(yd, sha, error="too large")
    assert "max_blob_bytes (100000)" in row.last_error
    assert await yd.node.blobs.meta(sha) is None
    # The reader on the peer sees the file named and why it cannot be opened yet,
    # not a link that fails.
    token = await yd.node.read_access.issue_token("suzhou-wuzhong")
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as s:
        await s.post(yd.url + "/read/login", data={"token": token})
        async with s.get(yd.url + f"/read/items/{item}") as r:
            page = await r.text()
    assert r.status == 200 and "检查方案.pdf" in page
    assert "正在从发布单位所在节点获取" in page and f"/read/blobs/{sha}" not in page
