"""The wire formats of stored things, in one place.

Every route, the federation sender, the webhooks, the export bundle and the CLI write
items and sites through these functions, so a format changes in one place only:

* the **signed item** ``{"item": <canonical bytes>, "sig": {"key", "alg", "value"}}``,
  spliced from the stored canonical bytes (never re-serialised, so the signature still
  verifies byte for byte);
* the **item envelope** ``{"index", "id", "received_at", "signed"}`` (``ItemEnvelope``);
* a **site** ``{"id", "name", "home_node", "circles", "keys": [...]}`` (``SiteInfo``);
* the **site record** document a home node signs for its site (with ``version`` and
  ``issued_at``; times in UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from exchange.core.signing import b64u_encode

if TYPE_CHECKING:
    from exchange.storage.directory import SiteRecordRow
    from exchange.storage.items import StoredItem

__all__ = [
    "item_envelope",
    "signed_item",
    "signed_item_bytes",
    "site_json",
    "site_record_doc",
    "site_record_version",
]


def signed_item_bytes(it: StoredItem) -> bytes:
    """The signed item's JSON bytes, spliced from the stored canonical bytes."""
    sig = orjson.dumps({"key": it.key_id, "alg": it.alg, "value": b64u_encode(it.sig)})
    return b'{"item":' + it.canonical + b',"sig":' + sig + b"}"


def signed_item(it: StoredItem) -> orjson.Fragment:
    """:func:`signed_item_bytes` as a fragment to embed in an ``orjson.dumps`` body."""
    return orjson.Fragment(signed_item_bytes(it))


def item_envelope(it: StoredItem) -> dict[str, object]:
    """An ``ItemEnvelope`` body."""
    return {
        "index": it.idx,
        "id": it.id,
        "received_at": it.received_at.isoformat(),
        "signed": signed_item(it),
    }


def _keys(s: SiteRecordRow, ts: Any) -> list[dict[str, Any]]:
    return [
        {
            "key_id": k.key_id,
            "alg": k.alg,
            "public_key": b64u_encode(k.public_key),
            "valid_from": ts(k.valid_from),
            "revoked_at": ts(k.revoked_at) if k.revoked_at else None,
        }
        for k in s.keys
    ]


def site_json(s: SiteRecordRow) -> dict[str, Any]:
    """A ``SiteInfo`` body (``GET /v1/sites``, ``sites.json`` of exports and pulls)."""
    return {
        "id": s.id,
        "name": s.name,
        "home_node": s.home_node,
        "circles": list(s.circles),
        "keys": _keys(s, datetime.isoformat),
    }


def _utc(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


def site_record_version(s: SiteRecordRow) -> int:
    """The version of one of this node's site records: its newest key event (a key
    added or revoked) in milliseconds, so a record changes version exactly when its
    keys change."""
    stamps = [k.valid_from for k in s.keys] + [
        k.revoked_at for k in s.keys if k.revoked_at
    ]
    return max(1, int(max(stamps).timestamp() * 1000)) if stamps else 1


def site_record_doc(
    s: SiteRecordRow, *, issued_at: datetime | None = None
) -> dict[str, Any]:
    """The unsigned site record of one of this node's sites (its ``version``:
    :func:`site_record_version`)."""
    return {
        "id": s.id,
        "name": s.name,
        "home_node": s.home_node,
        "circles": sorted(s.circles),
        "keys": _keys(s, _utc),
        "version": site_record_version(s),
        "issued_at": (issued_at or datetime.now(UTC)).isoformat(),
    }
