"""The node's Merkle log on the real PostgreSQL: batched integration, checkpoints, proofs
over HTTP checked with the partner API, receipts, and stored proofs as a property."""

from __future__ import annotations

import asyncio
import base64
from datetime import datetime
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange import leaf_hash, verify_checkpoint, verify_consistency, verify_inclusion
from exchange.core.logleaf import accepted_at_text, leaf_data
from exchange.core.merkle import consistency_proof_of, inclusion_proof_of, root_of
from exchange.errors import NotFound, ProofError
from tests.support import wait_checkpoint

from .helpers import (
    FAST_LOG,
    add_site,
    items,
    leaves_over_http,
    run_cli,
)


def _b(hashes: list[str]) -> list[bytes]:
    return [base64.b64decode(h) for h in hashes]


async def test_integration_checkpoints_and_proofs(node_factory: Any) -> None:
    node = await node_factory(**FAST_LOG)
    key = await add_site(node)
    async with node.client("huaibei-duji") as c:
        for chunk in range(3):
            res = await c.push_batch(items(key, 100, chunk * 100))
            assert res["accepted"] == 100
        await wait_checkpoint(node, 300)
        cp = await c.request("GET", "/v1/log/checkpoint")
        size = cp["size"]
        assert size == 300
        assert node.node.sequencer.leaves_integrated_total == 300  # batches of 64
        parsed = verify_checkpoint(cp["note"], [cp["key"]])
        assert (
            parsed.size == 300
            and base64.b64encode(parsed.root_hash).decode() == cp["root_hash"]
        )
        assert parsed.origin == "congress-exchange/huaihai" == cp["origin"]
        leaves = await leaves_over_http(c, size)
        assert root_of(leaves) == parsed.root_hash
        for index in (0, 1, 150, 255, 256, 299):
            proof = await c.request(
                "GET", "/v1/log/proof/inclusion", params={"index": index, "size": size}
            )
            verify_inclusion(
                leaves[index], index, size, _b(proof["hashes"]), parsed.root_hash
            )
        # Without ``size`` the proof is against the latest checkpoint.
        proof = await c.request("GET", "/v1/log/proof/inclusion", params={"index": 7})
        assert proof["size"] == size
        for size1 in (1, 7, 64, 100, 299, 300):
            proof = await c.request(
                "GET",
                "/v1/log/proof/consistency",
                params={"size1": size1, "size2": size},
            )
            verify_consistency(
                size1,
                size,
                _b(proof["hashes"]),
                root_of(leaves[:size1]),
                parsed.root_hash,
            )
        # A proof for the wrong size, or a flipped bit, fails with a clear reason.
        proof = await c.request(
            "GET", "/v1/log/proof/inclusion", params={"index": 298, "size": size}
        )
        hashes = _b(proof["hashes"])
        with pytest.raises(ProofError, match="hashes"):
            verify_inclusion(leaves[298], 298, size - 1, hashes, parsed.root_hash)
        bad = [bytes([hashes[0][0] ^ 1]) + hashes[0][1:], *hashes[1:]]
        with pytest.raises(ProofError, match="root"):
            verify_inclusion(leaves[298], 298, size, bad, parsed.root_hash)
        proof = await c.request(
            "GET", "/v1/log/proof/consistency", params={"size1": 100, "size2": size}
        )
        with pytest.raises(ProofError):
            verify_consistency(
                100, size, _b(proof["hashes"]), root_of(leaves[:99]), parsed.root_hash
            )
        with pytest.raises(
            ProofError, match="no known key|unknown|verif"
        ):  # another log's key
            verify_checkpoint(cp["note"], ["someone-else+01234567+AQ" + "A" * 43])
        # Bad or out-of-range requests are refused, not invented.
        for path, params in (
            ("/v1/log/proof/inclusion", {"index": 1, "size": 10_000}),
            ("/v1/log/proof/inclusion", {"index": 300, "size": 300}),
            ("/v1/log/proof/inclusion", {"index": "x", "size": 3}),
            ("/v1/log/proof/consistency", {"size1": 0, "size2": 3}),
            ("/v1/log/proof/consistency", {"size1": 5, "size2": 3}),
            ("/v1/log/entries", {"start": -1, "end": 3}),
        ):
            assert await _status(c, path, params) == 400, (path, params)


async def test_log_reads_are_public_and_reveal_only_ids(node_factory: Any) -> None:
    node = await node_factory(**FAST_LOG)
    key = await add_site(node)
    async with node.client("huaibei-duji") as c:
        res = await c.push_batch(items(key, 3))
    await wait_checkpoint(node, 3)
    async with aiohttp.ClientSession() as s:  # no credentials at all
        async with s.get(
            node.url + "/v1/log/checkpoint", params={"format": "text"}
        ) as r:
            assert r.status == 200 and r.content_type == "text/plain"
            note = await r.text()
        assert verify_checkpoint(note, [node.node.sequencer.vkey]).size == 3
        async with s.get(
            node.url + "/v1/log/entries", params={"start": 0, "end": 3}
        ) as r:
            entries = (await r.json())["entries"]
        assert [set(e) for e in entries] == [{"index", "item_id", "accepted_at"}] * 3
        assert [e["item_id"] for e in entries] == [x["id"] for x in res["results"]]
        # Receipts follow the item's audience: an anonymous reader gets none.
        async with s.get(node.url + f"/v1/items/{entries[0]['item_id']}/receipt") as r:
            assert r.status in (401, 404)


async def _status(client: Any, path: str, params: dict[str, Any]) -> int:
    try:
        await client.request("GET", path, params=params)
    except Exception as exc:  # rebuilt ExchangeError
        return int(getattr(exc, "status", 0))
    return 200


async def test_receipts(node_factory: Any) -> None:
    node = await node_factory(**FAST_LOG)
    key = await add_site(node)
    async with node.client("huaibei-duji") as c:
        doc = items(key, 1)[0]
        res = await c.push(doc)
        again = await c.push(doc)
        assert (
            again["index"] == res["index"] == 0
        )  # a repeated push returns the original index
        rc = await c.request(
            "GET", f"/v1/items/{res['id']}/receipt", params={"wait": 10}
        )
        assert rc["item_id"] == res["id"] and rc["index"] == 0
        cp = await c.request("GET", "/v1/log/checkpoint")
        parsed = verify_checkpoint(rc["checkpoint"], [cp["key"]])
        env = await c.get_item(res["id"])
        # An offline verifier rebuilds the leaf from the item envelope alone.
        data = leaf_data(
            res["id"],
            env["index"],
            accepted_at_text(datetime.fromisoformat(env["received_at"])),
        )
        assert data == (
            b'{"accepted_at":"'
            + accepted_at_text(datetime.fromisoformat(env["received_at"])).encode()
            + b'","id":"'
            + res["id"].encode()
            + b'","index":0}'
        )
        verify_inclusion(
            leaf_hash(data),
            0,
            rc["inclusion"]["size"],
            _b(rc["inclusion"]["hashes"]),
            parsed.root_hash,
        )
        with pytest.raises(Exception) as ei:
            await c.request(
                "GET", f"/v1/items/{res['id']}/receipt", params={"wait": "soon"}
            )
        assert getattr(ei.value, "status", 0) == 400


async def test_receipt_not_yet_integrated_and_cli_never_writes(
    node_factory: Any,
) -> None:
    node = await node_factory(log={"writer": False})  # this process only serves reads
    key = await add_site(node)
    async with node.client("huaibei-duji") as c:
        res = await c.push(items(key, 1)[0])
        with pytest.raises(NotFound) as ei:
            await c.request(
                "GET", f"/v1/items/{res['id']}/receipt", params={"wait": 0.2}
            )
        assert (
            ei.value.code.value == "not_yet_integrated" and "retry" in ei.value.message
        )
        assert ei.value.detail == {"retry_after": 1}
    async with aiohttp.ClientSession() as s:
        async with s.get(node.url + "/v1/log/checkpoint") as r:
            body = await r.json()
            assert r.status == 404 and r.headers["Retry-After"] == "1"
            assert body["error"]["code"] == "not_yet_integrated"
    assert not node.node.sequencer.is_writer
    # CLI commands open the node's storage but never compete for the writer lock.
    out = await run_cli(node, "log", "checkpoint")
    assert out.returncode == 1 and b"no signed checkpoint" in out.stderr + out.stdout
    assert (await node.node.log.state())[0] == 0
    # A serving process with the writer on takes it and integrates.
    node.node.sequencer.start()
    await wait_checkpoint(node, 1)
    async with node.client("huaibei-duji") as c:
        rc = await c.request(
            "GET", f"/v1/items/{res['id']}/receipt", params={"wait": 5}
        )
    assert rc["inclusion"]["size"] == 1 and rc["inclusion"]["hashes"] == []


async def test_stored_proofs_property(node_factory: Any) -> None:
    """Hypothesis draws sizes and indices; proofs assembled from the stored subtrees equal a
    straightforward recomputation from the leaves, and verify."""
    node = await node_factory(log={"checkpoint_interval_ms": 50, "batch_size": 7})
    key = await add_site(node)
    total = 0
    async with node.client("huaibei-duji") as c:
        for n in (37, 1, 2, 29):  # several pushes, each integrated in batches of 7
            await c.push_batch(items(key, n, total))
            total += n
        await wait_checkpoint(node, total)
        leaves = await leaves_over_http(c, total)
    loop = asyncio.get_running_loop()
    proofs = node.node.proofs

    def call(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=30)

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(st.data())
    def prop(data: st.DataObject) -> None:
        size = data.draw(st.integers(1, total), label="size")
        index = data.draw(st.integers(0, size - 1), label="index")
        size1 = data.draw(st.integers(1, size), label="size1")
        root = root_of(leaves[:size])
        got = call(proofs.inclusion(index, size))
        assert got == inclusion_proof_of(leaves[:size], index)
        verify_inclusion(leaves[index], index, size, got, root)
        got = call(proofs.consistency(size1, size))
        assert got == consistency_proof_of(leaves[:size], size1)
        verify_consistency(size1, size, got, root_of(leaves[:size1]), root)
        assert call(proofs.inclusions([index, 0], size)) == [
            inclusion_proof_of(leaves[:size], index),
            inclusion_proof_of(leaves[:size], 0),
        ]

    await asyncio.to_thread(prop)


@settings(max_examples=300, deadline=None)
@given(
    at=st.datetimes(
        min_value=datetime(1, 1, 1),
        max_value=datetime(9999, 12, 31),
        timezones=st.timezones(),
    ),
    item_id=st.one_of(
        st.text(max_size=80),
        st.text(alphabet="sha256:0123456789abcdef", max_size=80),
    ),
    index=st.integers(min_value=-5, max_value=2**53 - 1),
)
def test_leaf_data_is_the_canonical_json_of_the_record(
    at: datetime, item_id: str, index: int
) -> None:
    """The directly written leaf record is byte for byte RFC 8785 of the same object,
    and the acceptance time is strftime's text, for every time and any id."""
    from datetime import UTC

    from exchange.core.canonical import canonical_json

    try:
        text = accepted_at_text(at)
    except (ValueError, OverflowError):  # a local time outside what UTC can express
        return
    assert text == at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    want = canonical_json({"accepted_at": text, "id": item_id, "index": index})
    assert leaf_data(item_id, index, at) == want
