"""Pull throughput alone: ``GET /v1/items?cursor=N&limit=1000`` page after page.

    python bench/pull_bench.py [--items 25000] [--rounds 3] [--workers 1]
                               [--reader author|other] [--no-autovacuum]
                               [--profile out.svg|out.txt] [--explain]

The loop of ``bench/run.py`` ("Pull everything"), without the rest of the run, so a
change to the pull path can be judged in a minute: one embedded PostgreSQL, one node
(``exchange node up``), ``--items`` 2 KB items pushed in batches of 500 by one site,
then ``--rounds`` full pulls by that site (one client, sequential pages, each request
signed just before it is sent, as in ``run.py``) or, with ``--reader other``, by another
site that sees them as public items. Before the rounds it waits until the node (search
indexer) and PostgreSQL (autovacuum) are idle, and says whether ``items`` has planner
statistics by then; ``--no-autovacuum`` keeps it without, as right after a bulk load. For each round it prints items/s and
the CPU spent per item by the node's process tree, by PostgreSQL and by this load
generator (``orjson.loads`` of each page, request signing); the best round and the
median are printed last. The host has other users: compare CPU per item, and rates
only between runs made in the same conditions.

``--profile PATH`` samples the node with py-spy (``pip install py-spy``) during the
rounds (``.svg`` flame graph, ``.txt`` raw collapsed stacks whose top frames are
printed). ``--explain`` prints ``EXPLAIN (ANALYZE, BUFFERS)`` of the page query of a
middle page as the site sees it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
import orjson  # noqa: E402
import psutil  # noqa: E402

from bench.common import (  # noqa: E402
    item_2kb,
    pg_cpu_seconds,
    say,
    signed_request,
    start_node,
    stop_node,
)
from bench.run import register_site  # noqa: E402
from exchange.core.items import sign_item  # noqa: E402
from exchange.core.signing import generate_key  # noqa: E402
from exchange.storage.embedded import EmbeddedPostgres  # noqa: E402

SITE = "huaibei-duji"
OTHER = "suzhou-wuzhong"


async def sql(db_url: str, statement: str) -> Any:
    conn = await asyncpg.connect(db_url)
    try:
        return await conn.fetchval(statement)
    finally:
        await conn.close()


async def push_all(url: str, key: object, n: int) -> None:
    async with aiohttp.ClientSession() as s:
        for start in range(0, n, 500):
            docs = [
                sign_item(item_2kb(SITE, i, run="pull"), key)  # type: ignore[arg-type]
                for i in range(start, min(n, start + 500))
            ]
            body = orjson.dumps({"items": docs})
            hdrs = signed_request(key, url, "POST", "/v1/items", body)  # type: ignore[arg-type]
            async with s.post(url + "/v1/items", data=body, headers=hdrs) as r:
                assert r.status == 200, (r.status, await r.text())


async def pull_all(url: str, key: object) -> tuple[int, int]:
    got, cursor, nbytes = 0, -1, 0
    async with aiohttp.ClientSession() as s:
        while True:
            target = f"/v1/items?cursor={cursor}&limit=1000"
            hdrs = signed_request(key, url, "GET", target, None)  # type: ignore[arg-type]
            async with s.get(url + target, headers=hdrs) as r:
                raw = await r.read()
                assert r.status == 200, (r.status, raw[:200])
            nbytes += len(raw)
            page = orjson.loads(raw)
            got += len(page["items"])
            if page["items"]:
                cursor = page["items"][-1]["index"]
            if page["next_cursor"] is None:
                return got, nbytes


def _top_frames(collapsed: Path, n: int = 25) -> None:
    """Self and inclusive sample shares of the hottest frames of py-spy's raw output."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        c = int(count)
        frames = stack.split(";")
        total += c
        own[frames[-1]] += c
        for f in set(frames):
            incl[f] += c
    if not total:
        return
    print(f"py-spy: {total} samples; hottest frames, own (inclusive) %:")
    for f, c in own.most_common(n):
        print(f"  {100 * c / total:5.1f} ({100 * incl[f] / total:5.1f})  {f}")


async def explain(db_url: str, items: int, site: str) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of a middle page's query (``page_json``'s) as the
    site reads it."""
    from exchange.core.trust import Reader
    from exchange.storage import items as st

    reader = Reader("site", site, circles=frozenset({"huaihai"}))
    args, sql = st.page_json_query(
        reader, st.ItemFilter(after=items // 2), 1000, 4 * 1024 * 1024
    )
    conn = await asyncpg.connect(db_url)
    try:
        plan = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *args)
        print("\n".join(r[0] for r in plan))
    finally:
        await conn.close()


async def amain(a: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="exchange-pull-"))
    work.chmod(0o711)  # PostgreSQL's own user (when run as root) must traverse it
    pg = EmbeddedPostgres(work / "pg")
    spy = None
    np = None
    try:
        await asyncio.to_thread(pg.start)
        np = await start_node("pull-a", work / "a", pg=pg, workers=a.workers)
        key = generate_key(key_id=f"{SITE}#k1")
        await register_site(np.db_url, SITE, "pull-a", ["huaihai"], key)
        if a.reader == "other":
            reader_key = generate_key(key_id=f"{OTHER}#k1")
            await register_site(np.db_url, OTHER, "pull-a", ["huaihai"], reader_key)
        else:
            reader_key = key
        if not a.autovacuum:
            await sql(np.db_url, "ALTER TABLE items SET (autovacuum_enabled = false)")
        say(f"pushing {a.items} items …")
        await push_all(np.url, key, a.items)
        await pull_all(np.url, reader_key)  # warm-up: caches, connections
        # The search indexer follows the log and autovacuum visits the new rows: wait
        # until the node and PostgreSQL are idle, so their CPU is the pulls' own.
        for _ in range(120):
            c0 = np.cpu_seconds() + pg_cpu_seconds(pg)
            await asyncio.sleep(1.0)
            idle = np.cpu_seconds() + pg_cpu_seconds(pg) - c0
            if idle < 0.03:
                break
        analyzed = await sql(
            np.db_url,
            "SELECT greatest(last_analyze, last_autoanalyze) IS NOT NULL "
            "FROM pg_stat_user_tables WHERE relname = 'items'",
        )
        say(
            f"node and PostgreSQL idle: {idle * 1000:.0f} ms CPU in 1 s; "
            f"items {'has' if analyzed else 'has no'} planner statistics; "
            f"pulled by {reader_key.key_id}"
        )
        if a.explain:
            await explain(np.db_url, a.items, reader_key.key_id.partition("#")[0])
        if a.profile:
            raw = Path(a.profile)
            fmt = "flamegraph" if raw.suffix == ".svg" else "raw"
            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "-r",
                    "250",
                    "--gil",
                    "--nonblocking",
                ]
                + ["-f", fmt, "-o", str(raw), "--pid", str(np.proc.pid)]  # type: ignore[union-attr]
                + (["--subprocesses"] if a.workers > 1 else []),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            await asyncio.sleep(1.0)
        me = psutil.Process()
        rates, node_ms, pg_ms, client_ms = [], [], [], []
        for r in range(a.rounds):
            c_node, c_pg = np.cpu_seconds(), pg_cpu_seconds(pg)
            t_me = me.cpu_times()
            t0 = time.perf_counter()
            got, nbytes = await pull_all(np.url, reader_key)
            dt = time.perf_counter() - t0
            t_me2 = me.cpu_times()
            rates.append(got / dt)
            node_ms.append((np.cpu_seconds() - c_node) * 1000 / got)
            pg_ms.append((pg_cpu_seconds(pg) - c_pg) * 1000 / got)
            client_ms.append(
                (t_me2.user + t_me2.system - t_me.user - t_me.system) * 1000 / got
            )
            print(
                f"round {r + 1}: {got} items, {nbytes / got:.0f} B/item, "
                f"{rates[-1]:,.0f} items/s; CPU ms/item: node {node_ms[-1]:.4f}, "
                f"PostgreSQL {pg_ms[-1]:.4f}, client {client_ms[-1]:.4f}",
                flush=True,
            )
        print(
            f"pull items/s best {max(rates):,.0f} median {statistics.median(rates):,.0f}; "
            f"CPU ms/item (median) node {statistics.median(node_ms):.4f}, "
            f"PostgreSQL {statistics.median(pg_ms):.4f}, "
            f"client {statistics.median(client_ms):.4f}; "
            f"load average {', '.join(f'{x:.2f}' for x in psutil.getloadavg())}"
        )
    finally:
        if spy is not None:
            spy.send_signal(2)  # SIGINT: py-spy writes its output and exits
            spy.wait(timeout=60)
        if np is not None:
            stop_node(np)
        await asyncio.to_thread(pg.destroy)
        shutil.rmtree(work, ignore_errors=True)
    if spy is not None and a.profile.endswith(".txt"):
        _top_frames(Path(a.profile))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--items", type=int, default=25000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--profile", default="", help="py-spy output (.svg or .txt)")
    ap.add_argument("--explain", action="store_true")
    ap.add_argument(
        "--reader",
        choices=("author", "other"),
        default="author",
        help="pull as the site that wrote the items (as run.py does) or as another "
        "site of the same circle that sees them as public items",
    )
    ap.add_argument(
        "--no-autovacuum",
        dest="autovacuum",
        action="store_false",
        help="no autovacuum on items: the pulls run without planner statistics, as "
        "right after a bulk load",
    )
    return asyncio.run(amain(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
