"""Faults of the node's log, each on a real node and database: rows altered behind the
node's back, a database restored from an old backup (and regrown), two writers on one
database and the writer going away."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from exchange import verify_checkpoint, verify_inclusion
from exchange.config import load_config
from exchange.core.logleaf import leaf_hash_for
from exchange.core.merkle import root_of
from exchange.errors import ProofError
from exchange.node import Node
from exchange.service.audit import audit_log
from tests.support import wait_checkpoint, wait_until

from .helpers import FAST_LOG, add_site, items, run_cli


async def test_altered_item_row_is_caught_by_audit_and_by_its_proof(
    node_factory: Any,
) -> None:
    node = await node_factory(**FAST_LOG)
    key = await add_site(node)
    async with node.client("huaibei-duji") as c:
        await c.push_batch(items(key, 40))
    cp_row = await wait_checkpoint(node, 40)
    report = await audit_log(node.node)
    assert report.ok, report.problems
    assert report.items == 40 and report.checkpoints >= 1 and report.nodes_checked > 40
    async with node.node.db.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT id, received_at, canonical FROM items WHERE idx = 17"
        )
        altered = bytes(row["canonical"]).replace(
            "经验做法".encode(), "改写做法".encode()
        )
        await conn.execute(
            "UPDATE items SET canonical = $1, title = '改写做法' WHERE idx = 17",
            altered,
        )
    report = await audit_log(node.node)
    assert not report.ok
    assert (
        report.problems[0].startswith("entry 17:") and "altered" in report.problems[0]
    ), report.problems
    # A reader holding the altered content cannot prove it was logged: its id (the hash of
    # the content) gives another leaf, which the node's own proof does not place in the tree.
    cp = verify_checkpoint(cp_row.note, [node.node.sequencer.vkey])
    proof = await node.node.proofs.inclusion(17, cp.size)
    forged = "sha256:" + hashlib.sha256(altered).hexdigest()
    with pytest.raises(ProofError, match="root"):
        verify_inclusion(
            leaf_hash_for(forged, 17, row["received_at"]),
            17,
            cp.size,
            proof,
            cp.root_hash,
        )
    verify_inclusion(
        leaf_hash_for(row["id"], 17, row["received_at"]),
        17,
        cp.size,
        proof,
        cp.root_hash,
    )
    # Only the columns copied from the content (what lists show, who may read it) altered.
    async with node.node.db.pool.acquire() as conn:
        await conn.execute(
            "UPDATE items SET canonical = $1, title = $2 WHERE idx = 17",
            bytes(row["canonical"]),
            "经验做法 第17号",
        )
        assert (await audit_log(node.node)).ok
        await conn.execute("UPDATE items SET title = '改写做法' WHERE idx = 23")
        await conn.execute(
            "UPDATE items SET audience_circles = '{yangtze-delta}', tags = '{x}' "
            "WHERE idx = 31"
        )
    assert (await audit_log(node.node)).problems == [
        "entry 23: stored title differs from the signed content (altered)",
        "entry 31: stored tags differs from the signed content (altered)",
        "entry 31: stored audience_circles differs from the signed content (altered)",
    ]


async def test_altered_tree_rows_are_caught_by_audit(node_factory: Any) -> None:
    node = await node_factory(**FAST_LOG)
    key = await add_site(node)
    async with node.client("huaibei-duji") as c:
        await c.push_batch(items(key, 40))
    await wait_checkpoint(node, 40)
    await node.node.sequencer.stop()  # keep the state still while rows are edited
    db = node.node.db
    async with db.pool.acquire() as conn:
        original = await conn.fetchval(
            "SELECT hash FROM log_nodes WHERE level = 2 AND idx = 3"
        )
        await conn.execute(
            "UPDATE log_nodes SET hash = sha256(hash) WHERE level = 2 AND idx = 3"
        )
    assert (await audit_log(node.node)).problems == [
        "tree node level 2 index 3: stored hash differs"
    ]
    # The proofs built from that row (entries 8..11 have it as a sibling) no longer verify.
    cp = verify_checkpoint(
        (await node.node.log.latest_checkpoint()).note, [node.node.sequencer.vkey]
    )
    async with db.pool.acquire() as conn:
        r = await conn.fetchrow("SELECT id, received_at FROM items WHERE idx = 8")
    with pytest.raises(ProofError, match="root"):
        verify_inclusion(
            leaf_hash_for(r["id"], 8, r["received_at"]),
            8,
            cp.size,
            await node.node.proofs.inclusion(8, cp.size),
            cp.root_hash,
        )
    async with db.pool.acquire() as conn:
        await conn.execute(
            "UPDATE log_nodes SET hash = $1 WHERE level = 2 AND idx = 3", original
        )
    assert (await audit_log(node.node)).ok
    async with db.pool.acquire() as conn:
        await conn.execute("DELETE FROM log_nodes WHERE level = 2 AND idx = 3")
        await conn.execute("DELETE FROM log_nodes WHERE level = 0 AND idx = 5")
        await conn.execute("UPDATE log_state SET root = sha256(root)")
        await conn.execute("UPDATE log_checkpoints SET root = sha256(root)")
    problems = (await audit_log(node.node)).problems
    assert "tree node level 0 index 5: missing" in problems
    assert "tree node level 2 index 3: missing" in problems
    assert (
        "log state: stored root of size 40 differs from the recomputed one" in problems
    )
    assert any(p.startswith("checkpoint 40: stored root differs") for p in problems), (
        problems
    )


async def test_audit_cli_exit_codes_and_progress(node_factory: Any) -> None:
    node = await node_factory(**FAST_LOG)
    key = await add_site(node)
    async with node.client("huaibei-duji") as c:
        await c.push_batch(items(key, 10))
    await wait_checkpoint(node, 10)
    printed = await run_cli(node, "log", "checkpoint")
    assert printed.returncode == 0 and printed.stdout.decode().startswith(
        "congress-exchange/huaihai\n10\n"
    )
    async with node.node.db.pool.acquire() as conn:
        await conn.execute(
            "UPDATE items SET canonical = canonical || ' '::bytea WHERE idx = 4"
        )
    bad = await run_cli(node, "log", "audit")
    out = bad.stdout.decode()
    assert bad.returncode == 3 and "FAIL entry 4:" in out, out
    assert "entries 10," in out and "entries/s" in out  # what it covered, and how fast


async def _restore_backup(node: Any, keep: int) -> None:
    """What restoring a database backup taken at size ``keep`` does to the tables."""
    await node.node.sequencer.stop()
    async with node.node.db.pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM items WHERE idx >= $1", keep)
        await conn.execute("UPDATE log_head SET size = $1", keep)
        await conn.execute(
            "DELETE FROM log_nodes WHERE (idx + 1) * (1::bigint << level) > $1", keep
        )
        await conn.execute("DELETE FROM log_checkpoints WHERE size > $1", keep)
        rows = await conn.fetch("SELECT idx, id, received_at FROM items ORDER BY idx")
        root = root_of(
            [leaf_hash_for(r["id"], r["idx"], r["received_at"]) for r in rows]
        )
        await conn.execute("UPDATE log_state SET size = $1, root = $2", keep, root)


async def _wait_refusal(node: Any) -> str:
    async def refusal() -> Any:
        return node.node.sequencer.refusal

    return str(await wait_until(refusal, 15, "the log writer to refuse"))


async def test_restored_old_backup_is_not_signed_smaller_nor_regrown(
    node_factory: Any,
) -> None:
    node = await node_factory(**FAST_LOG)
    key = await add_site(node)
    async with node.client("huaibei-duji") as c:
        await c.push_batch(items(key, 20))
    await wait_checkpoint(node, 20)
    head = node.node.sequencer.head_file()

    async def head_written() -> bool:
        # Written right after the checkpoint is stored (in a thread): a moment later.
        return head.exists() and '"size": 20' in head.read_text()

    # The largest signed size also lives outside the database.
    await wait_until(head_written, 10, "the signed size in the head file")
    await _restore_backup(node, 10)
    node.node.sequencer.start()
    async with node.client("huaibei-duji") as c:
        await c.push_batch(items(key, 3, 100))
    refusal = await _wait_refusal(node)
    assert "already signed size 20" in refusal and str(head) in refusal
    latest = await node.node.log.latest_checkpoint()
    assert latest is None or latest.size <= 10  # nothing new was signed
    async with aiohttp.ClientSession() as s:
        async with s.get(node.url + "/healthz") as r:
            assert r.status == 200
        async with s.get(node.url + "/readyz") as r:
            body = await r.json()
            assert r.status == 503 and body["checks"]["log"].startswith("refusing")
    # Growing past the signed size with other entries is a fork: still refused.
    node.node.sequencer.refusal = None
    async with node.client("huaibei-duji") as c:
        await c.push_batch(items(key, 15, 200))
    deadline = time.monotonic() + 15
    while (await node.node.log.state())[0] < 28 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    refusal = await _wait_refusal(node)
    assert "size 28" in refusal and "its first 20 entries changed" in refusal, refusal
    latest = await node.node.log.latest_checkpoint()
    assert latest is None or latest.size <= 10


async def test_a_regrown_log_that_extends_the_signed_one_is_signed(
    node_factory: Any,
) -> None:
    """A restart (not a restore) loses nothing: the writer checks the stored prefix
    against what it signed and goes on signing."""
    node = await node_factory(**FAST_LOG)
    key = await add_site(node)
    async with node.client("huaibei-duji") as c:
        await c.push_batch(items(key, 20))
    await wait_checkpoint(node, 20)
    await node.node.sequencer.stop()
    async with node.node.db.pool.acquire() as conn:
        await conn.execute("DELETE FROM log_checkpoints")  # the file still remembers 20
    node.node.sequencer.start()
    async with node.client("huaibei-duji") as c:
        await c.push_batch(items(key, 5, 100))
    cp = await wait_checkpoint(node, 25)
    assert cp.size == 25 and node.node.sequencer.refusal is None


async def test_single_writer_and_takeover(
    node_factory: Any, fresh_db: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    a = await node_factory("huaihai", **FAST_LOG)
    key = await add_site(a)
    cfg = load_config(
        None,
        overrides={
            "node": {"id": "huaihai", "data_dir": str(tmp_path / "b")},
            "database": {"url": a.node.db.url, "pool_min": 1, "pool_max": 3},
            **FAST_LOG,
        },
        environ={},
    )
    (tmp_path / "b").mkdir()
    shutil.copy(a.node.config.key_path, tmp_path / "b" / "node.key")
    b = Node(cfg)
    await b.start()
    b.sequencer.start()  # what the HTTP app's cleanup_ctx does in a serving process
    try:
        deadline = time.monotonic() + 10
        while (
            not (a.node.sequencer.is_writer or b.sequencer.is_writer)
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.05)
        async with a.client("huaibei-duji") as c:
            await c.push_batch(items(key, 30))
        await wait_checkpoint(a, 30)
        writers = [a.node.sequencer.is_writer, b.sequencer.is_writer]
        assert writers.count(True) == 1, writers
        holder, other = (a.node, b) if writers[0] else (b, a.node)
        assert holder.sequencer.leaves_integrated_total == 30
        assert other.sequencer.leaves_integrated_total == 0
        await (
            holder.sequencer.stop()
        )  # the writer goes away; its lock goes with its connection
        async with a.client("huaibei-duji") as c:
            await c.push_batch(items(key, 30, 30))

        async def took_over() -> bool:
            return bool(other.sequencer.is_writer)

        await wait_until(took_over, 15, "the other process to become the log writer")
        await wait_checkpoint(a, 60)
        assert other.sequencer.leaves_integrated_total == 30  # it continued from 30
        report = await audit_log(other)
        assert report.ok and report.items == 60, report.problems
        cps = await a.node.log.all_checkpoints()
        assert [c.size for c in cps] == sorted(c.size for c in cps) and cps[
            -1
        ].size == 60
        for (
            cp
        ) in cps:  # every checkpoint, from either writer, is signed by the node key
            assert (
                verify_checkpoint(cp.note, [a.node.sequencer.vkey]).root_hash == cp.root
            )
    finally:
        await b.stop()
