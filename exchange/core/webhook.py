"""Node-signed webhook deliveries: the bytes a node sends, and how a site checks them.

A node delivers each item a site may see to the site's own system as::

    POST <the subscriber's URL>
    Content-Type: application/json
    X-Exchange-Node: huaihai
    Content-Digest: sha-256=:…:
    Signature-Input: sig1=("@method" "@path" "@query" "@authority" "content-digest"
        "content-type");created=…;keyid="huaihai#k1";alg="ed25519";nonce="…"
    Signature: sig1=:…:

    {"node": "huaihai", "index": 41, "id": "sha256:…", "received_at": "…",
     "signed": {"item": {…}, "sig": {…}}}

signed with the **node key** (RFC 9421, exactly as in :mod:`exchange.core.httpsig`),
so the site can check the delivery came from its node: the node's public key is
published at ``GET /v1/node``; fetch it once and pin it. The item inside is still
signed by its author; check that too (:func:`exchange.verify_item`) if the site's
system stores it as evidence.

Receiving, in the site's system (any web framework)::

    from exchange.core.webhook import verify_webhook
    from exchange.core.signing import PublicKey, b64u_decode

    NODE_KEY = PublicKey("ed25519", b64u_decode("<public_key from GET /v1/node>"),
                         "huaihai#k1")

    def handle(method, path_and_query, host, headers, body):  # raw body bytes
        delivery = verify_webhook(method, path_and_query, host, headers, body,
                                  node_keys=[NODE_KEY], scheme="https")
        store(delivery["id"], delivery["signed"])  # idempotent by item id
        return 200

Deliveries are retried until a 2xx answer, so the receiver must be idempotent by
``id``; nonces are unique per delivery attempt if replay detection is wanted.
This module is pure (no I/O); the node's sender is :mod:`exchange.service.webhooks`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson

from exchange.core import httpsig
from exchange.core.signing import PublicKey, Signer
from exchange.errors import SchemaError, VerificationError
from schemas.errors import ErrorCode

__all__ = ["delivery_body", "sign_delivery", "verify_webhook"]


def delivery_body(
    node_id: str, index: int, item_id: str, received_at: str, signed: bytes
) -> bytes:
    """The JSON body of one delivery; ``signed`` is the signed item's JSON bytes.

    The signed item is spliced in as received, never re-serialised.
    """
    head = orjson.dumps(
        {"node": node_id, "index": index, "id": item_id, "received_at": received_at}
    )
    return head[:-1] + b',"signed":' + signed + b"}"


def sign_delivery(
    signer: Signer, url: str, body: bytes, *, node_id: str, created: int, nonce: str
) -> dict[str, str]:
    """Headers for POSTing ``body`` to ``url``, signed by the node key.

    Args:
        signer: The node key (key id ``<node>#k1``).
        url: The subscriber's URL (``http`` or ``https``).
        body: The exact body bytes.
        node_id: This node's id (``X-Exchange-Node``).
        created: Unix seconds.
        nonce: A fresh random printable-ASCII string.

    Returns:
        Every header to send (Content-Type included).
    """
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {"Content-Type": "application/json", "X-Exchange-Node": node_id}
    headers.update(
        httpsig.sign_request(
            signer,
            "POST",
            target,
            parts.netloc,
            headers,
            body,
            created=created,
            nonce=nonce,
            scheme=parts.scheme or "https",
        )
    )
    return headers


def verify_webhook(
    method: str,
    target: str,
    authority: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    node_keys: Iterable[PublicKey],
    now: int | None = None,
    max_age: int = 300,
    scheme: str = "https",
) -> dict[str, Any]:
    """Check a delivery's node signature and return its parsed body.

    Args:
        method: The request method as received (``POST``).
        target: The raw path and query as received (``/hooks/exchange?x=1``).
        authority: The Host header as received.
        headers: The request headers.
        body: The exact raw body bytes.
        node_keys: The pinned public key(s) of the node (with their key ids).
        now: Unix seconds (default: the clock).
        max_age: Oldest acceptable signature, in seconds.
        scheme: ``https`` or ``http``, as the node called the URL.

    Returns:
        ``{"node", "index", "id", "received_at", "signed"}``.

    Raises:
        AuthError: not signed, signed by another key, tampered, or too old.
        SchemaError: the body is not a delivery.
    """
    keys = {k.key_id: k for k in node_keys}

    def lookup(key_id: str) -> PublicKey:
        if key_id not in keys:
            raise VerificationError(
                f"key {key_id} is not the pinned node key", code=ErrorCode.UNKNOWN_KEY
            )
        return keys[key_id]

    httpsig.verify_request(
        method,
        target,
        authority,
        headers,
        body,
        key_lookup=lookup,
        now=int(time.time()) if now is None else now,
        max_age=max_age,
        required=("@method", "@path", "@query", "@authority", "content-digest"),
        scheme=scheme,
    )
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise SchemaError(
            "the delivery body is not JSON", code=ErrorCode.SCHEMA_INVALID
        ) from None
    if not isinstance(doc, dict) or not {"index", "id", "signed"} <= set(doc):
        raise SchemaError(
            "the body is not a webhook delivery (index, id, signed)",
            code=ErrorCode.SCHEMA_INVALID,
        )
    return doc
