"""The node log's leaf record: what each Merkle leaf commits to.

Leaf *data* for the item accepted as entry ``index`` is the RFC 8785 canonical form of::

    {"accepted_at": "2026-11-27T01:25:56.123456Z", "id": "sha256:…", "index": 17}

and the leaf *hash* is ``SHA-256(0x00 || data)`` (RFC 9162). ``accepted_at`` is the node's
acceptance time in UTC, always with six fractional digits and a ``Z``, so anyone can
rebuild the leaf from an item envelope (``index``, ``id``, ``received_at``) — the bundle
verifier and ``exchange log audit`` do exactly that. The item id in turn is the SHA-256 of
the item's canonical bytes, so the leaf pins the signed content.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from .canonical import MAX_SAFE_INTEGER, canonical_json
from .merkle import leaf_hash

__all__ = ["accepted_at_text", "leaf_data", "leaf_hash_for", "log_origin"]

_PLAIN = re.compile(r"[0-9A-Za-z:.\-]*")  # needs no JSON escape, in every form


def accepted_at_text(at: datetime) -> str:
    """The canonical text of an acceptance time (UTC, microseconds, ``Z``).

    Raises:
        ValueError: ``at`` has no time zone.
    """
    if at.tzinfo is None:
        raise ValueError("acceptance time must be timezone-aware")
    utc = at.astimezone(UTC)
    if utc.year < 1000:  # strftime's %Y is not zero-padded on every platform
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # The same text as strftime's, at a fraction of its cost (one per log entry).
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def leaf_data(item_id: str, index: int, accepted_at: datetime | str) -> bytes:
    """The leaf data for one log entry."""
    at = accepted_at if isinstance(accepted_at, str) else accepted_at_text(accepted_at)
    if (
        type(index) is int
        and 0 <= index <= MAX_SAFE_INTEGER
        and _PLAIN.fullmatch(at)
        and _PLAIN.fullmatch(item_id)
    ):
        # Nothing to escape and keys already in order: RFC 8785 text written directly
        # (one per log entry; byte for byte what canonical_json gives, tested).
        return f'{{"accepted_at":"{at}","id":"{item_id}","index":{index}}}'.encode()
    return canonical_json({"accepted_at": at, "id": item_id, "index": index})


def leaf_hash_for(item_id: str, index: int, accepted_at: datetime | str) -> bytes:
    """The Merkle leaf hash of one log entry."""
    return leaf_hash(leaf_data(item_id, index, accepted_at))


def log_origin(node_id: str) -> str:
    """The checkpoint origin line (and note key name) of a node's log."""
    return f"congress-exchange/{node_id}"
