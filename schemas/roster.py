"""The federation roster (the trust root) and the site records nodes vouch for.

The roster lists nodes (with their keys and the sites each is home to), circles and
monitors; it is signed by the federation's roster key and distributed as a
:class:`SignedDocument`. A node vouches for each of its own sites' keys by signing a
:class:`SiteRecord`, also sent as a :class:`SignedDocument`. As with items, what is
signed is the canonical form of ``document`` as received; the models here validate
its shape and its internal consistency only.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, model_validator

from ._base import (
    UNIQUE,
    Alg,
    Base64Url,
    CircleId,
    FederationId,
    HttpUrl,
    JsonObject,
    KeyId,
    Line,
    MonitorId,
    NodeId,
    SafeInt,
    SiteId,
    StrictModel,
    Timestamp,
    parse_timestamp,
)
from .items import Signature

__all__ = [
    "Circle",
    "KeyEntry",
    "MonitorEntry",
    "NodeEntry",
    "Roster",
    "SignedDocument",
    "SiteRecord",
]

_Version = Annotated[SafeInt, Field(ge=1)]
_SiteIds = Annotated[list[SiteId], Field(max_length=10000), UNIQUE]
_CircleIds = Annotated[list[CircleId], Field(max_length=100), UNIQUE]
_Algs = Annotated[list[Alg], Field(max_length=10), UNIQUE]


class KeyEntry(StrictModel):
    """A public key with its validity window.

    Items signed before ``revoked_at`` stay valid; nothing signed at or after it is
    accepted.
    """

    key_id: KeyId = Field(description="Key id, '<owner>#k<n>'.")
    alg: Alg = Field(description="Signature algorithm, e.g. ed25519.")
    public_key: Base64Url = Field(description="Raw public key, unpadded base64url.")
    valid_from: Timestamp = Field(description="First instant the key may sign.")
    revoked_at: Timestamp | None = Field(
        default=None, description="Instant from which the key is refused, if revoked."
    )

    @property
    def owner(self) -> str:
        """The site or node id before ``#`` in the key id."""
        return self.key_id.partition("#")[0]

    @model_validator(mode="after")
    def _revoked_after_valid(self) -> Self:
        if self.revoked_at is not None and parse_timestamp(
            self.revoked_at
        ) < parse_timestamp(self.valid_from):
            raise ValueError(
                f"key {self.key_id}: revoked_at {self.revoked_at} is before "
                f"valid_from {self.valid_from}"
            )
        return self


def _check_key_owners(owner: str, keys: list[KeyEntry]) -> None:
    seen: set[str] = set()
    for key in keys:
        if key.owner != owner:
            raise ValueError(f"key {key.key_id} does not belong to {owner!r}")
        if key.key_id in seen:
            raise ValueError(f"key {key.key_id} is listed twice")
        seen.add(key.key_id)


_Keys = Annotated[list[KeyEntry], Field(min_length=1, max_length=50)]


class SiteRecord(StrictModel):
    """A site's identity and keys, signed by its home node.

    A peer accepts a site key only from the node the roster names as the site's home.
    """

    id: SiteId = Field(description="Site id, e.g. huaibei-duji.")
    name: Line = Field(description="Display name, e.g. 淮北市杜集区人大常委会.")
    home_node: NodeId = Field(description="The node that vouches for this site.")
    circles: _CircleIds = Field(default=[], description="Circles the site is in.")
    keys: _Keys = Field(description="The site's signing keys, current and past.")
    version: _Version = Field(description="Increases with every change.")
    issued_at: Timestamp = Field(description="When the node issued this record.")

    @model_validator(mode="after")
    def _keys_are_own(self) -> Self:
        _check_key_owners(self.id, self.keys)
        return self


class NodeEntry(StrictModel):
    """A node in the roster: where it is, its keys, the sites it is home to."""

    id: NodeId = Field(description="Node id.")
    base_url: HttpUrl = Field(description="Base URL; the API is under /v1.")
    keys: _Keys = Field(description="Node keys (checkpoints, requests, site records).")
    sites: _SiteIds = Field(default=[], description="Sites this node is home to.")
    circles: _CircleIds = Field(default=[], description="Circles this node serves.")

    @model_validator(mode="after")
    def _keys_are_own(self) -> Self:
        _check_key_owners(self.id, self.keys)
        return self


class Circle(StrictModel):
    """A collaboration group of sites, e.g. 长三角 or 淮海经济区."""

    id: CircleId = Field(description="Circle id, e.g. huaihai.")
    name: Line = Field(description="Display name, e.g. 淮海经济区.")
    members: _SiteIds = Field(default=[], description="Member sites.")


class MonitorEntry(StrictModel):
    """A read-only monitoring body and what it may watch."""

    id: MonitorId = Field(description="Monitor id.")
    name: Line = Field(description="Display name, e.g. 淮北市人大常委会.")
    circles: _CircleIds = Field(default=[], description="Circles it watches.")
    sites: _SiteIds = Field(default=[], description="Individual sites it watches.")


class Roster(StrictModel):
    """The federation roster: the trust root every node pins.

    A newer ``version`` replaces an older one only if validly signed.
    """

    federation: FederationId = Field(description="The federation's id.")
    version: _Version = Field(description="Increases with every change.")
    issued_at: Timestamp = Field(description="When this version was issued.")
    nodes: Annotated[list[NodeEntry], Field(min_length=1, max_length=1000)] = Field(
        description="Every node of the federation."
    )
    circles: Annotated[list[Circle], Field(max_length=1000)] = Field(
        default=[], description="Collaboration circles."
    )
    monitors: Annotated[list[MonitorEntry], Field(max_length=1000)] = Field(
        default=[], description="Monitoring bodies."
    )
    accepted_algs: Annotated[_Algs, Field(min_length=1)] = Field(
        default=["ed25519"], description="Signature algorithms nodes accept."
    )
    required_algs: _Algs = Field(
        default=[], description="Algorithms every signature set must include."
    )

    def home_of(self, site: str) -> NodeEntry | None:
        """Return the node the roster names as ``site``'s home, if any.

        Args:
            site: A site id.
        """
        for node in self.nodes:
            if site in node.sites:
                return node
        return None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _unique("node", [node.id for node in self.nodes])
        _unique("circle", [circle.id for circle in self.circles])
        _unique("monitor", [monitor.id for monitor in self.monitors])
        homes: dict[str, str] = {}
        for node in self.nodes:
            for site in node.sites:
                if site in homes:
                    raise ValueError(
                        f"site {site!r} is listed under nodes {homes[site]!r} and "
                        f"{node.id!r}; a site has one home node"
                    )
                homes[site] = node.id
        circles = {circle.id for circle in self.circles}
        for circle in self.circles:
            for site in circle.members:
                if site not in homes:
                    raise ValueError(
                        f"circle {circle.id!r} lists {site!r}, which no node is home to"
                    )
        for owner, wanted, in_sites in (
            *((f"node {n.id!r}", n.circles, []) for n in self.nodes),
            *((f"monitor {m.id!r}", m.circles, m.sites) for m in self.monitors),
        ):
            for circle_id in wanted:
                if circle_id not in circles:
                    raise ValueError(f"{owner} names unknown circle {circle_id!r}")
            for site in in_sites:
                if site not in homes:
                    raise ValueError(f"{owner} names unknown site {site!r}")
        for alg in self.required_algs:
            if alg not in self.accepted_algs:
                raise ValueError(f"required alg {alg!r} is not in accepted_algs")
        return self


def _unique(what: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for entry in ids:
        if entry in seen:
            raise ValueError(f"{what} {entry!r} is listed twice")
        seen.add(entry)


class SignedDocument(StrictModel):
    """A signed JSON document: a roster or a site record, with its signature.

    ``document`` stays a plain object because the signature covers its canonical
    bytes as received; validate it with :class:`Roster` or :class:`SiteRecord` after
    the signature checks out.
    """

    document: JsonObject = Field(description="The signed document.")
    sig: Signature = Field(description="Signature over the document's canonical form.")
