"""Discovery on the wire: search results and saved queries (subscriptions).

``GET /v1/search`` answers a :class:`SearchPage`; a site saves a query with
:class:`SubscriptionRequest` and reads its new matches as a :class:`MatchPage` (or live,
as server-sent events whose ``data`` is an :class:`ItemEnvelope`).
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from ._base import (
    CircleId,
    ItemId,
    Line,
    SafeInt,
    SiteId,
    StrictModel,
    Tag,
    Tags,
    Timestamp,
    Title,
)
from .api import ItemEnvelope

__all__ = [
    "MatchPage",
    "SearchHit",
    "SearchPage",
    "Subscription",
    "SubscriptionList",
    "SubscriptionRequest",
]

_Kind = Literal["case_study", "inspection_plan", "lesson", "endorsement", "retraction"]
_Html = Annotated[str, Field(max_length=4000)]
_Query = Annotated[str, Field(max_length=200)]


class SearchHit(StrictModel):
    """One search hit: the item's identity and metadata, a highlighted title and snippet.

    ``title_html`` and ``snippet_html`` are HTML-escaped text in which the query's
    matches are wrapped in ``<mark>``; no other markup ever appears in them.
    """

    index: SafeInt = Field(description="Index in this node's log.")
    id: ItemId
    kind: _Kind
    author: SiteId
    created_at: Timestamp
    title: Title
    title_html: _Html = Field(description="The title, escaped, matches in <mark>.")
    snippet_html: _Html = Field(
        description="An excerpt around the best match, escaped."
    )
    tags: Tags = []
    circles: Annotated[list[CircleId], Field(max_length=50)] = Field(
        default=[], description="Audience circles (empty with no sites: everyone)."
    )
    retracted: bool = Field(
        default=False,
        description="Withdrawn by its author (a retraction the caller may see).",
    )


class SearchPage(StrictModel):
    """``GET /v1/search``: hits best first; no counts, so nothing leaks about others."""

    hits: Annotated[list[SearchHit], Field(max_length=50)]
    next_cursor: Annotated[str, Field(max_length=400)] | None = Field(
        default=None, description="Opaque; pass as ?cursor= for the next page."
    )
    terms: Annotated[list[Line], Field(max_length=12)] = Field(
        default=[], description="The query's terms as searched (all must match)."
    )


class SubscriptionRequest(StrictModel):
    """``POST /v1/subscriptions``: a saved query; at least one criterion."""

    q: _Query = Field(default="", description="Text, searched as in /v1/search.")
    kind: _Kind | None = None
    tag: Tag | None = None
    author: SiteId | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not (self.q.strip() or self.kind or self.tag or self.author):
            raise ValueError(
                "a subscription needs at least one of q, kind, tag, author"
            )
        return self


class Subscription(StrictModel):
    """A saved query of a site, with its durable cursor."""

    id: Annotated[str, Field(pattern="^sub_[A-Za-z0-9_-]{8,64}$")]
    site: SiteId
    q: _Query = ""
    kind: _Kind | None = None
    tag: Tag | None = None
    author: SiteId | None = None
    cursor: Annotated[int, Field(ge=-1)] = Field(
        description="Last log index up to which every match was delivered and acknowledged."
    )
    created_at: Timestamp


class SubscriptionList(StrictModel):
    """``GET /v1/subscriptions``: the calling site's saved queries."""

    subscriptions: Annotated[list[Subscription], Field(max_length=1000)]


class MatchPage(StrictModel):
    """``GET /v1/subscriptions/{id}/matches``: new matches after a cursor, by index.

    Pass ``next_after`` as ``?after=`` next time: that acknowledges everything up to it
    and moves the subscription's durable cursor there.
    """

    matches: Annotated[list[ItemEnvelope], Field(max_length=500)]
    next_after: Annotated[int, Field(ge=-1)] = Field(
        description="Highest log index examined; every match up to it is in this page."
    )
