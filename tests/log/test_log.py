"""The node's Merkle log on the real PostgreSQL: integration, checkpoints, proofs,
receipts, audit, rollback refusal, writer takeover, export bundles."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from exchange import verify_checkpoint, verify_consistency, verify_inclusion
from exchange.config import load_config
from exchange.core.items import sign_item
from exchange.core.logleaf import leaf_hash_for
from exchange.core.merkle import root_of
from exchange.errors import NotFound, ProofError
from exchange.node import Node
from exchange.service.audit import audit_log
from exchange.service.export import export_bundle
from exchange.templates import template
from exchange.verify import verify_bundle

FAST_LOG = {"log": {"checkpoint_interval_ms": 50}}


async def _site(node: Any) -> Any:
    return await node.add_site("huaibei-duji", "淮北市杜集区人大常委会", ("huaihai",))


def _items(key: Any, n: int, start: int = 0) -> list[dict[str, Any]]:
    out = []
    for i in range(start, start + n):
        it = template("lesson", "huaibei-duji")
        it["title"] = f"经验做法 第{i}号"
        out.append(sign_item(it, key))
    return out


async def _wait_checkpoint(node: Any, size: int, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cp = await node.node.log.latest_checkpoint()
        if cp is not None and cp.size >= size:
            return cp
        await asyncio.sleep(0.05)
    raise AssertionError(f"no checkpoint of size {size} within {timeout} s")


async def _leaves(client: Any, size: int) -> list[bytes]:
    out: list[bytes] = []
    start = 0
    while start < size:
        page = await client.request("GET", "/v1/log/entries", params={"start": start, "end": size})
        for e in page["entries"]:
            out.append(leaf_hash_for(e["item_id"], e["index"], e["accepted_at"]))
        start += len(page["entries"])
    return out


async def test_integration_checkpoints_and_proofs(node_factory: Any) -> None:
    node = await node_factory(**FAST_LOG)
    key = await _site(node)
    async with node.client("huaibei-duji") as c:
        for chunk in range(3):
            res = await c.push_batch(_items(key, 100, chunk * 100))
            assert res["accepted"] == 100
        await _wait_checkpoint(node, 300)
        cp = await c.request("GET", "/v1/log/checkpoint")
        size = cp["size"]
        assert size == 300
        parsed = verify_checkpoint(cp["note"], [cp["key"]])
        assert parsed.size == 300 and base64.b64encode(parsed.root_hash).decode() == cp["root_hash"]
        leaves = await _leaves(c, size)
        assert root_of(leaves) == parsed.root_hash
        for index in (0, 1, 150, 255, 256, 299):
            proof = await c.request("GET", "/v1/log/proof/inclusion", params={"index": index, "size": size})
            verify_inclusion(leaves[index], index, size, [base64.b64decode(h) for h in proof["hashes"]],
                             parsed.root_hash)
        for size1 in (1, 7, 64, 100, 299, 300):
            proof = await c.request("GET", "/v1/log/proof/consistency", params={"size1": size1, "size2": size})
            verify_consistency(size1, size, [base64.b64decode(h) for h in proof["hashes"]],
                               root_of(leaves[:size1]), parsed.root_hash)
        # A proof for the wrong size, or a flipped bit, fails with a clear reason.
        proof = await c.request("GET", "/v1/log/proof/inclusion", params={"index": 298, "size": size})
        hashes = [base64.b64decode(h) for h in proof["hashes"]]
        with pytest.raises(ProofError, match="hashes"):
            verify_inclusion(leaves[298], 298, size - 1, hashes, parsed.root_hash)
        bad = [bytes([hashes[0][0] ^ 1]) + hashes[0][1:], *hashes[1:]]
        with pytest.raises(ProofError, match="root"):
            verify_inclusion(leaves[298], 298, size, bad, parsed.root_hash)
        with pytest.raises(ProofError):  # a checkpoint checked against an unknown key
            verify_checkpoint(cp["note"], ["someone-else+01234567+AQ" + "A" * 43])
        # Proofs beyond the integrated tree are refused, not invented.
        status = await _status(c, "/v1/log/proof/inclusion", {"index": 1, "size": 10_000})
        assert status == 400


async def _status(client: Any, path: str, params: dict[str, Any]) -> int:
    try:
        await client.request("GET", path, params=params)
    except Exception as exc:  # rebuilt ExchangeError
        return int(getattr(exc, "status", 0))
    return 200


async def test_receipts(node_factory: Any) -> None:
    node = await node_factory(**FAST_LOG)
    key = await _site(node)
    async with node.client("huaibei-duji") as c:
        res = await c.push(_items(key, 1)[0])
        again = await c.push(_items(key, 1)[0])
        assert again["index"] == res["index"] == 0  # a repeated push returns the original index
        rc = await c.request("GET", f"/v1/items/{res['id']}/receipt", params={"wait": 10})
        cp = await c.request("GET", "/v1/log/checkpoint")
        parsed = verify_checkpoint(rc["checkpoint"], [cp["key"]])
        env = await c.get_item(res["id"])
        from exchange.core.logleaf import accepted_at_text
        from datetime import datetime
        leaf = leaf_hash_for(res["id"], 0, accepted_at_text(datetime.fromisoformat(env["received_at"])))
        verify_inclusion(leaf, 0, rc["inclusion"]["size"],
                         [base64.b64decode(h) for h in rc["inclusion"]["hashes"]], parsed.root_hash)


async def test_receipt_not_yet_integrated(node_factory: Any) -> None:
    node = await node_factory(log={"writer": False})
    key = await _site(node)
    async with node.client("huaibei-duji") as c:
        res = await c.push(_items(key, 1)[0])
        with pytest.raises(NotFound) as ei:
            await c.request("GET", f"/v1/items/{res['id']}/receipt")
        assert ei.value.code.value == "not_yet_integrated" and "retry" in ei.value.message


async def test_audit_detects_altered_item_and_tree(node_factory: Any) -> None:
    node = await node_factory(**FAST_LOG)
    key = await _site(node)
    async with node.client("huaibei-duji") as c:
        await c.push_batch(_items(key, 40))
    await _wait_checkpoint(node, 40)
    report = await audit_log(node.node)
    assert report.ok, report.problems
    assert report.items == 40 and report.checkpoints >= 1 and report.nodes_checked > 40
    async with node.node.db.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT id, canonical FROM items WHERE idx = 17")
        await conn.execute("UPDATE items SET canonical = $1 WHERE idx = 17",
                           bytes(row["canonical"]).replace("经验做法".encode(), "改写做法".encode()))
    report = await audit_log(node.node)
    assert not report.ok
    assert any(p.startswith("entry 17:") and "altered" in p for p in report.problems), report.problems
    async with node.node.db.pool.acquire() as conn:
        await conn.execute("UPDATE items SET canonical = $1 WHERE idx = 17", bytes(row["canonical"]))
        await conn.execute("UPDATE log_nodes SET hash = sha256(hash) WHERE level = 2 AND idx = 3")
    report = await audit_log(node.node)
    assert report.problems == ["tree node level 2 index 3: stored hash differs"]


async def test_restored_old_backup_is_not_signed_smaller(node_factory: Any, tmp_path: Path) -> None:
    node = await node_factory(**FAST_LOG)
    key = await _site(node)
    async with node.client("huaibei-duji") as c:
        await c.push_batch(_items(key, 20))
    await _wait_checkpoint(node, 20)
    await node.node.sequencer.stop()
    # Simulate restoring a backup taken at size 10: the database forgets entries 10..19.
    async with node.node.db.pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM items WHERE idx >= 10")
        await conn.execute("UPDATE log_head SET size = 10")
        await conn.execute("DELETE FROM log_nodes WHERE (idx + 1) * (1::bigint << level) > 10")
        await conn.execute("DELETE FROM log_checkpoints")
        leaves = [leaf_hash_for(r["id"], r["idx"], r["received_at"])
                  for r in await conn.fetch("SELECT idx, id, received_at FROM items ORDER BY idx")]
        await conn.execute("UPDATE log_state SET size = 10, root = $1", root_of(leaves))
    node.node.sequencer.start()
    async with node.client("huaibei-duji") as c:
        await c.push_batch(_items(key, 3, 100))
    deadline = time.monotonic() + 15
    while node.node.sequencer.refusal is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert node.node.sequencer.refusal is not None and "already signed size 20" in node.node.sequencer.refusal
    assert await node.node.log.latest_checkpoint() is None  # nothing smaller was signed
    async with node.client() as c:
        ready = await c.request("GET", "/healthz")
        assert ready["status"] == "ok"
    import aiohttp
    async with aiohttp.ClientSession() as s, s.get(node.url + "/readyz") as r:
        body = await r.json()
        assert r.status == 503 and body["checks"]["log"].startswith("refusing")


async def test_single_writer_and_takeover(
    node_factory: Any, fresh_db: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    a = await node_factory("huaihai", **FAST_LOG)
    key = await _site(a)
    cfg = load_config(None, overrides={
        "node": {"id": "huaihai", "data_dir": str(tmp_path / "b")},
        "database": {"url": a.node.db.url, "pool_min": 1, "pool_max": 3},
        "log": {"checkpoint_interval_ms": 50},
    }, environ={})
    (tmp_path / "b").mkdir()
    shutil.copy(a.node.config.key_path, tmp_path / "b" / "node.key")
    b = Node(cfg)
    await b.start()
    try:
        deadline = time.monotonic() + 10
        while not (a.node.sequencer.is_writer or b.sequencer.is_writer) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        writers = [a.node.sequencer.is_writer, b.sequencer.is_writer]
        assert writers.count(True) == 1, writers
        async with a.client("huaibei-duji") as c:
            await c.push_batch(_items(key, 30))
        await _wait_checkpoint(a, 30)
        holder, other = (a.node, b) if writers[0] else (b, a.node)
        await holder.sequencer.stop()  # the writer goes away; its lock goes with its connection
        async with a.client("huaibei-duji") as c:
            await c.push_batch(_items(key, 30, 30))
        deadline = time.monotonic() + 15
        while not other.sequencer.is_writer and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert other.sequencer.is_writer
        await _wait_checkpoint(a, 60)
        report = await audit_log(other)
        assert report.ok and report.items == 60, report.problems
    finally:
        await b.stop()


async def test_export_bundle_verifies_offline(node_factory: Any, tmp_path: Path) -> None:
    node = await node_factory(**FAST_LOG)
    key = await _site(node)
    async with node.client("huaibei-duji") as c:
        await c.push_batch(_items(key, 12))
    await _wait_checkpoint(node, 12)
    out = tmp_path / "bundle"
    manifest = await export_bundle(node.node, out)
    assert manifest["items"] == 12
    report = verify_bundle(out)
    assert report.ok, report.lines
    # Tamper with one exported item: verification names it.
    f = sorted((out / "items").glob("*.json"))[3]
    doc = json.loads(f.read_text())
    doc["signed"]["item"]["title"] = "改过"
    f.write_text(json.dumps(doc, ensure_ascii=False))
    report = verify_bundle(out)
    assert not report.ok and any(f.name in line for line in report.lines)


async def test_stored_proof_property(node_factory: Any) -> None:
    """Random sizes and indices: proofs from stored nodes equal a straightforward recomputation."""
    import random

    from exchange.core.merkle import consistency_proof_of, inclusion_proof_of

    rnd = random.Random(2026)
    node = await node_factory(**FAST_LOG)
    key = await _site(node)
    total = 0
    async with node.client("huaibei-duji") as c:
        for step in range(4):
            n = rnd.randint(1, 37)
            await c.push_batch(_items(key, n, total))
            total += n
            await _wait_checkpoint(node, total)
            leaves = await _leaves(c, total)
            for _ in range(10):
                size = rnd.randint(1, total)
                index = rnd.randrange(size)
                got = await node.node.proofs.inclusion(index, size)
                assert got == inclusion_proof_of(leaves[:size], index)
                size1 = rnd.randint(1, size)
                got = await node.node.proofs.consistency(size1, size)
                assert got == consistency_proof_of(leaves[:size], size1)


async def test_log_audit_cli_exit_codes(node_factory: Any) -> None:
    import os
    import subprocess
    import sys

    node = await node_factory(**FAST_LOG)
    key = await _site(node)
    async with node.client("huaibei-duji") as c:
        await c.push_batch(_items(key, 10))
    await _wait_checkpoint(node, 10)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
    env["EXCHANGE_DATABASE_URL"] = node.node.db.url
    env["EXCHANGE_NODE_ID"] = "huaihai"
    cmd = [sys.executable, "-m", "exchange", "log", "audit", "--data-dir", str(node.node.config.data_path)]

    def run() -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(cmd, env=env, capture_output=True, timeout=120)

    ok = await asyncio.to_thread(run)
    assert ok.returncode == 0, ok.stdout.decode() + ok.stderr.decode()
    assert "OK" in ok.stdout.decode()
    async with node.node.db.pool.acquire() as conn:
        await conn.execute("UPDATE items SET canonical = canonical || ' '::bytea WHERE idx = 4")
    bad = await asyncio.to_thread(run)
    assert bad.returncode == 3 and "FAIL entry 4:" in bad.stdout.decode()
