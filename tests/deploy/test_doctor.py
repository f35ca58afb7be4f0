"""``exchange doctor``: every check passes on a healthy node and fails, with a fix, when
its subject is broken — against real PostgreSQL, real nodes and real HTTP peers."""

from __future__ import annotations

import email.utils
import os
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from exchange.commands.doctor import FAIL, OK, SKIP, Check, Doctor
from exchange.config import NodeConfig, load_config
from exchange.core.roster import sign_document
from exchange.core.signing import CONTEXT_ROSTER, generate_key, save_private_key
from exchange.storage.migrate import migrate
from tests.support.federation import build
from tests.support.nodes import with_db
from tests.support.processes import FAST_LOG, clean_env, free_port, items, run_cli


def _row(checks: list[Check], prefix: str) -> Check:
    found = [c for c in checks if c.name.startswith(prefix) or prefix in c.name]
    assert found, f"no check named {prefix!r} in {[c.name for c in checks]}"
    return found[0]


def _cfg(base: NodeConfig, **sections: dict[str, Any]) -> NodeConfig:
    """A copy of ``base`` with some values changed (validated again)."""
    data = base.model_dump()
    for section, values in sections.items():
        data[section].update(values)
    return load_config(None, overrides=data, environ={})


async def _doctor(cfg: NodeConfig, **kw: Any) -> list[Check]:
    return await Doctor(cfg, timeout=3, **kw).run()


async def _node(node_factory: Any, **overrides: Any) -> Any:
    return await node_factory(
        "huaihai", http={"listen": f"127.0.0.1:{free_port()}"}, **overrides
    )


async def test_healthy_node_passes_every_check(node_factory: Any) -> None:
    rn = await _node(node_factory)
    await rn.add_site("huaibei-duji", "淮北市杜集区人大常委会", ("huaihai",))
    checks = await _doctor(rn.node.config)
    assert not [c for c in checks if c.status == FAIL], checks
    for name in (
        "数据目录",
        "磁盘空间",
        "节点密钥",
        "数据库 database",
        "数据库结构",
        "日志",
        "站点密钥",
    ):
        assert _row(checks, name).status == OK, _row(checks, name)
    assert "huaihai#k1" in _row(checks, "节点密钥").detail
    assert "mode 0600" in _row(checks, "节点密钥").detail
    assert (
        _row(checks, "联盟名册").status == SKIP
    )  # standalone: no federation configured
    assert (
        _row(checks, "节点进程").status == SKIP
    )  # nothing listens on the configured port


async def test_data_dir_and_disk_space(node_factory: Any, tmp_path: Path) -> None:
    rn = await _node(node_factory)
    checks = await _doctor(
        _cfg(rn.node.config, node={"data_dir": str(tmp_path / "nowhere")})
    )
    row = _row(checks, "数据目录")
    assert (
        row.status == FAIL and "does not exist" in row.detail and "mkdir -p" in row.fix
    )
    checks = await _doctor(rn.node.config, min_free_bytes=1 << 60)
    row = _row(checks, "磁盘空间")
    assert row.status == FAIL and "GiB free" in row.detail
    assert row.fix.index("磁盘") < row.fix.index(
        "free space"
    )  # Chinese first, then English


async def test_node_key_missing_too_open_or_foreign(
    node_factory: Any, tmp_path: Path
) -> None:
    rn = await _node(node_factory)
    cfg = rn.node.config
    key_path = cfg.key_path
    os.chmod(key_path, 0o644)
    try:
        row = _row(await _doctor(cfg), "节点密钥")
        assert (
            row.status == FAIL
            and "0644" in row.detail
            and f"chmod 600 {key_path}" in row.fix
        )
    finally:
        os.chmod(key_path, 0o600)
    row = _row(
        await _doctor(_cfg(cfg, node={"key_file": str(tmp_path / "gone.key")})),
        "节点密钥",
    )
    assert row.status == FAIL and "does not exist" in row.detail
    other = tmp_path / "other.key"
    save_private_key(generate_key(key_id="yangtze-delta#k1"), other)
    row = _row(await _doctor(_cfg(cfg, node={"key_file": str(other)})), "节点密钥")
    assert row.status == FAIL and "belongs to yangtze-delta" in row.detail
    bad = tmp_path / "bad.key"
    bad.write_text("not a key")
    bad.chmod(0o600)
    row = _row(await _doctor(_cfg(cfg, node={"key_file": str(bad)})), "节点密钥")
    assert row.status == FAIL and "not a usable key file" in row.detail
    assert "not a key" not in row.detail + row.fix  # key files' content is never echoed


async def test_database_unreachable(node_factory: Any) -> None:
    rn = await _node(node_factory)
    port = free_port()
    cfg = _cfg(
        rn.node.config, database={"url": f"postgresql://postgres@127.0.0.1:{port}/x"}
    )
    checks = await _doctor(cfg)
    row = _row(checks, "数据库 database")
    assert row.status == FAIL and "cannot connect" in row.detail
    assert "EXCHANGE_DATABASE_URL" in row.fix
    assert not [
        c for c in checks if c.name.startswith("数据库结构")
    ]  # not a second failure


async def test_migrations_pending_and_too_new(node_factory: Any, pg_url: str) -> None:
    rn = await _node(node_factory)
    name = f"exchange_doctor_{os.getpid()}_{int(time.time() * 1000)}"
    admin = await asyncpg.connect(pg_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = with_db(pg_url, name)
    try:
        conn = await asyncpg.connect(url)
        try:
            row = _row(
                await _doctor(_cfg(rn.node.config, database={"url": url})), "数据库结构"
            )
            assert row.status == SKIP and "empty database" in row.detail
            await migrate(conn, target=3)
            row = _row(
                await _doctor(_cfg(rn.node.config, database={"url": url})), "数据库结构"
            )
            assert row.status == FAIL and "pending: 0004_" in row.detail
            assert "exchange migrate" in row.fix
            await migrate(conn)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (9999, 'future')"
            )
            checks = await _doctor(_cfg(rn.node.config, database={"url": url}))
            row = _row(checks, "数据库结构")
            assert (
                row.status == FAIL
                and "schema_too_new" in row.detail
                and "never downgrade" in row.fix
            )
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_log_behind_what_this_node_signed(node_factory: Any) -> None:
    rn = await _node(node_factory, **FAST_LOG)
    key = await rn.add_site("huaibei-duji", "淮北市杜集区人大常委会", ("huaihai",))
    async with rn.client("huaibei-duji") as c:
        await c.push_batch(items(key, 5))
    deadline = time.monotonic() + 20
    while (
        await rn.node.log.latest_checkpoint()
    ) is None and time.monotonic() < deadline:
        await __import__("asyncio").sleep(0.05)
    row = _row(await _doctor(rn.node.config), "日志")
    assert (
        row.status == OK
        and "5 items" in row.detail
        and "writer: exchange-log-huaihai-" in row.detail
    )
    await rn.node.sequencer.stop()
    async with rn.node.db.pool.acquire() as conn:  # as if restored from an older backup
        await conn.execute("DELETE FROM log_checkpoints")
    row = _row(await _doctor(rn.node.config), "日志")
    assert row.status == FAIL and "already signed size 5" in row.detail
    assert "no process holds the writer lock" in row.detail


async def test_attachments_that_keep_failing_to_arrive(node_factory: Any) -> None:
    rn = await _node(node_factory)
    row = _row(await _doctor(rn.node.config), "附件同步")
    assert row.status == OK and row.detail.endswith("to fetch: none")
    async with rn.node.db.pool.acquire() as conn:  # what the fetcher records
        await conn.execute(
            """INSERT INTO blob_fetches (sha256, author, size, media_type, attempts,
                                         last_error)
               VALUES ($1, 'suzhou-wuzhong', 10, 'application/pdf', 1, 'unreachable'),
                      ($2, 'suzhou-wuzhong', 10, 'application/pdf', 7,
                       'too large: 10 bytes')""",
            "a" * 64,
            "b" * 64,
        )
    row = _row(await _doctor(rn.node.config), "附件同步")
    assert row.status == FAIL
    assert "1 of 2 attachments" in row.detail and "too large" in row.detail
    assert "http.max_blob_bytes" in row.fix
    async with rn.node.db.pool.acquire() as conn:
        await conn.execute("DELETE FROM blob_fetches WHERE attempts > 5")
    row = _row(await _doctor(rn.node.config), "附件同步")
    assert row.status == OK and "1 waiting" in row.detail


async def test_site_without_a_valid_key(node_factory: Any) -> None:
    rn = await _node(node_factory)
    await rn.add_site("huaibei-duji", "淮北市杜集区人大常委会", ("huaihai",))
    await rn.node.sites.revoke_key("huaibei-duji#k1", None)
    row = _row(await _doctor(rn.node.config), "站点密钥")
    assert row.status == FAIL and "no valid key: huaibei-duji" in row.detail
    assert "exchange site key add huaibei-duji" in row.fix


async def test_read_replica(node_factory: Any) -> None:
    rn = await _node(node_factory)
    row = _row(
        await _doctor(_cfg(rn.node.config, database={"read_url": rn.node.db.url})),
        "只读副本",
    )
    assert row.status == OK and "a primary (not a replica)" in row.detail
    bad = f"postgresql://postgres@127.0.0.1:{free_port()}/x"
    row = _row(
        await _doctor(_cfg(rn.node.config, database={"read_url": bad})), "只读副本"
    )
    assert row.status == FAIL and "EXCHANGE_DATABASE_READ_URL" in row.fix


async def test_roster_pinned_but_not_installed(node_factory: Any) -> None:
    roster_key = generate_key(key_id="roster#k1")
    rn = await _node(
        node_factory,
        federation={
            "roster_keys": [f"roster#k1 ed25519 {roster_key.public_key.b64()}"],
            "replicate": False,
        },
    )
    row = _row(await _doctor(rn.node.config), "联盟名册")
    assert row.status == FAIL and "exchange roster publish" in row.fix


async def test_peers_roster_freshness_and_unreachable_peer(node_factory: Any) -> None:
    fed = await build(
        node_factory, regions=("huaihai", "yangtze-delta"), replicate=False
    )
    hh, yd = fed.nodes["huaihai"], fed.nodes["yangtze-delta"]
    checks = await _doctor(hh.node.config)
    assert (
        _row(checks, "联盟名册").status == OK
        and "version 1" in _row(checks, "联盟名册").detail
    )
    peer = _row(checks, "peer yangtze-delta")
    assert peer.status == OK and "key matches roster" in peer.detail
    assert _row(checks, "clock vs yangtze-delta").status == OK
    assert _row(checks, "名册新旧").status == OK
    # The peer got a newer roster that this node has not installed.
    await yd.node.federation.install(fed.signed_roster(version=2))
    checks = await _doctor(hh.node.config)
    row = _row(checks, "名册新旧")
    assert row.status == FAIL and "yangtze-delta has version 2" in row.detail
    # A roster naming a peer that does not answer, and this node's key changed.
    doc = fed.roster_doc(version=3)
    dead = generate_key(key_id="zhejiang#k1")
    doc["nodes"].append(
        {
            "id": "zhejiang",
            "base_url": f"http://127.0.0.1:{free_port()}",
            "keys": [
                {
                    "key_id": dead.key_id,
                    "alg": "ed25519",
                    "public_key": dead.public_key.b64(),
                    "valid_from": "2026-01-01T00:00:00+00:00",
                }
            ],
            "sites": [],
        }
    )
    await hh.node.federation.install(sign_document(doc, fed.roster_key, CONTEXT_ROSTER))
    checks = await _doctor(hh.node.config)
    row = _row(checks, "peer zhejiang")
    assert row.status == FAIL and "unreachable" in row.detail and "防火墙" in row.fix
    assert _row(checks, "名册新旧").status == OK  # version 3 is the newest now
    doc = fed.roster_doc(version=4)
    doc["nodes"][0]["keys"][0]["public_key"] = generate_key().public_key.b64()
    await hh.node.federation.install(sign_document(doc, fed.roster_key, CONTEXT_ROSTER))
    row = _row(await _doctor(hh.node.config), "联盟名册")
    assert row.status == FAIL and "not the local key huaihai#k1" in row.detail


async def test_clock_skew_against_a_peer(
    node_factory: Any, aiohttp_peer: Callable[..., Awaitable[str]]
) -> None:
    roster_key = generate_key(key_id="roster#k1")
    rn = await _node(
        node_factory,
        federation={
            "roster_keys": [f"roster#k1 ed25519 {roster_key.public_key.b64()}"],
            "replicate": False,
        },
    )
    peer_key = generate_key(key_id="yangtze-delta#k1")
    url = await aiohttp_peer("yangtze-delta", peer_key, skew=120.0)
    doc = {
        "federation": "test",
        "version": 1,
        "issued_at": datetime.now(UTC).isoformat(),
        "nodes": [
            {
                "id": n,
                "base_url": u,
                "keys": [
                    {
                        "key_id": k.key_id,
                        "alg": "ed25519",
                        "public_key": k.public_key.b64(),
                        "valid_from": "2026-01-01T00:00:00+00:00",
                    }
                ],
                "sites": [],
            }
            for n, u, k in (
                ("huaihai", rn.url, rn.node.key),
                ("yangtze-delta", url, peer_key),
            )
        ],
        "circles": [],
        "monitors": [],
    }
    await rn.node.federation.install(sign_document(doc, roster_key, CONTEXT_ROSTER))
    checks = await _doctor(rn.node.config)
    assert _row(checks, "peer yangtze-delta").status == OK
    row = _row(checks, "clock vs yangtze-delta")
    assert row.status == FAIL and "NTP" in row.fix
    measured = float(re.search(r"peer is ([+-][0-9.]+) s", row.detail).group(1))  # type: ignore[union-attr]
    assert (
        118 <= measured <= 122
    )  # the injected 120 s, within the Date header's 1 s steps
    checks = await _doctor(rn.node.config, max_clock_skew=300)
    assert _row(checks, "clock vs yangtze-delta").status == OK


@pytest.fixture
async def aiohttp_peer() -> Any:
    """Real HTTP servers on 127.0.0.1 answering like a peer node whose clock is off."""
    runners: list[web.AppRunner] = []

    async def make(node_id: str, key: Any, skew: float) -> str:
        async def healthz(request: web.Request) -> web.Response:
            resp = web.json_response({"status": "ok"})
            resp.headers["Date"] = email.utils.formatdate(
                time.time() + skew, usegmt=True
            )
            return resp

        async def node(request: web.Request) -> web.Response:
            return web.json_response(
                {
                    "id": node_id,
                    "keys": [
                        {
                            "key_id": key.key_id,
                            "alg": "ed25519",
                            "public_key": key.public_key.b64(),
                        }
                    ],
                }
            )

        app = web.Application()
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/v1/node", node)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return f"http://127.0.0.1:{port}"

    yield make
    for r in runners:
        await r.cleanup()


def test_cli_reports_invalid_config_with_key_path(tmp_path: Path) -> None:
    (tmp_path / "node.toml").write_text(
        '[node]\nid = "huaihai"\n[http]\nmax_batch = 0\n'
    )
    done = run_cli("doctor", "--config", str(tmp_path / "node.toml"), env=clean_env())
    assert done.returncode == 1, done.stderr
    assert "✗" in done.stdout and "http.max_batch" in done.stdout
    assert "如何修复 / how to fix" in done.stdout
    done = run_cli(
        "doctor",
        "--config",
        str(tmp_path / "node.toml"),
        env=clean_env(EXCHANGE_HTTP_MAX_BATCH="many"),
    )
    assert done.returncode == 1 and "set by EXCHANGE_HTTP_MAX_BATCH" in done.stdout


async def test_cli_table_and_exit_code(
    fresh_db: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    from tests.support.processes import arun_cli

    url = await fresh_db()
    env = clean_env(EXCHANGE_DATABASE_URL=url)
    done = await arun_cli(
        "node",
        "init",
        "--region",
        "huaihai",
        "--dir",
        str(tmp_path),
        "--listen",
        f"127.0.0.1:{free_port()}",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    done = await arun_cli("doctor", "--config", str(tmp_path / "node.toml"), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        "✓  数据库结构 migrations" in done.stdout
        and "没有需要修复的项 / nothing to fix" in done.stdout
    )
    done = await arun_cli(
        "doctor",
        "--config",
        str(tmp_path / "node.toml"),
        "--min-free-gb",
        "100000000",
        env=env,
    )
    assert done.returncode == 1 and "✗  磁盘空间 disk space" in done.stdout


@pytest.mark.parametrize(
    ("names", "said"),
    [
        ({"Huai Hai": "淮海经济区"}, "circle id 'Huai Hai' is not a lowercase slug"),
        ({"huaihai": "  "}, "the name of circle huaihai must be 1-100 printable"),
        (
            {"huaihai": "淮海\n经济区"},
            "the name of circle huaihai must be 1-100 printable",
        ),
        ({"huaihai": "淮" * 101}, "the name of circle huaihai must be 1-100 printable"),
    ],
)
def test_circle_names_in_the_config_are_checked(
    names: dict[str, str], said: str
) -> None:
    from exchange.config import ConfigError

    with pytest.raises(ConfigError, match="node.circle_names") as err:
        load_config(None, overrides={"node": {"circle_names": names}}, environ={})
    assert said in str(err.value)
    cfg = load_config(
        None,
        overrides={"node": {"circle_names": {"huaihai": " 淮海经济区 "}}},
        environ={},
    )
    assert cfg.node.circle_names == {"huaihai": "淮海经济区"}


@pytest.mark.parametrize(
    "bad", ["http://exchange:8700", "exchange:8700/v1", "exchange:port", "a b"]
)
def test_extra_authorities_are_host_and_port_only(bad: str) -> None:
    from exchange.config import ConfigError

    with pytest.raises(ConfigError, match="http.extra_authorities") as err:
        load_config(None, overrides={"http": {"extra_authorities": [bad]}}, environ={})
    assert "not a host or host:port" in str(err.value)
