"""The federation's trust root: signed rosters and signed site records (pure code).

* A **roster** (:class:`schemas.roster.Roster`) is signed by a roster key that every node
  pins in its configuration. A node installs a roster only if it is validly signed by a
  pinned key and its version is higher than the one installed (``roster_stale``).
* A **site record** (:class:`schemas.roster.SiteRecord`) lists a site's keys with their
  validity and revocation. It is signed by a key of the site's **home node** as the
  roster names it; a record signed by any other node is refused (``not_home_node``).

Signed documents travel as ``{"document": {...}, "sig": {"key", "alg", "value"}}``; the
signature covers ``context || RFC8785(document)`` with the context strings of
:mod:`exchange.core.signing`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from exchange.errors import Forbidden, VerificationError
from schemas.errors import ErrorCode
from schemas.roster import NodeEntry, Roster, SiteRecord

from .canonical import canonical_json
from .signing import (
    CONTEXT_ROSTER,
    CONTEXT_SITE_RECORD,
    PrivateKey,
    PublicKey,
    b64u_decode,
    b64u_encode,
    signing_message,
)

__all__ = [
    "RosterView",
    "sign_document",
    "verify_document",
    "verify_roster",
    "verify_site_record",
]


def sign_document(
    document: Mapping[str, Any], key: PrivateKey, context: bytes
) -> dict[str, Any]:
    """Sign a JSON document: ``{"document", "sig"}``."""
    value = key.sign(signing_message(context, canonical_json(dict(document))))
    return {
        "document": dict(document),
        "sig": {"key": key.key_id, "alg": key.alg, "value": b64u_encode(value)},
    }


def verify_document(
    signed: Mapping[str, Any], keys: Mapping[str, PublicKey], context: bytes, what: str
) -> dict[str, Any]:
    """Check a signed document against the allowed keys; return the document.

    Raises:
        VerificationError: malformed, unknown key (``roster_invalid``), bad signature.
    """
    try:
        doc, sig = signed["document"], signed["sig"]
        key_id, alg, value = sig["key"], sig["alg"], b64u_decode(sig["value"])
    except (KeyError, TypeError, ValueError):
        raise VerificationError(
            f"{what} is not a signed document", code=ErrorCode.ROSTER_INVALID
        ) from None
    if (
        not isinstance(doc, dict)
        or not isinstance(key_id, str)
        or not isinstance(alg, str)
    ):
        raise VerificationError(
            f"{what} must be {{document: object, sig: {{key: str, alg: str, value: str}}}}",
            code=ErrorCode.ROSTER_INVALID,
        )
    key = keys.get(key_id)
    if key is None:
        raise VerificationError(
            f"{what} is signed by {key_id}, which is not a key trusted for it",
            code=ErrorCode.ROSTER_INVALID,
        )
    if alg != key.alg or not key.verify(
        signing_message(context, canonical_json(doc)), value
    ):
        raise VerificationError(
            f"{what} signature by {key_id} does not verify",
            code=ErrorCode.BAD_SIGNATURE,
        )
    return doc


def verify_roster(
    signed: Mapping[str, Any], pinned: Mapping[str, PublicKey], current_version: int = 0
) -> Roster:
    """Verify a signed roster against the pinned roster keys.

    Raises:
        VerificationError: ``roster_invalid`` (unknown key, bad signature, bad content) or
            ``roster_stale`` (not newer than ``current_version``).
    """
    doc = verify_document(signed, pinned, CONTEXT_ROSTER, "roster")
    try:
        roster = Roster.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise VerificationError(
            f"roster content is invalid: {'.'.join(map(str, first['loc']))}: {first['msg']}",
            code=ErrorCode.ROSTER_INVALID,
        ) from None
    if roster.version <= current_version:
        raise VerificationError(
            f"roster version {roster.version} is not newer than the installed {current_version}",
            code=ErrorCode.ROSTER_STALE,
        )
    return roster


@dataclass(frozen=True)
class RosterView:
    """Lookups over an installed roster."""

    roster: Roster

    @property
    def version(self) -> int:
        """Roster version."""
        return self.roster.version

    def node(self, node_id: str) -> NodeEntry | None:
        """The node entry, or None."""
        return next((n for n in self.roster.nodes if n.id == node_id), None)

    def node_keys(self, node_id: str) -> dict[str, PublicKey]:
        """A node's keys by key id (revoked ones excluded)."""
        n = self.node(node_id)
        if n is None:
            return {}
        return {
            k.key_id: PublicKey(k.alg, b64u_decode(k.public_key), k.key_id)
            for k in n.keys
            if k.revoked_at is None
        }

    def home_of(self, site: str) -> str | None:
        """Id of the site's home node."""
        n = self.roster.home_of(site)
        return n.id if n else None

    def circles_of_site(self, site: str) -> list[str]:
        """Circles a site belongs to."""
        return sorted(c.id for c in self.roster.circles if site in c.members)

    def sites_of(self, node_id: str) -> list[str]:
        """Sites the node is home to."""
        n = self.node(node_id)
        return list(n.sites) if n else []

    def served_circles(self, node_id: str) -> set[str]:
        """Circles a node serves: those it lists plus those its sites belong to."""
        n = self.node(node_id)
        if n is None:
            return set()
        out = set(n.circles)
        for s in n.sites:
            out.update(self.circles_of_site(s))
        return out

    def serves(self, node_id: str, circles: list[str], sites: list[str]) -> bool:
        """Whether the node serves someone in an item's audience (empty = everyone)."""
        if not circles and not sites:
            return True
        return bool(self.served_circles(node_id) & set(circles)) or bool(
            set(self.sites_of(node_id)) & set(sites)
        )

    def peers(self, self_id: str) -> list[NodeEntry]:
        """Every other node."""
        return [n for n in self.roster.nodes if n.id != self_id]


def verify_site_record(signed: Mapping[str, Any], view: RosterView) -> SiteRecord:
    """Verify a site record: signed by a key of the site's home node per the roster.

    Raises:
        VerificationError: bad signature or content.
        Forbidden: (``not_home_node``) signed by a node that is not the site's home.
    """
    try:
        doc = signed["document"]
        site = doc["id"]
        signer = str(signed["sig"]["key"]).partition("#")[0]
    except (KeyError, TypeError):
        raise VerificationError(
            "site record is not a signed document", code=ErrorCode.ROSTER_INVALID
        ) from None
    home = view.home_of(site)
    if home is None:
        raise VerificationError(
            f"site {site} is not in the roster", code=ErrorCode.UNKNOWN_SITE
        )
    if signer != home:
        raise Forbidden(
            f"site record for {site} is signed by node {signer}, but its home node is {home}",
            code=ErrorCode.NOT_HOME_NODE,
        )
    doc = verify_document(
        signed, view.node_keys(home), CONTEXT_SITE_RECORD, f"site record {site}"
    )
    try:
        rec = SiteRecord.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise VerificationError(
            f"site record {site} is invalid: {'.'.join(map(str, first['loc']))}: {first['msg']}",
            code=ErrorCode.ROSTER_INVALID,
        ) from None
    if rec.home_node != home:
        raise Forbidden(
            f"site record for {site} claims home {rec.home_node}, roster says {home}",
            code=ErrorCode.NOT_HOME_NODE,
        )
    return rec
