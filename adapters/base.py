"""What an adapter is: a Source, a Sink, or both, configured by its own pydantic model.

The contract
------------
* A **source** reads new documents from the site's own system and returns them as
  *unsigned* item drafts. It keeps a resumable position (``state``, a JSON-able dict the
  runner stores durably) and must be **deterministic**: reading the same document again
  yields the same item (same ``created_at``, same text), hence the same item id, so a
  re-read after a crash is a harmless duplicate, never a second item.
* A **sink** delivers a partner's signed item into the site's system, **idempotently**
  (keyed by item id): delivering the same item twice leaves one copy.
* Adapters never hold the site's private key and never talk to the node: the runner
  signs, spools and pushes (see :mod:`adapters.runner`). They may use ``schemas``,
  ``exchange.core``, ``exchange.errors`` and ``exchange.client`` — never node internals.
* Each adapter class names its config model (``config_model``); the registry validates
  the ``[[source]]`` / ``[[sink]]`` table with it when the adapter is loaded, so a typo
  is reported with its key path before anything runs.
* The registry constructs an adapter as ``cls(config, ctx)``. The constructor does no
  I/O: connections are opened on the first ``poll``/``deliver`` and released by
  ``close``. ``poll`` only reads: ``exchange adapter check`` calls it for a dry run
  and throws the result away, so it must not mark anything as read in the site's
  system (the position lives in ``state``, which the runner saves).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from exchange.core.canonical import item_id
from exchange.errors import ExchangeError
from schemas.errors import ErrorCode
from schemas.items import KINDS

__all__ = [
    "AdapterConfig",
    "AdapterContext",
    "AdapterError",
    "Attachment",
    "Draft",
    "Names",
    "Poll",
    "RefusedDelivery",
    "Sink",
    "Source",
    "check_delivery",
]


class AdapterError(ExchangeError):
    """A source or sink cannot do its work; the message names what and why.

    ``retryable`` tells the runner whether to try again later (a server that is down)
    or to report and skip (a document whose layout changed).
    """

    codes = (ErrorCode.ADAPTER_FAILED,)
    http_status = 502

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message, code=ErrorCode.ADAPTER_FAILED)
        self.retryable = retryable


_ITEM_ID = re.compile(r"sha256:[0-9a-f]{64}")


class RefusedDelivery(AdapterError):
    """A delivered item whose id or kind cannot be trusted (never retried)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


def check_delivery(signed: Any, envelope: Any) -> tuple[str, str]:
    """The item's hex id and kind, checked: the envelope's ``id`` is
    ``sha256:<64 hex>`` and is the item's own hash; the kind is one of the schema.

    Raises:
        RefusedDelivery: naming what is wrong (the values are quoted, shortened).
    """
    item = signed.get("item") if isinstance(signed, dict) else None
    if not isinstance(item, dict) or not isinstance(envelope, dict):
        raise RefusedDelivery("拒收 / refused: not a signed item with an envelope")
    given = envelope.get("id")
    if not isinstance(given, str) or not _ITEM_ID.fullmatch(given):
        raise RefusedDelivery(
            f"拒收 / refused: item id {str(given)[:80]!r} is not 'sha256:<64 hex>'"
        )
    try:
        own = item_id(item)
    except (TypeError, ValueError) as exc:
        raise RefusedDelivery(
            f"拒收 / refused: {given}: not canonical JSON ({exc})"
        ) from None
    if own != given:
        raise RefusedDelivery(
            f"拒收 / refused: the node says {given} but the item's hash is {own}"
        )
    kind = item.get("kind")
    if kind not in KINDS:
        raise RefusedDelivery(
            f"拒收 / refused: {given}: kind {str(kind)[:40]!r} is not a kind of the schema"
        )
    return own.removeprefix("sha256:"), str(kind)


class AdapterConfig(BaseModel):
    """Base of every adapter's config section (``type`` and ``name`` are common)."""

    model_config = ConfigDict(extra="forbid")

    type: str
    name: str = ""


@dataclass(frozen=True)
class Attachment:
    """A file to upload as a blob and reference from the item."""

    name: str
    media_type: str
    data: bytes


@dataclass(frozen=True)
class Draft:
    """An unsigned item produced by a source.

    Attributes:
        item: The item object without ``attachments`` entries for the files below (the
            runner uploads them and fills in name, media type, size and sha256).
        ref: A stable reference to the document in the site's system (a URL, a file
            path, a primary key, a Message-ID), for logs and dry runs.
        attachments: Files to upload with it.
        notes: What a person checking the source should see but that is not part of
            the item (``阅读次数=1204``: it changes with every reader); shown by
            ``exchange adapter check``, never signed.
    """

    item: dict[str, Any]
    ref: str
    attachments: tuple[Attachment, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Poll:
    """What a source returns: new drafts and the position after them.

    ``problems`` lists documents that could not be turned into items (each a clear
    message naming the document and the missing or bad field); they are reported in
    the adapter's health and skipped, never pushed half-filled.
    """

    drafts: list[Draft]
    state: dict[str, Any]
    problems: list[str] = field(default_factory=list)


@dataclass
class Names:
    """Display names of sites and circles, for what a person reads (a sink's documents
    and mails show 淮北市杜集区人大常委会, not ``huaibei-duji``).

    The runner fills them on every pull pass from what it verified: site names from the
    site records their home nodes signed, circle names from the signed roster. An id
    with no verified name is shown as it is.
    """

    sites: dict[str, str] = field(default_factory=dict)
    circles: dict[str, str] = field(default_factory=dict)

    def site(self, site_id: str) -> str:
        """The site's name (its id when no name is known)."""
        return self.sites.get(site_id) or site_id

    def circle(self, circle_id: str) -> str:
        """The circle's name (its id when no name is known)."""
        return self.circles.get(circle_id) or circle_id


@dataclass(frozen=True)
class AdapterContext:
    """What the runner hands an adapter.

    Attributes:
        site_id: The site the runner signs for (the author of every item).
        data_dir: A folder of the adapter's own (``<data_dir>/adapters/<name>``).
        log: The adapter's logger.
        base_dir: The folder of ``site.toml``: relative paths in the adapter's
            config are resolved against it.
        names: Names of sites and circles, kept current by the runner (sinks show
            them in what people read).
    """

    site_id: str
    data_dir: Path
    log: logging.Logger
    base_dir: Path = Path(".")
    names: Names = field(default_factory=Names)

    def path(self, value: str | Path) -> Path:
        """A config path, resolved against :attr:`base_dir` when relative."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p


@runtime_checkable
class Source(Protocol):
    """Reads new documents from the site's system."""

    config_model: ClassVar[type[AdapterConfig]]

    async def poll(self, state: dict[str, Any]) -> Poll:
        """Return drafts for documents after ``state`` and the new state.

        Raises:
            AdapterError: the system cannot be read (``retryable`` if it may recover).
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class Sink(Protocol):
    """Delivers partners' items into the site's system."""

    config_model: ClassVar[type[AdapterConfig]]

    async def deliver(self, signed: dict[str, Any], envelope: dict[str, Any]) -> None:
        """Deliver one signed item (``envelope`` has ``index``, ``id``, ``received_at``).

        Must be idempotent by ``envelope["id"]``.

        Raises:
            AdapterError: delivery failed (``retryable`` if it may succeed later).
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
