"""Federation benchmark: replication lag at a steady push rate, and backlog drain.

    python bench/federation_bench.py [--quick] [--seconds 20] [--rates 20,50,100,500]
        [--backlog 10000] [--out bench/results/federation.json]

Measures, with every node a separate ``exchange node up`` process and every node's
database on **one** embedded PostgreSQL (``synchronous_commit`` on, as in production):

1. **Replication lag**, two nodes and then three: a site of the ``huaihai`` node pushes
   2 KB items (audience: everyone) at a steady, open-loop rate (20, 50, 100 and 500
   items/s, in batches every 20 ms) for ``--seconds``; for every item, lag = the moment
   the push was acknowledged → the moment the item is visible in the peer's database (a
   LISTEN on the peer's ``exchange_items`` channel wakes a reader that records first
   sight). p50, p99 and max per peer, the rate achieved, and CPU by role (sender,
   peers, PostgreSQL, load generator). A run whose achieved rate falls short of the
   target is marked *saturated*: its lag is the queue that builds up, not replication.
2. **Backlog drain**, two nodes: the peer is stopped, ``--backlog`` items are pushed to
   the sender (batches of 500), the peer is restarted; drain rate = items / (restart →
   last item visible on the peer), plus the rate from the first to the last arrival. The
   sender's RSS is sampled before the backlog, with the backlog held, and after the
   drain, to check that a backlog costs no memory (delivery is a cursor, not a queue).

Default federation settings are used (push + 5 s catch-up pull, backoff 0.5 s → 300 s),
except that per-site rate limits are off. Prints a table and writes the figures to
``bench/results/federation.json``. Not a test: nothing here asserts a threshold.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
import orjson  # noqa: E402
import psutil  # noqa: E402

from exchange.client import ExchangeClient  # noqa: E402
from exchange.core.canonical import item_id  # noqa: E402
from exchange.core.items import sign_item  # noqa: E402
from exchange.core.roster import sign_document  # noqa: E402
from exchange.core.signing import (  # noqa: E402
    CONTEXT_ROSTER,
    PrivateKey,
    generate_key,
    save_private_key,
)
from exchange.storage.database import ensure_database  # noqa: E402
from exchange.storage.embedded import EmbeddedPostgres  # noqa: E402
from exchange.templates import template  # noqa: E402

REGIONS = {
    "huaihai": ["huaibei-duji"],
    "yangtze-delta": ["suzhou-wuzhong"],
    "zhejiang": ["jiaxing-nanhu"],
}


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


def item_2kb(n: int, run: str) -> dict[str, Any]:
    it = template("case_study", "huaibei-duji")
    it["title"] = f"预算联网监督典型案例 {run} 第{n}号"
    it["summary"] = "区人大常委会预算联网监督工作案例，供各地交流参考。" * 13
    it["created_at"] = "2026-11-20T09:30:00+08:00"
    return it


# -- nodes -----------------------------------------------------------------------------
@dataclass
class NodeProc:
    node_id: str
    folder: Path
    url: str
    db_url: str
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
        with open(self.folder / "node.log", "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "exchange",
                    "node",
                    "up",
                    "--config",
                    str(self.folder / "node.toml"),
                ],
                env=env,
                cwd=self.folder,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as s:
            while time.monotonic() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.node_id} exited:\n"
                        + (self.folder / "node.log").read_text()[-2000:]
                    )
                with contextlib.suppress(aiohttp.ClientError):
                    async with s.get(self.url + "/readyz") as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.node_id} not ready within {timeout} s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def rss_mb(self) -> float:
        assert self.proc is not None
        return float(psutil.Process(self.proc.pid).memory_info().rss) / 2**20


async def federation(
    pg: EmbeddedPostgres, work: Path, regions: list[str]
) -> tuple[dict[str, NodeProc], PrivateKey]:
    """Start ``regions`` as node processes with a signed roster; returns them and the
    sending site's key."""
    roster_key = generate_key(key_id="roster#k1")
    pinned = f"roster#k1 ed25519 {roster_key.public_key.b64()}"
    tag = secrets.token_hex(3)
    nodes: dict[str, NodeProc] = {}
    entries = []
    for nid in regions:
        folder = work / f"{nid}-{tag}"
        (folder / "data").mkdir(parents=True)
        key = generate_key(key_id=f"{nid}#k1")
        save_private_key(key, folder / "data" / "node.key")
        port = free_port()
        db_url = pg.url(f"fed_{nid.replace('-', '_')}_{tag}")
        await ensure_database(db_url)
        (folder / "node.toml").write_text(
            f"""\
[node]
id = "{nid}"
base_url = "http://127.0.0.1:{port}"
data_dir = "data"
[http]
listen = "127.0.0.1:{port}"
[database]
url = "{db_url}"
pool_max = 10
[limits]
site_requests_per_s = 0
[federation]
roster_keys = ["{pinned}"]
roster_file = "../roster-{tag}.json"
""",
            encoding="utf-8",
        )
        nodes[nid] = NodeProc(nid, folder, f"http://127.0.0.1:{port}", db_url)
        entries.append(
            {
                "id": nid,
                "base_url": f"http://127.0.0.1:{port}",
                "sites": REGIONS[nid],
                "keys": [
                    {
                        "key_id": key.key_id,
                        "alg": "ed25519",
                        "public_key": key.public_key.b64(),
                        "valid_from": "2026-01-01T00:00:00+00:00",
                    }
                ],
            }
        )
    sites = [s for nid in regions for s in REGIONS[nid]]
    doc = {
        "federation": "bench",
        "version": 1,
        "issued_at": datetime.now(UTC).isoformat(),
        "nodes": entries,
        "circles": [{"id": "all", "name": "全体", "members": sites}],
    }
    (work / f"roster-{tag}.json").write_bytes(
        orjson.dumps(sign_document(doc, roster_key, CONTEXT_ROSTER))
    )
    site_key = generate_key(key_id="huaibei-duji#k1")
    # The node creates its schema on first start; register the site afterwards.
    for n in nodes.values():
        n.start()
    await asyncio.gather(*(n.ready() for n in nodes.values()))
    conn = await asyncpg.connect(nodes["huaihai"].db_url)
    try:
        await conn.execute(
            "UPDATE sites SET name = '淮北市杜集区人大常委会' WHERE id = 'huaibei-duji'"
        )
        await conn.execute(
            "INSERT INTO site_keys (key_id, site_id, alg, public_key, valid_from) "
            "VALUES ($1, 'huaibei-duji', 'ed25519', $2, now() - interval '1 day')",
            site_key.key_id,
            site_key.public_key.raw,
        )
    finally:
        await conn.close()
    await asyncio.sleep(2.5)  # the key cache of the running node expires (2 s)
    return nodes, site_key


def cpu_roles(pg: EmbeddedPostgres, nodes: dict[str, NodeProc]) -> dict[str, list[int]]:
    """PIDs by role: the sender, the peers, PostgreSQL, this load generator."""
    pg_pid = pg.running_pid()
    pg_pids = []
    if pg_pid is not None:
        pg_pids = [pg_pid] + [c.pid for c in psutil.Process(pg_pid).children()]
    return {
        "sender": [nodes["huaihai"].proc.pid] if nodes["huaihai"].proc else [],
        "peers": [n.proc.pid for k, n in nodes.items() if k != "huaihai" and n.proc],
        "postgresql": pg_pids,
        "load_generator": [os.getpid()],
    }


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
    return total


class Watcher:
    """Records when each item first becomes visible in a node's database."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.seen: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._after = -1

    async def start(self) -> None:
        self._conn = await asyncpg.connect(self.db_url)
        self._listen = await asyncpg.connect(self.db_url)
        await self._listen.add_listener("exchange_items", lambda *_: self._wake.set())
        self._after = int(
            await self._conn.fetchval("SELECT coalesce(max(idx), -1) FROM items")
        )
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=0.05)
            self._wake.clear()
            rows = await self._conn.fetch(
                "SELECT idx, id FROM items WHERE idx > $1 ORDER BY idx LIMIT 5000",
                self._after,
            )
            now = time.time()
            for r in rows:
                self.seen.setdefault(r["id"], now)
            if rows:
                self._after = rows[-1]["idx"]
                if len(rows) == 5000:
                    self._wake.set()

    async def wait_for(self, ids: set[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ids <= self.seen.keys():
                return True
            await asyncio.sleep(0.05)
        return False

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._conn.close()
        await self._listen.close()


async def steady_push(
    url: str, key: PrivateKey, rate: int, seconds: float, run: str
) -> tuple[dict[str, float], float]:
    """Open-loop push at ``rate`` items/s in batches every 20 ms (or one item every
    1/rate s); returns ack times by
    id and the achieved rate."""
    tick = max(0.02, 1 / rate)  # at least one item per batch: 20/s is one every 50 ms
    per_tick = max(1, round(rate * tick))
    ticks = int(seconds / tick)
    say(f"  signing {ticks * per_tick} items …")
    batches = [
        [sign_item(item_2kb(t * per_tick + i, run), key) for i in range(per_tick)]
        for t in range(ticks)
    ]
    acked: dict[str, float] = {}
    errors: list[str] = []
    sem = asyncio.Semaphore(64)
    async with ExchangeClient(url, key=key, timeout=30) as client:

        async def send(batch: list[dict[str, Any]]) -> None:
            async with sem:
                try:
                    res = await client.push_batch(batch)
                except Exception as exc:
                    errors.append(str(exc))
                    return
                now = time.time()
                for r in res["results"]:
                    if r["status"] in ("accepted", "duplicate"):
                        acked[r["id"]] = now

        t0 = time.monotonic()
        tasks = []
        for t, batch in enumerate(batches):
            delay = t0 + t * tick - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(batch)))
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - t0
    if errors:
        say(f"  {len(errors)} push error(s), first: {errors[0][:200]}")
    return acked, len(acked) / elapsed


async def measure_lag(
    pg: EmbeddedPostgres,
    work: Path,
    regions: list[str],
    rates: list[int],
    seconds: float,
    out: dict[str, Any],
) -> None:
    say(f"replication lag, {len(regions)} nodes: {', '.join(regions)}")
    nodes, key = await federation(pg, work, regions)
    peers = [n for n in regions if n != "huaihai"]
    try:
        for rate in rates:
            watchers = {p: Watcher(nodes[p].db_url) for p in peers}
            for w in watchers.values():
                await w.start()
            say(f"  pushing {rate} items/s for {seconds:.0f} s …")
            roles = cpu_roles(pg, nodes)
            cpu0, t0 = {r: cpu_seconds(p) for r, p in roles.items()}, time.monotonic()
            acked, achieved = await steady_push(
                nodes["huaihai"].url, key, rate, seconds, f"{len(regions)}n{rate}"
            )
            wall = time.monotonic() - t0
            cpu = {
                r: round((cpu_seconds(p) - cpu0[r]) / wall * 100)
                for r, p in roles.items()
            }
            host = round(100 * (1 - psutil.cpu_times_percent(interval=0.5).idle / 100))
            for p, w in watchers.items():
                complete = await w.wait_for(set(acked), timeout=120)
                lags = [(w.seen[i] - t) * 1000 for i, t in acked.items() if i in w.seen]
                await w.stop()
                out[f"{len(regions)}_nodes_{rate}_per_s_to_{p}"] = {
                    "rate_target": rate,
                    "rate_achieved": round(achieved, 1),
                    # The sender could not take the target rate: lag then measures the
                    # queue that builds up, not replication.
                    "saturated": achieved < 0.95 * rate,
                    "items": len(acked),
                    "arrived": len(lags),
                    "complete": complete,
                    "lag_p50_ms": round(pct(lags, 50), 1),
                    "lag_p99_ms": round(pct(lags, 99), 1),
                    "lag_max_ms": round(max(lags), 1) if lags else None,
                    "lag_mean_ms": round(statistics.fmean(lags), 1) if lags else None,
                    # CPU % of one core while pushing, by role; host_busy_pct is the
                    # whole machine (other users' work included) just after.
                    "cpu_pct": cpu,
                    "host_busy_pct": host,
                }
                say(
                    f"    → {p}: p50 {pct(lags, 50):.1f} ms, p99 {pct(lags, 99):.1f} "
                    "ms "
                    f"({len(lags)}/{len(acked)} items, {achieved:.0f} items/s achieved)"
                )
    finally:
        for n in nodes.values():
            n.stop()


async def measure_backlog(
    pg: EmbeddedPostgres, work: Path, count: int, out: dict[str, Any]
) -> None:
    say(f"backlog drain: 2 nodes, {count} items while the peer is down")
    nodes, key = await federation(pg, work, ["huaihai", "yangtze-delta"])
    hh, yd = nodes["huaihai"], nodes["yangtze-delta"]
    try:
        # Warm up the sender with the same batch size as the backlog push (its
        # allocator reaches its working size), so RSS before is a steady-state figure.
        warm = [sign_item(item_2kb(i, "warm"), key) for i in range(2000)]
        async with ExchangeClient(hh.url, key=key, timeout=60) as client:
            for start in range(0, len(warm), 500):
                await client.push_batch(warm[start : start + 500])
        w0 = Watcher(yd.db_url)
        await w0.start()
        await w0.wait_for({item_id(it["item"]) for it in warm}, timeout=120)
        await w0.stop()
        await asyncio.sleep(2)
        rss_before = hh.rss_mb()
        yd.stop()
        say(f"  peer stopped; signing and pushing {count} items …")
        items = [sign_item(item_2kb(i, "backlog"), key) for i in range(count)]
        ids = {item_id(it["item"]) for it in items}
        t0 = time.monotonic()
        async with ExchangeClient(hh.url, key=key, timeout=60) as client:
            for start in range(0, count, 500):
                await client.push_batch(items[start : start + 500])
        push_s = time.monotonic() - t0
        rss_after_push = hh.rss_mb()
        rss_samples = [rss_after_push]
        for _ in range(
            10
        ):  # hold the backlog a while: the sender retries and backs off
            await asyncio.sleep(1)
            rss_samples.append(hh.rss_mb())
        rss_backlog = max(rss_samples)
        conn = await asyncpg.connect(hh.db_url)
        try:
            peer = await conn.fetchrow(
                "SELECT attempts, last_error FROM peers WHERE node_id='yangtze-delta'"
            )
        finally:
            await conn.close()
        say(
            f"  backlog held; sender attempts {peer['attempts']}, RSS "
            f"{rss_backlog:.1f} MB; restarting the peer …"
        )
        yd.start()
        t_restart = time.monotonic()
        await yd.ready()
        t_ready = time.monotonic()
        w = Watcher(yd.db_url)
        await w.start()
        drain_samples: list[float] = []
        deadline = time.monotonic() + 300
        while not ids <= w.seen.keys() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            drain_samples.append(hh.rss_mb())
        t_done = time.monotonic()
        arrived = [w.seen[i] for i in ids if i in w.seen]
        await w.stop()
        await asyncio.sleep(3)
        rss_after = hh.rss_mb()
        conn = await asyncpg.connect(yd.db_url)
        try:
            stored = int(await conn.fetchval("SELECT count(*) FROM items"))
            pulled = await conn.fetchval(
                "SELECT pulled_total FROM peers WHERE node_id='huaihai'"
            )
        finally:
            await conn.close()
        conn = await asyncpg.connect(hh.db_url)
        try:
            pushed = await conn.fetchval(
                "SELECT pushed_total FROM peers WHERE node_id='yangtze-delta'"
            )
        finally:
            await conn.close()
        span = (max(arrived) - min(arrived)) if len(arrived) > 1 else float("nan")
        out["backlog"] = {
            "items": count,
            "arrived": len(arrived),
            "peer_items_stored": stored,
            "push_seconds": round(push_s, 2),
            "push_items_per_s": round(count / push_s, 1),
            "peer_start_seconds": round(t_ready - t_restart, 2),
            "drain_seconds_from_restart": round(t_done - t_restart, 2),
            "drain_items_per_s_from_restart": round(
                len(arrived) / (t_done - t_restart), 1
            ),
            "drain_seconds_from_ready": round(t_done - t_ready, 2),
            "drain_items_per_s_from_ready": round(len(arrived) / (t_done - t_ready), 1),
            "drain_items_per_s_first_to_last_arrival": round(len(arrived) / span, 1)
            if span == span and span > 0
            else None,
            "sender_pushed_total": pushed,
            "peer_pulled_total": pulled,
            "sender_rss_mb_before": round(rss_before, 1),
            "sender_rss_mb_after_push": round(rss_after_push, 1),
            "sender_rss_mb_with_backlog": round(rss_backlog, 1),
            "sender_rss_mb_during_drain_max": round(max(drain_samples), 1)
            if drain_samples
            else None,
            "sender_rss_mb_after": round(rss_after, 1),
        }
        b = out["backlog"]
        say(
            f"    → drained {len(arrived)}/{count} in "
            f"{b['drain_seconds_from_restart']} s from restart "
            f"({b['drain_items_per_s_from_restart']} items/s; "
            f"{b['drain_items_per_s_from_ready']} items/s "
            f"once the peer was ready); sender RSS {b['sender_rss_mb_before']} → "
            f"{b['sender_rss_mb_with_backlog']} → {b['sender_rss_mb_after']} MB"
        )
    finally:
        for n in nodes.values():
            n.stop()


def report(res: dict[str, Any]) -> str:
    lines = [
        f"{'replication lag (push ack → visible on peer)':46} {'rate':>6} "
        f"{'achieved':>9} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}",
        "-" * 90,
    ]
    for name, r in res["lag"].items():
        label = (
            name.split("_per_s_")[0].replace("_nodes_", " nodes @ ")
            + "/s → "
            + name.rsplit("_to_", 1)[1]
        )
        lines.append(
            f"{label:46} {r['rate_target']:>6} {r['rate_achieved']:>9} "
            f"{r['lag_p50_ms']:>8} {r['lag_p99_ms']:>8} {r['lag_max_ms']!s:>8}"
            + "  cpu% s/p/pg/gen {sender}/{peers}/{postgresql}/{load_generator}".format(
                **r["cpu_pct"]
            )
            + ("  saturated" if r.get("saturated") else "")
        )
    if "backlog" in res:
        b = res["backlog"]
        lines += [
            "",
            f"backlog of {b['items']} items, peer restarted:",
            "  drain rate from restart        "
            f"{b['drain_items_per_s_from_restart']:>10} items/s "
            f"({b['drain_seconds_from_restart']} s, peer start "
            f"{b['peer_start_seconds']} s)",
            f"  drain rate once peer ready     {b['drain_items_per_s_from_ready']:>10} "
            "items/s",
            "  first → last arrival           "
            f"{b['drain_items_per_s_first_to_last_arrival']!s:>10} items/s",
            f"  pushed / pulled (counters)     {b['sender_pushed_total']} / "
            f"{b['peer_pulled_total']}",
            "  sender RSS MB before / after push / backlog held (max) / drain max / "
            f"after: {b['sender_rss_mb_before']} / {b['sender_rss_mb_after_push']} / "
            f"{b['sender_rss_mb_with_backlog']} / "
            f"{b['sender_rss_mb_during_drain_max']} / "
            f"{b['sender_rss_mb_after']}",
        ]
    return "\n".join(lines)


async def amain(args: argparse.Namespace) -> int:
    rates = [int(r) for r in args.rates.split(",")]
    seconds = 5.0 if args.quick else args.seconds
    backlog = 2000 if args.quick else args.backlog
    work = Path(tempfile.mkdtemp(prefix="exchange-fedbench-"))
    pg = EmbeddedPostgres(work / "pg")
    say("starting the embedded PostgreSQL …")
    await asyncio.to_thread(pg.start)
    res: dict[str, Any] = {"lag": {}}
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    try:
        conn = await asyncpg.connect(pg.url())
        pg_version = await conn.fetchval("SHOW server_version")
        sync = await conn.fetchval("SHOW synchronous_commit")
        await conn.close()
        await measure_lag(
            pg, work, ["huaihai", "yangtze-delta"], rates, seconds, res["lag"]
        )
        await measure_lag(
            pg,
            work,
            ["huaihai", "yangtze-delta", "zhejiang"],
            rates,
            seconds,
            res["lag"],
        )
        await measure_backlog(pg, work, backlog, res)
    finally:
        await asyncio.to_thread(pg.destroy)
        shutil.rmtree(work, ignore_errors=True)
    res["machine"] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "postgresql": pg_version,
        "synchronous_commit": sync,
        "load_avg_at_start": load_start,
        "load_avg_at_end": os.getloadavg(),
        "bench_seconds": round(time.perf_counter() - t0, 1),
    }
    res["settings"] = {
        "seconds_per_rate": seconds,
        "rates": rates,
        "backlog_items": backlog,
        "batch_interval_ms": "max(20, 1000 / rate)",
        "quick": args.quick,
        "command": "python bench/federation_bench.py " + " ".join(sys.argv[1:]),
    }
    print(report(res))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(res, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    say(f"wrote {out}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick", action="store_true", help="5 s per rate, 2,000-item backlog"
    )
    ap.add_argument(
        "--seconds", type=float, default=20.0, help="seconds per push rate (default 20)"
    )
    ap.add_argument(
        "--rates",
        default="20,50,100,500",
        help="push rates, items/s (default 20,50,100,500)",
    )
    ap.add_argument(
        "--backlog", type=int, default=10000, help="items pushed while the peer is down"
    )
    ap.add_argument(
        "--out", default=str(ROOT / "bench" / "results" / "federation.json")
    )
    return asyncio.run(amain(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
