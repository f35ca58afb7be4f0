"""SIGKILL the sending node mid-delivery, restart it: every acknowledged item reaches
the peer exactly once.

Two real node processes (``python -m exchange node up --config FILE``), each on its own
fresh database, federated by a signed roster installed at start (``roster_file``). The
test pushes signed batches to the sending node without pause, kills it with SIGKILL at
seeded random moments (three times), restarts it and keeps pushing; then every item the
sending node acknowledged (2xx result) must be on the receiving node exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson

from exchange.client import ExchangeClient
from exchange.core.canonical import item_id
from exchange.core.items import sign_item
from exchange.core.roster import sign_document
from exchange.core.signing import (
    CONTEXT_ROSTER,
    PrivateKey,
    generate_key,
    save_private_key,
)
from exchange.templates import template

SEED = 20261127
KILLS = 3
SITES = {"huaihai": ["huaibei-duji"], "yangtze-delta": ["suzhou-wuzhong"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class _Proc:
    node_id: str
    config: Path
    url: str
    db_url: str
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "exchange",
                    "node",
                    "up",
                    "--config",
                    str(self.config),
                ],
                env=env,
                cwd=self.config.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as s:
            while time.monotonic() < deadline:
                assert self.proc is not None and self.proc.poll() is None, (
                    self.log.read_text()
                )
                with contextlib.suppress(aiohttp.ClientError):
                    async with s.get(self.url + "/readyz") as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise AssertionError(
            f"{self.node_id} not ready in {timeout} s:\n{self.log.read_text()}"
        )

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


def _node_toml(node_id: str, port: int, db_url: str, pinned: str) -> str:
    return f"""\
[node]
id = "{node_id}"
base_url = "http://127.0.0.1:{port}"
data_dir = "data"

[http]
listen = "127.0.0.1:{port}"

[database]
url = "{db_url}"
pool_min = 1
pool_max = 5

[limits]
site_requests_per_s = 0

[log]
checkpoint_interval_ms = 100

[federation]
roster_keys = ["{pinned}"]
roster_file = "../roster.signed.json"
batch_size = 10
pull_interval_ms = 300
backoff_base_ms = 50
backoff_max_s = 0.5
request_timeout_s = 3
"""


async def _setup(
    work: Path, fresh_db: Callable[[], Awaitable[str]]
) -> tuple[dict[str, _Proc], PrivateKey]:
    """Node keys, a signed roster, node.toml files and the sending site's key."""
    roster_key = generate_key(key_id="roster#k1")
    pinned = f"roster#k1 ed25519 {roster_key.public_key.b64()}"
    procs: dict[str, _Proc] = {}
    entries = []
    for nid, sites in SITES.items():
        folder = work / nid
        (folder / "data").mkdir(parents=True)
        key = generate_key(key_id=f"{nid}#k1")
        save_private_key(key, folder / "data" / "node.key")
        port = _free_port()
        db_url = await fresh_db()
        (folder / "node.toml").write_text(
            _node_toml(nid, port, db_url, pinned), encoding="utf-8"
        )
        procs[nid] = _Proc(
            nid,
            folder / "node.toml",
            f"http://127.0.0.1:{port}",
            db_url,
            folder / "node.log",
        )
        entries.append(
            {
                "id": nid,
                "base_url": f"http://127.0.0.1:{port}",
                "sites": sites,
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
    doc = {
        "federation": "kill-test",
        "version": 1,
        "issued_at": datetime.now(UTC).isoformat(),
        "nodes": entries,
        "circles": [
            {"id": "huaihai", "name": "淮海经济区", "members": ["huaibei-duji"]},
            {
                "id": "yangtze-delta",
                "name": "长三角",
                "members": ["huaibei-duji", "suzhou-wuzhong"],
            },
        ],
    }
    (work / "roster.signed.json").write_bytes(
        orjson.dumps(sign_document(doc, roster_key, CONTEXT_ROSTER))
    )
    site_key = generate_key(key_id="huaibei-duji#k1")
    conn = await asyncpg.connect(procs["huaihai"].db_url)
    try:
        await conn.execute(
            "INSERT INTO sites (id, name, home_node, circles) VALUES "
            "('huaibei-duji', '淮北市杜集区人大常委会', 'huaihai', "
            "'{huaihai,yangtze-delta}')"
        )
        await conn.execute(
            "INSERT INTO site_keys (key_id, site_id, alg, public_key, valid_from) "
            "VALUES ($1, 'huaibei-duji', 'ed25519', $2, now() - interval '1 day')",
            site_key.key_id,
            site_key.public_key.raw,
        )
    finally:
        await conn.close()
    return procs, site_key


class _Pusher:
    """Pushes small signed batches without pause; remembers what was acknowledged."""

    def __init__(self, url: str, key: PrivateKey, rng: random.Random) -> None:
        self.url, self.key, self.rng = url, key, rng
        self.acked: set[str] = set()
        self.attempted: set[str] = set()
        self.failures = 0
        self.stop = asyncio.Event()
        self._n = 0

    def _batch(self) -> list[dict[str, Any]]:
        out = []
        for _ in range(self.rng.randint(1, 8)):
            self._n += 1
            it = template("lesson", "huaibei-duji")
            it["title"] = f"杀进程测试条目 {self._n}"
            out.append(sign_item(it, self.key))
        return out

    async def run(self, max_batches: int = 20000) -> None:
        async with ExchangeClient(self.url, key=self.key, timeout=5) as client:
            for _ in range(max_batches):  # bounded; normally ended by ``stop``
                if self.stop.is_set():
                    return
                batch = self._batch()
                self.attempted.update(item_id(b["item"]) for b in batch)
                try:
                    res = await client.push_batch(batch)
                except Exception:  # the node is down or was killed mid-request
                    self.failures += 1
                    await client.close()
                    await asyncio.sleep(0.05)
                    continue
                for r in res["results"]:
                    if r["status"] in ("accepted", "duplicate"):
                        self.acked.add(r["id"])


async def _counts(db_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch("SELECT id, count(*) AS n FROM items GROUP BY id")
    finally:
        await conn.close()
    return {r["id"]: int(r["n"]) for r in rows}


async def test_sigkill_mid_delivery_every_acknowledged_item_arrives_once(
    fresh_db: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    procs, site_key = await _setup(tmp_path, fresh_db)
    hh, yd = procs["huaihai"], procs["yangtze-delta"]
    pusher = _Pusher(hh.url, site_key, rng)
    task: asyncio.Task[None] | None = None
    try:
        yd.start()
        hh.start()
        await asyncio.gather(yd.ready(), hh.ready())
        task = asyncio.create_task(pusher.run())
        in_flight = []
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(0.8, 2.0))
            acked_before = len(pusher.acked)
            on_peer = len(await _counts(yd.db_url))
            in_flight.append(acked_before - on_peer)
            hh.kill()
            await asyncio.sleep(rng.uniform(0.0, 0.3))
            hh.start()
            await hh.ready()
        await asyncio.sleep(rng.uniform(0.5, 1.0))
        pusher.stop.set()
        await asyncio.wait_for(task, timeout=30)
        assert pusher.failures >= 1 and len(pusher.acked) > 100, (
            pusher.failures,
            len(pusher.acked),
        )
        # Deliveries were under way at a kill (acknowledged, not yet on the peer).
        assert any(n > 0 for n in in_flight), in_flight

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            counts = await _counts(yd.db_url)
            if pusher.acked <= counts.keys():
                break
            await asyncio.sleep(0.2)
        counts = await _counts(yd.db_url)
        missing = pusher.acked - counts.keys()
        assert not missing, (
            f"{len(missing)} acknowledged item(s) never reached the peer"
        )
        assert all(n == 1 for n in counts.values()), {
            k: n for k, n in counts.items() if n != 1
        }
        # Batches cut short by a kill may be stored without an answer: that is fine, as
        # long as nothing appears that the test did not push.
        assert counts.keys() <= pusher.attempted
        sender = await _counts(hh.db_url)
        assert pusher.acked <= sender.keys() and all(n == 1 for n in sender.values())
    finally:
        pusher.stop.set()
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for p in procs.values():
            p.stop()
