"""Push latency of single 2 KB items against a node on the embedded PostgreSQL.

    python bench/push_latency.py [--items 500] [--clients 1,8,32]

Starts an embedded PostgreSQL in a temporary folder, a node on 127.0.0.1, registers a
site, then pushes signed ~2 KB items (one per request) from N concurrent clients and
prints accepted items/s and latency percentiles. Durable commits stay on.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp import web  # noqa: E402

from exchange.client import ExchangeClient  # noqa: E402
from exchange.config import load_config  # noqa: E402
from exchange.core.canonical import canonical_json  # noqa: E402
from exchange.core.items import sign_item  # noqa: E402
from exchange.core.signing import generate_key  # noqa: E402
from exchange.http.app import make_app  # noqa: E402
from exchange.node import Node  # noqa: E402
from exchange.templates import template  # noqa: E402


def _item(i: int) -> dict:
    it = template("case_study", "huaibei-duji")
    it["title"] = f"预算联网监督典型案例 第{i}号"
    it["summary"] = "杜集区人大常委会预算联网监督工作案例。" * 18
    return it


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def main(n_items: int, clients: list[int]) -> None:
    cfg = load_config(
        None,
        overrides={
            "http": {"listen": "127.0.0.1:0"},
            "limits": {"site_requests_per_s": 0},
        },
        environ={},
    )
    node = Node(cfg)
    await node.start()
    await node.sites.add_site(
        "huaibei-duji", "淮北市杜集区人大常委会", "bench", ["huaihai"]
    )
    key = generate_key(key_id="huaibei-duji#k1")
    await node.sites.add_key(key.key_id, "huaibei-duji", "ed25519", key.public_key.raw)
    runner = web.AppRunner(make_app(node), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}"
    size = len(canonical_json(_item(0)))
    print(
        f"item size {size} bytes (canonical); {n_items} items per run; durable commits"
    )
    seq = 0
    try:
        for c in clients:
            items = [sign_item(_item(seq + i), key) for i in range(n_items)]
            seq += n_items
            lat: list[float] = []
            queue = list(items)

            async def worker(queue: list[Any] = queue, lat: list[float] = lat) -> None:
                async with ExchangeClient(url, key=key) as cl:
                    while queue:
                        doc = queue.pop()
                        t = time.perf_counter()
                        res = await cl.push(doc)
                        lat.append((time.perf_counter() - t) * 1000)
                        assert res["status"] == "accepted"

            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(c)))
            dt = time.perf_counter() - t0
            print(
                f"clients={c:3d}  {n_items / dt:8.0f} items/s  p50 {statistics.median(lat):6.2f} ms  "
                f"p95 {pct(lat, 95):6.2f} ms  p99 {pct(lat, 99):6.2f} ms"
            )
    finally:
        await runner.cleanup()
        await node.stop()
        if node.embedded:
            node.embedded.destroy()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--items", type=int, default=500)
    ap.add_argument("--clients", default="1,8,32")
    a = ap.parse_args()
    asyncio.run(main(a.items, [int(x) for x in a.clients.split(",")]))
