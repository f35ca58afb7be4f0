"""Pushing and reading items over real HTTP against a node on the real PostgreSQL.

Every bad input of the foundation issue is a test here: each gets a clear 4xx JSON error
with a stable code, and nothing is stored.
"""

from __future__ import annotations

import copy
import hashlib
import secrets
import time
from typing import Any

import aiohttp
import orjson
import pytest

from exchange.core import httpsig
from exchange.core.items import item_id, sign_item, signing_input
from exchange.core.signing import b64u_encode, generate_key
from exchange.errors import AuthError, Forbidden, NotFound
from exchange.templates import template

pytestmark = pytest.mark.asyncio


async def _setup(node: Any) -> None:
    await node.add_site(
        "huaibei-duji", "淮北市杜集区人大常委会", ("huaihai", "yangtze-delta")
    )
    await node.add_site("suzhou-wuzhong", "苏州市吴中区人大常委会", ("yangtze-delta",))
    await node.add_site("xuzhou-tongshan", "徐州市铜山区人大常委会", ("huaihai",))


def _item(
    author: str = "huaibei-duji", kind: str = "lesson", **changes: Any
) -> dict[str, Any]:
    it = template(kind, author=author, partner="suzhou-wuzhong")
    it.update(changes)
    return it


async def _raw(
    node: Any,
    method: str,
    path: str,
    body: bytes | None,
    *,
    signer: Any = None,
    headers: dict[str, str] | None = None,
    mutate: Any = None,
) -> tuple[int, Any]:
    """Send a request by hand (to craft bad ones); returns (status, json)."""
    authority = node.url.split("://", 1)[1]
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    if signer is not None:
        hdrs.update(
            httpsig.sign_request(
                signer,
                method,
                path,
                authority,
                hdrs,
                body,
                created=int(time.time()),
                nonce=secrets.token_urlsafe(12),
            )
        )
    if mutate:
        hdrs, body = mutate(hdrs, body)
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, node.url + path, data=body, headers=hdrs) as r,
    ):
        data = await r.read()
        return r.status, orjson.loads(data) if data else None


def _forge(item: dict[str, Any], key: Any, key_id: str) -> dict[str, Any]:
    """A wrapper whose signature is made by ``key`` but claims ``key_id``."""
    value = b64u_encode(key.sign(signing_input(item)))
    return {"item": item, "sig": {"key": key_id, "alg": "ed25519", "value": value}}


async def _count(node: Any) -> int:
    return await node.node.items.size()


async def test_push_pull_get_roundtrip(node: Any) -> None:
    await _setup(node)
    key = node.keys["huaibei-duji"]
    signed = sign_item(_item(), key)
    async with node.client("huaibei-duji") as c:
        res = await c.push(signed)
        assert res["status"] == "accepted" and res["index"] == 0
        assert res["id"] == item_id(signed["item"])
        again = await c.push(signed)
        assert (
            again["status"] == "duplicate"
            and again["index"] == 0
            and again["id"] == res["id"]
        )
        env = await c.get_item(res["id"])
        assert env["signed"] == signed and env["index"] == 0
    async with node.client("suzhou-wuzhong") as c:
        page = await c.list_items()
        assert [e["id"] for e in page["items"]] == [res["id"]]
        assert page["next_cursor"] is None
    assert await _count(node) == 1


async def test_audience_limits_readers(node: Any) -> None:
    await _setup(node)
    only_huaihai = sign_item(
        _item(audience={"circles": ["huaihai"], "sites": []}), node.keys["huaibei-duji"]
    )
    to_site = sign_item(
        _item(
            title="仅送吴中区", audience={"circles": [], "sites": ["suzhou-wuzhong"]}
        ),
        node.keys["huaibei-duji"],
    )
    async with node.client("huaibei-duji") as c:
        a = await c.push(only_huaihai)
        b = await c.push(to_site)
    async with node.client(
        "xuzhou-tongshan"
    ) as c:  # in huaihai, not addressed directly
        ids = [e["id"] for e in (await c.list_items())["items"]]
        assert ids == [a["id"]]
        with pytest.raises(NotFound):
            await c.get_item(b["id"])
    async with node.client("suzhou-wuzhong") as c:  # yangtze-delta only, but named in b
        ids = [e["id"] for e in (await c.list_items())["items"]]
        assert ids == [b["id"]]
        with pytest.raises(NotFound):
            await c.get_item(a["id"])


async def test_filters_and_paging(node: Any) -> None:
    await _setup(node)
    key = node.keys["huaibei-duji"]
    batch = [
        sign_item(_item(kind=k, title=f"条目{i}"), key)
        for i, k in enumerate(["lesson", "case_study", "inspection_plan"] * 5)
    ]
    async with node.client("huaibei-duji") as c:
        res = await c.push_batch(batch)
        assert res["accepted"] == 15 and res["refused"] == 0
        plans = await c.list_items(kind="inspection_plan")
        assert len(plans["items"]) == 5
        assert all(
            orjson.loads(orjson.dumps(e["signed"]))["item"]["kind"] == "inspection_plan"
            for e in plans["items"]
        )
        tagged = await c.list_items(tag="安全生产法")
        assert len(tagged["items"]) == 5
        seen = [e["index"] async for e in c.iter_items(limit=4)]
        assert seen == list(range(15))
        assert len((await c.list_items(author="suzhou-wuzhong"))["items"]) == 0


async def test_pages_are_cut_by_bytes_without_gaps(node_factory: Any) -> None:
    """A page ends at ``limit`` items or at ``http.page_max_bytes`` of items, whichever
    comes first; the cursor then continues exactly after the last item sent."""
    node = await node_factory(http={"page_max_bytes": 16 * 1024})
    await _setup(node)
    key = node.keys["huaibei-duji"]
    batch = [
        sign_item(
            _item(title=f"条目{i}", summary="预算联网监督。" * (20 + 40 * (i % 3))), key
        )
        for i in range(40)
    ]
    async with node.client("huaibei-duji") as c:
        assert (await c.push_batch(batch))["accepted"] == 40
        cursor, seen, pages = -1, [], 0
        while True:
            page = await c.list_items(cursor=cursor, limit=1000)
            pages += 1
            body = [
                orjson.dumps(orjson.loads(orjson.dumps(e["signed"]))["item"])
                for e in page["items"]
            ]
            assert page["items"], "a page with more to come is never empty"
            assert len(page["items"]) == 1 or sum(map(len, body)) <= 16 * 1024
            seen += [e["index"] for e in page["items"]]
            if page["next_cursor"] is None:
                break
            assert page["next_cursor"] == page["items"][-1]["index"]
            cursor = page["next_cursor"]
        assert seen == list(range(40)) and pages > 3
        # A limit below the byte budget: exactly `limit` items, then the rest.
        first = await c.list_items(cursor=-1, limit=2)
        assert [e["index"] for e in first["items"]] == [0, 1] and first[
            "next_cursor"
        ] == 1


async def test_batch_with_bad_items_stores_good_ones(node: Any) -> None:
    await _setup(node)
    key = node.keys["huaibei-duji"]
    good1 = sign_item(_item(title="好的一"), key)
    good2 = sign_item(_item(title="好的二"), key)
    tampered = copy.deepcopy(sign_item(_item(title="被篡改"), key))
    tampered["item"]["title"] = "被篡改了"
    unknown_kind = sign_item(_item(), key)
    unknown_kind["item"]["kind"] = "poem"
    async with node.client("huaibei-duji") as c:
        res = await c.push_batch([good1, tampered, good2, unknown_kind])
    statuses = [(r["status"], (r["error"] or {}).get("code")) for r in res["results"]]
    assert statuses == [
        ("accepted", None),
        ("refused", "bad_signature"),
        ("accepted", None),
        ("refused", "unknown_kind"),
    ]
    assert res["accepted"] == 2 and res["refused"] == 2
    assert await _count(node) == 2


@pytest.mark.parametrize(
    "case",
    [
        "tampered",
        "other_site_key",
        "unknown_key",
        "revoked_key",
        "author_not_signer",
        "unknown_field",
        "unknown_body_field",
        "unknown_kind",
        "future",
        "bad_audience",
        "not_own_item",
    ],
)
async def test_bad_items_refused_nothing_stored(node: Any, case: str) -> None:
    await _setup(node)
    duji = node.keys["huaibei-duji"]
    wuzhong = node.keys["suzhou-wuzhong"]
    pusher = "huaibei-duji"
    expect: tuple[int, str]
    if case == "tampered":
        doc = sign_item(_item(), duji)
        doc["item"]["summary"] = "签名后修改"
        expect = (422, "bad_signature")
    elif case == "other_site_key":
        it = _item()
        doc = _forge(it, wuzhong, "huaibei-duji#k1")
        expect = (422, "bad_signature")
    elif case == "unknown_key":
        stranger = generate_key(key_id="huaibei-duji#k9")
        doc = sign_item(_item(), stranger)
        expect = (422, "unknown_key")
    elif case == "revoked_key":
        await node.node.sites.revoke_key("huaibei-duji#k1")
        new = generate_key(key_id="huaibei-duji#k2")
        await node.node.sites.add_key(
            new.key_id, "huaibei-duji", new.alg, new.public_key.raw
        )
        node.keys["huaibei-duji"] = new  # requests signed with the new key
        doc = sign_item(_item(), duji)  # item signed with the revoked one
        expect = (422, "revoked_key")
    elif case == "author_not_signer":
        pusher = "suzhou-wuzhong"
        doc = _forge(_item(author="suzhou-wuzhong"), duji, "huaibei-duji#k1")
        expect = (422, "author_mismatch")
    elif case == "unknown_field":
        doc = sign_item({**_item(), "priority": "high"}, duji)
        expect = (422, "schema_invalid")
    elif case == "unknown_body_field":
        it = _item()
        it["body"] = {**it["body"], "secret_note": "x"}
        doc = sign_item(it, duji)
        expect = (422, "schema_invalid")
    elif case == "unknown_kind":
        doc = sign_item({**_item(), "kind": "poem"}, duji)
        expect = (422, "unknown_kind")
    elif case == "future":
        doc = sign_item(_item(created_at="2099-01-01T00:00:00+08:00"), duji)
        expect = (422, "timestamp_in_future")
    elif case == "bad_audience":
        doc = sign_item(
            _item(audience={"circles": ["no-such-circle"], "sites": []}), duji
        )
        expect = (422, "audience_invalid")
    else:  # not_own_item: wuzhong pushes duji's validly signed item
        pusher = "suzhou-wuzhong"
        doc = sign_item(_item(), duji)
        expect = (403, "forbidden")
    status, body = await _raw(
        node, "POST", "/v1/items", orjson.dumps(doc), signer=node.keys[pusher]
    )
    assert (status, body["error"]["code"]) == expect, body
    assert body["error"]["message"]
    assert await _count(node) == 0


@pytest.mark.parametrize(
    "case",
    [
        "bad_digest",
        "missing_signature",
        "expired",
        "replayed",
        "over_limit",
        "too_deep",
        "duplicate_keys",
        "invalid_utf8",
        "float",
        "batch_too_large",
    ],
)
async def test_bad_requests_refused(node_factory: Any, case: str) -> None:
    node = await node_factory(http={"max_body_bytes": 64 * 1024, "max_batch": 3})
    await _setup(node)
    duji = node.keys["huaibei-duji"]
    body = orjson.dumps(sign_item(_item(), duji))
    signer: Any = duji
    mutate = None
    if case == "bad_digest":

        def mutate(h: dict[str, str], b: bytes) -> tuple[dict[str, str], bytes]:
            return h, b.replace(b"zh-CN", b"zh-TW")

        expect = (401, "digest_mismatch")
    elif case == "missing_signature":
        signer = None
        expect = (401, "unauthenticated")
    elif case == "expired":
        authority = node.url.split("://", 1)[1]
        old = httpsig.sign_request(
            duji,
            "POST",
            "/v1/items",
            authority,
            {"Content-Type": "application/json"},
            body,
            created=int(time.time()) - 3600,
            nonce="old-nonce",
        )
        signer = None

        def mutate(h: dict[str, str], b: bytes) -> tuple[dict[str, str], bytes]:
            return {**h, **old}, b

        expect = (401, "signature_expired")
    elif case == "replayed":
        authority = node.url.split("://", 1)[1]
        hdrs = httpsig.sign_request(
            duji,
            "POST",
            "/v1/items",
            authority,
            {"Content-Type": "application/json"},
            body,
            created=int(time.time()),
            nonce="once-only",
        )
        signer = None
        first, _ = await _raw(node, "POST", "/v1/items", body, headers=hdrs)
        assert first == 201

        def mutate(h: dict[str, str], b: bytes) -> tuple[dict[str, str], bytes]:
            return {**h, **hdrs}, b

        expect = (401, "replayed_request")
    elif case == "over_limit":
        it = _item()
        it["summary"] = "很长" * 1000
        batch = {"items": [sign_item(dict(it, title=f"大{i}"), duji) for i in range(3)]}
        body = orjson.dumps(batch) + b" " * (64 * 1024)
        expect = (413, "too_large")
    elif case == "too_deep":
        body = b'{"items":' + b"[" * 100 + b"]" * 100 + b"}"
        expect = (400, "too_deep")
    elif case == "duplicate_keys":
        body = body.replace(b'{"item":{', b'{"item":{"title":"x",', 1)
        expect = (400, "duplicate_key")
    elif case == "invalid_utf8":
        body = body.replace(
            "杜集".encode() if "杜集".encode() in body else b"zh-CN", b"\xff\xfe", 1
        )
        expect = (400, "invalid_utf8")
    elif case == "float":
        body = body.replace(b'"v":1', b'"v":1.0', 1)
        expect = (400, "float_not_allowed")
    else:  # batch_too_large
        body = orjson.dumps(
            {"items": [sign_item(_item(title=f"第{i}"), duji) for i in range(4)]}
        )
        expect = (413, "batch_too_large")
    status, resp = await _raw(
        node, "POST", "/v1/items", body, signer=signer, mutate=mutate
    )
    assert (status, resp["error"]["code"]) == expect, resp
    expected_count = 1 if case == "replayed" else 0
    assert await _count(node) == expected_count


async def test_reads_need_authentication(node: Any) -> None:
    await _setup(node)
    status, body = await _raw(node, "GET", "/v1/items", None)
    assert (status, body["error"]["code"]) == (401, "unauthenticated")
    token = await node.add_monitor("huaibei-municipal", circles=("huaihai",))
    async with node.client(token=token) as c:
        assert (await c.list_items())["items"] == []
        with pytest.raises(Forbidden):  # monitors are read-only
            await c.push(sign_item(_item(), node.keys["huaibei-duji"]))
    async with node.client(token="not-a-token") as c:
        with pytest.raises(AuthError):
            await c.list_items()


async def test_monitor_sees_only_its_scope(node: Any) -> None:
    await _setup(node)
    async with node.client("huaibei-duji") as c:
        await c.push(sign_item(_item(), node.keys["huaibei-duji"]))
    async with node.client("suzhou-wuzhong") as c:
        await c.push(
            sign_item(
                _item(author="suzhou-wuzhong", title="吴中经验"),
                node.keys["suzhou-wuzhong"],
            )
        )
    token = await node.add_monitor("huaibei-municipal", circles=("huaihai",))
    async with node.client(token=token) as c:
        authors = [
            orjson.loads(orjson.dumps(e["signed"]))["item"]["author"]
            for e in (await c.list_items())["items"]
        ]
    assert authors == ["huaibei-duji"]


async def test_blobs(node: Any) -> None:
    await _setup(node)
    data = secrets.token_bytes(700_000)
    sha = hashlib.sha256(data).hexdigest()
    async with node.client("huaibei-duji") as c:
        info = await c.put_blob(data, "application/pdf")
        assert info == {
            "sha256": sha,
            "size": len(data),
            "media_type": "application/pdf",
        }
        assert await c.get_blob(sha) == data  # the uploader may read its own blob
        it = _item(
            attachments=[
                {
                    "name": "方案.pdf",
                    "media_type": "application/pdf",
                    "size": len(data),
                    "sha256": sha,
                }
            ],
            audience={"circles": ["huaihai"], "sites": []},
        )
        await c.push(sign_item(it, node.keys["huaibei-duji"]))
    async with node.client("xuzhou-tongshan") as c:
        assert await c.get_blob(sha) == data
    async with node.client("suzhou-wuzhong") as c:  # outside the item's audience
        with pytest.raises(NotFound):
            await c.get_blob(sha)


async def test_blob_hash_mismatch_stores_nothing(node: Any) -> None:
    await _setup(node)
    data = b"real bytes" * 1000
    claimed = b"other bytes"
    wrong = hashlib.sha256(claimed).hexdigest()
    # Signed (and digested) as if uploading `claimed`, but the bytes sent are `data`.
    status, body = await _raw(
        node,
        "PUT",
        f"/v1/blobs/{wrong}",
        claimed,
        signer=node.keys["huaibei-duji"],
        headers={"Content-Type": "application/octet-stream"},
        mutate=lambda h, b: (h, data),
    )
    assert (status, body["error"]["code"]) == (400, "blob_hash_mismatch")
    assert await node.node.blobs.meta(wrong) is None
    # A digest that names another hash than the URL is refused before any byte is stored.
    other = hashlib.sha256(b"x").hexdigest()
    status, body = await _raw(
        node,
        "PUT",
        f"/v1/blobs/{other}",
        data,
        signer=node.keys["huaibei-duji"],
        headers={"Content-Type": "application/octet-stream"},
    )
    assert (status, body["error"]["code"]) == (401, "digest_mismatch")
    assert await node.node.blobs.meta(other) is None


async def test_blob_over_limit(node_factory: Any) -> None:
    node = await node_factory(http={"max_blob_bytes": 100_000})
    await _setup(node)
    async with node.client("huaibei-duji") as c:
        with pytest.raises(Exception) as ei:
            await c.put_blob(b"x" * 200_000)
    assert (
        getattr(ei.value, "code", None) is not None
        and ei.value.code.value == "too_large"
    )


async def test_sites_directory_and_health(node: Any) -> None:
    await _setup(node)
    async with node.client() as c:
        sites = await c.sites()
        assert [s["id"] for s in sites] == [
            "huaibei-duji",
            "suzhou-wuzhong",
            "xuzhou-tongshan",
        ]
        assert sites[0]["name"] == "淮北市杜集区人大常委会"
        assert sites[0]["keys"][0]["key_id"] == "huaibei-duji#k1"
        assert (await c.health())["status"] == "ok"
        doc = await c.request("GET", "/openapi.json")
        assert (
            "/v1/items" in doc["paths"] and "SignedItem" in doc["components"]["schemas"]
        )
    status, body = await _raw(node, "GET", "/v1/nope", None)
    assert (status, body["error"]["code"]) == (404, "not_found")


async def test_unknown_request_key_is_refused(node: Any) -> None:
    await _setup(node)
    stranger = generate_key(key_id="nobody#k1")
    status, body = await _raw(node, "GET", "/v1/items", None, signer=stranger)
    assert status == 401 and body["error"]["code"] == "bad_request_signature"


async def test_large_batch_body_is_read_whole(node: Any) -> None:
    """A 500-item batch (~1 MB) arrives in many TCP reads; all of it must be verified."""
    await _setup(node)
    key = node.keys["huaibei-duji"]
    it = _item()
    it["summary"] = "预算联网监督" * 150
    batch = [sign_item(dict(it, title=f"批量{i}"), key) for i in range(500)]
    async with node.client("huaibei-duji") as c:
        res = await c.push_batch(batch)
    assert res["accepted"] == 500 and res["refused"] == 0
    assert await _count(node) == 500


async def test_revocation_from_another_process_takes_effect(node: Any) -> None:
    """Keys are cached in memory; a revocation written by another connection (the
    operator's CLI) reaches the cache through NOTIFY, so pushes are refused at once."""
    import asyncio

    import asyncpg

    await _setup(node)
    key = node.keys["huaibei-duji"]
    k2 = generate_key(
        key_id="huaibei-duji#k2"
    )  # signs the requests; k1 signs the items
    await node.node.sites.add_key(k2.key_id, "huaibei-duji", k2.alg, k2.public_key.raw)
    async with node.client("huaibei-duji") as c:
        await c.push(sign_item(_item(title="撤销前"), key))  # the key is now cached
    conn = await asyncpg.connect(node.node.db.url)
    try:
        await conn.execute(
            "UPDATE site_keys SET revoked_at = now() WHERE key_id = 'huaibei-duji#k1'"
        )
    finally:
        await conn.close()
    refused_code = None
    for attempt in range(50):  # bounded: at most ~5 s
        status, body = await _raw(
            node,
            "POST",
            "/v1/items",
            orjson.dumps(sign_item(_item(title=f"撤销后{attempt}"), key)),
            signer=k2,
        )
        if status != 201:
            refused_code = body["error"]["code"]
            break
        await asyncio.sleep(0.1)
    assert refused_code == "revoked_key"
    status, body = await _raw(
        node,
        "POST",
        "/v1/items",
        orjson.dumps(sign_item(_item(title="再试"), key)),
        signer=key,
    )
    assert status == 401 and body["error"]["code"] == "bad_request_signature"
    assert "revoked" in body["error"]["message"]


async def test_rate_limit_per_site(node_factory: Any) -> None:
    node = await node_factory(limits={"site_requests_per_s": 1, "site_burst": 3})
    await _setup(node)
    statuses = []
    for _ in range(5):
        status, body = await _raw(
            node, "GET", "/v1/items", None, signer=node.keys["huaibei-duji"]
        )
        statuses.append(status)
        if status == 429:
            assert body["error"]["code"] == "rate_limited"
    assert statuses[:3] == [200, 200, 200] and 429 in statuses[3:]
    # Another site is not affected.
    status, _ = await _raw(
        node, "GET", "/v1/items", None, signer=node.keys["suzhou-wuzhong"]
    )
    assert status == 200
    authority = node.url.split("://", 1)[1]
    async with aiohttp.ClientSession() as s:
        hdrs = httpsig.sign_request(
            node.keys["huaibei-duji"],
            "GET",
            "/v1/items",
            authority,
            {},
            None,
            created=int(time.time()),
            nonce=secrets.token_urlsafe(12),
            scheme="http",
        )
        async with s.get(node.url + "/v1/items", headers=hdrs) as r:
            assert r.status == 429 and int(r.headers["Retry-After"]) >= 1
