"""Crash under load: SIGKILL the node and its PostgreSQL at random moments while several
clients push; afterwards every acknowledged item is stored exactly once and the log
verifies.

The node runs as a real subprocess (``python -m exchange node up``) on a PostgreSQL the
test owns (an embedded server in the test's folder), so the test can SIGKILL both. A
seeded loop picks the moments. Clients retry a batch until it is acknowledged (2xx with
``accepted`` or ``duplicate``), so every item is pushed until the node confirms it.

What the node does when PostgreSQL dies under it (found by this test, asserted here):
the node process stays up, ``/readyz`` answers 503 while the server is down, and the node
recovers by itself once the server is back — no node restart. While it is down, pushes
must be answered 503 ``database_unavailable`` (retry), never 500: a separate, focused
test below checks each request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from exchange.client import ExchangeClient
from exchange.config import load_config
from exchange.core.items import sign_item
from exchange.core.signing import PrivateKey
from exchange.errors import ExchangeError
from exchange.node import Node
from exchange.service.audit import audit_log
from exchange.storage.database import Database
from tests.support import wait_until
from tests.support.reliability import (
    SOAK,
    NodeProcess,
    OwnedPostgres,
    lesson,
    seed_directory,
    write_artifact,
)

pytestmark = pytest.mark.asyncio

SEED = 20261126
NODE_KILLS = 200 if SOAK else 20
PG_KILLS = 10 if SOAK else 3
CLIENTS = 4
BATCH = 5


class Pushers:
    """Clients that push signed batches steadily, retrying each until acknowledged."""

    def __init__(self, url: str, keys: dict[str, PrivateKey]) -> None:
        self.url = url
        self.keys = keys
        self.acked: dict[str, int] = {}
        self.refused: list[dict[str, Any]] = []
        self.failures: Counter[str] = Counter()
        self.duplicates = 0
        self.requests = 0
        self.stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for site in self.keys:
            self._tasks.append(asyncio.create_task(self._push(site)))

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.wait_for(asyncio.gather(*self._tasks), timeout=60)

    async def _push(self, site: str) -> None:
        key = self.keys[site]
        async with ExchangeClient(self.url, key=key, timeout=5.0) as client:
            for n in range(100_000):  # bounded; the stop event ends it much sooner
                if self.stop.is_set():
                    return
                batch = [
                    sign_item(lesson(site, f"崩溃测试 {site} 第{n}批 第{j}条"), key)
                    for j in range(BATCH)
                ]
                for _attempt in range(10_000):  # until acknowledged (or stopped)
                    self.requests += 1
                    try:
                        res = await client.push_batch(batch)
                    except ExchangeError as exc:
                        if exc.message.startswith(
                            "cannot reach"
                        ):  # no HTTP answer at all
                            self.failures["no answer (node down or restarting)"] += 1
                        else:
                            self.failures[f"HTTP {exc.status} {exc.code.value}"] += 1
                    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                        self.failures[type(exc).__name__] += 1
                    else:
                        for r in res["results"]:
                            if r["status"] in ("accepted", "duplicate"):
                                self.acked[r["id"]] = r["index"]
                                self.duplicates += r["status"] == "duplicate"
                            else:
                                self.refused.append(r)
                        break
                    if self.stop.is_set():
                        return  # this batch was never acknowledged: it does not count
                    await asyncio.sleep(0.05)


async def _pushes_resume(node: NodeProcess, pushers: Pushers, timeout: float) -> float:
    """Seconds until the node acknowledges new items again (bounded)."""
    before = len(pushers.acked)

    async def grown() -> bool:
        return len(pushers.acked) > before

    start = time.monotonic()
    await wait_until(grown, timeout, "pushes to be acknowledged again")
    return time.monotonic() - start


async def _readyz(url: str) -> int:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as s,
            s.get(url + "/readyz") as r,
        ):
            return r.status
    except (aiohttp.ClientError, TimeoutError, OSError):
        return 0


async def test_acknowledged_items_survive_node_and_database_kills(
    tmp_path: Path,
) -> None:
    t0 = time.monotonic()
    rng = random.Random(SEED)
    pg = OwnedPostgres(tmp_path)
    await asyncio.to_thread(pg.start)
    node = NodeProcess(
        tmp_path / "node",
        pg.url("exchange"),
        env={
            "EXCHANGE_LIMITS_SITE_REQUESTS_PER_S": "0",
            "EXCHANGE_LOG_CHECKPOINT_INTERVAL_MS": "200",
            "EXCHANGE_DATABASE_POOL_MIN": "1",
            "EXCHANGE_WEBHOOKS_ENABLED": "false",
        },
    )
    pushers: Pushers | None = None
    restart_s: list[float] = []
    pg_events: list[dict[str, Any]] = []
    try:
        keys, _ = await seed_directory(
            pg.url("exchange"),
            [(f"crash-site-{i}", "huaihai", ("huaihai",)) for i in range(CLIENTS)],
        )
        node.start()
        await node.wait_ready()
        pushers = Pushers(node.url, keys)
        pushers.start()
        await _pushes_resume(node, pushers, 30)
        # Which kills hit PostgreSQL: spread over the run, chosen by the seed.
        pg_after = set(rng.sample(range(2, NODE_KILLS), PG_KILLS))
        node_kills = 0
        for k in range(NODE_KILLS):
            await asyncio.sleep(rng.uniform(0.1, 0.6))  # uptime under load
            node.kill()
            node_kills += 1
            node.start()
            restart_s.append(await node.wait_ready())
            await _pushes_resume(node, pushers, 30)
            if k in pg_after:
                await asyncio.sleep(rng.uniform(0.1, 0.5))
                pid_before = node.pid
                acked_before = len(pushers.acked)
                t_kill = time.monotonic()
                await asyncio.to_thread(pg.kill_postmaster)
                gone_s = time.monotonic() - t_kill
                down_status = await _readyz(node.url)
                await asyncio.sleep(rng.uniform(0.2, 0.8))  # the outage
                await asyncio.to_thread(pg.start)
                recovered = await _pushes_resume(node, pushers, 45)
                ready = await _readyz(node.url)
                pg_events.append(
                    {
                        "node_pid_unchanged": node.pid == pid_before
                        and node.proc is not None
                        and node.proc.poll() is None,
                        "readyz_while_down": down_status,
                        "readyz_after": ready,
                        "recovered_after_s": round(recovered, 2),
                        "postmaster_reaped_after_s": round(gone_s, 2),
                        "acked_during_outage_window": len(pushers.acked) - acked_before,
                    }
                )
        # Let the clients run a little on the final node, then stop them.
        await asyncio.sleep(0.5)
        await pushers.finish()

        # Every acknowledged item is stored once, at the index it was acknowledged with.
        db = Database(pg.url("exchange"), min_size=1, max_size=2)
        await db.open(run_migrations=False)
        try:
            async with db.pool.acquire() as c:
                rows = await c.fetch("SELECT id, idx FROM items ORDER BY idx")
                head = await c.fetchval("SELECT size FROM log_head WHERE id = 1")
        finally:
            await db.close()
        stored = {r["id"]: r["idx"] for r in rows}
        indexes = [r["idx"] for r in rows]
        assert indexes == list(range(len(rows))), "log indexes are not gap-free 0..n-1"
        assert len(stored) == len(rows), "an item id is stored twice"
        assert head == len(rows)
        missing = [i for i in pushers.acked if i not in stored]
        assert not missing, (
            f"{len(missing)} acknowledged items are lost, e.g. {missing[:3]}"
        )
        moved = [i for i, idx in pushers.acked.items() if stored[i] != idx]
        assert not moved, f"acknowledged indexes differ from stored ones: {moved[:3]}"
        assert not pushers.refused, pushers.refused[:3]
        assert len(pushers.acked) > NODE_KILLS * BATCH

        # The node survived every PostgreSQL kill without a restart, reporting the outage.
        assert len(pg_events) == PG_KILLS
        for ev in pg_events:
            assert ev["node_pid_unchanged"], pg_events
            assert ev["readyz_while_down"] in (0, 503), pg_events
            assert ev["readyz_after"] == 200, pg_events

        # The log integrates everything and verifies (bounded wait for the checkpoint).
        async def checkpointed() -> bool:
            try:
                async with (
                    aiohttp.ClientSession() as s,
                    s.get(node.url + "/v1/log/checkpoint") as r,
                ):
                    return r.status == 200 and (await r.json())["size"] == len(rows)
            except (aiohttp.ClientError, OSError):
                return False

        await wait_until(checkpointed, 60, "a checkpoint covering every item")
        assert node.stop() == 0, node.log_tail()
        cfg = load_config(
            None,
            overrides={
                "node": {"id": "huaihai", "data_dir": str(node.data_dir)},
                "database": {"url": pg.url("exchange"), "pool_min": 1, "pool_max": 2},
                "log": {"writer": False},
                "federation": {"replicate": False},
            },
            environ={},
        )
        auditor = Node(cfg)
        await auditor.start()
        try:
            report = await audit_log(auditor)
        finally:
            await auditor.stop()
        assert report.ok, report.problems
        assert report.items == len(rows) and report.checkpoints >= 1

        failures = dict(pushers.failures)
        write_artifact(
            "crash",
            {
                "seed": SEED,
                "clients": CLIENTS,
                "batch": BATCH,
                "node_kills": node_kills,
                "postgres_kills": len(pg_events),
                "items_acknowledged": len(pushers.acked),
                "items_found": len(rows),
                "items_stored_but_unacknowledged": len(rows) - len(pushers.acked),
                "acknowledged_missing": 0,
                "stored_twice": 0,
                "duplicate_answers": pushers.duplicates,
                "push_requests": pushers.requests,
                "failed_requests_by_kind": failures,
                "http_500_answers": sum(
                    v for k, v in failures.items() if k.startswith("HTTP 500")
                ),
                "restart_to_ready_s_median": round(statistics.median(restart_s), 2),
                "restart_to_ready_s_max": round(max(restart_s), 2),
                "postgres_kill_events": pg_events,
                "postgres_recovery": "node stays up, answers 503 while PostgreSQL is down, "
                "recovers without a restart",
                "audit": {
                    "ok": report.ok,
                    "items": report.items,
                    "checkpoints_checked": report.checkpoints,
                    "nodes_checked": report.nodes_checked,
                },
                "duration_s": round(time.monotonic() - t0, 1),
            },
        )
    finally:
        if pushers is not None and not pushers.stop.is_set():
            pushers.stop.set()
            await asyncio.gather(*pushers._tasks, return_exceptions=True)
        if node.proc is not None and node.proc.poll() is None:
            node.kill()
        await asyncio.to_thread(pg.destroy)


async def test_database_outage_is_503_not_500(tmp_path: Path) -> None:
    """With PostgreSQL down, every request that needs it says 503 database_unavailable
    (retry later), not 500 internal; and the node serves again once it is back."""
    pg = OwnedPostgres(tmp_path)
    await asyncio.to_thread(pg.start)
    node = NodeProcess(
        tmp_path / "node",
        pg.url("exchange"),
        env={"EXCHANGE_WEBHOOKS_ENABLED": "false"},
    )
    try:
        keys, tokens = await seed_directory(
            pg.url("exchange"),
            [("huaibei-duji", "huaihai", ("huaihai",))],
            [("huaibei-municipal", ("huaihai",))],
        )
        key = keys["huaibei-duji"]
        node.start()
        await node.wait_ready()
        async with ExchangeClient(node.url, key=key) as c:
            await c.push(
                sign_item(lesson("huaibei-duji", "停机前"), key)
            )  # caches warm
        await asyncio.to_thread(pg.kill_postmaster)
        answers: dict[str, str] = {}
        client = ExchangeClient(node.url, key=key)
        push = orjson.dumps(sign_item(lesson("huaibei-duji", "停机中"), key))
        calls = {
            "push": (
                "POST",
                "/v1/items",
                client.signed_headers(
                    "POST", "/v1/items", push, {"Content-Type": "application/json"}
                ),
                push,
            ),
            "list": (
                "GET",
                "/v1/items",
                client.signed_headers("GET", "/v1/items", None),
                None,
            ),
            "monitor": (
                "GET",
                "/v1/activity",
                {"Authorization": f"Bearer {tokens['huaibei-municipal']}"},
                None,
            ),
            "readyz": ("GET", "/readyz", {}, None),
        }
        async with aiohttp.ClientSession() as s:
            for name, (method, path, headers, body) in calls.items():
                async with s.request(
                    method, node.url + path, headers=headers, data=body
                ) as r:
                    doc = await r.json()
                    code = doc["error"]["code"] if "error" in doc else doc.get("status")
                    answers[name] = f"{r.status} {code}"
        await asyncio.to_thread(pg.start)

        async def serving() -> bool:
            try:
                async with ExchangeClient(node.url, key=key) as c:
                    await c.push(sign_item(lesson("huaibei-duji", "恢复后"), key))
                return True
            except ExchangeError:
                return False

        await wait_until(
            serving, 45, "the node to serve again without a restart", interval=0.2
        )
        assert node.proc is not None and node.proc.poll() is None
        assert answers.pop("readyz") == "503 degraded"
        assert answers == dict.fromkeys(answers, "503 database_unavailable"), answers
    finally:
        if node.proc is not None and node.proc.poll() is None:
            node.kill()
        await asyncio.to_thread(pg.destroy)


async def test_helper_processes_end_with_a_killed_node(tmp_path: Path) -> None:
    """The node's helper processes (item checks, search tokenizer, their forkserver)
    exit on their own when the node is SIGKILLed: a crashed or restarted worker
    leaves nothing running."""
    import psutil

    pg = OwnedPostgres(tmp_path)
    await asyncio.to_thread(pg.start)
    node = NodeProcess(
        tmp_path / "node",
        pg.url("exchange"),
        env={
            "EXCHANGE_WEBHOOKS_ENABLED": "false",
            "EXCHANGE_INGEST_OFFLOAD_MIN_BYTES": "0",
        },
    )
    helpers: list[psutil.Process] = []
    try:
        keys, _ = await seed_directory(
            pg.url("exchange"), [("huaibei-duji", "huaihai", ("huaihai",))], []
        )
        key = keys["huaibei-duji"]
        node.start()
        await node.wait_ready()
        async with ExchangeClient(node.url, key=key) as c:
            batch = [
                sign_item(lesson("huaibei-duji", f"助手进程{i}"), key)
                for i in range(20)
            ]
            assert (await c.push_batch(batch))["accepted"] == 20
        # the verify pool, the tokenizer and the forkserver start on first use
        for _ in range(200):
            helpers = psutil.Process(node.pid).children(recursive=True)
            if len(helpers) >= 3:
                break
            await asyncio.sleep(0.05)
        assert len(helpers) >= 3, helpers
        node.kill()
        gone, alive = await asyncio.to_thread(psutil.wait_procs, helpers, 15)
        assert not alive, [p.pid for p in alive]
    finally:
        if node.proc is not None and node.proc.poll() is None:
            node.kill()
        for p in helpers:  # by PID, if the check above failed
            with contextlib.suppress(psutil.Error):
                p.kill()
        await asyncio.to_thread(pg.destroy)
