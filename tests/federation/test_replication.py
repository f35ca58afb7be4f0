"""Three real nodes (separate apps and databases) replicating over HTTP on 127.0.0.1."""

from __future__ import annotations

import secrets
import time
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer

from exchange.core import httpsig
from exchange.core.items import sign_item
from exchange.core.signing import generate_key
from exchange.errors import NotFound, VerificationError
from exchange.http.app import make_app
from exchange.templates import template
from tests.support.federation import build, item_ids, wait_until


def _item(
    author: str, title: str, audience: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    it = template("lesson", author)
    it["title"] = title
    if audience is not None:
        it["audience"] = audience
    return it


async def _node_post(
    fed: Any,
    sender: str,
    receiver: str,
    body: dict[str, Any],
    *,
    key: Any = None,
    nonce: str | None = None,
) -> tuple[int, Any]:
    """A node-to-node request made by hand (to play a misbehaving peer)."""
    rn = fed.nodes[receiver]
    raw = orjson.dumps(body)
    authority = rn.url.split("://", 1)[1]
    hdrs = {"Content-Type": "application/json"}
    signer = key or fed.nodes[sender].node.key
    hdrs.update(
        httpsig.sign_request(
            signer,
            "POST",
            "/v1/federation/batch",
            authority,
            hdrs,
            raw,
            created=int(time.time()),
            nonce=nonce or secrets.token_urlsafe(12),
            scheme="http",
        )
    )
    async with (
        aiohttp.ClientSession() as s,
        s.post(rn.url + "/v1/federation/batch", data=raw, headers=hdrs) as r,
    ):
        return r.status, await r.json()


async def test_push_replicates_to_every_peer_that_serves_the_audience(
    node_factory: Any,
) -> None:
    fed = await build(node_factory)
    hh, yd, zj = fed.nodes["huaihai"], fed.nodes["yangtze-delta"], fed.nodes["zhejiang"]
    duji = hh.keys["huaibei-duji"]
    async with hh.client("huaibei-duji") as c:
        everyone = await c.push(sign_item(_item("huaibei-duji", "全体可见"), duji))
        huaihai_only = await c.push(
            sign_item(
                _item("huaibei-duji", "仅淮海", {"circles": ["huaihai"], "sites": []}),
                duji,
            )
        )
        delta = await c.push(
            sign_item(
                _item(
                    "huaibei-duji",
                    "长三角",
                    {"circles": ["yangtze-delta"], "sites": []},
                ),
                duji,
            )
        )
        marker = await c.push(sign_item(_item("huaibei-duji", "最后一条"), duji))
    for rn in (yd, zj):
        await wait_until(lambda rn=rn: _has(rn, marker["id"]), what="replication")
        ids = await item_ids(rn)
        assert (
            ids.get(everyone["id"]) == "huaihai" and ids.get(delta["id"]) == "huaihai"
        )
        assert (
            huaihai_only["id"] not in ids
        )  # never stored by a node serving no huaihai member
    # A reader on the other region sees the item with its original signature.
    async with yd.client("suzhou-wuzhong") as c:
        env = await c.get_item(everyone["id"])
        from exchange.core.items import verify_item

        verify_item(env["signed"], duji.public_key)
        with pytest.raises(NotFound):
            await c.get_item(huaihai_only["id"])
    await wait_until(lambda: _backlog_zero(hh), what="push backlog to clear")
    peers = {p["peer"]: p for p in (await _peers(hh))}
    assert (
        peers["yangtze-delta"]["backlog"] == 0
        and peers["yangtze-delta"]["last_success"]
    ), peers


async def _has(rn: Any, item_id: str) -> bool:
    return item_id in await item_ids(rn)


async def _peers(rn: Any) -> list[dict[str, Any]]:
    token = await rn.add_monitor(f"m{secrets.token_hex(3)}", circles=("huaihai",))
    async with rn.client(token=token) as c:
        return list((await c.request("GET", "/v1/federation/peers"))["peers"])


async def test_forgery_by_a_node_is_refused_and_counted(node_factory: Any) -> None:
    fed = await build(node_factory, replicate=False)
    hh = fed.nodes["huaihai"]
    duji = hh.keys["huaibei-duji"]
    genuine = sign_item(_item("huaibei-duji", "真实条目"), duji)
    # zhejiang relays a genuine huaibei-duji item: zhejiang is not its home.
    status, body = await _node_post(
        fed, "zhejiang", "yangtze-delta", {"items": [genuine]}
    )
    assert status == 200 and body["results"][0]["error"]["code"] == "not_home_node"
    # huaihai (the home) relays an item with a broken site signature.
    forged = {"item": _item("huaibei-duji", "伪造"), "sig": dict(genuine["sig"])}
    records = await hh.node.federation.local_site_records()
    status, body = await _node_post(
        fed, "huaihai", "yangtze-delta", {"items": [forged], "site_records": records}
    )
    assert body["results"][0]["error"]["code"] == "bad_signature"
    yd = fed.nodes["yangtze-delta"]
    assert await item_ids(yd) == {}
    async with aiohttp.ClientSession() as s, s.get(yd.url + "/metrics") as r:
        text = await r.text()
    assert 'exchange_items_refused_total{reason="not_home_node"} 1.0' in text
    assert 'exchange_security_events_total{code="not_home_node"} 1.0' in text


async def test_replayed_batch_makes_no_duplicates_and_bad_node_requests_get_401(
    node_factory: Any,
) -> None:
    fed = await build(node_factory, replicate=False)
    hh, yd = fed.nodes["huaihai"], fed.nodes["yangtze-delta"]
    signed = [
        sign_item(_item("huaibei-duji", f"条目{i}"), hh.keys["huaibei-duji"])
        for i in range(3)
    ]
    records = await hh.node.federation.local_site_records()
    body = {"items": signed, "site_records": records}
    s1, r1 = await _node_post(fed, "huaihai", "yangtze-delta", body)
    s2, r2 = await _node_post(
        fed, "huaihai", "yangtze-delta", body
    )  # the same batch again
    assert (r1["accepted"], r2["accepted"], r2["duplicates"]) == (3, 0, 3)
    assert len(await item_ids(yd)) == 3
    # Exactly the same request (same nonce) is a replay.
    s3, r3 = await _node_post(
        fed, "huaihai", "yangtze-delta", body, nonce="fixed-nonce"
    )
    s4, r4 = await _node_post(
        fed, "huaihai", "yangtze-delta", body, nonce="fixed-nonce"
    )
    assert s4 == 401 and r4["error"]["code"] == "replayed_request"
    # A key that is not in the roster, and no signature at all.
    stranger = generate_key(key_id="huaihai#k9")
    s5, r5 = await _node_post(fed, "huaihai", "yangtze-delta", body, key=stranger)
    assert s5 == 401 and r5["error"]["code"] == "bad_request_signature"
    async with (
        aiohttp.ClientSession() as s,
        s.post(yd.url + "/v1/federation/batch", data=orjson.dumps(body)) as r,
    ):
        assert (
            r.status == 401 and (await r.json())["error"]["code"] == "unauthenticated"
        )
    # A site key may not call node endpoints.
    async with hh.client("huaibei-duji") as c:
        with pytest.raises(Exception) as ei:
            await c.request("GET", "/v1/federation/log")
        assert getattr(ei.value, "status", None) in (401, 403)


async def test_roster_from_unknown_key_or_older_version_is_refused(
    node_factory: Any,
) -> None:
    fed = await build(
        node_factory, regions=("huaihai", "yangtze-delta"), replicate=False
    )
    hh = fed.nodes["huaihai"]
    impostor = generate_key(key_id="roster#k1")
    with pytest.raises(VerificationError) as ei:
        await hh.node.federation.install(fed.signed_roster(version=5, key=impostor))
    assert ei.value.code.value in ("roster_invalid", "bad_signature")
    with pytest.raises(VerificationError) as ei:
        await hh.node.federation.install(fed.signed_roster(version=1))
    assert ei.value.code.value == "roster_stale"
    await hh.node.federation.install(fed.signed_roster(version=2))
    assert hh.node.federation.view.version == 2
    async with aiohttp.ClientSession() as s, s.get(hh.url + "/v1/roster") as r:
        assert (await r.json())["document"]["version"] == 2


async def test_peer_down_then_backlog_delivered_exactly_once(node_factory: Any) -> None:
    fed = await build(node_factory, regions=("huaihai", "yangtze-delta"))
    hh, yd = fed.nodes["huaihai"], fed.nodes["yangtze-delta"]
    port = yd.server.port
    await yd.server.close()  # the peer goes away (its database stays)
    duji = hh.keys["huaibei-duji"]
    async with hh.client("huaibei-duji") as c:
        res = await c.push_batch(
            [sign_item(_item("huaibei-duji", f"积压{i}"), duji) for i in range(40)]
        )
    pushed = {r["id"] for r in res["results"]}

    async def erroring() -> bool:
        p = await hh.node.federation.store.peer("yangtze-delta")
        return p is not None and p.last_error is not None and p.attempts >= 2

    await wait_until(erroring, what="delivery failures to be recorded")
    status = {p["peer"]: p for p in await hh.node.federation.peer_status()}
    assert (
        status["yangtze-delta"]["backlog"] == 40
        and status["yangtze-delta"]["last_error"]
    )
    server = TestServer(make_app(yd.node), host="127.0.0.1", port=port)
    await server.start_server()
    yd.server = server
    await wait_until(lambda: _all(yd, pushed), timeout=30, what="backlog delivery")
    async with yd.node.db.pool.acquire() as c:
        assert await c.fetchval("SELECT count(*) FROM items") == 40
    await wait_until(lambda: _backlog_zero(hh), what="backlog to clear")


async def _all(rn: Any, ids: set[str]) -> bool:
    return ids <= set(await item_ids(rn))


async def _backlog_zero(rn: Any) -> bool:
    st = await rn.node.federation.peer_status()
    return all(p["backlog"] == 0 for p in st)


async def test_catch_up_pulls_what_push_did_not_deliver(node_factory: Any) -> None:
    fed = await build(
        node_factory, regions=("huaihai", "yangtze-delta"), replicate=False
    )
    hh, yd = fed.nodes["huaihai"], fed.nodes["yangtze-delta"]
    duji = hh.keys["huaibei-duji"]
    async with hh.client("huaibei-duji") as c:
        res = await c.push_batch(
            [sign_item(_item("huaibei-duji", f"补齐{i}"), duji) for i in range(25)]
        )
    stored = await yd.node.puller.pull_all()
    assert stored == 25
    assert {r["id"] for r in res["results"]} <= set(await item_ids(yd))
    assert await yd.node.puller.pull_all() == 0  # the cursor moved on


async def test_revocation_propagates_and_old_items_stay(node_factory: Any) -> None:
    fed = await build(
        node_factory, regions=("huaihai", "yangtze-delta"), replicate=False
    )
    hh, yd = fed.nodes["huaihai"], fed.nodes["yangtze-delta"]
    duji = hh.keys["huaibei-duji"]
    old = sign_item(_item("huaibei-duji", "撤销前签发"), duji)
    records = await hh.node.federation.local_site_records()
    _, r = await _node_post(
        fed, "huaihai", "yangtze-delta", {"items": [old], "site_records": records}
    )
    assert r["accepted"] == 1
    await hh.node.sites.revoke_key("huaibei-duji#k1")
    k2 = generate_key(key_id="huaibei-duji#k2")
    await hh.node.sites.add_key(k2.key_id, "huaibei-duji", k2.alg, k2.public_key.raw)
    records = await hh.node.federation.local_site_records()
    late = sign_item(_item("huaibei-duji", "撤销后仍用旧钥"), duji)
    fresh = sign_item(_item("huaibei-duji", "新钥签发"), k2)
    _, r = await _node_post(
        fed,
        "huaihai",
        "yangtze-delta",
        {"items": [late, fresh], "site_records": records},
    )
    codes = [(x["status"], (x["error"] or {}).get("code")) for x in r["results"]]
    assert codes == [("refused", "revoked_key"), ("accepted", None)]
    ids = await item_ids(yd)
    assert old["item"] and len(ids) == 2  # the item signed before revocation stays
    # A site record for huaibei-duji signed by another node is refused.
    from exchange.core.roster import sign_document
    from exchange.core.signing import CONTEXT_SITE_RECORD

    doc = dict(
        records[0]["document"],
        version=records[0]["document"]["version"] + 1,
        keys=[
            {
                "key_id": "huaibei-duji#k7",
                "alg": "ed25519",
                "public_key": generate_key().public_key.b64(),
                "valid_from": "2026-01-01T00:00:00+00:00",
                "revoked_at": None,
            }
        ],
    )
    bogus = sign_document(doc, yd.node.key, CONTEXT_SITE_RECORD)
    problems = await hh.node.federation.accept_site_records([bogus], "yangtze-delta")
    problems += await fed.nodes["yangtze-delta"].node.federation.accept_site_records(
        [bogus], "zhejiang"
    )
    assert any("not_home_node" in p for p in problems)
    assert "huaibei-duji#k7" not in await yd.node.sites.keys(["huaibei-duji#k7"])


async def test_a_site_pushes_only_to_its_home_node(node_factory: Any) -> None:
    fed = await build(
        node_factory, regions=("huaihai", "yangtze-delta"), replicate=False
    )
    hh, yd = fed.nodes["huaihai"], fed.nodes["yangtze-delta"]
    records = await hh.node.federation.local_site_records()
    await yd.node.federation.accept_site_records(
        records, "huaihai"
    )  # yd knows duji's keys now
    yd.keys["huaibei-duji"] = hh.keys["huaibei-duji"]
    async with yd.client("huaibei-duji") as c:
        with pytest.raises(Exception) as ei:
            await c.push(
                sign_item(_item("huaibei-duji", "推错节点"), hh.keys["huaibei-duji"])
            )
    assert ei.value.code.value == "not_home_node" and "huaihai" in ei.value.message
    assert await item_ids(yd) == {}
