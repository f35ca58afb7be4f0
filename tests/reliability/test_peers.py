"""Partitions and slow peers: one healthy peer keeps flowing while five others misbehave,
and a peer that recovers catches up exactly once.

Node A's roster lists a real healthy peer B, a real node C behind a proxy that answers
500 until the test switches it to pass-through, and five fake peers on 127.0.0.1: a
closed port, a server that accepts connections and never answers, one that answers 500,
one that answers garbage, and one that answers only after longer than A's request
timeout. B and C do not replicate themselves (no catch-up pulls), so everything they
hold came through A's push sender.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from exchange.core.items import sign_item
from exchange.core.signing import generate_key
from tests.support import wait_until
from tests.support.reliability import (
    FakePeer,
    SwitchProxy,
    free_port,
    lesson,
    node_entry,
    roster,
    write_artifact,
)

pytestmark = pytest.mark.asyncio

BAD = ("peer-unreachable", "peer-hang", "peer-500", "peer-garbage", "peer-slow")
TIMEOUT_S = 0.5
FED = {
    "request_timeout_s": TIMEOUT_S,
    "backoff_base_ms": 50,
    "backoff_max_s": 1.0,
    "pull_interval_ms": 60_000,
    "witness_interval_ms": 60_000,
}


async def _ids(rn: Any) -> list[tuple[str, int]]:
    async with rn.node.db.pool.acquire() as c:
        rows = await c.fetch("SELECT id, idx FROM items ORDER BY idx")
    return [(r["id"], r["idx"]) for r in rows]


async def test_healthy_peer_flows_bad_peers_back_off_recovered_peer_catches_up(
    node_factory: Any,
) -> None:
    roster_key = generate_key(key_id="roster#k1")
    pinned = [f"roster#k1 ed25519 {roster_key.public_key.b64()}"]
    a = await node_factory(
        "huaihai",
        federation={"roster_keys": pinned, **FED},
        log={"checkpoint_interval_ms": 100},
    )
    b = await node_factory(
        "yangtze-delta", federation={"roster_keys": pinned, "replicate": False}
    )
    c = await node_factory(
        "zhejiang", federation={"roster_keys": pinned, "replicate": False}
    )
    duji = await a.add_site("huaibei-duji", "淮北市杜集区人大常委会", ("huaihai",))
    await b.add_site("suzhou-wuzhong", "苏州市吴中区人大常委会", ("yangtze-delta",))
    await c.add_site("jiaxing-nanhu", "嘉兴市南湖区人大常委会", ("yangtze-delta",))
    proxy = await SwitchProxy(c.url, mode="500").start()
    fakes = {
        "peer-hang": await FakePeer("hang").start(),
        "peer-500": await FakePeer("500").start(),
        "peer-garbage": await FakePeer("garbage").start(),
        "peer-slow": await FakePeer("slow", delay=3.0).start(),
    }
    urls = {name: f.url for name, f in fakes.items()}
    urls["peer-unreachable"] = (
        f"http://127.0.0.1:{free_port()}"  # nothing listens there
    )
    try:
        nodes = [
            node_entry("huaihai", a.url, a.node.key, ["huaibei-duji"]),
            node_entry("yangtze-delta", b.url, b.node.key, ["suzhou-wuzhong"]),
            node_entry("zhejiang", proxy.url, c.node.key, ["jiaxing-nanhu"]),
            *(
                node_entry(name, urls[name], generate_key(key_id=f"{name}#k1"))
                for name in BAD
            ),
        ]
        signed = roster(
            nodes,
            {
                "huaihai": ["huaibei-duji"],
                "yangtze-delta": ["suzhou-wuzhong", "jiaxing-nanhu"],
            },
            roster_key,
        )
        for rn in (a, b, c):
            await rn.node.federation.install(signed)

        # Rounds of pushes on A: B receives each round while the bad peers fail.
        latencies = []
        pushed: list[str] = []
        async with a.client("huaibei-duji") as client:
            for rnd in range(6):
                res = await client.push_batch(
                    [
                        sign_item(
                            lesson("huaibei-duji", f"分区测试 第{rnd}轮 第{i}条"), duji
                        )
                        for i in range(4)
                    ]
                )
                assert res["accepted"] == 4
                ids = {r["id"] for r in res["results"]}
                pushed.extend(r["id"] for r in res["results"])
                t0 = time.monotonic()

                async def at_b(ids: set[str] = ids) -> bool:
                    return ids <= {i for i, _ in await _ids(b)}

                await wait_until(at_b, 20, f"round {rnd} to reach the healthy peer")
                latencies.append(round(time.monotonic() - t0, 3))
                await asyncio.sleep(0.3)

        status1 = {p["peer"]: p for p in await a.node.federation.peer_status()}
        backoffs: dict[str, float] = {name: status1[name]["backoff_s"] for name in BAD}

        async def every_bad_peer_retried() -> bool:
            # Keep sampling the backoff until every bad peer has failed again.
            now = {p["peer"]: p for p in await a.node.federation.peer_status()}
            for name in BAD:
                backoffs[name] = max(backoffs[name], now[name]["backoff_s"])
            return all(
                now[n]["attempts"] > status1[n]["attempts"] for n in (*BAD, "zhejiang")
            )

        await wait_until(every_bad_peer_retried, 20, "every bad peer to be retried")
        status2 = {p["peer"]: p for p in await a.node.federation.peer_status()}

        # The healthy peer has everything, exactly once, in order.
        at_b_rows = await _ids(b)
        assert [i for i, _ in at_b_rows] == pushed and [
            x for _, x in at_b_rows
        ] == list(range(len(pushed)))
        assert (
            status2["yangtze-delta"]["backlog"] == 0
            and status2["yangtze-delta"]["last_error"] is None
        )
        # Every bad peer (and C behind the failing proxy) has its backlog, growing
        # attempts, a last error and a backoff; none was ever acknowledged.
        for name in (*BAD, "zhejiang"):
            s1, s2 = status1[name], status2[name]
            assert s2["backlog"] == len(pushed), (name, s2)
            assert s2["last_success"] is None and s2["pushed_total"] == 0, (name, s2)
            assert s2["last_error"], (name, s2)
            assert s2["attempts"] > s1["attempts"] >= 1, (name, s1, s2)
        assert all(v > 0 for v in backoffs.values()), backoffs
        assert fakes["peer-hang"].requests >= 1 and fakes["peer-slow"].requests >= 1
        assert fakes["peer-500"].requests >= 2 and fakes["peer-garbage"].requests >= 2
        assert await _ids(c) == []

        # C's proxy recovers: A delivers the backlog, exactly once.
        proxy.mode = "pass"
        t0 = time.monotonic()

        async def c_caught_up() -> bool:
            return len(await _ids(c)) == len(pushed)

        await wait_until(c_caught_up, 30, "the recovered peer to catch up")
        catch_up_s = round(time.monotonic() - t0, 3)

        async def c_acknowledged() -> bool:
            st = {p["peer"]: p for p in await a.node.federation.peer_status()}
            return st["zhejiang"]["backlog"] == 0

        await wait_until(c_acknowledged, 10, "A to record the delivery to C")
        at_c = await _ids(c)
        assert [i for i, _ in at_c] == pushed and [x for _, x in at_c] == list(
            range(len(pushed))
        )
        st = {p["peer"]: p for p in await a.node.federation.peer_status()}["zhejiang"]
        assert (
            st["pushed_total"] == len(pushed)
            and st["attempts"] == 0
            and st["last_error"] is None
        )
        dup = c.node.metrics.items_duplicate._value.get()  # noqa: SLF001 - prometheus counter
        assert dup == 0, "items were delivered to the recovered peer more than once"

        write_artifact(
            "peers",
            {
                "healthy_peer_round_latency_s": latencies,
                "bad_peer_attempts": {
                    n: status2[n]["attempts"] for n in (*BAD, "zhejiang")
                },
                "bad_peer_last_error": {
                    n: status2[n]["last_error"] for n in (*BAD, "zhejiang")
                },
                "bad_peer_max_backoff_s": backoffs,
                "items": len(pushed),
                "recovered_peer_catch_up_s": catch_up_s,
                "recovered_peer_duplicates": dup,
                "request_timeout_s": TIMEOUT_S,
            },
        )
    finally:
        await proxy.stop()
        for f in fakes.values():
            await f.stop()
