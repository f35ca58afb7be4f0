"""The public surface is explicit and pinned."""

from __future__ import annotations

import importlib

import pytest

import exchange

EXPECTED_EXCHANGE = {
    "ExchangeError",
    "PrivateKey",
    "ProofError",
    "PublicKey",
    "VerificationError",
    "canonical_json",
    "generate_key",
    "item_id",
    "leaf_hash",
    "sign_item",
    "signing_input",
    "verify_checkpoint",
    "verify_consistency",
    "verify_inclusion",
    "verify_item",
}


def test_exchange_exports() -> None:
    assert set(exchange.__all__) == EXPECTED_EXCHANGE
    assert list(exchange.__all__) == sorted(exchange.__all__)
    for name in exchange.__all__:
        assert getattr(exchange, name).__doc__, f"{name} has no docstring"


@pytest.mark.parametrize(
    "module",
    [
        "exchange.core.canonical",
        "exchange.core.signing",
        "exchange.core.items",
        "exchange.core.trust",
        "exchange.core.merkle",
        "exchange.core.note",
        "exchange.core.httpsig",
        "exchange.errors",
        "exchange.config",
        "exchange.client",
        "schemas",
    ],
)
def test_modules_declare_all(module: str) -> None:
    mod = importlib.import_module(module)
    names = getattr(mod, "__all__", None)
    assert names, f"{module} has no __all__"
    for name in names:
        assert hasattr(mod, name), f"{module}.__all__ names missing {name}"
        assert not name.startswith("_") or name.isupper() is False


def test_partner_api_roundtrip() -> None:
    key = exchange.generate_key(key_id="huaibei-duji#k1")
    item = {"v": 1, "kind": "lesson", "author": "huaibei-duji", "title": "示例"}
    signed = exchange.sign_item(item, key)
    exchange.verify_item(signed, key.public_key)
    assert exchange.signing_input(
        item
    ) == b"congress-exchange/item/v1\n" + exchange.canonical_json(item)
    assert (
        exchange.item_id(item).startswith("sha256:")
        and len(exchange.item_id(item)) == 71
    )
    signed["item"]["title"] = "改"
    with pytest.raises(exchange.VerificationError):
        exchange.verify_item(signed, key.public_key)
