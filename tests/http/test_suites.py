"""The sm2-sm3 suite in a running node: accepted suites from configuration, SM2 items and
requests, an SM2 node key signing checkpoints and receipts, and a wrapper signer (the
shape of a vendor signing-server client) used by the HTTP client unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from exchange import canonical_json, verify_checkpoint
from exchange.client import ExchangeClient
from exchange.core.items import sign_item, signing_input
from exchange.core.note import NoteVerifier
from exchange.core.signing import (
    PrivateKey,
    PublicKey,
    b64u_decode,
    generate_key,
    save_private_key,
)
from exchange.errors import VerificationError
from exchange.templates import template
from tests.support import wait_checkpoint

SITE = "huaibei-duji"


async def _site(node: Any, site: str, *keys: PrivateKey) -> None:
    await node.node.sites.add_site(site, site, node.node.id, ["huaihai"])
    for key in keys:
        await node.node.sites.add_key(key.key_id, site, key.alg, key.public_key.raw)


async def test_a_node_requiring_sm2_refuses_ed25519(node_factory: Any) -> None:
    node = await node_factory(federation={"accepted_algs": ["sm2-sm3"]})
    sm2, ed = (
        generate_key("sm2-sm3", f"{SITE}#k1"),
        generate_key("ed25519", f"{SITE}#k2"),
    )
    await _site(node, SITE, sm2, ed)
    item = template("lesson", SITE)
    # An Ed25519 request signature is refused before anything is read.
    async with ExchangeClient(node.url, key=ed) as c:
        with pytest.raises(VerificationError) as exc:
            await c.push(sign_item(item, sm2))
    assert exc.value.code.value == "unsupported_algorithm" and exc.value.status == 422
    assert "sm2-sm3" in exc.value.message
    async with ExchangeClient(node.url, key=sm2) as c:
        # An Ed25519 item signature is refused, even in an SM2-signed request.
        with pytest.raises(VerificationError) as exc:
            await c.push(sign_item(item, ed))
        assert exc.value.code.value == "unsupported_algorithm"
        # The SM2 item is accepted and served with its SM2 signature.
        res = await c.push(sign_item(item, sm2))
        assert res["status"] == "accepted"
        env = await c.get_item(res["id"])
    assert env["signed"]["sig"]["alg"] == "sm2-sm3"
    assert canonical_json(env["signed"]["item"]) == canonical_json(item)
    assert sm2.public_key.verify(
        signing_input(item), b64u_decode(env["signed"]["sig"]["value"])
    )
    async with node.node.db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM items") == 1


class CountingSigner:
    """Delegates to a key and counts calls: a vendor signing-server client's shape."""

    def __init__(self, key: PrivateKey) -> None:
        self._key, self.calls = key, 0

    @property
    def key_id(self) -> str:
        return self._key.key_id

    @property
    def alg(self) -> str:
        return self._key.alg

    @property
    def public_key(self) -> PublicKey:
        return self._key.public_key

    def sign(self, message: bytes) -> bytes:
        self.calls += 1
        return self._key.sign(message)


async def test_sm2_node_key_signs_checkpoints_and_receipts(
    node_factory: Any, tmp_path: Path
) -> None:
    # The node's key file is an SM2 key (made with `exchange keys new --alg sm2-sm3`).
    node_key = generate_key("sm2-sm3", "huaihai#k1")
    (tmp_path / "huaihai").mkdir()
    save_private_key(node_key, tmp_path / "huaihai" / "node.key")
    node = await node_factory(log={"checkpoint_interval_ms": 50})
    assert node.node.key.alg == "sm2-sm3"
    site_key = generate_key("sm2-sm3", f"{SITE}#k1")
    await _site(node, SITE, site_key)
    signer = CountingSigner(site_key)
    async with ExchangeClient(node.url, key=signer) as c:
        res = await c.push(sign_item(template("case_study", SITE), signer))  # type: ignore[arg-type]
        assert signer.calls == 2  # one item signature, one request signature
        await wait_checkpoint(node, 1)
        cp = await c.request("GET", "/v1/log/checkpoint")
        receipt = await c.request("GET", f"/v1/items/{res['id']}/receipt")
    assert "+" in cp["key"]
    checkpoint = verify_checkpoint(cp["note"], [cp["key"]])
    assert checkpoint.size >= 1
    # The vkey is the node's SM2 key under the private type (0xff + identifier).
    assert NoteVerifier.from_vkey(cp["key"]).public == PublicKey(
        "sm2-sm3", node_key.public_key.raw
    )
    assert receipt["item_id"] == res["id"]
    assert (
        verify_checkpoint(receipt["checkpoint"], [cp["key"]]).size
        == receipt["inclusion"]["size"]
    )
