"""Items as signed bytes: canonical form, id, signing input, sign and verify.

The signed message for an item is::

    b"congress-exchange/item/v1\\n" || RFC8785(item)

and its id is ``"sha256:" + hex(SHA-256(RFC8785(item)))``. The signature travels beside
the item: ``{"item": {...}, "sig": {"key": "site#k1", "alg": "ed25519", "value": b64url}}``.
A model is only ever a validated *view* of the item; what is signed, hashed and stored is
the canonical byte string of the object as the author wrote it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from exchange.errors import SchemaError, VerificationError
from schemas.errors import ErrorCode

from .canonical import canonical_json, item_id
from .placeholders import refuse_placeholders
from .signing import (
    CONTEXT_ITEM,
    PrivateKey,
    PublicKey,
    b64u_decode,
    b64u_encode,
    parse_key_id,
    signing_message,
)

__all__ = [
    "ParsedItem",
    "item_id",
    "parse_signed_item",
    "schema_error",
    "sign_item",
    "signing_input",
    "verify_item",
]


def _canonical_item(item: Any) -> bytes:
    if isinstance(item, bytes | bytearray):
        return bytes(item)
    return canonical_json(item)


def signing_input(item: Any) -> bytes:
    """Exactly the bytes an item signature covers: context string + canonical bytes.

    Args:
        item: The item object (a dict), or its canonical bytes.
    """
    return signing_message(CONTEXT_ITEM, _canonical_item(item))


def sign_item(
    item: Mapping[str, Any], private_key: PrivateKey, key_id: str | None = None
) -> dict[str, Any]:
    """Sign an item and return the signed wrapper.

    Args:
        item: The item object; it is not modified.
        private_key: The author's key.
        key_id: Key id (``site#kN``); defaults to the key's own id.

    Raises:
        VerificationError: no key id, or the key id's owner is not the item's author.
    """
    kid = key_id or private_key.key_id
    if not kid:
        raise VerificationError(
            "a key id (site#kN) is needed to sign", code=ErrorCode.UNKNOWN_KEY
        )
    owner, _ = parse_key_id(kid)
    if item.get("author") != owner:
        raise VerificationError(
            f"key {kid} cannot sign for author {item.get('author')!r}",
            code=ErrorCode.AUTHOR_MISMATCH,
        )
    value = private_key.sign(signing_input(dict(item)))
    return {
        "item": dict(item),
        "sig": {"key": kid, "alg": private_key.alg, "value": b64u_encode(value)},
    }


def verify_item(signed: Mapping[str, Any], public_key: PublicKey) -> None:
    """Check a signed wrapper's signature with a known public key (no trust chain).

    Args:
        signed: ``{"item": ..., "sig": ...}``.
        public_key: The key to check against.

    Raises:
        VerificationError: malformed wrapper, other alg, or a signature that does not match.
    """
    try:
        item = signed["item"]
        sig = signed["sig"]
        value = b64u_decode(sig["value"])
        alg = sig["alg"]
    except (KeyError, TypeError, ValueError):
        raise VerificationError(
            "not a signed item: expected {'item': {...}, 'sig': {'key','alg','value'}}",
            code=ErrorCode.BAD_SIGNATURE,
        ) from None
    if alg != public_key.alg:
        raise VerificationError(
            f"signature alg {alg!r} does not match key alg {public_key.alg!r}",
            code=ErrorCode.BAD_SIGNATURE,
        )
    if not public_key.verify(signing_input(item), value):
        raise VerificationError(
            "signature does not match the item (altered or signed by another key)",
            code=ErrorCode.BAD_SIGNATURE,
        )


def schema_error(exc: ValidationError, prefix: str = "") -> SchemaError:
    """Turn a pydantic error into a SchemaError naming the first problems' locations."""
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"{loc}: {msg}")
    more = len(exc.errors()) - 5
    if more > 0:
        parts.append(f"and {more} more")
    return SchemaError("; ".join(parts), code=ErrorCode.SCHEMA_INVALID)


@dataclass(frozen=True)
class ParsedItem:
    """A signed item that passed structure and schema checks (not yet trust checks)."""

    id: str
    canonical: bytes
    item: dict[str, Any]
    sig: dict[str, Any]
    signature: bytes
    model: Any

    @property
    def message(self) -> bytes:
        """The signed bytes."""
        return signing_message(CONTEXT_ITEM, self.canonical)


def parse_signed_item(obj: Any) -> ParsedItem:
    """Check a signed wrapper's shape and the item's schema; compute canonical bytes.

    Args:
        obj: A parsed JSON value (from the strict parser).

    Raises:
        SchemaError: not a wrapper, unknown fields, unknown kind, schema violations.
        VerificationError: the signature value is not base64url.
    """
    from schemas.items import ITEM_ADAPTER, KINDS, Signature

    if not isinstance(obj, dict) or set(obj) != {"item", "sig"}:
        extra = sorted(set(obj) - {"item", "sig"}) if isinstance(obj, dict) else []
        hint = f" (unknown fields: {', '.join(extra)})" if extra else ""
        raise SchemaError(
            "a signed item is an object with exactly 'item' and 'sig'" + hint,
            code=ErrorCode.SCHEMA_INVALID,
        )
    item, sig = obj["item"], obj["sig"]
    if not isinstance(item, dict):
        raise SchemaError("'item' must be an object", code=ErrorCode.SCHEMA_INVALID)
    kind = item.get("kind")
    if kind not in KINDS:
        raise SchemaError(
            f"unknown item kind {kind!r}; known kinds: {', '.join(KINDS)}",
            code=ErrorCode.UNKNOWN_KIND,
        )
    try:
        Signature.model_validate(sig)
    except ValidationError as exc:
        raise schema_error(exc, "sig") from None
    try:
        model = ITEM_ADAPTER.validate_python(item)
    except ValidationError as exc:
        refuse_placeholders(item)  # an unfilled template: say so rather than "pattern"
        raise schema_error(exc, "item") from None
    try:
        signature = b64u_decode(sig["value"])
    except ValueError:
        raise VerificationError(
            "sig.value is not base64url", code=ErrorCode.BAD_SIGNATURE
        ) from None
    canonical = canonical_json(item)
    return ParsedItem(
        id="sha256:" + hashlib.sha256(canonical).hexdigest(),
        canonical=canonical,
        item=item,
        sig=dict(sig),
        signature=signature,
        model=model,
    )
