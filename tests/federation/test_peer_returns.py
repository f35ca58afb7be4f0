"""A peer that comes back is served at once: its catch-up pull ends the sender's backoff,
and a backlog it pulls is not pushed to it again (two real nodes over HTTP on
127.0.0.1)."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestServer

from exchange.core.items import sign_item
from exchange.federation.puller import Puller
from exchange.http.app import make_app
from tests.support.federation import build, item_ids, wait_until
from tests.support.reliability import lesson

# The sender backs off for ten minutes after a failure; the receiver runs no loops of
# its own (it pulls when the test says so).
LONG_BACKOFF = {
    "huaihai": {"federation": {"backoff_base_ms": 600_000, "backoff_max_s": 600.0}},
    "yangtze-delta": {"federation": {"replicate": False}},
}


async def _push(rn: Any, titles: list[str]) -> set[str]:
    key = rn.keys["huaibei-duji"]
    async with rn.client("huaibei-duji") as c:
        res = await c.push_batch(
            [sign_item(lesson("huaibei-duji", t), key) for t in titles]
        )
    return {r["id"] for r in res["results"]}


async def _missed_then_pulled(hh: Any, yd: Any, batches: list[list[str]]) -> set[str]:
    """Take the peer down, push ``batches`` to the sender until a delivery has failed
    (the sender then backs off for ten minutes), bring the peer back on its port and
    let it catch up by pulling. Returns the ids pushed while it was down."""
    port = yd.server.port
    await yd.server.close()
    missed: set[str] = set()
    for titles in batches:
        missed |= await _push(hh, titles)

    async def failed() -> bool:
        p = await hh.node.federation.store.peer("yangtze-delta")
        return p is not None and p.attempts >= 1

    await wait_until(failed, what="a failed delivery and a long backoff")
    yd.server = TestServer(make_app(yd.node), host="127.0.0.1", port=port)
    await yd.server.start_server()
    await Puller(yd.node).pull_all()
    return missed


async def test_a_returning_peers_pull_ends_the_senders_backoff(
    node_factory: Any,
) -> None:
    fed = await build(
        node_factory, regions=("huaihai", "yangtze-delta"), per_node=LONG_BACKOFF
    )
    hh, yd = fed.nodes["huaihai"], fed.nodes["yangtze-delta"]
    # The peer comes back and catches up by pulling; that tells the sender it is up.
    first = await _missed_then_pulled(hh, yd, [[f"离线{i}" for i in range(5)]])
    assert first <= set(await item_ids(yd))
    row = await hh.node.federation.store.peer("yangtze-delta")
    assert row is not None and row.attempts == 0
    # So new items are pushed now, not after the ten-minute backoff.
    later = await _push(hh, [f"回来{i}" for i in range(5)])

    async def pushed() -> bool:
        p = await hh.node.federation.store.peer("yangtze-delta")
        return (
            later <= set(await item_ids(yd)) and p is not None and p.pushed_total >= 5
        )

    await wait_until(pushed, what="the items pushed after the peer came back")


async def test_a_returning_peer_that_pulls_its_backlog_gets_each_item_once(
    node_factory: Any,
) -> None:
    """Found by the drain benchmark: once the pull ended the sender's backoff, the sender
    pushed the backlog while the returning peer pulled the same items (over half of
    10,000 crossed twice). The sender now holds its pushes back while the peer pulls
    pages, and goes on from the peer's cursor after its round's last (empty) page."""
    fed = await build(
        node_factory, regions=("huaihai", "yangtze-delta"), per_node=LONG_BACKOFF
    )
    hh, yd = fed.nodes["huaihai"], fed.nodes["yangtze-delta"]
    # 1,200 items: more than two full pages of the pull
    backlog = await _missed_then_pulled(
        hh, yd, [[f"积压{n}-{i}" for i in range(400)] for n in range(3)]
    )
    assert backlog <= set(await item_ids(yd))
    later = await _push(hh, ["追上之后"])  # pushed from where the pull ended

    async def delivered() -> bool:
        p = await hh.node.federation.store.peer("yangtze-delta")
        return (backlog | later) <= set(await item_ids(yd)) and (
            p is not None and p.pushed_total >= 1
        )

    await wait_until(delivered, what="the item pushed after the catch-up")
    row = await hh.node.federation.store.peer("yangtze-delta")
    assert row is not None and row.pushed_total == 1  # none of the backlog


async def test_one_process_per_database_pulls(node_factory: Any) -> None:
    """Found by the drain benchmark with ``--workers 2``: every worker ran its own
    catch-up rounds, so each page was fetched and checked once per worker (the peer
    spent 494 µs of CPU per item drained instead of 287). Now one process per database
    holds the puller's lock and pulls; another on the same database waits for it."""
    import asyncio

    from exchange.node import Node

    fed = await build(node_factory, regions=("huaihai", "yangtze-delta"))
    yd = fed.nodes["yangtze-delta"]
    second = Node(yd.node.config)  # a second worker of the same node and database
    await second.start(run_migrations=False)
    try:
        pullers = [yd.node.puller, second.puller]
        for p in pullers:
            p.start()

        async def one_leads() -> bool:
            return any(p.leading for p in pullers)

        await wait_until(one_leads, what="a catch-up puller to lead")
        await asyncio.sleep(1.5)  # the other keeps retrying its lock meanwhile
        assert sorted(p.leading for p in pullers) == [False, True]
        leader = next(p for p in pullers if p.leading)
        await leader.stop()  # its lock goes with its connection: the other takes over

        async def other_leads() -> bool:
            return next(p for p in pullers if p is not leader).leading

        await wait_until(other_leads, what="the second puller to take over")
    finally:
        await second.puller.stop()
        await second.stop()


async def test_every_worker_hears_that_a_peer_is_pulling(node_factory: Any) -> None:
    """Found by the drain benchmark with ``--workers 2``: the worker that served a
    returning peer's catch-up pages held its own pushes back, but the worker whose push
    loop served that peer did not hear of it and pushed the same backlog meanwhile (7,600
    of 10,000 items pushed while the peer pulled 3,000). The mark now reaches every
    worker through a notification."""
    from exchange.client import ExchangeClient
    from exchange.node import Node

    fed = await build(node_factory, regions=("huaihai", "yangtze-delta"))
    hh, yd = fed.nodes["huaihai"], fed.nodes["yangtze-delta"]
    await _push(hh, ["第一条"])
    second = Node(hh.node.config)  # a second worker of the sender, on its database
    await second.start(run_migrations=False)
    try:
        async with second.serving():

            async def listening() -> bool:
                return second.notifier.live

            await wait_until(listening, what="the second worker's notifications")
            async with ExchangeClient(hh.url, key=yd.node.key) as c:
                page = await c.request(
                    "GET", "/v1/federation/log", params={"after": -1, "limit": 1}
                )
                assert page["items"], page  # a page with items: the peer is pulling

                async def heard() -> bool:
                    return "yangtze-delta" in second.federation.pulling_since

                await wait_until(heard, what="the second worker to hear of the pull")
                end = await c.request(
                    "GET", "/v1/federation/log", params={"after": 2**40, "limit": 1}
                )
                assert end["items"] == []  # the end: pushes go on, in every worker

                async def ended() -> bool:
                    return "yangtze-delta" not in second.federation.pulling_since

                await wait_until(ended, what="the second worker to hear the pull ended")
    finally:
        await second.stop()
