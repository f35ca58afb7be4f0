"""Request and response bodies of the ``/v1`` HTTP API.

Request bodies that carry signed items stay plain JSON objects (``dict``): the node
verifies the bytes it received, then validates each item on its own so that one bad
item is refused without refusing the batch.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import Field, model_validator

from ._base import (
    UNIQUE,
    CircleId,
    ItemId,
    JsonObject,
    Line,
    MediaType,
    NodeId,
    Paragraph,
    SafeInt,
    Sha256Hex,
    SiteId,
    StrictModel,
    Text,
    Timestamp,
)
from .errors import ErrorCode
from .items import MAX_ATTACHMENT_SIZE
from .roster import KeyEntry

__all__ = [
    "AdapterHealth",
    "AdapterHealthList",
    "AdapterHealthReport",
    "AdapterStatus",
    "BlobInfo",
    "ErrorBody",
    "ErrorDetail",
    "FederationBatch",
    "FederationBatchResponse",
    "FederationRefusal",
    "Health",
    "ItemEnvelope",
    "ItemPage",
    "LogRange",
    "MAX_BATCH",
    "PushBatch",
    "PushResponse",
    "PushResult",
    "SiteInfo",
    "SiteList",
]

MAX_BATCH = 500
"""Most items one ``POST /v1/items`` may carry."""


class ErrorDetail(StrictModel):
    """One error: a stable code, a human message, optional structured detail."""

    # Enum members arrive as their string value; strictness would demand an instance.
    code: Annotated[ErrorCode, Field(strict=False)] = Field(
        description="Stable error code; clients branch on it."
    )
    message: Text = Field(description="What went wrong, for people.")
    detail: JsonObject | None = Field(
        default=None, description="Machine-readable context (field paths, limits)."
    )


class ErrorBody(StrictModel):
    """Every non-2xx response body: ``{"error": {"code": …, "message": …}}``."""

    error: ErrorDetail


class PushBatch(StrictModel):
    """``POST /v1/items``: one or more signed items, ``{"item": …, "sig": …}`` each."""

    items: Annotated[
        list[dict[str, Any]], Field(min_length=1, max_length=MAX_BATCH)
    ] = Field(description="Signed items as sent; each is verified on its own.")


class PushResult(StrictModel):
    """The outcome for one pushed item, in the order the batch sent them.

    ``accepted`` and ``duplicate`` carry the id and log index; ``refused`` carries the
    error (and the id when the item was readable enough to have one).
    """

    id: ItemId | None = Field(default=None, description="The item's id.")
    status: Literal["accepted", "duplicate", "refused"]
    index: SafeInt | None = Field(default=None, description="Its index in the log.")
    error: ErrorDetail | None = Field(default=None, description="Why it was refused.")

    @model_validator(mode="after")
    def _fields_match_status(self) -> Self:
        if self.status == "refused":
            if self.error is None:
                raise ValueError("a refused result must carry an error")
            if self.index is not None:
                raise ValueError("a refused result has no log index")
        else:
            if self.error is not None:
                raise ValueError(f"an {self.status} result carries no error")
            if self.id is None or self.index is None:
                raise ValueError(f"an {self.status} result must carry id and index")
        return self


class PushResponse(StrictModel):
    """Response to ``POST /v1/items``: per-item results and their counts."""

    # A push carries up to http.max_batch items (at most 5000), a peer's batch up to 2000.
    results: Annotated[list[PushResult], Field(max_length=5000)]
    accepted: SafeInt
    duplicates: SafeInt
    refused: SafeInt

    @model_validator(mode="after")
    def _counts_match(self) -> Self:
        counts = {"accepted": 0, "duplicate": 0, "refused": 0}
        for result in self.results:
            counts[result.status] += 1
        stated = {
            "accepted": self.accepted,
            "duplicate": self.duplicates,
            "refused": self.refused,
        }
        if counts != stated:
            raise ValueError(f"counts {stated} do not match the results {counts}")
        return self


_MAX_INDEX = 2**53 - 1
"""The largest log index or record version a wire body carries: the largest integer
every JSON peer reads exactly (the strict parser refuses larger ones anyway)."""


class LogRange(StrictModel):
    """The part of the sender's log a federation batch completes: ``(after, through]``."""

    after: Annotated[int, Field(ge=-1, le=_MAX_INDEX)]
    through: Annotated[int, Field(ge=-1, le=_MAX_INDEX)]


class FederationBatch(StrictModel):
    """``POST /v1/federation/batch``: a peer's items (format 1, or 2 with ``format``,
    ``site_versions`` and only the records the receiver lacks; docs/api.md)."""

    format: Literal[1, 2] | None = Field(
        default=None, description="2 for the compact format; absent: format 1."
    )
    items: Annotated[list[dict[str, Any]], Field(max_length=2000)] = Field(
        description="Signed items, in the sender's log order; each is verified here."
    )
    site_records: list[dict[str, Any]] | None = Field(
        default=None, description="Signed records of the items' authors."
    )
    site_versions: dict[SiteId, Annotated[int, Field(ge=1, le=_MAX_INDEX)]] | None = (
        Field(
            default=None,
            description="Format 2: the record version each author of the batch needs.",
        )
    )
    log_range: LogRange | None = None


class FederationRefusal(StrictModel):
    """One refused item of a format 2 batch."""

    position: SafeInt = Field(description="Its position in the batch's items.")
    id: ItemId | None = Field(default=None, description="The item's id, if readable.")
    error: ErrorDetail


class FederationBatchResponse(StrictModel):
    """Response to ``POST /v1/federation/batch``: format 1 has ``results`` (one per
    item) and ``batch_format``; format 2 only the counts, ``refusals`` when some were
    refused, or ``site_records_wanted`` (nothing stored) when records are missing."""

    results: Annotated[list[PushResult], Field(max_length=2000)] | None = None
    accepted: SafeInt
    duplicates: SafeInt
    refused: SafeInt
    batch_format: SafeInt | None = Field(
        default=None, description="The newest batch format the receiver reads."
    )
    refusals: Annotated[list[FederationRefusal], Field(max_length=2000)] | None = None
    site_records_wanted: Annotated[list[SiteId], Field(max_length=1000)] | None = None


class ItemEnvelope(StrictModel):
    """A stored item as served: its log index, id, arrival time and signed form."""

    index: SafeInt = Field(description="Index in the serving node's log.")
    id: ItemId = Field(description="The item's id.")
    received_at: Timestamp = Field(description="When this node received it.")
    signed: JsonObject = Field(
        description="The signed item as received: {item, sig}; verify it yourself."
    )


class ItemPage(StrictModel):
    """``GET /v1/items``: one page, and the cursor for the next (null at the end)."""

    items: Annotated[list[ItemEnvelope], Field(max_length=1000)]
    next_cursor: SafeInt | None = Field(
        default=None, description="Pass as ?cursor= for the next page."
    )


class SiteInfo(StrictModel):
    """``GET /v1/sites/{id}``: a site as the directory knows it."""

    id: SiteId
    name: Line
    home_node: NodeId
    circles: Annotated[list[CircleId], Field(max_length=100), UNIQUE] = []
    keys: Annotated[list[KeyEntry], Field(max_length=50)] = []


class SiteList(StrictModel):
    """``GET /v1/sites``: every site the node knows."""

    sites: Annotated[list[SiteInfo], Field(max_length=10000)]


class Health(StrictModel):
    """``GET /v1/healthz`` and ``/v1/readyz``: overall status and each check's state."""

    status: Literal["ok", "starting", "degraded"]
    checks: Annotated[dict[Line, Paragraph], Field(max_length=100)] = Field(
        default={}, description="Check name to a short state, e.g. database: ok."
    )


class BlobInfo(StrictModel):
    """Metadata of a stored blob (an attachment's bytes)."""

    sha256: Sha256Hex
    size: Annotated[SafeInt, Field(le=MAX_ATTACHMENT_SIZE)]
    media_type: MediaType


class AdapterStatus(StrictModel):
    """One source or sink of a site's adapter runner, as the runner last saw it."""

    name: Line = Field(description="The adapter's name in site.toml.")
    type: Line = Field(description="Adapter type, e.g. feed, portal, folder.")
    role: Literal["source", "sink"]
    last_run: Timestamp | None = Field(
        default=None, description="Last poll or delivery."
    )
    last_success: Timestamp | None = Field(
        default=None, description="Last one that worked."
    )
    last_error: Paragraph | None = Field(
        default=None, description="Last failure, if any."
    )
    last_error_at: Timestamp | None = None
    items: SafeInt = Field(
        default=0, description="Items read or delivered since start."
    )
    problems: Annotated[list[Paragraph], Field(max_length=20)] = Field(
        default=[],
        description="Documents the last poll could not turn into items, each naming "
        "the document and the missing or bad field.",
    )


class AdapterHealth(StrictModel):
    """What a site's adapter runner reports (``POST /v1/adapters/health``, signed)."""

    started_at: Timestamp = Field(description="When the runner started.")
    last_run: Timestamp | None = Field(default=None, description="Its last full pass.")
    backlog: SafeInt = Field(description="Signed items spooled, not yet acknowledged.")
    rejected: SafeInt = Field(default=0, description="Items the node refused for good.")
    pull_cursor: SafeInt | None = Field(
        default=None, description="Last log index delivered to the sinks."
    )
    last_error: Paragraph | None = Field(default=None, description="Last runner error.")
    adapters: Annotated[list[AdapterStatus], Field(max_length=100)] = []


class AdapterHealthReport(StrictModel):
    """A site's latest adapter health, as the node stored it."""

    site: SiteId
    received_at: Timestamp = Field(description="When the node received the report.")
    health: AdapterHealth


class AdapterHealthList(StrictModel):
    """``GET /v1/adapters/health``: the latest report of each site in scope."""

    reports: Annotated[list[AdapterHealthReport], Field(max_length=10000)]
