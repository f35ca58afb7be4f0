"""Node-side outbound webhooks: a real node POSTs items to a real receiver on 127.0.0.1.

The receiver plays the site's own system: it checks every delivery with the node key
published at ``GET /v1/node`` (:func:`exchange.core.webhook.verify_webhook`), answers
500 a couple of times, then 200; the node must retry, advance its durable cursor only on
2xx, deliver only what the site may see, and never deliver an item twice once it was
acknowledged.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import tomli_w
from aiohttp import web
from aiohttp.test_utils import TestServer

from exchange.cli import main as cli_main
from exchange.core.items import item_id, sign_item, verify_item
from exchange.core.signing import PublicKey, b64u_decode, generate_key
from exchange.core.webhook import verify_webhook
from exchange.errors import AuthError
from exchange.service.webhooks import WebhookSender
from exchange.storage.webhooks import WebhookStore
from exchange.templates import template
from tests.support import wait_until

pytestmark = pytest.mark.asyncio

FAST = {
    "webhooks": {"poll_interval_ms": 50, "backoff_base_ms": 50, "backoff_max_s": 0.3}
}


@dataclass
class Receiver:
    """The site's system: records deliveries, fails the first ``fail`` requests."""

    node_keys: list[PublicKey] = field(default_factory=list)
    fail: int = 0
    seen: list[dict[str, Any]] = field(default_factory=list)
    raw: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    verified: int = 0
    statuses: list[int] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.raw.append((request.raw_path, request.host, dict(request.headers), body))
        delivery = verify_webhook(
            request.method,
            request.raw_path,
            request.host,
            request.headers,
            body,
            node_keys=self.node_keys,
            scheme="http",
        )
        self.verified += 1
        if self.fail > 0:
            self.fail -= 1
            self.statuses.append(500)
            return web.Response(status=500, text="database busy")
        self.seen.append(delivery)
        self.statuses.append(200)
        return web.json_response({"ok": True})


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/oa/exchange-hook", rec.handle)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield rec, str(server.make_url("/oa/exchange-hook"))
    finally:
        await server.close()


def _item(author: str, title: str, circles: list[str]) -> dict[str, Any]:
    it = template("lesson", author=author, partner="suzhou-wuzhong")
    it["title"] = title
    it["audience"] = {"circles": circles, "sites": []}
    return it


def _node_toml(tmp_path: Path, node: Any) -> Path:
    cfg = {
        "node": {"id": node.node.id, "data_dir": str(node.node.config.data_path)},
        "database": {"url": node.node.db.url, "pool_min": 1, "pool_max": 2},
        "log": {"writer": False},
        "webhooks": {"enabled": False},
    }
    path = tmp_path / "node.toml"
    path.write_bytes(tomli_w.dumps(cfg).encode())
    return path


async def _cli(*args: str) -> int:
    return await asyncio.to_thread(cli_main, list(args))


async def test_items_are_delivered_signed_retried_and_filtered(
    node_factory: Any,
    receiver: tuple[Receiver, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rec, url = receiver
    node = await node_factory(**FAST)
    duji = await node.add_site("huaibei-duji", "淮北市杜集区人大常委会", ("huaihai",))
    wuzhong = await node.add_site(
        "suzhou-wuzhong", "苏州市吴中区人大常委会", ("yangtze-delta",)
    )
    await node.add_site("xuzhou-tongshan", "徐州市铜山区人大常委会", ("huaihai",))
    # The site's system pins the node key from GET /v1/node.
    async with aiohttp.ClientSession() as s, s.get(node.url + "/v1/node") as r:
        info = await r.json()
    assert info["id"] == node.node.id
    (k,) = info["keys"]
    assert k["key_id"] == f"{node.node.id}#k1"
    rec.node_keys = [PublicKey(k["alg"], b64u_decode(k["public_key"]), k["key_id"])]

    a = _item("huaibei-duji", "淮海片区：代表联络站经验", ["huaihai"])
    b = _item("suzhou-wuzhong", "长三角片区：票决制经验", ["yangtze-delta"])
    c = _item("suzhou-wuzhong", "全体：预算联网监督经验", [])
    async with node.client("huaibei-duji") as cl:
        await cl.push(sign_item(a, duji))
    async with node.client("suzhou-wuzhong") as cl:
        await cl.push(sign_item(b, wuzhong))
        await cl.push(sign_item(c, wuzhong))

    rec.fail = 2
    toml = _node_toml(tmp_path, node)
    assert (
        await _cli(
            "webhook",
            "add",
            "xuzhou-tongshan",
            "--url",
            url,
            "--from-start",
            "--config",
            str(toml),
        )
        == 0
    )
    hook_id = int(capsys.readouterr().out.strip())

    async def both() -> bool:
        return len(rec.seen) >= 2

    await wait_until(both, 10, "two deliveries", interval=0.025)
    # Only what xuzhou-tongshan may see (huaihai circle + everyone), in log order, once.
    assert [d["id"] for d in rec.seen] == [item_id(a), item_id(c)]
    assert rec.statuses[:3] == [500, 500, 200]
    assert rec.verified == len(rec.raw)  # every request carried a valid node signature
    for d in rec.seen:
        author_key = (
            duji if d["signed"]["item"]["author"] == "huaibei-duji" else wuzhong
        )
        verify_item(d["signed"], author_key.public_key)
        assert d["node"] == node.node.id
    store = WebhookStore(node.node.db)

    async def cursor_at_last_seen() -> bool:
        # The node stores its cursor after the receiver has answered: wait for it.
        h = await store.get(hook_id)
        return h is not None and h.cursor == rec.seen[-1]["index"]

    await wait_until(cursor_at_last_seen, 10, "the cursor to be stored", interval=0.025)
    hook = await store.get(hook_id)
    assert hook is not None
    assert hook.cursor == rec.seen[-1]["index"] and hook.delivered_total == 2
    assert hook.attempts == 0 and hook.last_status == 200

    # A new item the site may see follows; a restarted sender resumes from the cursor.
    d_item = _item("huaibei-duji", "淮海片区：执法检查联动经验", ["huaihai"])
    async with node.client("huaibei-duji") as cl:
        await cl.push(sign_item(d_item, duji))

    async def three() -> bool:
        return len(rec.seen) >= 3

    await wait_until(three, 10, "the third delivery", interval=0.025)
    await wait_until(cursor_at_last_seen, 10, "the cursor to be stored", interval=0.025)
    sender = WebhookSender(node.node)
    sender.start()
    try:
        h = await store.get(hook_id)
        assert h is not None
        assert await sender.deliver_some(h) is False  # nothing after the cursor
    finally:
        await sender.stop()
    assert [d["id"] for d in rec.seen] == [item_id(a), item_id(c), item_id(d_item)]

    assert await _cli("webhook", "list", "--config", str(toml)) == 0
    listed = json.loads(capsys.readouterr().out)["webhooks"]
    assert listed[0]["delivered"] == 3 and listed[0]["url"] == url
    assert await _cli("webhook", "remove", str(hook_id), "--config", str(toml)) == 0
    assert await store.list() == []
    assert await _cli("webhook", "remove", str(hook_id), "--config", str(toml)) == 1
    assert (
        await _cli(
            "webhook", "add", "no-such-site", "--url", url, "--config", str(toml)
        )
        == 1
    )
    assert (
        await _cli(
            "webhook",
            "add",
            "xuzhou-tongshan",
            "--url",
            "ftp://x",
            "--config",
            str(toml),
        )
        == 1
    )


async def test_receiver_checks_reject_tampering_and_other_keys(
    node_factory: Any, receiver: tuple[Receiver, str]
) -> None:
    rec, url = receiver
    node = await node_factory(**FAST)
    duji = await node.add_site("huaibei-duji", "淮北市杜集区人大常委会", ("huaihai",))
    node_key = node.node.key.public_key
    rec.node_keys = [node_key]
    await WebhookStore(node.node.db).add("huaibei-duji", url, -1)
    async with node.client("huaibei-duji") as cl:
        await cl.push(sign_item(_item("huaibei-duji", "经验一", []), duji))

    async def one() -> bool:
        return len(rec.seen) == 1

    await wait_until(one, 10, "a delivery", interval=0.025)
    path, host, headers, body = rec.raw[0]
    ok = verify_webhook(
        "POST", path, host, headers, body, node_keys=[node_key], scheme="http"
    )
    assert ok["signed"]["item"]["title"] == "经验一"
    tampered = body.replace("经验一".encode(), "经验二".encode())
    with pytest.raises(AuthError) as err:
        verify_webhook(
            "POST", path, host, headers, tampered, node_keys=[node_key], scheme="http"
        )
    assert err.value.code.value == "digest_mismatch"
    # Even with a recomputed digest the signature no longer matches.
    from exchange.core.httpsig import content_digest

    forged = dict(headers, **{"Content-Digest": content_digest(tampered)})
    with pytest.raises(AuthError, match="does not verify"):
        verify_webhook(
            "POST", path, host, forged, tampered, node_keys=[node_key], scheme="http"
        )
    other = generate_key(key_id=f"{node.node.id}#k1").public_key
    with pytest.raises(AuthError, match="does not verify"):
        verify_webhook(
            "POST", path, host, headers, body, node_keys=[other], scheme="http"
        )
    with pytest.raises(AuthError, match="not the pinned node key"):
        verify_webhook(
            "POST",
            path,
            host,
            headers,
            body,
            node_keys=[generate_key(key_id="elsewhere#k1").public_key],
            scheme="http",
        )
    with pytest.raises(AuthError, match="too old"):
        verify_webhook(
            "POST",
            path,
            host,
            headers,
            body,
            node_keys=[node_key],
            scheme="http",
            now=int(time.time()) + 3600,
        )
    with pytest.raises(AuthError, match="not signed"):
        verify_webhook(
            "POST",
            path,
            host,
            {"Content-Type": "application/json"},
            body,
            node_keys=[node_key],
            scheme="http",
        )


async def test_unreachable_receiver_backs_off_without_moving_the_cursor(
    node_factory: Any,
) -> None:
    node = await node_factory(**FAST)
    duji = await node.add_site("huaibei-duji", "淮北市杜集区人大常委会", ("huaihai",))
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = WebhookStore(node.node.db)
    hook = await store.add("huaibei-duji", f"http://127.0.0.1:{port}/hook", -1)
    async with node.client("huaibei-duji") as cl:
        await cl.push(sign_item(_item("huaibei-duji", "经验", []), duji))

    async def retried() -> bool:
        h = await store.get(hook.id)
        return h is not None and h.attempts >= 2

    await wait_until(retried, 10, "two failed attempts", interval=0.025)
    h = await store.get(hook.id)
    assert h is not None
    assert h.cursor == -1 and h.delivered_total == 0
    assert h.last_error is not None and "Connect" in h.last_error
    assert h.next_attempt_at > h.last_error_at  # type: ignore[operator]
