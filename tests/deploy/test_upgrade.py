"""Upgrades: forward-only migrations, a refused newer schema, and a database made by the
first release (schema 0001) upgraded with its data intact and served."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from exchange.client import ExchangeClient
from exchange.config import load_config
from exchange.core.canonical import canonical_json, item_id
from exchange.core.items import sign_item, verify_item
from exchange.core.signing import b64u_decode, generate_key
from exchange.errors import OperationalError
from exchange.http.app import make_app
from exchange.node import Node
from exchange.service.audit import audit_log
from exchange.storage.migrate import available_migrations, current_version, migrate
from exchange.templates import template
from schemas.errors import ErrorCode
from tests.support.nodes import with_db
from tests.support.processes import FAST_LOG, arun_cli, clean_env, free_port, items


@pytest.fixture
async def empty_url(pg_url: str) -> AsyncIterator[str]:
    name = f"exchange_upgrade_{os.getpid()}_{int(time.time() * 1000) % 10**8}"
    conn = await asyncpg.connect(pg_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    yield with_db(pg_url, name)
    conn = await asyncpg.connect(pg_url)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


def _cfg(url: str, data: Path, **sections: Any) -> Any:
    return load_config(
        None,
        overrides={
            "node": {"id": "huaihai", "data_dir": str(data)},
            "database": {"url": url, "pool_min": 1, "pool_max": 4},
            **sections,
        },
        environ={},
    )


def test_migrations_are_numbered_without_gaps_and_each_runs_in_a_transaction() -> None:
    found = available_migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    for m in found:  # a migration that commits on its own would escape its transaction
        code = re.sub(r"--[^\n]*", "", m.sql)
        assert not re.search(r"(^|;)\s*(COMMIT|BEGIN|END|ROLLBACK)\s*;", code, re.I), (
            m.name
        )
        assert not re.search(r"\bCONCURRENTLY\b", code, re.I), m.name


async def test_a_failing_migration_leaves_nothing_behind(empty_url: str) -> None:
    conn = await asyncpg.connect(empty_url)
    try:
        await migrate(conn, target=2)
        await conn.execute(
            "CREATE TABLE log_nodes (x int)"
        )  # 0003 will collide with this
        with pytest.raises(asyncpg.DuplicateTableError):
            await migrate(conn)
        assert await current_version(conn) == 2
        assert (
            await conn.fetchval("SELECT to_regclass('log_state')") is None
        )  # 0003 rolled back
    finally:
        await conn.close()


async def test_node_refuses_a_database_newer_than_itself(
    fresh_db: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    url = await fresh_db()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (9999, 'from_the_future')"
        )
        tables = await conn.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        )
        with pytest.raises(OperationalError) as err:
            await Node(_cfg(url, tmp_path / "in-process")).start()
        assert err.value.code is ErrorCode.SCHEMA_TOO_NEW
        env = clean_env(EXCHANGE_DATABASE_URL=url, EXCHANGE_NODE_ID="huaihai")
        for args in (
            ["node", "up", "--listen", f"127.0.0.1:{free_port()}"],
            ["migrate"],
        ):
            done = await arun_cli(
                *args, "--data-dir", str(tmp_path / "data"), env=env, timeout=120
            )
            assert done.returncode == 4, done.stderr  # exit code 4: database unusable
            assert "schema_too_new" in done.stderr
            assert "schema version 9999, newer than this program" in done.stderr
            assert "never downgrade" in done.stderr
        assert await current_version(conn) == 9999
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            )
            == tables
        )
    finally:
        await conn.close()


async def _write_as_release_one(conn: asyncpg.Connection, n: int) -> dict[str, Any]:
    """Sites, keys, items, a blob and a monitor, written with the first release's SQL.

    These are the statements of the 0001-era ``SiteStore``, ``ItemStore`` and
    ``BlobStore``; today's stores write columns that schema 0001 does not have.
    """
    key = generate_key(key_id="huaibei-duji#k1")
    old_key = generate_key(key_id="huaibei-duji#k9")
    now = datetime.now(UTC)
    for site, name, circles in (
        ("huaibei-duji", "淮北市杜集区人大常委会", ["huaihai", "yangtze-delta"]),
        ("xuzhou-tongshan", "徐州市铜山区人大常委会", ["huaihai"]),
    ):
        await conn.execute(
            "INSERT INTO sites (id, name, home_node, circles) VALUES ($1, $2, $3, $4)",
            site,
            name,
            "huaihai",
            circles,
        )
    for k, valid_from, revoked in (
        (old_key, now - timedelta(days=30), now - timedelta(days=1)),
        (key, now - timedelta(days=1), None),
    ):
        await conn.execute(
            """INSERT INTO site_keys (key_id, site_id, alg, public_key, valid_from, revoked_at)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            k.key_id,
            "huaibei-duji",
            k.alg,
            k.public_key.raw,
            valid_from,
            revoked,
        )
    blob = "联合执法检查方案（附件）".encode() * 2000
    digest = hashlib.sha256(blob).hexdigest()
    await conn.execute(
        "INSERT INTO blobs (sha256, size, media_type, uploader) VALUES ($1, $2, $3, $4)",
        digest,
        len(blob),
        "application/octet-stream",
        "huaibei-duji",
    )
    for seq, start in enumerate(range(0, len(blob), 16384)):
        await conn.execute(
            "INSERT INTO blob_chunks (sha256, seq, data) VALUES ($1, $2, $3)",
            digest,
            seq,
            blob[start : start + 16384],
        )
    signed_items = []
    for i in range(n):
        it = template(
            "inspection_plan" if i % 3 == 0 else "lesson",
            "huaibei-duji",
            now=now - timedelta(hours=n - i),
        )
        it["title"] = f"升级前的条目 第{i}号"
        if i == 0:
            it["attachments"] = [
                {
                    "name": "检查方案.docx",
                    "media_type": "application/octet-stream",
                    "size": len(blob),
                    "sha256": digest,
                }
            ]
        signed = sign_item(it, key)
        signed_items.append(signed)
        await conn.execute(
            """INSERT INTO items (idx, id, kind, author, created_at, received_at, audience_circles,
                 audience_sites, tags, title, key_id, alg, sig, canonical, attachments, origin)
               VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16)""",
            i,
            item_id(it),
            it["kind"],
            it["author"],
            datetime.fromisoformat(it["created_at"]),
            now - timedelta(minutes=n - i),
            it["audience"]["circles"],
            it["audience"]["sites"],
            it["tags"],
            it["title"],
            key.key_id,
            "ed25519",
            b64u_decode(signed["sig"]["value"]),
            canonical_json(it),
            [digest] if i == 0 else [],
            "huaihai",
        )
    await conn.execute("UPDATE log_head SET size = $1", n)
    token = secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO monitors (id, name, circles, sites, token_hash) VALUES ($1, $2, $3, $4, $5)",
        "huaibei-municipal",
        "淮北市人大常委会",
        ["huaihai"],
        [],
        hashlib.sha256(token.encode()).digest(),
    )
    return {
        "key": key,
        "items": signed_items,
        "blob": blob,
        "digest": digest,
        "token": token,
    }


async def test_upgrade_from_the_first_release_keeps_and_serves_everything(
    empty_url: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(empty_url)
    try:
        assert await migrate(conn, target=1) == [1]
        old = await _write_as_release_one(conn, 25)
    finally:
        await conn.close()
    node = Node(_cfg(empty_url, tmp_path / "data", **FAST_LOG))
    await node.start()  # applies 0002.. in order, each in its transaction
    server = TestServer(make_app(node), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        async with node.db.pool.acquire() as c:  # type: ignore[union-attr]
            assert await current_version(c) == available_migrations()[-1].version
        base = str(server.make_url("")).rstrip("/")
        ids = [item_id(s["item"]) for s in old["items"]]
        async with ExchangeClient(base, key=old["key"]) as c:
            page = await c.list_items(-1, limit=100)
            assert [e["id"] for e in page["items"]] == ids
            assert [e["index"] for e in page["items"]] == list(range(25))
            for e in page["items"]:
                verify_item(e["signed"], old["key"].public_key)
            blob = await c.get_blob(old["digest"])
            assert blob == old["blob"]
            sites = {s["id"]: s for s in await c.sites()}
            keys = {k["key_id"]: k for k in sites["huaibei-duji"]["keys"]}
            assert (
                keys["huaibei-duji#k9"]["revoked_at"]
                and not keys["huaibei-duji#k1"]["revoked_at"]
            )
            res = await c.push_batch(
                items(old["key"], 2, 1000)
            )  # new items follow the old ones
            assert [r["index"] for r in res["results"]] == [25, 26]
        async with ExchangeClient(base, token=old["token"]) as c:
            assert await c.request(
                "GET", "/v1/activity"
            )  # the monitor's token still works
        async with ExchangeClient(
            base, key=old["key"]
        ) as c:  # old items become searchable
            found: set[int] = set()
            deadline = time.monotonic() + 30
            while len(found) < 25 and time.monotonic() < deadline:
                page = await c.request(
                    "GET", "/v1/search", params={"q": "升级前的条目", "limit": 50}
                )
                found = {h["index"] for h in page["hits"]}
                await asyncio.sleep(0.1)
            assert found == set(range(25))
        deadline = time.monotonic() + 20
        while (
            time.monotonic() < deadline
        ):  # the log, new in 0003, takes in the old items
            cp = await node.log.latest_checkpoint()
            if cp is not None and cp.size == 27:
                break
            await asyncio.sleep(0.05)
        assert cp is not None and cp.size == 27
        report = await audit_log(node)
        assert report.ok and report.items == 27, report.problems
    finally:
        await server.close()
        await node.stop()
