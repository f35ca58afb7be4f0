"""Peers witness each other's logs: cosign consistent checkpoints, catch forks and
rewrites, and keep a restored node from signing behind what they witnessed."""

from __future__ import annotations

from typing import Any

import aiohttp

from exchange.core.items import sign_item
from exchange.core.logleaf import leaf_hash_for, log_origin
from exchange.core.merkle import root_of
from exchange.core.note import verify_cosignature
from exchange.templates import template
from tests.support import wait_checkpoint, wait_until
from tests.support.federation import build


def _items(key: Any, n: int, start: int = 0) -> list[dict[str, Any]]:
    out = []
    for i in range(start, start + n):
        it = template("lesson", "huaibei-duji")
        it["title"] = f"见证 {i}"
        out.append(sign_item(it, key))
    return out


async def _rewrite(rn: Any, keep: int) -> None:
    """What a dishonest operator (or an old backup) does: drop the log after ``keep``."""
    await rn.node.sequencer.stop()
    async with rn.node.db.pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM items WHERE idx >= $1", keep)
        await conn.execute("UPDATE log_head SET size = $1", keep)
        await conn.execute(
            "DELETE FROM log_nodes WHERE (idx + 1) * (1::bigint << level) > $1", keep
        )
        await conn.execute("DELETE FROM log_checkpoints")
        rows = await conn.fetch("SELECT idx, id, received_at FROM items ORDER BY idx")
        await conn.execute(
            "UPDATE log_state SET size = $1, root = $2",
            keep,
            root_of([leaf_hash_for(r["id"], r["idx"], r["received_at"]) for r in rows]),
        )
    rn.node.sequencer.head_file().unlink(missing_ok=True)


async def test_cosign_then_catch_a_rewritten_log(node_factory: Any) -> None:
    fed = await build(
        node_factory, regions=("huaihai", "yangtze-delta"), replicate=False
    )
    hh, yd = fed.nodes["huaihai"], fed.nodes["yangtze-delta"]
    key = hh.keys["huaibei-duji"]
    async with hh.client("huaibei-duji") as c:
        await c.push_batch(_items(key, 20))
    await wait_checkpoint(hh, 20)
    status = await yd.node.witness.round()
    assert status["huaihai"] == "cosigned 20"
    async with aiohttp.ClientSession() as s, s.get(hh.url + "/v1/log/checkpoint") as r:
        cp = await r.json()
    (line,) = cp["cosignatures"]
    ts = verify_cosignature(
        cp["note"] + line, log_origin("yangtze-delta"), yd.node.key.public_key
    )
    assert ts > 0
    async with hh.client("huaibei-duji") as c:
        await c.push_batch(_items(key, 5, 100))
    await wait_checkpoint(hh, 25)
    assert (await yd.node.witness.round())["huaihai"] == "cosigned 25"

    # The operator truncates the log to 10 and regrows it with other items to 30.
    await _rewrite(hh, 10)
    hh.node.sequencer.start()
    async with hh.client("huaibei-duji") as c:
        await c.push_batch(_items(key, 20, 500))
    await wait_checkpoint(hh, 30)
    status = await yd.node.witness.round()
    assert status["huaihai"].startswith("inconsistent: not consistent with size 25"), (
        status
    )
    evidence = await yd.node.witness.store.all_evidence()
    assert (
        evidence
        and evidence[0]["node_id"] == "huaihai"
        and evidence[0]["old_note"]
        and evidence[0]["new_note"]
    )
    assert (await yd.node.witness.store.last_seen("huaihai"))[
        0
    ] == 25  # did not advance
    async with aiohttp.ClientSession() as s, s.get(yd.url + "/metrics") as r:
        assert (
            'exchange_security_events_total{code="checkpoint_invalid"} 1.0'
            in await r.text()
        )
    token = await yd.add_monitor("m", circles=("yangtze-delta",))
    async with yd.client(token=token) as c:
        act = await c.request("GET", "/v1/activity")
    assert any(e["code"] == "checkpoint_invalid" for e in act["security_events"])


async def test_restored_node_does_not_sign_behind_what_peers_witnessed(
    node_factory: Any,
) -> None:
    fed = await build(
        node_factory, regions=("huaihai", "yangtze-delta"), replicate=False
    )
    hh, yd = fed.nodes["huaihai"], fed.nodes["yangtze-delta"]
    key = hh.keys["huaibei-duji"]
    async with hh.client("huaibei-duji") as c:
        await c.push_batch(_items(key, 20))
    await wait_checkpoint(hh, 20)
    assert (await yd.node.witness.round())["huaihai"] == "cosigned 20"
    # The database comes back from an old backup (size 10) and the data disk is new.
    await _rewrite(hh, 10)
    hh.node.sequencer.floor_checked = False
    hh.node.sequencer.start()
    await hh.node.witness.round()  # asks the peers first
    async with hh.client("huaibei-duji") as c:
        await c.push_batch(_items(key, 3, 900))

    async def refusal() -> Any:
        return hh.node.sequencer.refusal

    assert "already signed size 20" in await wait_until(
        refusal, 10, "the log writer to refuse"
    )
    assert await hh.node.log.latest_checkpoint() is None


async def test_one_witness_per_database(node_factory: Any) -> None:
    """Every ``--workers`` process ran its own witness rounds: each peer was asked for
    its checkpoint and proofs once per worker and interval, and a fork would have been
    recorded and counted once per worker. Now the process that writes the log (and
    signs it) witnesses; another process on the same database takes over with the
    writer's lock."""
    import asyncio

    from exchange.node import Node

    fed = await build(
        node_factory,
        regions=("huaihai", "yangtze-delta"),
        replicate=False,
        witness_interval_ms=200,
    )
    yd = fed.nodes["yangtze-delta"]
    second = Node(yd.node.config)  # a second worker of the same node and database
    await second.start(run_migrations=False)
    processes = (yd.node, second)
    try:
        second.sequencer.start()
        for n in processes:
            n.witness.start()

        async def a_writer() -> bool:
            return any(n.sequencer.is_writer for n in processes)

        await wait_until(a_writer, what="a log writer")
        await asyncio.sleep(1.5)  # several witness intervals
        writer = next(n for n in processes if n.sequencer.is_writer)
        other = next(n for n in processes if n is not writer)
        assert writer.witness.rounds >= 3
        assert other.witness.rounds == 0
        await writer.sequencer.stop()  # its lock goes with its connection

        async def other_witnesses() -> bool:
            return other.sequencer.is_writer and other.witness.rounds > 0

        await wait_until(other_witnesses, what="the new log writer to witness")
        assert (await other.witness.round())["huaihai"].startswith(
            ("cosigned", "no checkpoint yet")
        )
    finally:
        for n in processes:
            await n.witness.stop()
        await second.sequencer.stop()
        await second.stop()
