"""Scaling past one process: several real worker processes on one database.

Two ``exchange node up`` processes share a database (each on its own port, as behind a
proxy); pushes go through both while the one holding the log-writer lock is SIGKILLed.
The other takes over the log, and every acknowledged item is stored and integrated.
``exchange node up --workers 2`` runs two workers on one port (SO_REUSEPORT) and restarts
one that dies. Pulls go to the read replica when ``EXCHANGE_DATABASE_READ_URL`` is set.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from aiohttp.test_utils import TestServer

from exchange.client import ExchangeClient
from exchange.config import load_config
from exchange.core.signing import generate_key, save_private_key
from exchange.http.app import make_app
from exchange.node import Node
from exchange.service.sequencer import LOCK_KEY
from exchange.storage.ops import LockHolder, writer_lock_holder
from tests.support.processes import NodeProcess, clean_env, free_port, get_json, items

_SITE = "huaibei-duji"


async def _prepare(url: str, data: Path) -> Any:
    """Node key in the shared data folder; a site and its key in the database."""
    data.mkdir(parents=True, exist_ok=True)
    save_private_key(generate_key(key_id="huaihai#k1"), data / "node.key")
    cfg = load_config(
        None,
        overrides={
            "node": {"id": "huaihai", "data_dir": str(data)},
            "database": {"url": url, "pool_min": 1, "pool_max": 2},
            "log": {"writer": False},
            "federation": {"replicate": False},
            "webhooks": {"enabled": False},
        },
        environ={},
    )
    node = Node(cfg)
    await node.start()
    try:
        await node.sites.add_site(
            _SITE, "淮北市杜集区人大常委会", "huaihai", ["huaihai"]
        )
        key = generate_key(key_id=f"{_SITE}#k1")
        await node.sites.add_key(key.key_id, _SITE, key.alg, key.public_key.raw)
    finally:
        await node.stop()
    return key


async def _holder(
    url: str, timeout: float = 20, not_pid: int | None = None
) -> LockHolder:
    """Wait (bounded) for a session holding the writer lock (other than ``not_pid``'s)."""
    deadline = time.monotonic() + timeout
    conn = await asyncpg.connect(url)
    try:
        while time.monotonic() < deadline:
            h = await writer_lock_holder(conn, LOCK_KEY)
            if h is not None and h.process_pid != not_pid:
                return h
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    raise AssertionError(f"no log writer within {timeout} s")


async def test_sigkill_the_log_writer_while_pushing_through_two_workers(
    fresh_db: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    url = await fresh_db()
    data = tmp_path / "data"
    key = await _prepare(url, data)
    env = clean_env(
        EXCHANGE_DATABASE_URL=url,
        EXCHANGE_NODE_ID="huaihai",
        EXCHANGE_LOG_CHECKPOINT_INTERVAL_MS="50",
    )
    ports = [free_port(), free_port()]
    workers = [
        NodeProcess(
            ["--data-dir", str(data), "--listen", f"127.0.0.1:{p}"],
            env,
            tmp_path / f"w{i}.log",
            tmp_path,
        )
        for i, p in enumerate(ports)
    ]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        for w, u in zip(workers, urls, strict=True):
            await asyncio.to_thread(w.wait_ready, u)
        holder = await _holder(url)
        by_pid = {w.pid: i for i, w in enumerate(workers)}
        assert holder.process_pid in by_pid, holder
        writer = by_pid[holder.process_pid]
        survivor = 1 - writer
        acked: set[str] = set()
        failed = 0
        killed_at: float | None = None
        took_over_at: float | None = None
        n = 0
        deadline = time.monotonic() + 60
        clients = [ExchangeClient(u, key=key, timeout=5) for u in urls]
        try:
            for round_no in range(400):  # bounded in count and in time
                if time.monotonic() > deadline:
                    break
                target = round_no % 2
                try:
                    res = await clients[target].push_batch(items(key, 4, n))
                    acked.update(
                        r["id"] for r in res["results"] if r["status"] != "refused"
                    )
                except (
                    Exception
                ):  # the killed worker's requests fail; they were not acked
                    failed += 1
                n += 4
                if round_no == 20:
                    os.kill(workers[writer].pid, signal.SIGKILL)
                    killed_at = time.monotonic()
                if killed_at is not None and took_over_at is None:
                    pid = await _writer_pid(url)
                    if pid is not None and pid != workers[writer].pid:
                        assert pid == workers[survivor].pid
                        took_over_at = time.monotonic()
                if took_over_at is not None and round_no >= 60:
                    break
        finally:
            for c in clients:
                await c.close()
        assert killed_at is not None and took_over_at is not None, "no takeover"
        print(
            f"\nlog writer takeover after SIGKILL: {took_over_at - killed_at:.2f} s; "
            f"{len(acked)} items acknowledged, {failed} pushes failed on the killed worker"
        )
        assert workers[writer].proc.wait(timeout=10) == -signal.SIGKILL
        # The survivor integrates everything and signs a checkpoint of all of it.
        conn = await asyncpg.connect(url)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                size = await conn.fetchval("SELECT size FROM log_head")
                integrated = await conn.fetchval("SELECT size FROM log_state")
                signed = await conn.fetchval(
                    "SELECT coalesce(max(size), 0) FROM log_checkpoints"
                )
                if integrated == size == signed and size >= len(acked):
                    break
                await asyncio.sleep(0.1)
            rows = await conn.fetch("SELECT id, idx FROM items")
            stored = {r["id"]: r["idx"] for r in rows}
            missing = acked - set(stored)
            assert not missing, f"{len(missing)} acknowledged items lost"
            assert all(stored[i] < integrated for i in acked)
            assert integrated == size == signed == len(stored)
        finally:
            await conn.close()
        status, body = await asyncio.to_thread(get_json, urls[survivor] + "/readyz")
        assert status == 200 and body["checks"]["log"] == "writer"
    finally:
        for w in workers:
            w.stop()
    assert workers[survivor].proc.returncode == 0, workers[survivor].output()


async def _writer_pid(url: str) -> int | None:
    """The OS pid of the process holding the log-writer lock, if any."""
    conn = await asyncpg.connect(url)
    try:
        h = await writer_lock_holder(conn, LOCK_KEY)
        return h.process_pid if h is not None else None
    finally:
        await conn.close()


async def test_node_up_workers_share_a_port_and_are_restarted(
    fresh_db: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    url = await fresh_db()
    port = free_port()
    data = tmp_path / "data"
    env = clean_env(EXCHANGE_DATABASE_URL=url, EXCHANGE_NODE_ID="huaihai")
    sup = NodeProcess(
        ["--workers", "2", "--data-dir", str(data), "--listen", f"127.0.0.1:{port}"],
        env,
        tmp_path / "sup.log",
        tmp_path,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(sup.wait_ready, base)
        assert (
            data / "node.key"
        ).stat().st_mode & 0o777 == 0o600  # made once, by the supervisor
        children = _children(sup.pid, 2)
        seen = set()
        deadline = time.monotonic() + 60
        for _ in range(2000):  # each request is a new connection, spread by the kernel
            if time.monotonic() > deadline:  # (the second worker may still be starting)
                break
            status, body = await asyncio.to_thread(get_json, base + "/readyz")
            assert status == 200
            seen.add(body["checks"]["log"])
            if seen == {"writer", "standby"}:
                break
        assert seen == {"writer", "standby"}, seen
        holder = await _holder(url)
        assert holder.process_pid in children
        os.kill(holder.process_pid, signal.SIGKILL)
        new = await _holder(url, not_pid=holder.process_pid)
        assert new.process_pid in children  # the other worker took over the log
        replaced = await asyncio.to_thread(_children, sup.pid, 2, holder.process_pid)
        assert holder.process_pid not in replaced and len(replaced) == 2
    finally:
        code = sup.stop()
    assert code == 0, sup.output()
    assert "exited with -9" in sup.output() and "restarting" in sup.output()
    for pid in children + replaced:
        assert (
            not psutil.pid_exists(pid)
            or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        )


def _children(
    pid: int, count: int, without: int | None = None, timeout: float = 60
) -> list[int]:
    """PIDs of ``count`` live worker children of ``pid`` (bounded wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = [
            c.pid
            for c in psutil.Process(pid).children()
            if c.status() != psutil.STATUS_ZOMBIE and c.pid != without
        ]
        if len(kids) == count:
            return kids
        time.sleep(0.1)
    raise AssertionError(f"expected {count} workers of {pid}")


async def test_pulls_go_to_the_read_replica(
    fresh_db: Callable[[], Awaitable[str]], pg_url: str, tmp_path: Path
) -> None:
    url = await fresh_db()
    role = f"exchange_reader_{os.getpid()}"
    admin = await asyncpg.connect(pg_url)
    db = await asyncpg.connect(url)
    await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
    secret = secrets.token_hex(16)  # the server wants a password from every role
    await admin.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{secret}'")
    await db.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"')
    parts = urllib.parse.urlsplit(url)
    read_url = urllib.parse.urlunsplit(
        parts._replace(
            netloc=f"{role}:{secret}@{parts.hostname}:{parts.port}",
            query="application_name=exchange-read-replica",
        )
    )
    cfg = load_config(
        None,
        overrides={
            "node": {"id": "huaihai", "data_dir": str(tmp_path / "data")},
            "database": {
                "url": url,
                "read_url": read_url,
                "pool_min": 1,
                "pool_max": 3,
            },
            "federation": {"replicate": False},
            "webhooks": {"enabled": False},
        },
        environ={},
    )
    node = Node(cfg)
    await node.start()
    server = TestServer(make_app(node), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        await node.sites.add_site(
            _SITE, "淮北市杜集区人大常委会", "huaihai", ["huaihai"]
        )
        key = generate_key(key_id=f"{_SITE}#k1")
        await node.sites.add_key(key.key_id, _SITE, key.alg, key.public_key.raw)
        base = str(server.make_url("")).rstrip("/")
        async with ExchangeClient(base, key=key) as c:
            pushed = await c.push_batch(
                items(key, 3)
            )  # writes: primary (the role is read-only)
            assert pushed["accepted"] == 3
            page = await c.list_items(-1, limit=10)
        assert [e["id"] for e in page["items"]] == [r["id"] for r in pushed["results"]]
        # The replica lags (here: its role sees only the first two entries), so the
        # page shows which pool served it.
        await db.execute("ALTER TABLE items ENABLE ROW LEVEL SECURITY")
        await db.execute(
            f'CREATE POLICY lagging ON items FOR SELECT TO "{role}" USING (idx < 2)'
        )
        async with ExchangeClient(base, key=key) as c:
            page = await c.list_items(-1, limit=10)
            assert [e["index"] for e in page["items"]] == [0, 1]  # from the replica
            one = await c.request("GET", f"/v1/items/{pushed['results'][2]['id']}")
            assert one["index"] == 2  # single reads stay on the primary
        served = await db.fetch(
            """SELECT usename, application_name FROM pg_stat_activity
                WHERE datname = current_database() AND usename = $1""",
            role,
        )
        assert [(r["usename"], r["application_name"]) for r in served] == [
            (role, "exchange-read-replica")
        ]
    finally:
        await server.close()
        await node.stop()
        await db.execute(f'DROP OWNED BY "{role}"')
        await db.close()
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.close()
