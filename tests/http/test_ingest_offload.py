"""Push bodies checked in helper processes give exactly the outcomes of the inline path.

The same requests go to two nodes: one checks every body in a helper process
(``ingest.offload_min_bytes = 0``), the other checks everything on the event loop
(``verify_processes = 0``). Per-item results (status, index, error code and message),
whole-body refusals, and what is stored must be identical.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from exchange.core.items import sign_item, signing_input
from exchange.core.signing import b64u_encode, generate_key
from exchange.templates import template

from .test_items import _raw, _setup

pytestmark = pytest.mark.asyncio


def _item(n: int, **changes: Any) -> dict[str, Any]:
    it = template("lesson", author="huaibei-duji", partner="suzhou-wuzhong")
    it["title"] = f"经验第{n}号"
    it.update(changes)
    return it


def _mixed_batch(duji: Any, wuzhong: Any) -> list[Any]:
    good = [sign_item(_item(n), duji) for n in range(6)]
    tampered = copy.deepcopy(sign_item(_item(10), duji))
    tampered["item"]["summary"] = "签名后修改"
    forged = {
        "item": _item(11),
        "sig": {
            "key": "huaibei-duji#k1",
            "alg": "ed25519",
            "value": b64u_encode(wuzhong.sign(signing_input(_item(11)))),
        },
    }
    stranger = sign_item(_item(12), generate_key(key_id="huaibei-duji#k9"))
    not_own = sign_item(template("lesson", author="suzhou-wuzhong"), wuzhong)
    unknown_field = sign_item({**_item(13), "priority": "high"}, duji)
    unknown_kind = sign_item({**_item(14), "kind": "poem"}, duji)
    future = sign_item(_item(15, created_at="2099-01-01T00:00:00+08:00"), duji)
    audience = sign_item(
        _item(16, audience={"circles": ["no-such-circle"], "sites": []}), duji
    )
    not_signed = {"item": _item(17)}
    bad_b64 = {**sign_item(_item(18), duji)}
    bad_b64["sig"] = {**bad_b64["sig"], "value": "***"}
    return [
        good[0],
        tampered,
        good[1],
        forged,
        stranger,
        not_own,
        unknown_field,
        good[2],
        unknown_kind,
        future,
        audience,
        not_signed,
        bad_b64,
        good[0],
        good[3],
        42,
        good[4],
        good[5],
    ]


async def _pair(node_factory: Any) -> tuple[Any, Any]:
    off = await node_factory(
        "huaihai", ingest={"offload_min_bytes": 0, "verify_processes": 2}
    )
    inline = await node_factory("huaihai-inline", ingest={"verify_processes": 0})
    await _setup(off)
    for site in await off.node.sites.list_sites():  # the same sites and keys on both
        await inline.node.sites.add_site(
            site.id, site.name, inline.node.id, list(site.circles)
        )
        key = off.keys[site.id]
        await inline.node.sites.add_key(
            key.key_id, site.id, key.alg, key.public_key.raw
        )
    inline.keys = off.keys
    return off, inline


async def test_mixed_batch_same_outcomes_inline_and_in_helpers(
    node_factory: Any,
) -> None:
    off, inline = await _pair(node_factory)
    batch = _mixed_batch(off.keys["huaibei-duji"], off.keys["suzhou-wuzhong"])
    body = orjson.dumps({"items": batch})
    got = []
    for n in (off, inline):
        status, res = await _raw(
            n, "POST", "/v1/items", body, signer=n.keys["huaibei-duji"]
        )
        assert status == 200, res
        got.append(res)
        # once more: every good item is now a duplicate with its first index
        again = (
            await _raw(n, "POST", "/v1/items", body, signer=n.keys["huaibei-duji"])
        )[1]
        got.append(again)
    assert got[0] == got[2] and got[1] == got[3]
    results = got[0]["results"]
    codes = [(r["status"], (r["error"] or {}).get("code")) for r in results]
    assert codes == [
        ("accepted", None),
        ("refused", "bad_signature"),
        ("accepted", None),
        ("refused", "bad_signature"),
        ("refused", "unknown_key"),
        ("refused", "forbidden"),
        ("refused", "schema_invalid"),
        ("accepted", None),
        ("refused", "unknown_kind"),
        ("refused", "timestamp_in_future"),
        ("refused", "audience_invalid"),
        ("refused", "schema_invalid"),
        ("refused", "schema_invalid"),
        ("duplicate", None),
        ("accepted", None),
        ("refused", "schema_invalid"),
        ("accepted", None),
        ("accepted", None),
    ]
    assert results[13]["index"] == results[0]["index"]
    assert {r["status"] for r in got[1]["results"]} == {"duplicate", "refused"}
    assert await off.node.items.size() == await inline.node.items.size() == 6
    assert off.node.ingestor._pool is not None and inline.node.ingestor._pool is None


@pytest.mark.parametrize(
    "case",
    [
        "not_json",
        "duplicate_key",
        "float",
        "empty_batch",
        "extra_field",
        "too_many",
        "too_deep",
    ],
)
async def test_bad_bodies_same_error_inline_and_in_helpers(
    node_factory: Any, case: str
) -> None:
    off, inline = await _pair(node_factory)
    one = orjson.dumps(sign_item(_item(1), off.keys["huaibei-duji"])).decode()
    body = {
        "not_json": b'{"items": [',
        "duplicate_key": ('{"items": [' + one + '], "items": []}').encode(),
        "float": ('{"items": [' + one + '], "n": 1.5}').encode(),
        "empty_batch": b'{"items": []}',
        "extra_field": ('{"items": [' + one + '], "note": "x"}').encode(),
        "too_many": ('{"items": [' + ",".join([one] * 501) + "]}").encode(),
        "too_deep": b'{"items": [' + b"[" * 40 + b"]" * 40 + b"]}",
    }[case]
    answers = []
    for n in (off, inline):
        status, res = await _raw(
            n, "POST", "/v1/items", body, signer=n.keys["huaibei-duji"]
        )
        answers.append((status, res))
        assert 400 <= status < 500 and res["error"]["message"], res
    assert answers[0] == answers[1]
    assert await off.node.items.size() == await inline.node.items.size() == 0


async def test_key_id_spelt_with_escapes_is_checked_inline(node_factory: Any) -> None:
    """A key id written with a JSON escape is not seen by the helper's key scan: the
    request falls back to the inline path and is accepted like any other."""
    off, _ = await _pair(node_factory)
    signed = sign_item(_item(1), off.keys["huaibei-duji"])
    text = orjson.dumps({"items": [signed]}).decode()
    body = text.replace('"huaibei-duji#k1"', '"huaibei-duji\\u0023k1"').encode()
    assert b"\\u0023" in body
    status, res = await _raw(
        off, "POST", "/v1/items", body, signer=off.keys["huaibei-duji"]
    )
    assert status == 200 and res["accepted"] == 1, res


@pytest.mark.parametrize("with_float", [False, True])
async def test_delivered_items_same_outcomes_inline_and_in_helper_shares(
    node_factory: Any, with_float: bool
) -> None:
    """A peer's delivery (catch-up page or batch) large enough to be split among the
    helpers gives, item by item and in order, the outcomes of the inline checks; an
    object the strict parser refuses as a whole (a float) sends the delivery inline."""
    from exchange.core.trust import Reader

    off, inline = await _pair(node_factory)
    duji = off.keys["huaibei-duji"]
    objs: list[Any] = _mixed_batch(duji, off.keys["suzhou-wuzhong"])
    objs += [sign_item(_item(100 + n), duji) for n in range(120)]
    if with_float:
        objs.insert(40, {**sign_item(_item(99), duji), "weight": 0.5})
    assert len(objs) >= 2 * 64  # two shares, one per helper
    await off.node.ingestor._ensure_pool()  # started: deliveries go to the helpers
    outcomes = []
    for n in (off, inline):
        ing = n.node.ingestor
        checked = await ing.check_delivered(
            objs, Reader("site", "huaibei-duji"), origin="yangtze-delta", max_depth=32
        )
        assert await n.node.items.size() == 0  # checking stores nothing
        done = await ing.commit_checked(
            checked, Reader("site", "huaibei-duji"), "yangtze-delta"
        )
        outcomes.append([(o.status, o.id, o.error and o.error.code) for o in done])
        outcomes.append([o.error and o.error.message for o in done])
    assert outcomes[0] == outcomes[2] and outcomes[1] == outcomes[3]
    assert len(outcomes[0]) == len(objs)
    assert sum(1 for s, *_ in outcomes[0] if s == "accepted") == 126
    assert off.node.ingestor._pool is not None and inline.node.ingestor._pool is None
    assert off.node.ingestor.helper_checked == (0 if with_float else len(objs))
    assert inline.node.ingestor.helper_checked == 0


async def test_a_delivery_before_the_helpers_run_is_checked_inline_meanwhile(
    node_factory: Any,
) -> None:
    """The first delivery does not wait for the helpers to start: it is checked on the
    event loop while they start, and later ones go to them."""
    from exchange.core.trust import Reader

    off, _ = await _pair(node_factory)
    duji = off.keys["huaibei-duji"]
    ing = off.node.ingestor
    reader = Reader("site", "huaibei-duji")
    first = [sign_item(_item(n), duji) for n in range(130)]
    assert ing._pool is None
    done = await ing.push_delivered(first, reader, origin="yangtze-delta", max_depth=32)
    assert [o.status for o in done] == ["accepted"] * 130
    assert ing.helper_checked == 0
    await ing._ensure_pool()
    later = [sign_item(_item(200 + n), duji) for n in range(130)]
    done = await ing.push_delivered(later, reader, origin="yangtze-delta", max_depth=32)
    assert [o.status for o in done] == ["accepted"] * 130
    assert ing.helper_checked == 130
