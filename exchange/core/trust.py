"""Who may sign what: key records and the checks on a signed item.

Pure code. :class:`Verifier` is given the keys it may need as data (a mapping or a
one-method lookup), never a store, so it is testable without a database and is the same
code a partner runs offline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from exchange.errors import SchemaError, VerificationError
from schemas.errors import ErrorCode

from .signing import PublicKey, parse_key_id

__all__ = [
    "KeyLookup",
    "KeyRecord",
    "Reader",
    "Verifier",
    "accepted_suites",
    "audience_allows",
    "parse_timestamp",
]


@dataclass(frozen=True)
class KeyRecord:
    """A site's (or node's) public key as the trust chain knows it."""

    key_id: str
    owner: str
    alg: str
    public_key: bytes
    valid_from: datetime
    revoked_at: datetime | None = None

    @property
    def public(self) -> PublicKey:
        """As a :class:`PublicKey`."""
        return PublicKey(self.alg, self.public_key, self.key_id)


class KeyLookup(Protocol):
    """The one lookup the verifier needs."""

    def get(self, key_id: str, /) -> KeyRecord | None:
        """The key with this id, or None."""
        ...


def accepted_suites(
    accepted: Iterable[str], required: Iterable[str] = ()
) -> frozenset[str]:
    """The suites one signature may use under a roster's ``accepted_algs``/``required_algs``.

    Every object here (item, request, document, checkpoint) carries exactly one
    signature, so "every signature set must include a required suite" means: the
    signature must be of a required suite. With no required suite, any accepted one
    will do. An empty result means "no restriction" (every registered suite).

    Args:
        accepted: The roster's (or configuration's) accepted suites.
        required: The roster's required suites (a subset of ``accepted``).
    """
    acc, req = frozenset(accepted), frozenset(required)
    return acc & req if req else acc


def parse_timestamp(value: str) -> datetime:
    """Parse an RFC 3339 timestamp with an explicit offset.

    Raises:
        SchemaError: not such a timestamp.
    """
    try:
        ts = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        ts = None
    if ts is None or ts.tzinfo is None:
        raise SchemaError(
            f"{value!r} is not an RFC 3339 timestamp with an offset",
            code=ErrorCode.SCHEMA_INVALID,
        )
    return ts


@dataclass(frozen=True)
class Verifier:
    """Checks that a signature was made by a key that may sign for the item's author.

    Args:
        keys: Key records by key id (a dict, or anything with ``get``).
        future_skew: How far in the future ``created_at`` may lie.
        accepted_algs: Suites accepted (empty = any registered suite).
    """

    keys: KeyLookup | Mapping[str, KeyRecord]
    future_skew: timedelta = timedelta(minutes=10)
    accepted_algs: frozenset[str] = field(default_factory=frozenset)

    def key_for(self, key_id: str, author: str, now: datetime) -> KeyRecord:
        """Return the usable key ``key_id`` for ``author`` at ``now``.

        Raises:
            VerificationError: unknown_key, author_mismatch, revoked_key, key_not_yet_valid.
        """
        owner, _ = parse_key_id(key_id)
        rec = self.keys.get(key_id)
        if rec is None:
            raise VerificationError(
                f"key {key_id} is not known to this node", code=ErrorCode.UNKNOWN_KEY
            )
        if owner != author or rec.owner != author:
            raise VerificationError(
                f"item author {author!r} does not match signing key {key_id} "
                f"(owned by {rec.owner!r})",
                code=ErrorCode.AUTHOR_MISMATCH,
            )
        if rec.revoked_at is not None and rec.revoked_at <= now:
            raise VerificationError(
                f"key {key_id} was revoked at {rec.revoked_at.isoformat()}; "
                "sign with a current key",
                code=ErrorCode.REVOKED_KEY,
            )
        if rec.valid_from > now:
            raise VerificationError(
                f"key {key_id} is valid only from {rec.valid_from.isoformat()}",
                code=ErrorCode.KEY_NOT_YET_VALID,
            )
        return rec

    def check(
        self,
        item: Mapping[str, Any],
        sig: Mapping[str, Any],
        message: bytes,
        signature: bytes,
        now: datetime | None = None,
    ) -> KeyRecord:
        """Verify one item signature over ``message`` (context + canonical bytes).

        Args:
            item: The item object (already schema-checked).
            sig: The ``sig`` object (``key``, ``alg``).
            message: Exactly the signed bytes.
            signature: The decoded signature value.
            now: Evaluation time (UTC now by default).

        Returns:
            The key record used.

        Raises:
            VerificationError: any trust or signature failure, with its code.
            SchemaError: ``created_at`` too far in the future.
        """
        now = now or datetime.now(UTC)
        rec = self.key_for(str(sig["key"]), str(item["author"]), now)
        alg = str(sig["alg"])
        if alg != rec.alg:
            raise VerificationError(
                f"signature says alg {alg!r} but key {rec.key_id} is {rec.alg!r}",
                code=ErrorCode.BAD_SIGNATURE,
            )
        if self.accepted_algs and alg not in self.accepted_algs:
            raise VerificationError(
                f"this federation does not accept {alg!r} signatures "
                f"(accepted: {', '.join(sorted(self.accepted_algs))})",
                code=ErrorCode.UNSUPPORTED_ALGORITHM,
            )
        created = parse_timestamp(str(item["created_at"]))
        if created - now > self.future_skew:
            raise SchemaError(
                f"created_at {item['created_at']} is in the future; check the signer's clock",
                code=ErrorCode.TIMESTAMP_IN_FUTURE,
            )
        if not rec.public.verify(message, signature):
            raise VerificationError(
                f"signature by {rec.key_id} does not match the item (altered or forged)",
                code=ErrorCode.BAD_SIGNATURE,
            )
        return rec


@dataclass(frozen=True)
class Reader:
    """Who is reading: a site, a monitor's scope, a peer node, or an operator."""

    kind: str  # "site" | "monitor" | "node" | "operator" | "anonymous"
    id: str = ""
    circles: frozenset[str] = frozenset()
    sites: frozenset[str] = frozenset()

    @property
    def sees_everything(self) -> bool:
        """Operators (CLI on the node host) see every item."""
        return self.kind == "operator"


def audience_allows(
    reader: Reader,
    author: str,
    circles: list[str] | tuple[str, ...],
    sites: list[str] | tuple[str, ...],
) -> bool:
    """Whether ``reader`` may see an item with this author and audience.

    An empty audience means every partner. A site sees items addressed to it or to one of
    its circles, and its own items. A monitor sees items authored by sites in its scope.
    """
    if reader.sees_everything:
        return True
    if reader.kind == "site":
        if author == reader.id or (not circles and not sites):
            return True
        return reader.id in sites or bool(reader.circles.intersection(circles))
    if reader.kind == "monitor":
        return author in reader.sites
    if reader.kind == "node":
        if not circles and not sites:
            return True
        return bool(reader.circles.intersection(circles)) or bool(
            reader.sites.intersection(sites)
        )
    return False
