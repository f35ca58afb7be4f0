"""Each item crosses to a peer once: the catch-up pull fetches only what pushes did not
deliver (two real nodes replicating over HTTP on 127.0.0.1)."""

from __future__ import annotations

from typing import Any

from exchange.core.items import sign_item
from exchange.federation.puller import Puller
from exchange.templates import template
from tests.support.federation import build, item_ids, wait_until

from .test_replication import _node_post

# The peer's own catch-up rounds are left to the test (one at start, then none).
SLOW_PULL = {"yangtze-delta": {"federation": {"pull_interval_ms": 600_000}}}


def _items(rn: Any, n: int, tag: str) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        it = template("lesson", "huaibei-duji")
        it["title"] = f"{tag}{i}"
        out.append(sign_item(it, rn.keys["huaibei-duji"]))
    return out


def _duplicates(rn: Any) -> float:
    return float(rn.node.metrics.items_duplicate._value.get())


async def _replicated(hh: Any, yd: Any, ids: set[str]) -> None:
    async def done() -> bool:
        row = await hh.node.federation.store.peer("yangtze-delta")
        return (
            ids <= set(await item_ids(yd))
            and row is not None
            and row.attempts == 0
            and await hh.node.federation.store.backlog(
                "yangtze-delta",
                hh.node.federation.node_reader("yangtze-delta"),
                row.push_cursor,
            )
            == 0
        )

    await wait_until(done, what="push replication")


async def test_pushed_items_are_not_pulled_again(node_factory: Any) -> None:
    fed = await build(
        node_factory, regions=("huaihai", "yangtze-delta"), per_node=SLOW_PULL
    )
    hh, yd = fed.nodes["huaihai"], fed.nodes["yangtze-delta"]
    sent = 0
    for round_ in range(3):  # several batches, so the ranges must chain
        async with hh.client("huaibei-duji") as c:
            res = await c.push_batch(_items(hh, 20, f"一次{round_}-"))
        sent += 20
        await _replicated(hh, yd, {r["id"] for r in res["results"]})
    # A fresh puller (no memory of earlier rounds) still finds nothing left to fetch.
    assert await Puller(yd.node).pull_all() == 0
    pushed = (await hh.node.federation.store.peer("yangtze-delta")).pushed_total
    peer = await yd.node.federation.store.peer("huaihai")
    assert (pushed, peer.pulled_total, _duplicates(yd)) == (sent, 0, 0)
    # The pull cursor stands where the pushes ended: the head of the sender's log.
    async with hh.node.db.pool.acquire() as c:
        head = await c.fetchval("SELECT size - 1 FROM log_head WHERE id = 1")
    assert peer.pull_cursor == head


async def test_a_gap_behind_the_pushes_is_left_to_the_puller(node_factory: Any) -> None:
    fed = await build(
        node_factory, regions=("huaihai", "yangtze-delta"), per_node=SLOW_PULL
    )
    hh, yd = fed.nodes["huaihai"], fed.nodes["yangtze-delta"]
    async with hh.client("huaibei-duji") as c:
        first = await c.push_batch(_items(hh, 5, "缺口前"))
    await _replicated(hh, yd, {r["id"] for r in first["results"]})
    # The peer's catch-up position goes back (as after a restore from backup).
    async with yd.node.db.pool.acquire() as c:
        await c.execute("UPDATE peers SET pull_cursor = -1 WHERE node_id = 'huaihai'")
    async with hh.client("huaibei-duji") as c:
        second = await c.push_batch(_items(hh, 5, "缺口后"))
    await _replicated(hh, yd, {r["id"] for r in second["results"]})
    # Pushes that do not adjoin the cursor leave it alone: the puller fills the gap.
    assert (await yd.node.federation.store.peer("huaihai")).pull_cursor == -1
    assert await Puller(yd.node).pull_all() == 0  # all there already (duplicates)
    assert (await yd.node.federation.store.peer("huaihai")).pull_cursor == (
        await hh.node.federation.store.peer("yangtze-delta")
    ).push_cursor


async def test_a_malformed_log_range_is_refused_and_nothing_is_stored(
    node_factory: Any,
) -> None:
    fed = await build(
        node_factory, regions=("huaihai", "yangtze-delta"), replicate=False
    )
    hh, yd = fed.nodes["huaihai"], fed.nodes["yangtze-delta"]
    records = await hh.node.federation.local_site_records()
    for bad in (
        {"after": 5, "through": 2},
        {"after": "0", "through": 3},
        {"after": 0},
        [0, 3],
        {"after": True, "through": 3},
    ):
        status, body = await _node_post(
            fed,
            "huaihai",
            "yangtze-delta",
            {
                "items": _items(hh, 1, "坏范围"),
                "site_records": records,
                "log_range": bad,
            },
        )
        assert status == 422 and body["error"]["code"] == "schema_invalid", (bad, body)
    assert await item_ids(yd) == {}
    assert (await yd.node.federation.store.peer("huaihai")).pull_cursor == -1


async def test_what_a_peer_pulled_is_not_pushed_to_it_again(node_factory: Any) -> None:
    fed = await build(
        node_factory, regions=("huaihai", "yangtze-delta"), replicate=False
    )
    hh, yd = fed.nodes["huaihai"], fed.nodes["yangtze-delta"]
    async with hh.client("huaibei-duji") as c:
        await c.push_batch(_items(hh, 12, "先拉"))
    assert await Puller(yd.node).pull_all() == 12
    # The pull's next request said how far the peer has everything: the push cursor
    # moved there, so the sender has nothing left to send.
    row = await hh.node.federation.store.peer("yangtze-delta")
    assert (
        row.push_cursor == (await yd.node.federation.store.peer("huaihai")).pull_cursor
    )
    assert (
        await hh.node.federation.store.backlog(
            "yangtze-delta",
            hh.node.federation.node_reader("yangtze-delta"),
            row.push_cursor,
        )
        == 0
    )
    # A peer kept current by its own pulls was reached: peer status must not show it
    # as never delivered to.
    assert row.last_success is not None
