"""``exchange backup`` / ``exchange restore`` with real pg_dump/pg_restore and real nodes.

A backup taken while the node runs restores into a new database; the restored node's log
audits clean and grows consistently. A restore is refused for an altered file, another
node's backup, a newer schema, a database in use or holding data — and writes nothing
then. A node restored from an older backup does not sign a checkpoint smaller than one it
signed before, whether it remembers that itself (data folder) or learns it from a peer
that witnessed it (new machine).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from exchange.config import load_config
from exchange.core.merkle import verify_consistency
from exchange.core.note import verify_checkpoint
from exchange.core.roster import sign_document
from exchange.core.signing import generate_key, save_private_key
from exchange.errors import ConfigError, OperationalError, VerificationError
from exchange.http.app import make_app
from exchange.node import Node
from exchange.service.audit import audit_log
from exchange.service.backup import CONTEXT_BACKUP, create_backup, restore_backup
from exchange.storage.ops import public_tables
from schemas.errors import ErrorCode
from tests.support import wait_checkpoint, wait_until
from tests.support.federation import build
from tests.support.nodes import RunningNode, with_db
from tests.support.processes import FAST_LOG, arun_cli, clean_env, items


@pytest.fixture
async def empty_db(pg_url: str) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Factory of empty databases (restores need one); dropped after the test."""
    made: list[str] = []

    async def make() -> str:
        name = f"exchange_restore_{os.getpid()}_{len(made)}_{int(time.time() * 1000) % 10**8}"
        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        made.append(name)
        return with_db(pg_url, name)

    yield make
    conn = await asyncpg.connect(pg_url)
    try:
        for name in made:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _env(url: str, node_id: str = "huaihai") -> dict[str, str]:
    env: dict[str, str] = clean_env(EXCHANGE_DATABASE_URL=url, EXCHANGE_NODE_ID=node_id)
    return env


async def _cli(url: str, data: Path, *args: str, node_id: str = "huaihai") -> Any:
    return await arun_cli(*args, "--data-dir", str(data), env=_env(url, node_id))


def _refusal_of(node: Any) -> Any:
    async def refusal() -> Any:
        return node.sequencer.refusal

    return refusal


def _manifest(path: Path) -> dict[str, Any]:
    with tarfile.open(path) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        doc: dict[str, Any] = json.loads(member.read())
    return doc


def _rewrite_tar(
    src: Path,
    dst: Path,
    manifest: dict[str, Any] | None = None,
    flip_dump_byte: bool = False,
) -> None:
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read()  # type: ignore[union-attr]
            if m.name == "manifest.json" and manifest is not None:
                data = json.dumps(manifest).encode()
            if m.name == "database.dump" and flip_dump_byte:
                data = data[:-100] + bytes([data[-100] ^ 1]) + data[-99:]
            m.size = len(data)
            tout.addfile(m, io.BytesIO(data))


async def _start(cfg_dir: Path, url: str, **sections: Any) -> tuple[Node, TestServer]:
    cfg = load_config(
        None,
        overrides={
            "node": {"id": "huaihai", "data_dir": str(cfg_dir)},
            "database": {"url": url, "pool_min": 1, "pool_max": 4},
            **sections,
        },
        environ={},
    )
    node = Node(cfg)
    await node.start()
    server = TestServer(make_app(node), host="127.0.0.1", port=0)
    await server.start_server()
    return node, server


async def test_online_backup_restores_into_a_new_database(
    node_factory: Any, empty_db: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    rn = await node_factory("huaihai", **FAST_LOG)
    key = await rn.add_site("huaibei-duji", "淮北市杜集区人大常委会", ("huaihai",))
    await rn.add_monitor("huaibei-municipal", circles=("huaihai",))
    async with rn.client("huaibei-duji") as c:
        await c.push_batch(items(key, 20))
    cp20 = await wait_checkpoint(rn.node, 20)
    out = tmp_path / "huaihai.backup"
    done = await _cli(
        rn.node.db.url, rn.node.config.data_path, "backup", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert "tables dumped" in done.stderr and "20 items" in done.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    m = _manifest(out)["document"]
    assert m["node"]["id"] == "huaihai" and m["items"] == 20 and m["log"]["size"] == 20
    assert m["checkpoint"]["size"] == 20 and m["checkpoint"]["note"] == cp20.note
    assert m["schema_version"] >= 9 and len(m["dump"]["sha256"]) == 64
    # The machine is lost; the node key comes back from the key backup, the rest from the file.
    data = tmp_path / "new-host"
    data.mkdir()
    shutil.copy2(rn.node.config.key_path, data / "node.key")
    url = await empty_db()
    done = await _cli(url, data, "restore", str(out), "--check")
    assert done.returncode == 0 and "intact" in done.stderr, done.stderr
    done = await _cli(url, data, "restore", str(out))
    assert done.returncode == 0, done.stderr
    assert "tables restored" in done.stderr and "20 items, log size 20" in done.stderr
    node, server = await _start(data, url, **FAST_LOG)
    try:
        report = await audit_log(node)
        assert report.ok and report.items == 20 and report.checkpoints >= 1, (
            report.problems
        )
        restored = RunningNode(node, server, keys=rn.keys)
        async with restored.client("huaibei-duji") as c:
            page = await c.list_items(-1, limit=100)
            assert len(page["items"]) == 20
            await c.push_batch(items(key, 3, 100))
        cp23 = await wait_checkpoint(node, 23)
        async with restored.client() as c:
            proof = await c.request(
                "GET", "/v1/log/proof/consistency", params={"size1": 20, "size2": 23}
            )
        import base64

        old = verify_checkpoint(cp20.note, [node.sequencer.vkey])
        new = verify_checkpoint(cp23.note, [node.sequencer.vkey])
        verify_consistency(
            20,
            23,
            [base64.b64decode(h) for h in proof["hashes"]],
            old.root_hash,
            new.root_hash,
        )
    finally:
        await server.close()
        await node.stop()


async def test_restore_refuses_what_does_not_match(
    node_factory: Any, empty_db: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    rn = await node_factory("huaihai", **FAST_LOG)
    key = await rn.add_site("huaibei-duji", "淮北市杜集区人大常委会", ("huaihai",))
    async with rn.client("huaibei-duji") as c:
        await c.push_batch(items(key, 5))
    await wait_checkpoint(rn.node, 5)
    good = tmp_path / "good.backup"
    await create_backup(rn.node.config, good)
    url = await empty_db()
    cfg = _cfg(rn.node.config, url)

    async def empty() -> bool:
        conn = await asyncpg.connect(url)
        try:
            return await public_tables(conn) == 0
        finally:
            await conn.close()

    # An altered dump: refused by the CLI with exit code 3, nothing written.
    bad = tmp_path / "altered.backup"
    _rewrite_tar(good, bad, flip_dump_byte=True)
    done = await _cli(url, rn.node.config.data_path, "restore", str(bad))
    assert done.returncode == 3 and "SHA-256 differs" in done.stderr, done.stderr
    assert "--force" in done.stderr
    assert await empty()
    # A manifest edited after signing (claims more items).
    signed = _manifest(good)
    signed["document"]["items"] = 500
    _rewrite_tar(good, bad, manifest=signed)
    with pytest.raises(VerificationError, match="not signed by this node's key"):
        await restore_backup(cfg, bad)
    assert await empty()
    # Another node's backup: that node has another id and key.
    other_key = tmp_path / "other.key"
    save_private_key(generate_key(key_id="yangtze-delta#k1"), other_key)
    other = _cfg(
        rn.node.config, url, node={"id": "yangtze-delta", "key_file": str(other_key)}
    )
    with pytest.raises(
        VerificationError,
        match="backup is of node 'huaihai', this is node 'yangtze-delta'",
    ):
        await restore_backup(other, good)
    assert await empty()
    # A backup from a newer program: refused even when forced.
    signed = _manifest(good)
    signed["document"]["schema_version"] = 9999
    _rewrite_tar(
        good,
        bad,
        manifest=sign_document(signed["document"], rn.node.key, CONTEXT_BACKUP),
    )
    with pytest.raises(OperationalError) as err:
        await restore_backup(cfg, bad, force=True)
    assert err.value.code is ErrorCode.SCHEMA_TOO_NEW
    assert await empty()
    # Not a backup at all.
    junk = tmp_path / "junk.backup"
    junk.write_bytes(b"\x00" * 1000)
    with pytest.raises(
        VerificationError, match="not a backup made by 'exchange backup'"
    ):
        await restore_backup(cfg, junk)
    # A database in use by a running node is refused; one holding data needs --replace.
    with pytest.raises(OperationalError, match="in use by .* stop the node"):
        await restore_backup(_cfg(rn.node.config, rn.node.db.url), good, replace=True)
    report = await restore_backup(cfg, good)
    assert report.restored and report.facts is not None and report.facts.items == 5
    with pytest.raises(ConfigError, match="--replace"):
        await restore_backup(cfg, good)
    report = await restore_backup(cfg, good, replace=True)
    assert (
        report.facts is not None
        and report.facts.items == 5
        and report.facts.log_size == 5
    )
    # Forced: another node's backup is restored, and the problems are reported.
    report = await restore_backup(_cfg(other, await empty_db()), good, force=True)
    assert report.restored and any(
        "this is node 'yangtze-delta'" in p for p in report.problems
    )


def _cfg(base: Any, url: str, **sections: dict[str, Any]) -> Any:
    data = base.model_dump()
    data["database"]["url"] = url
    for section, values in sections.items():
        data[section].update(values)
    return load_config(None, overrides=data, environ={})


async def test_restored_node_does_not_sign_behind_itself(
    node_factory: Any, empty_db: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    rn = await node_factory("huaihai", **FAST_LOG)
    key = await rn.add_site("huaibei-duji", "淮北市杜集区人大常委会", ("huaihai",))
    async with rn.client("huaibei-duji") as c:
        await c.push_batch(items(key, 20))
    await wait_checkpoint(rn.node, 20)
    out = tmp_path / "at20.backup"
    await create_backup(rn.node.config, out)
    async with rn.client("huaibei-duji") as c:
        await c.push_batch(items(key, 10, 20))
    await wait_checkpoint(rn.node, 30)
    data = rn.node.config.data_path  # same host: the data folder remembers size 30
    await rn.server.close()
    await rn.node.stop()
    url = await empty_db()
    done = await _cli(url, data, "restore", str(out))
    assert done.returncode == 0, done.stderr
    assert (
        "already signed size 30" in done.stderr and "disaster recovery" in done.stderr
    )
    node, server = await _start(data, url, **FAST_LOG)
    try:
        assert (await audit_log(node)).ok
        restored = RunningNode(node, server, keys=rn.keys)
        async with restored.client("huaibei-duji") as c:
            await c.push_batch(items(key, 3, 200))
        await wait_until(_refusal_of(node), 15, "the log writer to refuse")
        assert (
            node.sequencer.refusal
            and "already signed size 30" in node.sequencer.refusal
        )
        cp = await node.log.latest_checkpoint()
        assert cp is not None and cp.size == 20  # nothing smaller than 30 signed
        status, body = await _readyz(restored.url)
        assert status == 503 and body["checks"]["log"].startswith("refusing")
    finally:
        await server.close()
        await node.stop()


async def test_restored_node_does_not_sign_behind_what_peers_witnessed(
    node_factory: Any, empty_db: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    fed = await build(
        node_factory, regions=("huaihai", "yangtze-delta"), replicate=False
    )
    hh, yd = fed.nodes["huaihai"], fed.nodes["yangtze-delta"]
    key = hh.keys["huaibei-duji"]
    async with hh.client("huaibei-duji") as c:
        await c.push_batch(items(key, 20))
    await wait_checkpoint(hh.node, 20)
    out = tmp_path / "at20.backup"
    await create_backup(hh.node.config, out)
    async with hh.client("huaibei-duji") as c:
        await c.push_batch(items(key, 10, 20))
    await wait_checkpoint(hh.node, 30)
    assert (await yd.node.witness.round())["huaihai"] == "cosigned 30"
    # The host is lost: a new one gets the node key (key backup) and the backup at size 20.
    await hh.server.close()
    await hh.node.stop()
    data = tmp_path / "new-host"
    data.mkdir()
    shutil.copy2(hh.node.config.key_path, data / "node.key")
    url = await empty_db()
    new_host = _cfg(hh.node.config, url, node={"data_dir": str(data)})
    assert (await restore_backup(new_host, out)).restored
    fed_cfg = hh.node.config.federation.model_dump()
    fed_cfg["replicate"] = True  # the witness loop asks the peers at start
    node, server = await _start(data, url, federation=fed_cfg, **FAST_LOG)
    try:
        restored = RunningNode(node, server, keys=hh.keys)
        async with restored.client("huaibei-duji") as c:
            await c.push_batch(items(key, 3, 200))
        await wait_until(_refusal_of(node), 20, "the log writer to refuse")
        assert (
            node.sequencer.refusal
            and "already signed size 30" in node.sequencer.refusal
        )
        cp = await node.log.latest_checkpoint()
        assert cp is not None and cp.size == 20
        assert json.loads((data / "log-head.json").read_text())["size"] == 30
    finally:
        await server.close()
        await node.stop()


async def _readyz(url: str) -> tuple[int, Any]:
    import aiohttp

    async with aiohttp.ClientSession() as s, s.get(url + "/readyz") as r:
        return r.status, await r.json()
