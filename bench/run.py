"""Congress Exchange benchmark: this machine's limits, then the node against them.

    python bench/run.py [--quick] [--workers N] [--out bench/results/latest.json]

One run measures, in order, on one embedded PostgreSQL (``synchronous_commit`` on):

1. **Limits** of this machine, one core each: Ed25519 verifications/s (the library
   the node uses), RFC 8785 canonicalizations/s of a 2 KB item, pydantic validations/s
   of that item, asyncpg batched inserts/s of 2 KB rows (COPY, durable commits) into
   the same PostgreSQL, and requests/s of a trivial aiohttp handler. From the first
   four it derives the **pipeline limit**: items/s one core could reach doing only
   verify + canonicalize + validate + batched insert (harmonic combination of the
   per-item costs), and the pipeline limit × the cores the node may use
   (``min(workers, cores)``).
2. **The node**, as a separate process (``exchange node up --workers N``): batch push
   (100 and 500 per request), single-item push at 1, 8 and 32 concurrent clients
   (items/s, p50/p95/p99, CPU ms per item for the node, all its worker processes
   summed, and for PostgreSQL separately; the clock stops at the last acknowledgement,
   then the bench waits until the log and the search index have caught up before the
   next phase, and reports the CPU per item with that catch-up included as well: search
   indexing runs behind the log by design), pull throughput (with CPU µs per item for
   the node, PostgreSQL and this load generator; ``bench/pull_bench.py`` measures it
   alone) and ``GET /v1/items/{id}`` latency, acknowledgement → signed checkpoint, Merkle integration (leaves/s), and
   resident memory idle and under load.
3. **Federation** (the code of ``bench/federation_bench.py``, new nodes on the same
   PostgreSQL): replication lag p50/p99 between two and between three nodes at a steady
   100 and 500 items/s for 15 s each (2 s with ``--quick``; worst peer; a
   configuration whose achieved rate falls short of 95 % of the target is *saturated*),
   then backlog drain after a peer returns, with the sender's resident memory before,
   with the backlog held (10,000 items for 10 s; 1,000 for 1 s with ``--quick``) and
   after the drain; and what crossed between the nodes (counting relays on the roster
   URLs): items and bytes sent per item replicated (1.0 item when each item crosses
   to each peer once; bytes also as a multiple of the signed item's size).

Every figure is printed beside its ratio to the matching limit measured in the same run,
and written to ``bench/results/latest.json`` with the machine facts; a PNG plot (latency
distributions, throughput vs concurrency, replication lag) goes beside it. Requests are
signed before the clock starts, so the load generator's own signing does not count
against the node. A section that fails is reported as a note; the others still run;
errors in the nodes' logs are reported as notes too. CPU that other programs used on
the host during the run is recorded (``machine.other_programs_cpu_cores``): a busy host
lowers every figure. ``--quick`` finishes in under a minute on an idle host.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
import orjson  # noqa: E402
import psutil  # noqa: E402

from bench import federation_bench as fb  # noqa: E402
from bench.common import (  # noqa: E402
    NodeProc,
    free_port,
    item_2kb,
    machine_facts,
    note_stopping,
    pct,
    pg_cpu_seconds,
    say,
    signed_request,
    start_node,
    stop_node,
    stopped_cpu_seconds,
    wait_http,
)
from exchange.core.canonical import canonical_json  # noqa: E402
from exchange.core.items import sign_item, signing_input  # noqa: E402
from exchange.core.signing import PrivateKey, b64u_decode, generate_key  # noqa: E402
from exchange.storage.embedded import EmbeddedPostgres  # noqa: E402

# Re-exported for scripts that load this module (they used to find these here).
__all__ = [
    "NodeProc",
    "free_port",
    "item_2kb",
    "machine_facts",
    "pct",
    "say",
    "signed_request",
    "start_node",
    "stop_node",
    "wait_http",
]

REPLICATION_RATES = (100, 500)  # items/s, the two steady rates
REPLICATION_NODES = (2, 3)
HEADLINE = (3, 500)  # replication_lag_p50_ms / _p99_ms: 3 nodes at 500 items/s


def _shown(path: Path) -> str:
    """A path as recorded in results: relative to the repository when inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def rate_loop(fn: Callable[[], object], seconds: float) -> float:
    """Calls of ``fn`` per second over about ``seconds`` (bounded by time)."""
    n, t0 = 0, time.perf_counter()
    deadline = t0 + seconds
    while True:
        for _ in range(50):
            fn()
        n += 50
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - t0)


@dataclass
class Results:
    machine: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, float] = field(default_factory=dict)
    node: dict[str, Any] = field(default_factory=dict)
    series: dict[str, Any] = field(default_factory=dict)
    federation: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# -- limits ----------------------------------------------------------------------------
async def measure_limits(res: Results, pg_url: str, quick: bool) -> None:
    secs = 0.4 if quick else 1.5
    key = generate_key(key_id="huaibei-duji#k1")
    item = item_2kb("huaibei-duji", 1)
    signed = sign_item(item, key)
    msg = signing_input(item)
    sig = b64u_decode(signed["sig"]["value"])
    pub = key.public_key
    res.limits["ed25519_verify_per_s"] = rate_loop(lambda: pub.verify(msg, sig), secs)
    res.limits["canonicalize_2kb_per_s"] = rate_loop(lambda: canonical_json(item), secs)
    from schemas.items import ITEM_ADAPTER

    res.limits["pydantic_validate_per_s"] = rate_loop(
        lambda: ITEM_ADAPTER.validate_python(item), secs
    )
    res.limits["item_bytes"] = len(canonical_json(item))

    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_rows")
        await conn.execute(
            "CREATE TABLE bench_rows (id bigint PRIMARY KEY, body bytea NOT NULL)"
        )
        row = canonical_json(item)
        batch = 1000
        total, n = 0.0, 0
        rounds = 3 if quick else 10
        for r in range(rounds):
            recs = [(r * batch + i, row) for i in range(batch)]
            t0 = time.perf_counter()
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "bench_rows", records=recs, columns=["id", "body"]
                )
            total += time.perf_counter() - t0
            n += batch
        res.limits["pg_batched_insert_2kb_rows_per_s"] = n / total
        await conn.execute("DROP TABLE bench_rows")
    finally:
        await conn.close()

    res.limits["aiohttp_trivial_req_per_s"] = await trivial_aiohttp_rate(quick)
    per_item = sum(
        1 / res.limits[k]
        for k in (
            "ed25519_verify_per_s",
            "canonicalize_2kb_per_s",
            "pydantic_validate_per_s",
            "pg_batched_insert_2kb_rows_per_s",
        )
    )
    res.limits["pipeline_items_per_s"] = 1 / per_item
    cores_used = res.machine["cores_used"]
    res.limits["pipeline_x_cores_used_items_per_s"] = (
        res.limits["pipeline_items_per_s"] * cores_used
    )


_TRIVIAL = """
import sys
from aiohttp import web
async def h(request):
    await request.read()
    return web.json_response({"ok": True})
app = web.Application()
app.router.add_post("/", h)
try:
    import uvloop; uvloop.install()
except ImportError:
    pass
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


async def trivial_aiohttp_rate(quick: bool) -> float:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", _TRIVIAL, str(port)])
    try:
        await wait_http(f"http://127.0.0.1:{port}/", method="POST", timeout=20)
        n = 2000 if quick else 8000
        lat: list[float] = []  # warm-up
        await run_clients(
            f"http://127.0.0.1:{port}/", [(b"{}", {})] * (n // 4), 32, lat
        )
        t0 = time.perf_counter()
        await run_clients(f"http://127.0.0.1:{port}/", [(b"{}", {})] * n, 32, [])
        return n / (time.perf_counter() - t0)
    finally:
        note_stopping(proc.pid)
        proc.terminate()
        proc.wait(timeout=10)


async def run_clients(
    url: str,
    reqs: list[tuple[bytes, dict[str, str]]],
    clients: int,
    lat: list[float],
    method: str = "POST",
) -> list[int]:
    """Send prepared requests from ``clients`` connections; latencies in ms."""
    queue = list(reversed(reqs))
    statuses: list[int] = []
    errors: list[str] = []
    conn = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=conn) as s:

        async def worker() -> None:
            while queue:
                body, headers = queue.pop()
                t0 = time.perf_counter()
                async with s.request(method, url, data=body, headers=headers) as r:
                    data = await r.read()
                    statuses.append(r.status)
                    if r.status >= 400 and len(errors) < 3:
                        errors.append(data[:300].decode(errors="replace"))
                lat.append((time.perf_counter() - t0) * 1000)

        await asyncio.gather(*(worker() for _ in range(clients)))
    if errors:
        say(f"  errors from {url}: {errors}")
    return statuses


# -- the node --------------------------------------------------------------------------
async def register_site(
    db_url: str, site: str, node_id: str, circles: list[str], key: PrivateKey
) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "INSERT INTO sites (id, name, home_node, circles) VALUES ($1,$1,$2,$3) "
            "ON CONFLICT DO NOTHING",
            site,
            node_id,
            circles,
        )
        await conn.execute(
            "INSERT INTO site_keys (key_id, site_id, alg, public_key, valid_from) "
            "VALUES ($1,$2,'ed25519',$3, now() - interval '1 day') "
            "ON CONFLICT DO NOTHING",
            key.key_id,
            site,
            key.public_key.raw,
        )
    finally:
        await conn.close()


async def settle(db_url: str, timeout: float = 180.0) -> float:
    """Wait until the node's background work has caught up with its acknowledgements:
    the Merkle log integrated every item and the search index covers them. Returns
    the seconds waited. Push figures stop their clock at the last acknowledgement
    (indexing runs behind the log by design); waiting here keeps one phase's catch-up
    out of the next phase's CPU figures, and gives the CPU that indexing adds."""
    t0 = time.monotonic()
    conn = await asyncpg.connect(db_url)
    try:
        while time.monotonic() - t0 < timeout:
            row = await conn.fetchrow(
                "SELECT (SELECT size FROM log_head WHERE id = 1) AS head, "
                "(SELECT size FROM log_state WHERE id = 1) AS logged, "
                "(SELECT upto FROM search_state WHERE id = 1) AS indexed"
            )
            if row["logged"] >= row["head"] and row["indexed"] >= row["head"]:
                return time.monotonic() - t0
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    raise RuntimeError(f"the node did not catch up within {timeout:.0f} s")


async def measure_node(
    res: Results, pg: EmbeddedPostgres, work: Path, quick: bool, workers: int
) -> None:
    laps = res.machine.setdefault("node_phase_seconds", {})
    t_lap = [time.monotonic()]

    def lap(part: str) -> None:
        now = time.monotonic()
        laps[part] = round(now - t_lap[0], 1)
        t_lap[0] = now

    np = await start_node("bench-a", work / "a", pg=pg, workers=workers)
    lap("start")
    key = generate_key(key_id="huaibei-duji#k1")
    res.node["workers"] = workers
    seq = [0]

    def next_items(n: int) -> list[dict[str, Any]]:
        out = [sign_item(item_2kb("huaibei-duji", seq[0] + i), key) for i in range(n)]
        seq[0] += n
        return out

    def cpu_node() -> float:  # supervisor, workers and their helper processes
        return np.cpu_seconds()

    try:
        t_ready = time.monotonic()
        await register_site(np.db_url, "huaibei-duji", "bench-a", ["huaihai"], key)
        # Sign the items while the node settles, then take its idle memory. (Requests
        # are signed just before each run: their signatures carry a creation time.)
        counts = {100: 6 if quick else 40, 500: 2 if quick else 10}
        signed = {
            size: [next_items(size) for _ in range(nb)] for size, nb in counts.items()
        }
        singles = {
            c: next_items(
                (60 if quick else 600) if c == 1 else (250 if quick else 3000)
            )
            for c in (1, 8, 32)
        }
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - t_ready)))
        res.node["rss_mb_idle"] = np.rss_mb()
        lap("sign, idle")
        # Warm up: the first pushes start each worker's helper processes (signature
        # checks, search indexing); that one-off cost must not land in the figures.
        # Helper pools grow on demand: four concurrent batches per worker fill them.
        warm = []
        for b in [next_items(100) for _ in range(4 * workers)]:
            body = orjson.dumps({"items": b})
            warm.append((body, signed_request(key, np.url, "POST", "/v1/items", body)))
        await run_clients(np.url + "/v1/items", warm, 4 * workers, [])
        await settle(np.db_url)  # the search indexer follows the log
        lap("warm-up")
        # Batch push.
        for size, batches in signed.items():
            nb = len(batches)
            reqs = []
            for b in batches:
                body = orjson.dumps({"items": b})
                reqs.append(
                    (body, signed_request(key, np.url, "POST", "/v1/items", body))
                )
            lat: list[float] = []
            c0n, c0p = cpu_node(), pg_cpu_seconds(pg)
            t0 = time.perf_counter()
            statuses = await run_clients(np.url + "/v1/items", reqs, 4, lat)
            dt = time.perf_counter() - t0
            n_items = size * nb
            assert all(s == 200 for s in statuses), statuses[:5]
            res.node[f"batch{size}_push_items_per_s"] = n_items / dt
            res.node[f"batch{size}_cpu_ms_per_item_node"] = (
                (cpu_node() - c0n) * 1000 / n_items
            )
            res.node[f"batch{size}_cpu_ms_per_item_pg"] = (
                (pg_cpu_seconds(pg) - c0p) * 1000 / n_items
            )
            res.node[f"batch{size}_p50_ms"] = statistics.median(lat)
            res.node[f"batch{size}_p99_ms"] = pct(lat, 99)
            res.series[f"batch{size}_latency_ms"] = lat
            res.node[f"batch{size}_settle_s"] = await settle(np.db_url)
            res.node[f"batch{size}_cpu_ms_per_item_node_indexed"] = (
                (cpu_node() - c0n) * 1000 / n_items
            )
            res.node[f"batch{size}_cpu_ms_per_item_pg_indexed"] = (
                (pg_cpu_seconds(pg) - c0p) * 1000 / n_items
            )
        res.node["batch_push_items_per_s"] = max(
            res.node["batch100_push_items_per_s"], res.node["batch500_push_items_per_s"]
        )
        res.node["rss_mb_load"] = np.rss_mb()
        lap("batch push")
        # Single-item push.
        for clients, docs in singles.items():
            n = len(docs)
            reqs = []
            for doc in docs:
                body = orjson.dumps(doc)
                reqs.append(
                    (body, signed_request(key, np.url, "POST", "/v1/items", body))
                )
            lat = []
            c0n, c0p = cpu_node(), pg_cpu_seconds(pg)
            t0 = time.perf_counter()
            statuses = await run_clients(np.url + "/v1/items", reqs, clients, lat)
            dt = time.perf_counter() - t0
            assert all(s == 201 for s in statuses), statuses[:5]
            tag = f"single_push_c{clients}"
            res.node[f"{tag}_items_per_s"] = n / dt
            res.node[f"{tag}_p50_ms"] = statistics.median(lat)
            res.node[f"{tag}_p95_ms"] = pct(lat, 95)
            res.node[f"{tag}_p99_ms"] = pct(lat, 99)
            res.node[f"{tag}_cpu_ms_per_item_node"] = (cpu_node() - c0n) * 1000 / n
            res.node[f"{tag}_cpu_ms_per_item_pg"] = (
                (pg_cpu_seconds(pg) - c0p) * 1000 / n
            )
            res.series[f"{tag}_latency_ms"] = lat
            res.node[f"{tag}_settle_s"] = await settle(np.db_url)
            res.node[f"{tag}_cpu_ms_per_item_node_indexed"] = (
                (cpu_node() - c0n) * 1000 / n
            )
            res.node[f"{tag}_cpu_ms_per_item_pg_indexed"] = (
                (pg_cpu_seconds(pg) - c0p) * 1000 / n
            )
        res.node["rss_mb_load"] = max(res.node["rss_mb_load"], np.rss_mb())
        res.node["node_processes_under_load"] = len(np.pids())
        lap("single push")
        # Pull everything, page by page.
        total = seq[0]
        # The pages' objects are acyclic and freed as soon as they are counted; what
        # the collector would scan is this process's own state (the signed items of
        # the pushes above): out of its sight, as the node does once serving. Before,
        # collections took 45 of the 127 ms of a --quick pull.
        gc.freeze()
        c0n, c0p, c0me = cpu_node(), pg_cpu_seconds(pg), _own_cpu_seconds()
        t0 = time.perf_counter()
        got, cursor = 0, -1
        async with aiohttp.ClientSession() as s:
            while True:
                target = f"/v1/items?cursor={cursor}&limit=1000"
                async with s.get(
                    np.url + target,
                    headers=signed_request(key, np.url, "GET", target, None),
                ) as r:
                    page = orjson.loads(await r.read())
                got += len(page["items"])
                if page["items"]:
                    cursor = page["items"][-1]["index"]
                if page["next_cursor"] is None:
                    break
            res.node["pull_items_per_s"] = got / (time.perf_counter() - t0)
            res.node["pull_items"] = got
            res.node["pull_cpu_us_per_item_node"] = (cpu_node() - c0n) * 1e6 / got
            res.node["pull_cpu_us_per_item_pg"] = (pg_cpu_seconds(pg) - c0p) * 1e6 / got
            # the load generator: request signing, reading, orjson.loads of each page
            res.node["pull_cpu_us_per_item_client"] = (
                (_own_cpu_seconds() - c0me) * 1e6 / got
            )
            gc.unfreeze()
            assert got == total, (got, total)
            # GET one item.
            target = "/v1/items?limit=200"
            async with s.get(
                np.url + target,
                headers=signed_request(key, np.url, "GET", target, None),
            ) as r:
                ids = [e["id"] for e in orjson.loads(await r.read())["items"]]
            lat = []
            for i in range(100 if quick else 1000):
                target = f"/v1/items/{ids[i % len(ids)]}"
                h = signed_request(key, np.url, "GET", target, None)
                t1 = time.perf_counter()
                async with s.get(np.url + target, headers=h) as r:
                    await r.read()
                lat.append((time.perf_counter() - t1) * 1000)
            res.node["get_item_p50_ms"] = statistics.median(lat)
            res.node["get_item_p99_ms"] = pct(lat, 99)
        lap("pull, get")
        for name, fn in EXTRA_NODE_MEASUREMENTS:
            try:
                await fn(res, pg, work, np, key, quick)
                lap(name)
            except Exception as exc:  # report and go on: one must not hide the others
                res.notes.append(f"{name}: not measured ({_short(exc)})")
                say(f"  {name}: not measured: {type(exc).__name__}: {exc}")
    finally:
        stop_node(np)


async def measure_checkpoint_latency(
    res: Results,
    pg: EmbeddedPostgres,
    work: Path,
    np: NodeProc,
    key: PrivateKey,
    quick: bool,
) -> None:
    """Acknowledgement of a push → a signed checkpoint covering it (public endpoint).

    Pushes are spread evenly over a little more than one checkpoint period (1 s by
    default), so that every phase of the checkpoint cycle is sampled; one poller watches
    ``GET /v1/log/checkpoint`` every 10 ms for all of them.
    """
    n = 10 if quick else 40
    spacing = 0.12 if quick else 0.1
    docs = [sign_item(item_2kb("huaibei-duji", 10_000_000 + i), key) for i in range(n)]
    pending: list[tuple[int, float]] = []
    lat: list[float] = []
    pushed = asyncio.Event()
    async with aiohttp.ClientSession() as s:

        async def push(i: int) -> None:
            await asyncio.sleep(i * spacing)
            body = orjson.dumps(docs[i])
            h = signed_request(key, np.url, "POST", "/v1/items", body)
            async with s.post(np.url + "/v1/items", data=body, headers=h) as r:
                assert r.status == 201, (r.status, await r.text())
                index = (await r.json())["index"]
            pending.append((index, time.perf_counter()))

        async def poll() -> None:
            deadline = time.perf_counter() + n * spacing + 30
            while time.perf_counter() < deadline:
                async with s.get(np.url + "/v1/log/checkpoint") as r:
                    size = (await r.json())["size"] if r.status == 200 else -1
                now = time.perf_counter()
                for p in [p for p in pending if size > p[0]]:
                    lat.append((now - p[1]) * 1000)
                    pending.remove(p)
                if pushed.is_set() and not pending:
                    return
                await asyncio.sleep(0.01)

        poller = asyncio.create_task(poll())
        try:
            await asyncio.gather(*(push(i) for i in range(n)))
        finally:
            pushed.set()
        await poller
    if pending:
        raise RuntimeError(
            f"{len(pending)} of {n} pushes not in a checkpoint after 30 s"
        )
    res.node["ack_to_checkpoint_p50_ms"] = statistics.median(lat)
    res.node["ack_to_checkpoint_p99_ms"] = pct(lat, 99)


async def measure_merkle_integration(
    res: Results,
    pg: EmbeddedPostgres,
    work: Path,
    np: NodeProc,
    key: PrivateKey,
    quick: bool,
) -> None:
    """Re-integrate the whole log from scratch, in this process, and time it."""
    from exchange.config import load_config
    from exchange.node import Node

    stop_node(np)
    conn = await asyncpg.connect(np.db_url)
    try:
        await conn.execute("TRUNCATE log_nodes, log_checkpoints")
        await conn.execute("UPDATE log_state SET size = 0, root = sha256(''::bytea)")
        n = await conn.fetchval("SELECT size FROM log_head")
    finally:
        await conn.close()
    cfg = load_config(
        None,
        overrides={
            "node": {"id": "bench-a", "data_dir": str(work / "merkle")},
            "database": {"url": np.db_url},
            "log": {"writer": False},
        },
        environ={},
    )
    node = Node(cfg)
    await node.start()
    try:
        lock = await asyncpg.connect(np.db_url)
        try:
            await node.sequencer._load(lock)
            t0 = time.perf_counter()
            done = await node.sequencer.integrate(lock)
            dt = time.perf_counter() - t0
        finally:
            await lock.close()
    finally:
        await node.stop()
    assert done == n, (done, n)
    res.node["merkle_leaves_per_s"] = n / dt
    res.node["merkle_leaves_integrated"] = n


# Sections that need the running node register themselves here. Each gets
# (res, pg, work, node process, site key, quick); the last may stop the node.
EXTRA_NODE_MEASUREMENTS: list[tuple[str, Callable[..., Awaitable[None]]]] = [
    ("ack to checkpoint", measure_checkpoint_latency),
    ("merkle integration", measure_merkle_integration),
]


# -- federation ------------------------------------------------------------------------
def federation_settings(quick: bool, workers: int) -> fb.Settings:
    return fb.Settings(
        rates=REPLICATION_RATES,
        seconds=2.0 if quick else 15.0,
        backlog=1000 if quick else 10_000,
        warm=500 if quick else 2000,
        hold_s=1.0 if quick else 10.0,
        settle_s=0.5 if quick else 3.0,
        arrival_timeout_s=30.0 if quick else 120.0,
        drain_timeout_s=60.0 if quick else 300.0,
        workers=workers,
    )


async def measure_federation(
    res: Results, pg: EmbeddedPostgres, work: Path, quick: bool, workers: int
) -> None:
    """Replication lag (2 and 3 nodes, 100 and 500 items/s), backlog drain and the
    sender's memory, with :func:`federation_bench.run_all` on this run's PostgreSQL."""
    s = federation_settings(quick, workers)
    fed = await fb.run_all(pg, work / "federation", s)
    res.federation = fed
    for e in fed["errors"]:
        res.notes.append(f"federation: {_short(e)}")
    node = res.node
    for n_nodes in REPLICATION_NODES:
        for rate in s.rates:
            runs = [
                r
                for r in fed["lag"].values()
                if r["nodes"] == n_nodes and r["rate_target"] == rate
            ]
            if not runs:
                continue
            tag = f"replication_{n_nodes}n_{rate}"
            node[f"{tag}_p50_ms"] = max(r["lag_p50_ms"] for r in runs)  # worst peer
            node[f"{tag}_p99_ms"] = max(r["lag_p99_ms"] for r in runs)
            node[f"{tag}_max_ms"] = max((r["lag_max_ms"] or math.nan) for r in runs)
            node[f"{tag}_target_items_per_s"] = rate
            node[f"{tag}_achieved_items_per_s"] = runs[0]["rate_achieved"]
            node[f"{tag}_saturated"] = any(r["saturated"] for r in runs)
            node[f"{tag}_peer_behind"] = any(r["behind"] for r in runs)
            node[f"{tag}_lag_trend_ms"] = max(
                (r["lag_trend_ms"] for r in runs if r["lag_trend_ms"] is not None),
                default=None,
            )
            node[f"{tag}_complete"] = all(r["complete"] for r in runs)
            node[f"{tag}_cpu_pct"] = runs[0]["cpu_pct"]
            node[f"{tag}_host_busy_pct"] = runs[0]["host_busy_pct"]
            if not node[f"{tag}_complete"]:
                res.notes.append(
                    f"replication {n_nodes} nodes @ {rate}/s: not every item reached "
                    f"every peer within {s.arrival_timeout_s:g} s"
                )
    head = f"replication_{HEADLINE[0]}n_{HEADLINE[1]}"
    if f"{head}_p99_ms" in node:
        node["replication_lag_p50_ms"] = node[f"{head}_p50_ms"]
        node["replication_lag_p99_ms"] = node[f"{head}_p99_ms"]
        node["replication_lag_saturated"] = node[f"{head}_saturated"]
        node["replication_lag_peer_behind"] = node[f"{head}_peer_behind"]
        node["replication_lag_config"] = (
            f"{HEADLINE[0]} nodes at {HEADLINE[1]} items/s, worst peer"
        )
    for c in fed.get("crossings", {}).values():
        tag = f"crossings_{c['nodes']}n"
        node[f"{tag}_items_per_item"] = c["items_sent_per_item_replicated"]
        node[f"{tag}_bytes_per_item"] = c["bytes_sent_per_item_replicated"]
        node[f"{tag}_bytes_per_item_bytes"] = c["bytes_sent_per_item_bytes"]
    b = fed.get("backlog")
    if b:
        node["backlog_items"] = b["items"]
        node["backlog_complete"] = b["complete"]
        node["backlog_drain_items_per_s"] = b["drain_items_per_s_from_ready"]
        node["backlog_drain_items_per_s_from_restart"] = b[
            "drain_items_per_s_from_restart"
        ]
        node["backlog_drain_items_per_s_first_to_last"] = b[
            "drain_items_per_s_first_to_last_arrival"
        ]
        node["backlog_peer_start_s"] = b["peer_start_seconds"]
        for role, us in (b.get("drain_cpu_us_per_item") or {}).items():
            node[f"backlog_drain_cpu_us_per_item_{role}"] = us
        node["rss_mb_backlog_before"] = b["sender_rss_mb_before"]
        node["rss_mb_backlog"] = b["sender_rss_mb_with_backlog"]
        node["rss_mb_backlog_after"] = b["sender_rss_mb_after"]
        node["rss_backlog_flatness"] = (
            b["sender_rss_mb_with_backlog"] / b["sender_rss_mb_before"]
        )
        if not b["complete"]:
            res.notes.append(
                f"backlog: only {b['arrived']} of {b['items']} items reached the peer"
            )


# -- report ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    label: str
    keys: tuple[str, ...]  # "section.key"; several are shown as a / b / c
    ratio_to: str | None = None  # "section.key" of the limit (first key only)
    # ("section.key" of a boolean, text shown as a warning when it is true)
    flags: tuple[tuple[str, str], ...] = ()


RATIO_NAMES = {
    "limits.pipeline_items_per_s": "pipeline limit",
    "limits.pipeline_x_cores_used_items_per_s": "pipeline × cores used",
    "limits.aiohttp_trivial_req_per_s": "trivial aiohttp",
    "limits.pg_batched_insert_2kb_rows_per_s": "PG batched insert",
    "node.rss_mb_backlog_before": "RSS before backlog",
}


def _r(label: str, *keys: str, ratio: str | None = None) -> Row:
    return Row(label, keys, ratio)


ROWS: list[Row] = [
    _r("Ed25519 verify /s", "limits.ed25519_verify_per_s"),
    _r("RFC 8785 canonicalize 2 KB /s", "limits.canonicalize_2kb_per_s"),
    _r("pydantic validate /s", "limits.pydantic_validate_per_s"),
    _r("PG batched insert 2 KB rows /s", "limits.pg_batched_insert_2kb_rows_per_s"),
    _r("aiohttp trivial handler req/s", "limits.aiohttp_trivial_req_per_s"),
    _r("pipeline limit items/s (1 core)", "limits.pipeline_items_per_s"),
    _r("node workers (exchange node up --workers)", "machine.workers"),
    _r(
        "pipeline limit × cores used ({cores_used})",
        "limits.pipeline_x_cores_used_items_per_s",
    ),
    _r(
        "batch push ×100 items/s",
        "node.batch100_push_items_per_s",
        ratio="limits.pipeline_x_cores_used_items_per_s",
    ),
    _r(
        "batch push ×500 items/s",
        "node.batch500_push_items_per_s",
        ratio="limits.pipeline_x_cores_used_items_per_s",
    ),
    _r(
        "  p50 / p99 ms per request (×100)",
        "node.batch100_p50_ms",
        "node.batch100_p99_ms",
    ),
    _r(
        "  p50 / p99 ms per request (×500)",
        "node.batch500_p50_ms",
        "node.batch500_p99_ms",
    ),
    _r(
        "  CPU ms/item node / PostgreSQL (×500)",
        "node.batch500_cpu_ms_per_item_node",
        "node.batch500_cpu_ms_per_item_pg",
    ),
    _r(
        "    with search indexing caught up (×500)",
        "node.batch500_cpu_ms_per_item_node_indexed",
        "node.batch500_cpu_ms_per_item_pg_indexed",
    ),
]
for _c in (1, 8, 32):
    ROWS += [
        _r(
            f"single push c{_c} items/s",
            f"node.single_push_c{_c}_items_per_s",
            ratio="limits.aiohttp_trivial_req_per_s",
        ),
        _r(
            f"  p50 / p95 / p99 ms (c{_c})",
            f"node.single_push_c{_c}_p50_ms",
            f"node.single_push_c{_c}_p95_ms",
            f"node.single_push_c{_c}_p99_ms",
        ),
        _r(
            f"  CPU ms/item node / PostgreSQL (c{_c})",
            f"node.single_push_c{_c}_cpu_ms_per_item_node",
            f"node.single_push_c{_c}_cpu_ms_per_item_pg",
        ),
        _r(
            f"    with search indexing caught up (c{_c})",
            f"node.single_push_c{_c}_cpu_ms_per_item_node_indexed",
            f"node.single_push_c{_c}_cpu_ms_per_item_pg_indexed",
        ),
    ]
ROWS += [
    _r(
        "pull items/s",
        "node.pull_items_per_s",
        ratio="limits.pg_batched_insert_2kb_rows_per_s",
    ),
    _r(
        "  CPU µs/item node / PostgreSQL / load generator",
        "node.pull_cpu_us_per_item_node",
        "node.pull_cpu_us_per_item_pg",
        "node.pull_cpu_us_per_item_client",
    ),
    _r("GET item p50 / p99 ms", "node.get_item_p50_ms", "node.get_item_p99_ms"),
    _r(
        "Merkle integration leaves/s",
        "node.merkle_leaves_per_s",
        ratio="limits.pg_batched_insert_2kb_rows_per_s",
    ),
    _r(
        "ack → signed checkpoint p50 / p99 ms",
        "node.ack_to_checkpoint_p50_ms",
        "node.ack_to_checkpoint_p99_ms",
    ),
    Row(
        "replication lag p50 / p99 ms (3 nodes @500/s)",
        ("node.replication_lag_p50_ms", "node.replication_lag_p99_ms"),
        flags=(
            ("node.replication_lag_saturated", "sender saturated"),
            ("node.replication_lag_peer_behind", "peer behind"),
        ),
    ),
]
for _n in REPLICATION_NODES:
    for _rate in REPLICATION_RATES:
        _t = f"node.replication_{_n}n_{_rate}"
        ROWS += [
            Row(
                f"  {_n} nodes @{_rate}/s lag p50 / p99 ms",
                (f"{_t}_p50_ms", f"{_t}_p99_ms"),
                flags=((f"{_t}_peer_behind", "peer behind"),),
            ),
            Row(
                f"  {_n} nodes @{_rate}/s achieved items/s",
                (f"{_t}_achieved_items_per_s",),
                ratio_to=f"{_t}_target_items_per_s",
                flags=((f"{_t}_saturated", "sender saturated"),),
            ),
        ]
for _n in REPLICATION_NODES:
    ROWS += [
        _r(
            f"  {_n} nodes: items sent per item replicated",
            f"node.crossings_{_n}n_items_per_item",
        ),
        Row(
            f"  {_n} nodes: bytes sent per item replicated / × item",
            (
                f"node.crossings_{_n}n_bytes_per_item",
                f"node.crossings_{_n}n_bytes_per_item_bytes",
            ),
        ),
    ]
ROWS += [
    _r("backlog items held (peer down)", "node.backlog_items"),
    _r(
        "backlog drain items/s (first → last arrival)",
        "node.backlog_drain_items_per_s_first_to_last",
        ratio="limits.pipeline_items_per_s",
    ),
    _r(
        "backlog drain items/s (peer answers → all in)",
        "node.backlog_drain_items_per_s",
        ratio="limits.pipeline_items_per_s",
    ),
    _r(
        "backlog drain items/s (peer restart → all in)",
        "node.backlog_drain_items_per_s_from_restart",
        ratio="limits.pipeline_items_per_s",
    ),
    _r(
        "  CPU µs/item drained: peer / sender / PostgreSQL",
        "node.backlog_drain_cpu_us_per_item_peers",
        "node.backlog_drain_cpu_us_per_item_sender",
        "node.backlog_drain_cpu_us_per_item_postgresql",
    ),
    _r("RSS MB node idle", "node.rss_mb_idle"),
    _r("RSS MB node under load", "node.rss_mb_load"),
    _r("RSS MB sender before backlog", "node.rss_mb_backlog_before"),
    _r(
        "RSS MB sender, backlog held",
        "node.rss_mb_backlog",
        ratio="node.rss_mb_backlog_before",
    ),
    _r(
        "RSS MB sender after drain",
        "node.rss_mb_backlog_after",
        ratio="node.rss_mb_backlog_before",
    ),
]


def _get(res: Results, ref: str) -> Any:
    section, key = ref.split(".", 1)
    return getattr(res, section).get(key)


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def report(res: Results) -> str:
    ctx = {
        "cores_used": f"{res.machine.get('cores_used')} of {res.machine.get('cores')}"
    }
    lines = [f"{'figure':46} {'value':>22}  ratio to limit (same run)", "-" * 100]
    for row in ROWS:
        vals = [_get(res, k) for k in row.keys]
        if vals[0] is None:
            continue
        ratio = ""
        if row.ratio_to:
            lim = _get(res, row.ratio_to)
            if (
                isinstance(lim, int | float)
                and lim
                and isinstance(vals[0], int | float)
            ):
                name = RATIO_NAMES.get(row.ratio_to) or (
                    "target"
                    if row.ratio_to.endswith("_target_items_per_s")
                    else row.ratio_to
                )
                ratio = f"{vals[0] / lim:.2f} × {name}"
        for flag, text in row.flags:
            if _get(res, flag):
                ratio = f"{ratio}  [{text}]".strip()
        value = " / ".join(_fmt(v) for v in vals)
        lines.append(f"{row.label.format(**ctx):46} {value:>22}  {ratio}")
    for n in res.notes:
        lines.append(f"note: {n}")
    return "\n".join(lines)


def plot(res: Results, path: Path) -> bool:
    """Latency distributions, throughput vs concurrency, replication lag → ``path``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        res.notes.append(
            "plot not drawn: matplotlib is not installed "
            "(pip install -e '.[test]' or pip install 'matplotlib>=3.8')"
        )
        return False
    fig, (a1, a2, a3) = plt.subplots(
        1, 3, figsize=(18, 5.2), gridspec_kw={"width_ratios": [1.25, 1, 1]}
    )
    hist_keys = [
        ("single_push_c1_latency_ms", "single c1"),
        ("single_push_c8_latency_ms", "single c8"),
        ("single_push_c32_latency_ms", "single c32"),
        ("batch100_latency_ms", "batch ×100 (per request)"),
        ("batch500_latency_ms", "batch ×500 (per request)"),
    ]
    present = [(k, lbl) for k, lbl in hist_keys if res.series.get(k)]
    if present:
        lo = max(0.1, min(min(res.series[k]) for k, _ in present))
        hi = max(max(res.series[k]) for k, _ in present)
        bins = [lo * (hi / lo) ** (i / 60) for i in range(61)] if hi > lo else 60
        for k, lbl in present:
            xs = res.series[k]
            a1.hist(xs, bins=bins, histtype="step", lw=1.6, label=f"{lbl}, n={len(xs)}")
        a1.set_xscale("log")
        a1.legend(fontsize=8)
    a1.set_xlabel("latency per request, ms (log)")
    a1.set_ylabel("requests")
    a1.set_title("Push latency distributions")

    cs = [c for c in (1, 8, 32) if f"single_push_c{c}_items_per_s" in res.node]
    if cs:
        a2.plot(
            cs,
            [res.node[f"single_push_c{c}_items_per_s"] for c in cs],
            "o-",
            label="single-item push",
        )
    for size, style in ((100, "--"), (500, "-.")):
        v = res.node.get(f"batch{size}_push_items_per_s")
        if v:
            a2.axhline(v, color="g", ls=style, label=f"batch push ×{size}")
    pl = res.limits.get("pipeline_items_per_s")
    if pl:
        a2.axhline(pl, color="r", ls=":", label="pipeline limit (1 core)")
    plx = res.limits.get("pipeline_x_cores_used_items_per_s")
    if plx and pl and plx != pl:
        a2.axhline(plx, color="darkred", ls=":", label="pipeline limit × cores used")
    a2.set_xscale("log", base=2)
    a2.set_xticks([1, 8, 32], ["1", "8", "32"])
    a2.set_yscale("log")
    a2.set_xlabel("concurrent clients")
    a2.set_ylabel("items/s (log)")
    a2.legend(fontsize=8)
    a2.set_title(f"Throughput vs concurrency ({res.node.get('workers', 1)} worker(s))")

    configs = [
        (n, r)
        for n in REPLICATION_NODES
        for r in REPLICATION_RATES
        if f"replication_{n}n_{r}_p99_ms" in res.node
    ]
    if configs:
        xs = range(len(configs))
        p50 = [res.node[f"replication_{n}n_{r}_p50_ms"] for n, r in configs]
        p99 = [res.node[f"replication_{n}n_{r}_p99_ms"] for n, r in configs]
        w = 0.38
        sat = [
            bool(res.node.get(f"replication_{n}n_{r}_saturated")) for n, r in configs
        ]
        hatch = ["//" if x else "" for x in sat]  # hatched: the sender was saturated
        b50 = a3.bar([x - w / 2 for x in xs], p50, w, label="p50", hatch=hatch)
        b99 = a3.bar(
            [x + w / 2 for x in xs], p99, w, label="p99 (worst peer)", hatch=hatch
        )
        for bars in (b50, b99):
            a3.bar_label(bars, fmt="%.0f", fontsize=7)
        labels = []
        for (n, r), sat_ in zip(configs, sat, strict=True):
            got = res.node.get(f"replication_{n}n_{r}_achieved_items_per_s")
            behind = res.node.get(f"replication_{n}n_{r}_peer_behind")
            labels.append(
                f"{n} nodes\n{r}/s"
                + (f"\nsender saturated\n({got:.0f}/s)" if sat_ else "")
                + ("\npeer behind" if behind else "")
            )
        a3.set_xticks(list(xs), labels, fontsize=8)
        a3.axhline(1000, color="r", ls=":", label="1 s")
        a3.set_yscale("log")
        a3.legend(fontsize=8)
    else:
        a3.text(
            0.5, 0.5, "not measured", ha="center", va="center", transform=a3.transAxes
        )
    a3.set_ylabel("push ack → visible on peer, ms (log)")
    a3.set_title("Replication lag")
    fig.suptitle(
        f"Congress Exchange bench {res.machine.get('date', '')} · "
        f"{res.machine.get('cpu', '')} · {res.machine.get('cores')} cores"
        + (" · quick" if res.machine.get("quick") else ""),
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


_ERROR_LEVEL = re.compile(r'"level": "(error|critical)"')


def _short(err: object) -> str:
    """An error on one line: a node that failed to start brings its log's tail, of
    which the first and the last line tell the story."""
    text = (
        f"{type(err).__name__}: {err}" if isinstance(err, BaseException) else str(err)
    )
    first, last = text.strip().splitlines()[0], _last_line(text)
    return first if last == first else f"{first} … {last}"


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _log_errors(lines: list[str]) -> list[str]:
    """One short text per error in a node log: JSON lines at level error/critical
    (message and the exception's last line) and plain tracebacks (their last line)."""
    found: list[str] = []
    i = 0
    while i < len(lines):
        ln = lines[i]
        if _ERROR_LEVEL.search(ln):
            try:
                doc = json.loads(ln)
                msg = str(doc.get("msg", ""))
                if doc.get("exc"):
                    msg += f" ({_last_line(str(doc['exc']))})"
            except ValueError:
                msg = ln
            found.append(msg)
        elif ln.startswith("Traceback (most recent call last):"):
            j = i + 1
            while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
                j += 1
            found.append(lines[j].strip() if j < len(lines) else ln)
            i = j
        i += 1
    return found


def scan_node_logs(work: Path) -> list[str]:
    """Errors in every node log of this run (the work folder is deleted after)."""
    notes = []
    for log in sorted(work.rglob("node*.log")):
        try:
            lines = log.read_text(errors="replace").splitlines()
        except OSError:
            continue
        errs = _log_errors(lines)
        if errs:
            kinds = sorted(set(errs), key=errs.index)
            notes.append(
                f"node log {log.relative_to(work)}: {len(errs)} error(s): "
                + "; ".join(k[:200] for k in kinds[:3])
                + (f"; … {len(kinds) - 3} more kinds" if len(kinds) > 3 else "")
            )
    return notes


def _own_cpu_seconds() -> float:
    """CPU seconds of this process and of the child process trees it stopped (the
    nodes, their workers and helpers, the trivial server); PostgreSQL is apart."""
    t = os.times()
    return t.user + t.system + stopped_cpu_seconds()


def _no_nan(x: Any) -> Any:
    """NaN and infinities as null, so the JSON is valid."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _no_nan(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_no_nan(v) for v in x]
    return x


async def amain(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    res = Results(machine=machine_facts())
    cores = res.machine["cores"] or 1
    res.machine["workers"] = args.workers
    res.machine["cores_used"] = min(args.workers, cores)
    res.machine["quick"] = args.quick
    res.machine["load_avg_at_start"] = [round(x, 2) for x in os.getloadavg()]
    pg_cpu = 0.0
    host0, own0 = psutil.cpu_times(), _own_cpu_seconds()
    work = Path(tempfile.mkdtemp(prefix="exchange-bench-"))
    work.chmod(
        0o711
    )  # PostgreSQL's own system user (when run as root) must traverse it
    pg = EmbeddedPostgres(work / "pg")
    say("starting the embedded PostgreSQL …")
    await asyncio.to_thread(pg.start)
    sections: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("limits", lambda: measure_limits(res, pg.url(), args.quick)),
        ("node", lambda: measure_node(res, pg, work, args.quick, args.workers)),
        (
            "federation",
            lambda: measure_federation(res, pg, work, args.quick, args.workers),
        ),
    ]
    try:
        conn = await asyncpg.connect(pg.url())
        res.machine["postgresql"] = await conn.fetchval("SHOW server_version")
        res.machine["synchronous_commit"] = await conn.fetchval(
            "SHOW synchronous_commit"
        )
        await conn.close()
        for name, section in sections:
            say(f"measuring: {name} …")
            t0 = time.perf_counter()
            try:
                await section()
            except Exception as exc:  # report and go on: one must not hide the others
                res.notes.append(f"{name}: not measured ({_short(exc)})")
                say(f"  {name}: not measured: {type(exc).__name__}: {exc}")
            res.machine[f"{name}_seconds"] = round(time.perf_counter() - t0, 1)
        res.notes += scan_node_logs(work)
        pg_cpu = pg_cpu_seconds(pg)
    finally:
        await asyncio.to_thread(pg.destroy)
        shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_path = out.with_suffix(".png")
    drawn = plot(res, plot_path)
    res.machine["bench_seconds"] = round(time.perf_counter() - t_start, 1)
    res.machine["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    # CPU used on this host during the run by other programs (not this benchmark, its
    # nodes or its PostgreSQL), in cores: a busy host makes every figure lower.
    host1 = psutil.cpu_times()
    busy = sum(  # guest time is already in user; idle, iowait and steal are not work
        getattr(host1, f, 0.0) - getattr(host0, f, 0.0)
        for f in ("user", "nice", "system", "irq", "softirq")
    )
    own = _own_cpu_seconds() - own0 + pg_cpu
    other = (busy - own) / res.machine["bench_seconds"]
    res.machine["other_programs_cpu_cores"] = round(max(0.0, other), 2)
    if other > 0.25:
        res.notes.append(
            f"other programs used {other:.1f} core(s) of this host during the run: "
            "figures are lower than on an idle host"
        )
    print(report(res))
    print(f"bench took {res.machine['bench_seconds']} s", flush=True)
    doc = {
        "machine": res.machine,
        "limits": res.limits,
        "node": res.node,
        "federation": res.federation,
        "notes": res.notes,
        "quick": args.quick,
        "plot": _shown(plot_path) if drawn else None,
        "command": "python bench/run.py " + " ".join(sys.argv[1:]),
    }
    out.write_text(json.dumps(_no_nan(doc), indent=2, ensure_ascii=False) + "\n")
    say(f"wrote {out}" + (f" and {plot_path}" if drawn else " (no plot)"))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick", action="store_true", help="small counts, finishes in under a minute"
    )
    ap.add_argument(
        "--workers",
        type=int,
        default=1,
        choices=range(1, 65),
        metavar="N",
        help="run the measured nodes as exchange node up --workers N (default 1)",
    )
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"))
    return asyncio.run(amain(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
