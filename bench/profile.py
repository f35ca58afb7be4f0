"""Where a push's time goes: a node under single or batch pushes, sampled with py-spy,
and its statements by ``pg_stat_statements``.

    python bench/profile.py [--mode single|batch] [--items 4000] [--out FILE]

Starts an embedded PostgreSQL with ``pg_stat_statements`` loaded, one node process
(``exchange node up``), registers a site, warms the node up, then pushes signed 2 KB items
(one per request from 32 clients, or 500 per request from 4) while ``py-spy record
--nonblocking`` samples the node and its helper processes. Prints, per item: the node's
and PostgreSQL's CPU, the time of each process kind (the worker's event loop, helper
processes, other threads), the functions that hold the event loop longest (inclusive and
self), and PostgreSQL's top statements. py-spy counts time a process was running *or
waiting for a core*, so on a busy host the split is of wall time; the CPU figures come
from the operating system. Needs ``py-spy`` (``pip install py-spy``). Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import orjson  # noqa: E402

from bench.common import (  # noqa: E402
    item_2kb,
    pct,
    pg_cpu_seconds,
    signed_request,
    start_node,
    stop_node,
)
from bench.run import register_site, run_clients, settle  # noqa: E402
from exchange.core.items import sign_item  # noqa: E402
from exchange.core.signing import generate_key  # noqa: E402
from exchange.storage.embedded import EmbeddedPostgres  # noqa: E402

RATE = 200  # py-spy samples per second
_IDLE = ("select", "Condition.wait", "_recv_bytes", "wait (threading", "_worker (")
_FRAME = re.compile(r" \((?:.*/)?([^/]*):\d+\)")


def summarise(raw: Path, items: int, top: int = 30) -> list[str]:
    """Per-item microseconds by process kind and by function of the event loop."""
    kinds: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, n_text = line.rpartition(" ")
        n = int(n_text)
        frames = [_FRAME.sub(r" \1", f) for f in stack.split(";")]
        if any(k in frames[-1] for k in _IDLE):
            continue
        kind = (
            "event loop"
            if "Runner.run" in stack
            else "helper processes"
            if "forkserver" in stack
            else "other threads"
        )
        kinds[kind] += n
        if kind != "event loop":
            continue
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n

    def us(n: int) -> str:
        return f"{n / RATE / items * 1e6:8.1f}"

    out = ["µs per item by process kind (py-spy, wall time while running or runnable):"]
    out += [f"{us(n)}  {k}" for k, n in kinds.most_common()]
    out.append("event loop, inclusive:")
    skip = ("_bootstrap", "runpy", "process ", "<module>", "cli.py", "__init__.py")
    out += [
        f"{us(n)}  {f[:100]}"
        for f, n in incl.most_common(top + 12)
        if not any(s in f for s in skip)
    ][:top]
    out.append("event loop, self:")
    out += [f"{us(n)}  {f[:100]}" for f, n in own.most_common(top // 2)]
    return out


async def main(args: argparse.Namespace) -> int:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy is needed: pip install py-spy", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="exchange-profile-"))
    work.chmod(0o711)  # PostgreSQL's own user (when run as root) must traverse it
    pg = EmbeddedPostgres(work / "pg")
    await asyncio.to_thread(pg.start)
    await asyncio.to_thread(pg.stop)
    with open(pg.pgdata / "postgresql.conf", "a") as f:
        f.write("\nshared_preload_libraries = 'pg_stat_statements'\n")
    await asyncio.to_thread(pg.start)
    np = await start_node("profile-a", work / "a", pg=pg)
    lines: list[str] = []
    try:
        key = generate_key(key_id="huaibei-duji#k1")
        await register_site(np.db_url, "huaibei-duji", "profile-a", ["huaihai"], key)
        seq = [0]

        def items(n: int) -> list[dict[str, object]]:
            out = [
                sign_item(item_2kb("huaibei-duji", seq[0] + i), key) for i in range(n)
            ]
            seq[0] += n
            return out

        url = np.url + "/v1/items"
        warm = [orjson.dumps({"items": items(100)}) for _ in range(4)]
        await run_clients(
            url,
            [(b, signed_request(key, np.url, "POST", "/v1/items", b)) for b in warm],
            4,
            [],
        )
        if args.mode == "single":
            bodies, clients = [orjson.dumps(d) for d in items(args.items)], 32
        else:
            bodies = [
                orjson.dumps({"items": items(500)}) for _ in range(args.items // 500)
            ]
            clients = 4
        await settle(np.db_url)
        conn = await asyncpg.connect(np.db_url)
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute("SELECT pg_stat_statements_reset()")
        reqs = [
            (b, signed_request(key, np.url, "POST", "/v1/items", b)) for b in bodies
        ]
        raw = work / "spy.raw"
        assert np.proc is not None
        sampler = subprocess.Popen(
            [
                spy,
                "record",
                "-p",
                str(np.proc.pid),
                "--subprocesses",
                "--nonblocking",
                "-r",
                str(RATE),
                "-f",
                "raw",
                "-o",
                str(raw),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await asyncio.sleep(1.0)
        lat: list[float] = []
        c0, p0 = np.cpu_seconds(), pg_cpu_seconds(pg)
        t0 = time.perf_counter()
        await run_clients(url, reqs, clients, lat)
        dt = time.perf_counter() - t0
        await settle(np.db_url)
        n = args.items
        lines.append(
            f"{args.mode} push, {n} items, {clients} clients: {n / dt:,.0f} items/s, "
            f"p50 {statistics.median(lat):.1f} ms, p99 {pct(lat, 99):.1f} ms per request; "
            f"CPU ms per item (search index caught up): node "
            f"{(np.cpu_seconds() - c0) * 1000 / n:.3f}, PostgreSQL "
            f"{(pg_cpu_seconds(pg) - p0) * 1000 / n:.3f}"
        )
        sampler.send_signal(2)
        sampler.wait(timeout=60)
        lines += summarise(raw, n)
        rows = await conn.fetch(
            "SELECT calls, total_exec_time AS ms, rows, "
            "left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS q "
            "FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 10"
        )
        await conn.close()
        lines.append("PostgreSQL statements (pg_stat_statements, execution time):")
        lines += [
            f"{r['ms'] * 1000 / n:8.1f} µs/item {r['calls']:6d} calls  {r['q']}"
            for r in rows
        ]
    finally:
        stop_node(np)
        await asyncio.to_thread(pg.stop)
        shutil.rmtree(work, ignore_errors=True)
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n\n")
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("single", "batch"), default="single")
    ap.add_argument(
        "--items", type=int, default=4000, help="items pushed (default 4000)"
    )
    ap.add_argument("--out", help="also append the summary to this file")
    sys.exit(asyncio.run(main(ap.parse_args())))
