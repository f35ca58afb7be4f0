"""What the adapter runner trusts, pinned on first use like a peer pins its roster.

The runner delivers partners' items to the site's own systems, so it must not believe
its node blindly: a compromised node (or anyone in the path of a plain-http node URL)
could otherwise invent a key for a partner site and "deliver" items that partner never
wrote. :class:`Trust` keeps, in ``<data_dir>/state/trust.json``:

* the **node**: its id and public keys from ``GET /v1/node``, pinned the first time;
  afterwards a node answering with another id is refused, and only the pinned keys
  vouch for its sites;
* the **roster keys**: ``[site] roster_keys`` from ``site.toml`` when given (the same
  ``"KEY_ID ALG PUBLIC_KEY"`` entries as the nodes' ``federation.roster_keys``), else
  those the node announces on first contact, pinned then;
* the **roster** (``GET /v1/roster``), accepted only if it verifies with the pinned
  roster keys and is not older than the version pinned before; it must name the pinned
  node, and the node keys it names are pinned from then on (a node key rotation the
  roster announces is followed; the node alone cannot change them).

A partner's key is trusted only from a **site record signed by the site's home node**
(as the pinned roster names it, with that node's key from the roster), fetched from
``GET /v1/federation/site-records?relayed=1``. Without a roster, only sites whose
records the pinned node key signs (the node's own sites) are known. A node that
invents a key for a site of another node cannot sign its record, so items signed with
that key are refused. (A node remains authoritative for the keys of its own sites:
that is the federation's trust model.)

Delete ``trust.json`` to pin again after the operator rotated the roster key, or the
node key of a node without a roster (the refusal messages say so).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from exchange.client import ExchangeClient
from exchange.core.items import verify_item
from exchange.core.roster import (
    RosterView,
    verify_document,
    verify_roster,
    verify_site_record,
)
from exchange.core.signing import (
    CONTEXT_SITE_RECORD,
    PublicKey,
    b64u_decode,
    b64u_encode,
)
from exchange.errors import ExchangeError, NotFound, VerificationError
from schemas.roster import SiteRecord

from .base import AdapterError, Names
from .spool import StateFiles

__all__ = ["Trust", "TrustError", "TrustedKey", "parse_key_entries"]

_STATE = "trust"


class TrustError(AdapterError):
    """The node, its roster or its keys contradict what was pinned: nothing is
    delivered until a person looks (the pull stops; the message says what to do)."""

    def __init__(self, message: str) -> None:
        super().__init__(f"不可信的节点 / untrusted node: {message}", retryable=False)


def parse_key_entries(entries: list[str], what: str) -> dict[str, PublicKey]:
    """``"KEY_ID ALG PUBLIC_KEY"`` strings → keys by id.

    Raises:
        ValueError: an entry is malformed (the message names it).
    """
    out: dict[str, PublicKey] = {}
    for i, e in enumerate(entries):
        parts = str(e).split()
        if len(parts) != 3:
            raise ValueError(f"{what}[{i}]: expected 'KEY_ID ALG PUBLIC_KEY'")
        try:
            out[parts[0]] = PublicKey(parts[1], b64u_decode(parts[2]), parts[0])
        except ValueError:
            raise ValueError(f"{what}[{i}]: the public key is not base64url") from None
    return out


def _key_json(key: PublicKey) -> dict[str, str]:
    return {"alg": key.alg, "public_key": b64u_encode(key.raw)}


def _keys_from(doc: dict[str, Any]) -> dict[str, PublicKey]:
    return {
        kid: PublicKey(str(v["alg"]), b64u_decode(str(v["public_key"])), kid)
        for kid, v in doc.items()
    }


def _when(ts: str | None) -> datetime | None:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")) if ts else None


@dataclass(frozen=True)
class TrustedKey:
    """A partner's key as its home node vouches for it."""

    key: PublicKey
    valid_from: datetime | None
    revoked_at: datetime | None


class Trust:
    """Pinned node, roster keys and roster; site keys from signed site records.

    Args:
        client: The node client.
        states: The runner's state files (``trust.json`` lives there).
        roster_keys: ``[site] roster_keys`` from ``site.toml`` (may be empty).
        where: The state folder, for messages.
        names: Filled on every refresh with the names of the sites whose records
            verified and of the roster's circles (what sinks show people).
    """

    def __init__(
        self,
        client: ExchangeClient,
        states: StateFiles,
        roster_keys: list[str],
        where: Path,
        *,
        names: Names | None = None,
    ) -> None:
        self.client = client
        self.names = names if names is not None else Names()
        self.states = states
        self.configured = parse_key_entries(roster_keys, "site.roster_keys")
        self.where = where / f"{_STATE}.json"
        self.view: RosterView | None = None
        self.keys: dict[str, TrustedKey] = {}
        self._pinned: dict[str, Any] | None = None
        self.stale = True  # re-read at the first item of each pull pass

    def _refuse(self, message: str) -> TrustError:
        return TrustError(
            f"{message}; if the operator really changed it, delete {self.where} to pin "
            "again"
        )

    async def _pin(self) -> dict[str, Any]:
        """Load or create the pins; check the node's identity against them."""
        pinned = self.states.load(_STATE)
        info = await self.client.request("GET", "/v1/node")
        if not isinstance(info, dict) or not isinstance(info.get("id"), str):
            raise TrustError("GET /v1/node did not name the node")
        if not pinned:
            keys = {
                str(k["key_id"]): {
                    "alg": str(k["alg"]),
                    "public_key": str(k["public_key"]),
                }
                for k in info.get("keys") or []
            }
            announced = parse_key_entries(
                [str(e) for e in info.get("roster_keys") or []], "node.roster_keys"
            )
            roster_keys = self.configured or announced
            pinned = {
                "node": {"id": info["id"], "keys": keys},
                "roster_keys": {k: _key_json(v) for k, v in roster_keys.items()},
                "roster_version": 0,
            }
            self.states.save(_STATE, pinned)
        elif info["id"] != pinned["node"]["id"]:
            raise self._refuse(
                f"the node at {self.client.base_url} says it is {info['id']!r}, but "
                f"{pinned['node']['id']!r} was pinned"
            )
        if self.configured and set(self.configured) != set(pinned["roster_keys"]):
            # site.toml wins over what was pinned from the node.
            pinned["roster_keys"] = {
                k: _key_json(v) for k, v in self.configured.items()
            }
            self.states.save(_STATE, pinned)
        return pinned

    async def _roster(self, pinned: dict[str, Any]) -> RosterView | None:
        try:
            signed = await self.client.request("GET", "/v1/roster")
        except NotFound:
            if pinned.get("roster_version", 0):
                raise self._refuse(
                    "the node no longer serves the roster it served before"
                ) from None
            return None
        roster_keys = _keys_from(pinned["roster_keys"])
        if not roster_keys:
            raise TrustError(
                "the node serves a roster but no roster key is pinned: set "
                "[site] roster_keys in site.toml (the federation's roster keys)"
            )
        version = int(pinned.get("roster_version", 0))
        try:
            roster = verify_roster(signed, roster_keys, max(version - 1, 0))
        except VerificationError as exc:
            raise self._refuse(f"its roster: {exc.message}") from None
        view = RosterView(roster)
        node_id = pinned["node"]["id"]
        if view.node(node_id) is None:
            raise self._refuse(f"the roster does not name the pinned node {node_id}")
        # The roster, signed by the pinned roster keys, is the authority on the node's
        # keys: a rotation it announces is followed (pinned from now on) instead of
        # refused, so an operator who rotates the node key does not have to re-pin
        # every adapter. A node cannot sign a roster, so it cannot use this to swap keys.
        keys = {k: _key_json(v) for k, v in view.node_keys(node_id).items()}
        if roster.version > version or (
            roster.version == version and keys != pinned["node"]["keys"]
        ):
            pinned["roster_version"] = roster.version
            pinned["node"]["keys"] = keys
            self.states.save(_STATE, pinned)
        return view

    def _record(self, signed: Any, pinned: dict[str, Any]) -> SiteRecord:
        if self.view is not None:
            return verify_site_record(signed, self.view)
        # No roster: only the pinned node's own sites, signed by a pinned node key.
        node_id = pinned["node"]["id"]
        doc = verify_document(
            signed,
            _keys_from(pinned["node"]["keys"]),
            CONTEXT_SITE_RECORD,
            "site record",
        )
        rec = SiteRecord.model_validate(doc)
        if rec.home_node != node_id:
            raise VerificationError(
                f"site record {rec.id} names home {rec.home_node}, not {node_id}"
            )
        return rec

    async def refresh(self) -> list[str]:
        """Re-read the node, roster and site records; returns refused records.

        Raises:
            TrustError: the node or roster contradicts the pins.
            ExchangeError, OperationalError: the node cannot be asked.
        """
        pinned = await self._pin()
        self.view = await self._roster(pinned)
        doc = await self.client.request(
            "GET", "/v1/federation/site-records", params={"relayed": 1}
        )
        problems: list[str] = []
        keys: dict[str, TrustedKey] = {}
        sites: dict[str, str] = {}
        for signed in (doc or {}).get("records") or []:
            try:
                rec = self._record(signed, pinned)
            except (ExchangeError, ValueError) as exc:
                problems.append(str(getattr(exc, "message", exc))[:300])
                continue
            sites[rec.id] = rec.name
            for k in rec.keys:
                if k.owner != rec.id:
                    continue
                keys[k.key_id] = TrustedKey(
                    PublicKey(k.alg, b64u_decode(k.public_key), k.key_id),
                    _when(k.valid_from),
                    _when(k.revoked_at),
                )
        self.keys = keys
        self.names.sites = sites
        self.names.circles = (
            {c.id: c.name for c in self.view.roster.circles} if self.view else {}
        )
        self._pinned = pinned
        self.stale = False
        return problems

    async def verify(self, signed: dict[str, Any]) -> None:
        """Check a partner's item against a key its home node vouches for.

        Raises:
            VerificationError: unknown key, bad signature, author not the key's owner,
                or signed after the key was revoked (this item only).
            TrustError: the node contradicts the pins (see :meth:`refresh`).
        """
        sig = signed.get("sig")
        kid = str(sig.get("key", "")) if isinstance(sig, dict) else ""
        if self.stale or kid not in self.keys or self._pinned is None:
            await self.refresh()
        trusted = self.keys.get(kid)
        if trusted is None:
            raise VerificationError(
                f"key {kid[:80]} is not vouched for by a site record its home node "
                "signed"
            )
        verify_item(signed, trusted.key)
        item = signed["item"]
        owner = kid.partition("#")[0]
        if item.get("author") != owner:
            raise VerificationError(f"item author is not the owner of key {kid}")
        created = (
            _when(str(item.get("created_at") or "")) if item.get("created_at") else None
        )
        if trusted.revoked_at is not None and (
            created is None or created >= trusted.revoked_at
        ):
            raise VerificationError(f"key {kid} was revoked before the item was signed")
