"""The node's Merkle log, measured: integration, proofs over HTTP, audit, bundles.

    python bench/log_bench.py [--leaves 100000] [--out bench/results/log.json]

On a fresh embedded PostgreSQL (``synchronous_commit`` on):

1. **Load**: the node's ingest (in this process, no log writer) accepts ``--leaves``
   signed 2 KB items in batches of 500 from 4 concurrent pushers.
2. **Integration** (leaves/s): this process takes the writer lock and runs the real
   :meth:`Sequencer.integrate` over the whole log from scratch, at two batch sizes (read
   items in index order, leaf hashes, new subtree nodes by COPY, state update; one
   transaction per batch).
3. **Proofs over HTTP**: the node process (writer on) signs a checkpoint; then inclusion
   proofs for random indices, consistency proofs for random older sizes, and receipts
   (signed requests) are fetched one at a time (p50/p99 ms) and from 16 clients (req/s).
4. **Audit**: :func:`exchange.service.audit.audit_log` (what ``exchange log audit``
   runs) over the whole log; seconds per million leaves are extrapolated linearly
   (every step is per leaf or per stored node, and there are < 2 nodes per leaf).
5. **Bundle** (``--bundle``): ``exchange export`` of every item, then
   ``exchange verify``.

Figures go to stdout and ``--out`` (JSON). Not a test: nothing is asserted about time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402

from bench import common as B  # noqa: E402 - say, pct, item_2kb, nodes, …
from exchange.config import load_config  # noqa: E402
from exchange.core.items import sign_item  # noqa: E402
from exchange.core.signing import generate_key  # noqa: E402
from exchange.node import Node  # noqa: E402
from exchange.service.sequencer import LOCK_KEY  # noqa: E402
from exchange.storage.database import ensure_database  # noqa: E402
from exchange.storage.embedded import EmbeddedPostgres  # noqa: E402


def _ms(xs: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(xs), 3),
        "p99_ms": round(B.pct(xs, 99), 3),
    }


async def load(db_url: str, work: Path, key: Any, n: int) -> float:
    """Accept ``n`` items through the node's ingest (verify, group commit); items/s.

    In-process, without HTTP: loading is not what this script measures, and on a busy
    machine signed requests prepared up front would expire before they are sent.
    """
    from exchange.core.trust import Reader

    cfg = load_config(
        None,
        overrides={
            "node": {"id": "bench-a", "data_dir": str(work / "a" / "data")},
            "database": {"url": db_url, "pool_max": 10},
        },
        environ={},
    )
    node = Node(cfg)
    await node.start()
    await node.sites.add_site(
        "huaibei-duji", "淮北市杜集区人大常委会", "bench-a", ["huaihai"]
    )
    await node.sites.add_key(key.key_id, "huaibei-duji", key.alg, key.public_key.raw)
    site = Reader("site", "huaibei-duji", circles=frozenset({"huaihai"}))
    chunks = list(range(0, n, 500))
    done = [0]

    async def worker() -> None:
        while chunks:
            start = chunks.pop(0)
            docs = [
                sign_item(B.item_2kb("huaibei-duji", i), key)
                for i in range(start, min(n, start + 500))
            ]
            out = await node.ingestor.push(docs, site)
            assert all(o.status == "accepted" for o in out), out[0]
            done[0] += len(docs)
            if done[0] % 10_000 == 0:
                B.say(f"  {done[0]:,} accepted")

    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(4)))
        return n / (time.perf_counter() - t0)
    finally:
        await node.stop()


async def integration(db_url: str, work: Path, n: int, batch: int) -> float:
    """Re-integrate the whole log with the real sequencer code; returns leaves/s."""
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("TRUNCATE log_nodes, log_checkpoints")
        await conn.execute("UPDATE log_state SET size = 0, root = sha256(''::bytea)")
    finally:
        await conn.close()
    (work / "seq" / "log-head.json").unlink(missing_ok=True)
    cfg = load_config(
        None,
        overrides={
            "node": {"id": "bench-a", "data_dir": str(work / "seq")},
            "database": {"url": db_url},
            "log": {"writer": False, "batch_size": batch},
        },
        environ={},
    )
    node = Node(cfg)
    await node.start()
    try:
        lock = await asyncpg.connect(db_url)
        try:
            assert await lock.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY)
            await node.sequencer._load(lock)
            t0 = time.perf_counter()
            done = await node.sequencer.integrate(lock)
            dt = time.perf_counter() - t0
        finally:
            await lock.close()
    finally:
        await node.stop()
    assert done == n, (done, n)
    return n / dt


async def _timed_gets(
    url: str, paths: list[str], headers: list[dict[str, str]] | None = None
) -> list[float]:
    lat: list[float] = []
    async with aiohttp.ClientSession() as s:
        for i, p in enumerate(paths):
            t0 = time.perf_counter()
            async with s.get(url + p, headers=headers[i] if headers else None) as r:
                await r.read()
                assert r.status == 200, (p, r.status)
            lat.append((time.perf_counter() - t0) * 1000)
    return lat


async def _rate(url: str, paths: list[str], clients: int = 16) -> float:
    queue = list(paths)
    conn = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=conn) as s:

        async def worker() -> None:
            while queue:
                async with s.get(url + queue.pop()) as r:
                    await r.read()

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return len(paths) / (time.perf_counter() - t0)


async def proofs(np: Any, key: Any, n: int, samples: int) -> dict[str, Any]:
    rnd = random.Random(9162)
    inc = [
        f"/v1/log/proof/inclusion?index={rnd.randrange(n)}&size={n}"
        for _ in range(samples)
    ]
    con = [
        f"/v1/log/proof/consistency?size1={rnd.randint(1, n)}&size2={n}"
        for _ in range(samples)
    ]
    await _timed_gets(np.url, inc[:50] + con[:50])  # warm up connections and caches
    out: dict[str, Any] = {
        "inclusion": _ms(await _timed_gets(np.url, inc)),
        "consistency": _ms(await _timed_gets(np.url, con)),
        "inclusion_req_per_s_16_clients": round(await _rate(np.url, inc * 2)),
        "consistency_req_per_s_16_clients": round(await _rate(np.url, con * 2)),
    }
    conn = await asyncpg.connect(np.db_url)
    try:
        ids = [
            r["id"]
            for r in await conn.fetch(
                "SELECT id FROM items WHERE idx = ANY($1::bigint[])",
                [rnd.randrange(n) for _ in range(samples // 4)],
            )
        ]
    finally:
        await conn.close()
    paths = [f"/v1/items/{i}/receipt" for i in ids]
    headers = [B.signed_request(key, np.url, "GET", p, None) for p in paths]
    out["receipt"] = _ms(await _timed_gets(np.url, paths, headers))
    return out


async def audit(db_url: str, work: Path, n: int) -> dict[str, Any]:
    from exchange.service.audit import audit_log

    cfg = load_config(
        None,
        overrides={
            "node": {"id": "bench-a", "data_dir": str(work / "a" / "data")},
            "database": {"url": db_url},
        },
        environ={},
    )
    node = Node(cfg)
    await node.start()
    try:
        report = await audit_log(node)
    finally:
        await node.stop()
    assert report.ok and report.items == n, report.problems[:3]
    return {
        "seconds": round(report.seconds, 2),
        "leaves_per_s": round(n / report.seconds),
        "nodes_compared": report.nodes_checked,
        "seconds_per_million_leaves": round(report.seconds * 1_000_000 / n, 1),
    }


def bundle(np: Any, work: Path, n: int) -> dict[str, Any]:
    import subprocess

    env = B.clean_env(
        {"EXCHANGE_DATABASE_URL": np.db_url, "EXCHANGE_NODE_ID": "bench-a"}
    )
    out = work / "bundle"
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "exchange",
            "export",
            "--out",
            str(out),
            "--data-dir",
            str(work / "a" / "data"),
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    t_export = time.perf_counter() - t0
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "exchange", "verify", str(out)],
        env=env,
        check=True,
        capture_output=True,
    )
    t_verify = time.perf_counter() - t0
    return {
        "export_items_per_s": round(n / t_export),
        "verify_items_per_s": round(n / t_verify),
    }


async def _start(db_url: str, workdir: Path) -> B.NodeProc:
    """``exchange node up`` on the loaded database and data folder, log writer on."""
    return await B.start_node(
        "bench-a", workdir, db_url=db_url, log_name="node2.log", ready_path="/healthz"
    )


async def amain(args: argparse.Namespace) -> int:
    n = args.leaves
    work = Path(tempfile.mkdtemp(prefix="exchange-logbench-"))
    pg = EmbeddedPostgres(work / "pg")
    B.say("starting the embedded PostgreSQL …")
    pg.start()
    res: dict[str, Any] = {"leaves": n, "machine": B.machine_facts()}
    np = None
    try:
        db_url = pg.url("bench_log")
        await ensure_database(db_url)
        key = generate_key(key_id="huaibei-duji#k1")
        B.say(f"accepting {n:,} signed 2 KB items …")
        res["load_items_per_s"] = round(await load(db_url, work, key, n))
        for batch in (1000, 5000):
            B.say(f"integrating {n:,} leaves, batches of {batch} …")
            res[f"integration_leaves_per_s_batch_{batch}"] = round(
                await integration(db_url, work, n, batch)
            )
        np = await _start(db_url, work / "a")
        B.say("waiting for the node to sign a checkpoint …")
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as s:
            while time.monotonic() < deadline:
                async with s.get(np.url + "/v1/log/checkpoint") as r:
                    if r.status == 200 and (await r.json())["size"] == n:
                        break
                await asyncio.sleep(0.1)
        B.say("proofs over HTTP …")
        res["http"] = await proofs(np, key, n, args.samples)
        if args.bundle:
            B.say("export and verify a bundle …")
            res["bundle"] = bundle(np, work, n)
        B.stop_node(np)
        np = None
        B.say("audit …")
        res["audit"] = await audit(db_url, work, n)
    finally:
        if np is not None:
            B.stop_node(np)
        pg.destroy()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(res, indent=2, ensure_ascii=False))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, ensure_ascii=False))
    B.say(f"wrote {out}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--leaves", type=int, default=100_000, help="log size to build (default 100000)"
    )
    ap.add_argument("--samples", type=int, default=2000, help="proof requests per kind")
    ap.add_argument(
        "--bundle", action="store_true", help="also time exchange export + verify"
    )
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "log.json"))
    return asyncio.run(amain(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
