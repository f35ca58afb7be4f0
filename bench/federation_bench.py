"""Federation benchmark: replication lag at a steady push rate, and backlog drain.

    python bench/federation_bench.py [--quick] [--seconds 20] [--rates 20,50,100,500]
        [--backlog 10000] [--hold 10] [--workers 1]
        [--out bench/results/federation.json]

Measures, with every node a separate ``exchange node up`` process and every node's
database on **one** embedded PostgreSQL (``synchronous_commit`` on, as in production):

1. **Replication lag**, two nodes: a site of the ``huaihai`` node pushes 2 KB items
   (audience: everyone) at a steady, open-loop rate (20, 50, 100 and 500 items/s, in
   batches every 20 ms) for ``--seconds``; for every item, lag = the moment the push was
   acknowledged → the moment the item is visible in the peer's database (a LISTEN on the
   peer's ``exchange_items`` channel wakes a reader that records first sight). p50, p99
   and max per peer, the rate achieved, CPU by role (sender, peers, PostgreSQL, load
   generator) and how busy the whole host was while pushing. A run whose achieved rate
   falls short of 95 % of the target is marked *saturated*: its lag is the queue that
   builds up, not replication; a peer whose lag grows during the run (the last tenth of
   the items by more than 500 ms over the first tenth) is marked *behind*: replication
   did not keep up with the rate. Before the first rate, 40 items warm the nodes up
   (their helper processes start on first use).
2. **Backlog drain**, on the same two nodes: the peer is stopped, ``--backlog`` items
   are pushed to the sender (batches of 500) and held for ``--hold`` seconds (the sender
   retries and backs off), the peer is restarted; drain rate = items / (restart → last
   item visible on the peer), the same from the moment the peer answers (is ready;
   with workers, the first one), and the rate from the first to the last arrival; the
   CPU per item drained of each role (sender, peer, PostgreSQL) from ready to the last
   arrival. The sender's RSS is sampled before the backlog, with the backlog held, and
   after the drain, to check that a backlog costs no memory (delivery is a cursor, not a
   queue).
3. **Replication lag**, three nodes, as in 1 (two peers; the worst peer counts).
4. **Crossings**, for each federation of 1 and 3: every node's roster URL is a counting
   TCP relay in this process (the load generator talks to the nodes directly), so all
   node-to-node traffic (pushes, catch-up pulls, witness) is counted. Over the lag runs
   and one catch-up interval after them: items sent (pushed + pulled) and bytes sent
   (both directions, headers included) per item replicated, and the bytes as a multiple
   of the signed item's own size. An item that crosses to a peer once counts 1.0 item.

Default federation settings are used (push + 5 s catch-up pull, backoff 0.5 s → 300 s),
except that per-site rate limits are off. ``--workers N`` runs every node as
``exchange node up --workers N``. A node's CPU and RSS are summed over its process
tree (workers and helper processes; RSS counts shared pages once per process).
Prints a table and writes the figures to ``bench/results/federation.json``. Not a test:
nothing here asserts a threshold. ``bench/run.py`` runs the same code (:func:`run_all`)
on its own PostgreSQL as part of the full benchmark.
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
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import orjson  # noqa: E402
import psutil  # noqa: E402

from bench.common import (  # noqa: E402
    NodeProc,
    clean_env,
    cpu_seconds,
    free_port,
    item_2kb,
    pct,
    pg_cpu_seconds,
    say,
)
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

REGIONS = {
    "huaihai": ["huaibei-duji"],
    "yangtze-delta": ["suzhou-wuzhong"],
    "zhejiang": ["jiaxing-nanhu"],
}
SENDER = "huaihai"
TWO_NODES = ["huaihai", "yangtze-delta"]
THREE_NODES = ["huaihai", "yangtze-delta", "zhejiang"]


@dataclass
class Settings:
    """How long and how much (the defaults are the full size)."""

    rates: tuple[int, ...] = (20, 50, 100, 500)
    seconds: float = 20.0  # per rate
    backlog: int = 10_000  # items pushed while the peer is down
    warm: int = 2000  # items pushed in batches of 500 before RSS "before" is taken
    hold_s: float = 10.0  # how long the backlog is held before the peer comes back
    settle_s: float = 3.0  # after the drain, before RSS "after"
    arrival_timeout_s: float = 120.0  # per rate: all items must reach every peer
    drain_timeout_s: float = 300.0
    workers: int = 1  # exchange node up --workers N for every node
    catch_up_s: float = (
        6.0  # after the lag runs: one catch-up pull interval (5 s) and more
    )


def item(n: int, run: str) -> dict[str, Any]:
    return item_2kb("huaibei-duji", n, run=run)


# -- counting relays ---------------------------------------------------------------------
class Relay:
    """A TCP relay in front of a node that counts the bytes crossing it (both ways)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.bytes = 0
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while chunk := await src.read(1 << 16):
                self.bytes += len(chunk)
                dst.write(chunk)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.close()

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            tr, tw = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:  # the node is down: the caller sees a closed connection
            w.close()
            return
        await asyncio.gather(self._pump(r, tw), self._pump(tr, w))

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


RELAYS: dict[str, Relay] = {}  # node URL (direct) -> the relay its peers use


# -- nodes -----------------------------------------------------------------------------
async def federation(
    pg: EmbeddedPostgres, work: Path, regions: list[str], *, workers: int = 1
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
        relay = Relay(port)
        await relay.start()
        RELAYS[f"http://127.0.0.1:{port}"] = relay
        db_url = pg.url(f"fed_{nid.replace('-', '_')}_{tag}")
        await ensure_database(db_url)
        (folder / "node.toml").write_text(
            f"""\
[node]
id = "{nid}"
base_url = "http://127.0.0.1:{relay.port}"
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
        nodes[nid] = NodeProc(
            url=f"http://127.0.0.1:{port}",
            db_url=db_url,
            workdir=folder,
            args=["--config", str(folder / "node.toml")],
            env=clean_env(),
            node_id=nid,
            workers=workers,
            cwd=folder,
        )
        entries.append(
            {
                "id": nid,
                "base_url": f"http://127.0.0.1:{relay.port}",
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
    try:
        await asyncio.gather(*(n.ready() for n in nodes.values()))
        conn = await asyncpg.connect(nodes[SENDER].db_url)
        try:
            await conn.execute(
                "UPDATE sites SET name = '淮北市杜集区人大常委会' "
                "WHERE id = 'huaibei-duji'"
            )
            await conn.execute(
                "INSERT INTO site_keys (key_id, site_id, alg, public_key, valid_from) "
                "VALUES ($1, 'huaibei-duji', 'ed25519', $2, now() - interval '1 day')",
                site_key.key_id,
                site_key.public_key.raw,
            )
        finally:
            await conn.close()
    except BaseException:
        stop_all(nodes)
        raise
    # No wait needed: the insert NOTIFYs exchange_keys, which drops every node process's
    # key cache, and the 2 s site cache holds only sites that requests looked up (none).
    return nodes, site_key


def stop_all(nodes: dict[str, NodeProc]) -> None:
    """SIGTERM every node at once, then wait for each (they shut down in parallel)."""
    for n in nodes.values():
        n.terminate()
    for n in nodes.values():
        n.stop()


def close_relays(nodes: dict[str, NodeProc]) -> None:
    """Close the relays of stopped nodes (on the event loop's thread)."""
    for n in nodes.values():
        relay = RELAYS.pop(n.url, None)
        if relay is not None:
            relay.close()


async def crossed(nodes: dict[str, NodeProc]) -> tuple[int, int]:
    """(items sent node to node so far: pushed + pulled, bytes through the relays)."""
    items = 0
    for n in nodes.values():
        row = await _one(
            n.db_url,
            "SELECT coalesce(sum(pushed_total + refused_total"
            " + pulled_total), 0) AS n FROM peers",
        )
        items += int(row["n"])
    return items, sum(RELAYS[n.url].bytes for n in nodes.values() if n.url in RELAYS)


def cpu_roles(
    pg: EmbeddedPostgres, nodes: dict[str, NodeProc]
) -> dict[str, Callable[[], float]]:
    """CPU seconds so far by role: the sender, the peers, PostgreSQL, this load
    generator (process trees: helper processes and ended backends count)."""
    sender = nodes[SENDER]
    peers = [n for k, n in nodes.items() if k != SENDER]
    me = [os.getpid()]
    return {
        "sender": sender.cpu_seconds,
        "peers": lambda: sum(n.cpu_seconds() for n in peers),
        "postgresql": lambda: pg_cpu_seconds(pg),
        "load_generator": lambda: cpu_seconds(me),
    }


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
    1/rate s); returns ack times by id and the achieved rate."""
    tick = max(0.02, 1 / rate)  # at least one item per batch: 20/s is one every 50 ms
    per_tick = max(1, round(rate * tick))
    ticks = max(1, int(seconds / tick))
    say(f"  signing {ticks * per_tick} items …")
    batches = [
        [sign_item(item(t * per_tick + i, run), key) for i in range(per_tick)]
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
        if not acked:
            raise RuntimeError(
                f"every push failed ({len(errors)}), first: {errors[0][:200]}"
            )
    return acked, len(acked) / elapsed


BEHIND_TREND_MS = 500.0  # lag growth over a run that marks a peer as falling behind


def lag_trend_ms(acked: dict[str, float], seen: dict[str, float]) -> float | None:
    """Median lag of the last tenth of the items (by acknowledgement) minus that of the
    first tenth: near 0 when replication keeps up, growing when a queue builds up."""
    order = sorted((t, i) for i, t in acked.items() if i in seen)
    k = len(order) // 10
    if k < 3:
        return None
    first = statistics.median(seen[i] - t for t, i in order[:k])
    last = statistics.median(seen[i] - t for t, i in order[-k:])
    return (last - first) * 1000


def lag_key(nodes: int, rate: int, peer: str) -> str:
    return f"{nodes}_nodes_{rate}_per_s_to_{peer}"


async def lag_runs(
    pg: EmbeddedPostgres,
    nodes: dict[str, NodeProc],
    key: PrivateKey,
    s: Settings,
    out: dict[str, Any],
    crossings: dict[str, Any] | None = None,
) -> None:
    """Replication lag at each rate of ``s.rates`` on a running federation (and, into
    ``crossings``, what crossed between the nodes meanwhile)."""
    peers = [n for n in nodes if n != SENDER]
    # Warm up: the first items start the nodes' helper processes (signature checks,
    # search indexing) and fill their pools; that one-off cost must not land in the
    # first rate's lag and CPU figures.
    watchers = {p: Watcher(nodes[p].db_url) for p in peers}
    for w in watchers.values():
        await w.start()
    try:
        warm = [sign_item(item(i, f"{len(nodes)}n-warm"), key) for i in range(40)]
        async with ExchangeClient(nodes[SENDER].url, key=key, timeout=30) as client:
            await asyncio.gather(
                client.push_batch(warm[:20]), client.push_batch(warm[20:])
            )
        ids = {item_id(it["item"]) for it in warm}
        for w in watchers.values():
            await w.wait_for(ids, timeout=s.arrival_timeout_s)
    finally:
        for w in watchers.values():
            await w.stop()
    items0, bytes0 = await crossed(nodes)
    replicated = 0
    for rate in s.rates:
        watchers = {p: Watcher(nodes[p].db_url) for p in peers}
        for w in watchers.values():
            await w.start()
        try:
            say(f"  pushing {rate} items/s for {s.seconds:g} s …")
            roles = cpu_roles(pg, nodes)
            cpu0, t0 = {r: f() for r, f in roles.items()}, time.monotonic()
            psutil.cpu_percent(interval=None)  # starts the host-wide window
            acked, achieved = await steady_push(
                nodes[SENDER].url, key, rate, s.seconds, f"{len(nodes)}n{rate}"
            )
            wall = time.monotonic() - t0
            host = round(psutil.cpu_percent(interval=None))
            cpu = {r: round((f() - cpu0[r]) / wall * 100) for r, f in roles.items()}
            for p, w in watchers.items():
                complete = await w.wait_for(set(acked), timeout=s.arrival_timeout_s)
                lags = [(w.seen[i] - t) * 1000 for i, t in acked.items() if i in w.seen]
                replicated += len(lags)
                trend = lag_trend_ms(acked, w.seen)
                out[lag_key(len(nodes), rate, p)] = {
                    "nodes": len(nodes),
                    "peer": p,
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
                    # The peer could not keep up: its lag grew during the run (a queue
                    # built up behind replication), see lag_trend_ms.
                    "lag_trend_ms": None if trend is None else round(trend, 1),
                    "behind": trend is not None and trend > BEHIND_TREND_MS,
                    # CPU % of one core while pushing, by role; host_busy_pct is the
                    # whole machine (other users' work included) over the same window.
                    "cpu_pct": cpu,
                    "host_busy_pct": host,
                }
                say(
                    f"    → {p}: p50 {pct(lags, 50):.1f} ms, "
                    f"p99 {pct(lags, 99):.1f} ms "
                    f"({len(lags)}/{len(acked)} items, {achieved:.0f} items/s achieved)"
                )
        finally:
            for w in watchers.values():
                await w.stop()
    if crossings is None:
        return
    # One catch-up round after the last push (the default pull interval is 5 s), so any
    # item a pull fetches again is counted.
    await asyncio.sleep(s.catch_up_s)
    items1, bytes1 = await crossed(nodes)
    size = len(orjson.dumps(sign_item(item(0, "size"), key)))
    if replicated and crossings is not None:
        per_item = (bytes1 - bytes0) / replicated
        crossings[f"{len(nodes)}_nodes"] = c = {
            "nodes": len(nodes),
            "items_replicated": replicated,  # items x peers that received them
            "items_sent": items1 - items0,
            "items_sent_per_item_replicated": round((items1 - items0) / replicated, 3),
            "bytes_sent": bytes1 - bytes0,
            "bytes_sent_per_item_replicated": round(per_item),
            "signed_item_bytes": size,
            "bytes_sent_per_item_bytes": round(per_item / size, 3),
        }
        say(
            f"    → crossings, {len(nodes)} nodes: {c['items_sent_per_item_replicated']} "
            f"items and {c['bytes_sent_per_item_replicated']} bytes sent per item replicated "
            f"({c['bytes_sent_per_item_bytes']} × the signed item)"
        )


async def measure_lag(
    pg: EmbeddedPostgres,
    work: Path,
    regions: list[str],
    s: Settings,
    out: dict[str, Any],
) -> None:
    """:func:`lag_runs` on a federation of ``regions`` started for it."""
    say(f"replication lag, {len(regions)} nodes: {', '.join(regions)}")
    nodes, key = await federation(pg, work, regions, workers=s.workers)
    try:
        await lag_runs(pg, nodes, key, s, out)
    finally:
        stop_all(nodes)
        close_relays(nodes)


async def _one(db_url: str, sql: str) -> Any:
    conn = await asyncpg.connect(db_url)
    try:
        return await conn.fetchrow(sql)
    finally:
        await conn.close()


async def backlog_run(
    nodes: dict[str, NodeProc],
    key: PrivateKey,
    s: Settings,
    out: dict[str, Any],
    pg: EmbeddedPostgres,
) -> None:
    """Backlog drain on a running federation: its first peer is stopped, ``s.backlog``
    items pushed and held, the peer restarted; writes ``out["backlog"]``, with the CPU
    per item drained of each role from the restart to the last arrival."""
    count = s.backlog
    hh = nodes[SENDER]
    peer_id = next(n for n in nodes if n != SENDER)
    yd = nodes[peer_id]
    say(f"backlog drain: {count} items while {peer_id} is down")
    # Warm up the sender with the same batch size as the backlog push (its allocator
    # reaches its working size), so RSS before is a steady-state figure.
    warm = [sign_item(item(i, "warm"), key) for i in range(s.warm)]
    async with ExchangeClient(hh.url, key=key, timeout=60) as client:
        for start in range(0, len(warm), 500):
            await client.push_batch(warm[start : start + 500])
    w0 = Watcher(yd.db_url)
    await w0.start()
    try:
        await w0.wait_for({item_id(it["item"]) for it in warm}, timeout=120)
    finally:
        await w0.stop()
    await asyncio.sleep(min(2.0, s.settle_s))
    rss_before = hh.rss_mb()
    yd.stop()
    say(f"  peer stopped; signing and pushing {count} items …")
    items = [sign_item(item(i, "backlog"), key) for i in range(count)]
    ids = {item_id(it["item"]) for it in items}
    t0 = time.monotonic()
    async with ExchangeClient(hh.url, key=key, timeout=60) as client:
        for start in range(0, count, 500):
            await client.push_batch(items[start : start + 500])
    push_s = time.monotonic() - t0
    rss_after_push = hh.rss_mb()
    rss_samples = [rss_after_push]
    # Hold the backlog a while: the sender retries and backs off.
    hold_until = time.monotonic() + s.hold_s
    while time.monotonic() < hold_until:
        await asyncio.sleep(min(1.0, max(0.0, hold_until - time.monotonic())))
        rss_samples.append(hh.rss_mb())
    rss_backlog = max(rss_samples)
    peer = await _one(
        hh.db_url, f"SELECT attempts, last_error FROM peers WHERE node_id='{peer_id}'"
    )
    say(
        f"  backlog held {s.hold_s:g} s; sender attempts {peer['attempts']}, RSS "
        f"{rss_backlog:.1f} MB; restarting the peer …"
    )
    # Watch the peer's database before the peer starts: items can arrive as soon as
    # one of its workers listens, before it reports ready.
    w = Watcher(yd.db_url)
    await w.start()
    drain_samples: list[float] = []
    roles = cpu_roles(pg, nodes)
    try:
        yd.start()
        t_restart = time.monotonic()
        await yd.ready(all_workers=False)  # it answers: it can take items
        t_ready = time.monotonic()
        cpu0 = {r: f() for r, f in roles.items()}
        await yd.ready()  # every worker listens
        t_all = time.monotonic()
        deadline = time.monotonic() + s.drain_timeout_s
        while not ids <= w.seen.keys() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            drain_samples.append(hh.rss_mb())
        t_done = time.monotonic()
        cpu_drain = {r: f() - cpu0[r] for r, f in roles.items()}
        arrived = [w.seen[i] for i in ids if i in w.seen]
    finally:
        await w.stop()
    await asyncio.sleep(s.settle_s)
    rss_after = hh.rss_mb()
    stored = (await _one(yd.db_url, "SELECT count(*) AS n FROM items"))["n"]
    pulled = (
        await _one(
            yd.db_url, f"SELECT pulled_total FROM peers WHERE node_id='{SENDER}'"
        )
    )["pulled_total"]
    pushed = (
        await _one(
            hh.db_url, f"SELECT pushed_total FROM peers WHERE node_id='{peer_id}'"
        )
    )["pushed_total"]
    span = (max(arrived) - min(arrived)) if len(arrived) > 1 else float("nan")
    out["backlog"] = {
        "nodes": len(nodes),
        "items": count,
        "arrived": len(arrived),
        "complete": len(arrived) == count,
        "hold_seconds": s.hold_s,
        "sender_attempts_while_held": peer["attempts"],
        "peer_items_stored": stored,
        "push_seconds": round(push_s, 2),
        "push_items_per_s": round(count / push_s, 1),
        "peer_start_seconds": round(t_ready - t_restart, 2),
        "peer_all_workers_seconds": round(t_all - t_restart, 2),
        "drain_seconds_from_restart": round(t_done - t_restart, 2),
        "drain_items_per_s_from_restart": round(len(arrived) / (t_done - t_restart), 1),
        "drain_seconds_from_ready": round(t_done - t_ready, 2),
        "drain_items_per_s_from_ready": round(len(arrived) / (t_done - t_ready), 1),
        "drain_items_per_s_first_to_last_arrival": round(len(arrived) / span, 1)
        if span == span and span > 0
        else None,
        "drain_cpu_us_per_item": {
            r: round(v * 1e6 / max(1, len(arrived)), 1) for r, v in cpu_drain.items()
        },
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
        f"{b['sender_rss_mb_with_backlog']} → {b['sender_rss_mb_after']} MB; CPU µs "
        f"per item: {b['drain_cpu_us_per_item']}"
    )


async def measure_backlog(
    pg: EmbeddedPostgres, work: Path, s: Settings, out: dict[str, Any]
) -> None:
    """:func:`backlog_run` on a two-node federation started for it."""
    nodes, key = await federation(pg, work, TWO_NODES, workers=s.workers)
    try:
        await backlog_run(nodes, key, s, out, pg)
    finally:
        stop_all(nodes)
        close_relays(nodes)


async def run_all(pg: EmbeddedPostgres, work: Path, s: Settings) -> dict[str, Any]:
    """Lag on two nodes, backlog drain on the same two, lag on three nodes.

    Returns ``{"lag": {...}, "backlog": {...}, "errors": [...], "seconds": {...}}``: a
    part that fails is recorded in ``errors`` and the others still run; ``seconds`` is
    the wall time of each part.
    """
    res: dict[str, Any] = {"lag": {}, "crossings": {}, "errors": [], "seconds": {}}
    t = [time.monotonic()]

    def lap(part: str) -> None:
        now = time.monotonic()
        res["seconds"][part] = round(now - t[0], 1)
        t[0] = now

    def failed(part: str, exc: BaseException) -> None:
        res["errors"].append(f"{part}: {type(exc).__name__}: {exc}")
        say(f"  {part} failed: {type(exc).__name__}: {exc}")

    stopping: dict[str, NodeProc] = {}
    for regions in (TWO_NODES, THREE_NODES):
        n = len(regions)
        say(f"replication lag, {n} nodes: {', '.join(regions)}")
        nodes: dict[str, NodeProc] = {}
        try:
            # The previous federation shuts down while this one starts (neither is
            # measured meanwhile).
            started, _ = await asyncio.gather(
                federation(pg, work, regions, workers=s.workers),
                asyncio.to_thread(stop_all, stopping),
            )
            close_relays(stopping)
            nodes, key = started
            lap(f"start {n} nodes")
            try:
                await lag_runs(pg, nodes, key, s, res["lag"], res["crossings"])
            except Exception as exc:
                failed(f"replication lag, {n} nodes", exc)
            lap(f"lag {n} nodes")
            if n == 2:  # the backlog on the same two nodes
                try:
                    await backlog_run(nodes, key, s, res, pg)
                except Exception as exc:
                    failed("backlog drain", exc)
                lap("backlog")
        except Exception as exc:
            failed(f"{n}-node federation", exc)
        finally:
            stop_all(stopping)
            stopping = nodes
    for nd in stopping.values():  # the last one: stop at once
        nd.terminate()
    stop_all(stopping)
    close_relays(stopping)
    lap("stop")
    return res


def report(res: dict[str, Any]) -> str:
    lines = [
        f"{'replication lag (push ack → visible on peer)':46} {'rate':>6} "
        f"{'achieved':>9} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}",
        "-" * 90,
    ]
    for r in res["lag"].values():
        label = f"{r['nodes']} nodes @ {r['rate_target']}/s → {r['peer']}"
        lines.append(
            f"{label:46} {r['rate_target']:>6} {r['rate_achieved']:>9} "
            f"{r['lag_p50_ms']:>8} {r['lag_p99_ms']:>8} {r['lag_max_ms']!s:>8}"
            + "  cpu% s/p/pg/gen {sender}/{peers}/{postgresql}/{load_generator}".format(
                **r["cpu_pct"]
            )
            + f" host {r['host_busy_pct']}"
            + ("  saturated" if r.get("saturated") else "")
            + ("  peer behind" if r.get("behind") else "")
            + ("" if r.get("complete", True) else "  INCOMPLETE")
        )
    for c in res.get("crossings", {}).values():
        lines.append(
            f"crossings, {c['nodes']} nodes: {c['items_sent_per_item_replicated']} items and "
            f"{c['bytes_sent_per_item_replicated']} bytes sent per item replicated "
            f"({c['bytes_sent_per_item_bytes']} × the signed item of "
            f"{c['signed_item_bytes']} bytes; {c['items_replicated']} replicated)"
        )
    if "backlog" in res:
        b = res["backlog"]
        lines += [
            "",
            f"backlog of {b['items']} items held {b['hold_seconds']:g} s, "
            "peer restarted:",
            "  drain rate from restart        "
            f"{b['drain_items_per_s_from_restart']:>10} items/s "
            f"({b['drain_seconds_from_restart']} s, peer start "
            f"{b['peer_start_seconds']} s)",
            "  drain rate once peer ready     "
            f"{b['drain_items_per_s_from_ready']!s:>10} items/s",
            "  first → last arrival           "
            f"{b['drain_items_per_s_first_to_last_arrival']!s:>10} items/s",
            f"  arrived / pushed / pulled      {b['arrived']} / "
            f"{b['sender_pushed_total']} / "
            f"{b['peer_pulled_total']}",
            "  sender RSS MB before / after push / backlog held (max) / drain max / "
            f"after: {b['sender_rss_mb_before']} / {b['sender_rss_mb_after_push']} / "
            f"{b['sender_rss_mb_with_backlog']} / "
            f"{b['sender_rss_mb_during_drain_max']} / "
            f"{b['sender_rss_mb_after']}",
        ]
    for e in res.get("errors", []):
        lines.append(f"error: {e}")
    return "\n".join(lines)


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings(
        rates=tuple(int(r) for r in args.rates.split(",")),
        seconds=5.0 if args.quick else args.seconds,
        backlog=2000 if args.quick else args.backlog,
        warm=1000 if args.quick else 2000,
        hold_s=3.0 if args.quick else args.hold,
        settle_s=1.0 if args.quick else 3.0,
        workers=args.workers,
    )


async def amain(args: argparse.Namespace) -> int:
    s = settings_from_args(args)
    work = Path(tempfile.mkdtemp(prefix="exchange-fedbench-"))
    work.chmod(
        0o711
    )  # PostgreSQL's own system user (when run as root) must traverse it
    pg = EmbeddedPostgres(work / "pg")
    say("starting the embedded PostgreSQL …")
    await asyncio.to_thread(pg.start)
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    try:
        conn = await asyncpg.connect(pg.url())
        pg_version = await conn.fetchval("SHOW server_version")
        sync = await conn.fetchval("SHOW synchronous_commit")
        await conn.close()
        res = await run_all(pg, work, s)
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
        "seconds_per_rate": s.seconds,
        "rates": list(s.rates),
        "backlog_items": s.backlog,
        "backlog_hold_seconds": s.hold_s,
        "workers": s.workers,
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
    return 1 if res["errors"] else 0


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="5 s per rate, 2,000-item backlog held 3 s",
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
        "--hold",
        type=float,
        default=10.0,
        help="seconds the backlog is held (default 10)",
    )
    ap.add_argument(
        "--workers",
        type=int,
        default=1,
        help="exchange node up --workers N (default 1)",
    )
    ap.add_argument(
        "--out", default=str(ROOT / "bench" / "results" / "federation.json")
    )
    return asyncio.run(amain(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
