"""The item envelope: what a site signs, and the signed pair that travels.

An item is a JSON object with common fields (author, time, audience, references,
title, tags, attachments) and a kind-specific ``body`` (:mod:`schemas.kinds`). The
``kind`` field selects the model: :data:`Item` is a discriminated union over
:data:`KINDS`, and :data:`ITEM_ADAPTER` validates one from JSON or a dict.

What is signed is *bytes*, not a model: the RFC 8785 canonical form of the item
object exactly as the author sent it. :class:`SignedItem` is a validated view of
``{"item": …, "sig": …}``; never re-serialise the model to check or forward a
signature (defaults that were omitted on the wire would appear, for one).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Self

from pydantic import ConfigDict, Field, TypeAdapter, field_validator, model_validator

from ._base import (
    UNIQUE,
    Alg,
    Base64Url,
    Chars,
    CircleId,
    IntOnly,
    ItemId,
    KeyId,
    Matches,
    MediaType,
    SafeInt,
    Sha256Hex,
    SiteId,
    StrictModel,
    Summary,
    Tags,
    Timestamp,
    Title,
)
from .kinds import (
    Agreement,
    CaseStudy,
    DeliberationOpinion,
    Endorsement,
    InspectionPlan,
    InspectionReport,
    Lesson,
    Minutes,
    PlanUpdate,
    RectificationReply,
    ResearchReport,
    Retraction,
)

__all__ = [
    "ITEM_ADAPTER",
    "KINDS",
    "MAX_ATTACHMENT_SIZE",
    "PLAN_KINDS",
    "AgreementItem",
    "Attachment",
    "Audience",
    "CaseStudyItem",
    "DeliberationOpinionItem",
    "EndorsementItem",
    "InspectionPlanItem",
    "InspectionReportItem",
    "Item",
    "LessonItem",
    "MinutesItem",
    "PlanUpdateItem",
    "RectificationReplyItem",
    "Ref",
    "RefRel",
    "ResearchReportItem",
    "RetractionItem",
    "Signature",
    "SignedItem",
]

MAX_ATTACHMENT_SIZE = 256 * 1024 * 1024
"""Largest attachment an item may name, in bytes (256 MiB)."""

KINDS: tuple[str, ...] = (
    "case_study",
    "inspection_plan",
    "lesson",
    "endorsement",
    "retraction",
    "agreement",
    "inspection_report",
    "deliberation_opinion",
    "rectification_reply",
    "research_report",
    "minutes",
    "plan_update",
)
"""Every item kind, in the order the design lists them (then the workflow kinds)."""

PLAN_KINDS: dict[str, str] = {
    "endorsement": "endorses",
    "plan_update": "updates",
    "inspection_report": "reports_on",
    "deliberation_opinion": "follows",
    "rectification_reply": "follows",
}
"""Kinds that take part in a joint plan's workflow, and the ``rel`` of the ref each must
carry to the plan named in its body (so that a plan's items are found by reference)."""


class Audience(StrictModel):
    """Who may receive an item. Both lists empty means every partner in the federation.

    Otherwise the item goes to members of the named circles and to the named sites.
    """

    circles: Annotated[list[CircleId], Field(max_length=50), UNIQUE] = Field(
        default=[], description="Circles whose members receive the item."
    )
    sites: Annotated[list[SiteId], Field(max_length=500), UNIQUE] = Field(
        default=[], description="Individual sites that receive the item."
    )

    @property
    def is_everyone(self) -> bool:
        """Whether the audience is the whole federation (both lists empty)."""
        return not self.circles and not self.sites


RefRel = Literal[
    "follows", "endorses", "retracts", "responds_to", "updates", "cites", "reports_on"
]
"""How one item relates to another (see :class:`Ref`)."""


class Ref(StrictModel):
    """A typed link to another item.

    ``follows``: a later step of the same work; ``endorses``: countersigns a plan
    (endorsement items only); ``retracts``: withdraws an item (retraction items only);
    ``responds_to``: answers; ``updates``: replaces or extends; ``cites``: relies on;
    ``reports_on``: reports results of (e.g. findings of a plan).
    """

    rel: RefRel = Field(description="How this item relates to the other.")
    id: ItemId = Field(description="The other item's id.")


_ATTACHMENT_NAME = (
    "^(?:[^/\\\\\\x00-\\x1f\\x7f.][^/\\\\\\x00-\\x1f\\x7f]*"
    "|[.][^/\\\\\\x00-\\x1f\\x7f.][^/\\\\\\x00-\\x1f\\x7f]*"
    "|[.][.][^/\\\\\\x00-\\x1f\\x7f]+)$"
)


class Attachment(StrictModel):
    """A file the item refers to, uploaded separately as a content-addressed blob.

    Naming the SHA-256 here puts the file under the item's signature.
    """

    name: Annotated[
        str,
        Field(min_length=1, max_length=255),
        Chars(multiline=False),
        Matches(
            _ATTACHMENT_NAME,
            "a file name without '/', '\\', control characters, "
            "and not '.' or '..', e.g. '检查方案.docx'",
        ),
    ] = Field(description="File name shown to readers, e.g. 检查方案.docx.")
    media_type: MediaType = Field(
        description="IANA media type, lowercase, without parameters."
    )
    size: Annotated[SafeInt, Field(le=MAX_ATTACHMENT_SIZE)] = Field(
        description="Size in bytes, at most 256 MiB."
    )
    sha256: Sha256Hex = Field(description="SHA-256 of the file's bytes.")


class Signature(StrictModel):
    """A signature carried beside what it signs."""

    key: KeyId = Field(description="The signing key, e.g. huaibei-duji#k1.")
    alg: Alg = Field(description="Signature algorithm, e.g. ed25519.")
    value: Base64Url = Field(description="The signature, unpadded base64url.")


# Rels that only one kind may use, and then only towards its own body's target.
_EXCLUSIVE_RELS = {"endorses": "endorsement", "retracts": "retraction"}


class _ItemBase(StrictModel):
    """Fields every item kind shares; the subclasses add ``kind`` and ``body``."""

    _own_rel: ClassVar[str | None] = None

    v: Annotated[Literal[1], IntOnly] = Field(description="Format version.")
    author: SiteId = Field(description="The site that wrote and signs the item.")
    created_at: Timestamp = Field(
        description="When the author created it, RFC 3339 with offset."
    )
    audience: Audience = Field(
        default=Audience(), description="Who receives it; empty means everyone."
    )
    refs: Annotated[list[Ref], Field(max_length=50)] = Field(
        default=[], description="Links to related items."
    )
    title: Title = Field(description="Title (标题).")
    summary: Summary = Field(default="", description="Short summary (摘要).")
    tags: Tags = Field(default=[], description="Topic tags, e.g. 安全生产法.")
    lang: Annotated[
        str,
        Matches(
            "^[a-z]{2,3}(?:-[A-Za-z0-9]{1,8}){0,4}$",
            "a BCP 47 language tag such as 'zh-CN' or 'en'",
        ),
    ] = Field(default="zh-CN", description="Language of the text fields.")
    attachments: Annotated[list[Attachment], Field(max_length=50)] = Field(
        default=[], description="Files, uploaded separately as blobs."
    )

    @field_validator("refs")
    @classmethod
    def _no_repeated_refs(cls, refs: list[Ref]) -> list[Ref]:
        seen: set[tuple[str, str]] = set()
        for ref in refs:
            if (ref.rel, ref.id) in seen:
                raise ValueError(f"ref {ref.rel} {ref.id} is listed twice")
            seen.add((ref.rel, ref.id))
        return refs

    @field_validator("attachments")
    @classmethod
    def _no_repeated_names(cls, attachments: list[Attachment]) -> list[Attachment]:
        names = [attachment.name for attachment in attachments]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"two attachments are named {name!r}")
        return attachments

    def _ref_target(self) -> str | None:
        """The item id an exclusive rel of this kind must point at, if any."""
        return None

    @model_validator(mode="after")
    def _exclusive_rels(self) -> Self:
        for ref in self.refs:
            owner = _EXCLUSIVE_RELS.get(ref.rel)
            if owner is None:
                continue
            if ref.rel != self._own_rel:
                raise ValueError(f"{ref.rel!r} refs are only allowed in {owner} items")
            if ref.id != self._ref_target():
                raise ValueError(
                    f"the {ref.rel!r} ref must point at the body's item "
                    f"{self._ref_target()}, not {ref.id}"
                )
        return self


class CaseStudyItem(_ItemBase):
    """A case study item (典型案例)."""

    kind: Literal["case_study"] = Field(description="Item kind.")
    body: CaseStudy


class InspectionPlanItem(_ItemBase):
    """A joint law-enforcement inspection plan item (联合执法检查方案).

    The author must be one of the plan's sites (normally the lead).
    """

    kind: Literal["inspection_plan"] = Field(description="Item kind.")
    body: InspectionPlan

    @model_validator(mode="after")
    def _author_takes_part(self) -> Self:
        if self.author not in self.body.sites():
            raise ValueError(
                f"author {self.author!r} is neither the plan's lead_site nor one "
                "of its participating_sites"
            )
        return self


class LessonItem(_ItemBase):
    """A lesson / work-experience item (经验做法)."""

    kind: Literal["lesson"] = Field(description="Item kind.")
    body: Lesson


class EndorsementItem(_ItemBase):
    """A site's countersignature (or refusal) of a joint inspection plan."""

    _own_rel: ClassVar[str | None] = "endorses"

    kind: Literal["endorsement"] = Field(description="Item kind.")
    body: Endorsement

    def _ref_target(self) -> str | None:
        return self.body.plan


class RetractionItem(_ItemBase):
    """The author's withdrawal of one of its items."""

    _own_rel: ClassVar[str | None] = "retracts"

    kind: Literal["retraction"] = Field(description="Item kind.")
    body: Retraction

    def _ref_target(self) -> str | None:
        return self.body.target


def _require_ref(refs: list[Ref], rel: str, target: str | None, what: str) -> None:
    if target is not None and not any(r.rel == rel and r.id == target for r in refs):
        raise ValueError(
            f"refs must include {{'rel': {rel!r}, 'id': {target!r}}} for the {what} "
            "named in the body"
        )


class AgreementItem(_ItemBase):
    """A cooperation agreement (协作协议); the author is one of its parties."""

    kind: Literal["agreement"] = Field(description="Item kind.")
    body: Agreement

    @model_validator(mode="after")
    def _author_is_party(self) -> Self:
        if self.author not in self.body.parties:
            raise ValueError(
                f"author {self.author!r} is not one of the agreement's parties"
            )
        return self


class InspectionReportItem(_ItemBase):
    """An inspection report (执法检查报告); refs ``reports_on`` its plan, if any."""

    kind: Literal["inspection_report"] = Field(description="Item kind.")
    body: InspectionReport

    @model_validator(mode="after")
    def _refs_plan(self) -> Self:
        _require_ref(self.refs, "reports_on", self.body.plan, "plan")
        return self


class DeliberationOpinionItem(_ItemBase):
    """Deliberation opinions (审议意见); refs ``follows`` the plan and ``responds_to``
    the report, when named."""

    kind: Literal["deliberation_opinion"] = Field(description="Item kind.")
    body: DeliberationOpinion

    @model_validator(mode="after")
    def _refs_plan(self) -> Self:
        _require_ref(self.refs, "follows", self.body.plan, "plan")
        _require_ref(self.refs, "responds_to", self.body.report, "report")
        return self


class RectificationReplyItem(_ItemBase):
    """A handling report (研究处理情况报告); refs ``responds_to`` the opinion and
    ``follows`` the plan, when named."""

    kind: Literal["rectification_reply"] = Field(description="Item kind.")
    body: RectificationReply

    @model_validator(mode="after")
    def _refs_plan(self) -> Self:
        _require_ref(self.refs, "follows", self.body.plan, "plan")
        _require_ref(self.refs, "responds_to", self.body.opinion, "opinion")
        return self


class ResearchReportItem(_ItemBase):
    """A research report (调研报告)."""

    kind: Literal["research_report"] = Field(description="Item kind.")
    body: ResearchReport


class MinutesItem(_ItemBase):
    """Meeting minutes or an initiative (会议纪要 / 倡议); the author attended."""

    kind: Literal["minutes"] = Field(description="Item kind.")
    body: Minutes

    @model_validator(mode="after")
    def _author_attended(self) -> Self:
        if self.author not in self.body.attendees:
            raise ValueError(f"author {self.author!r} is not among the attendees")
        return self


class PlanUpdateItem(_ItemBase):
    """A step of a joint plan (方案进展); refs ``updates`` the plan."""

    kind: Literal["plan_update"] = Field(description="Item kind.")
    body: PlanUpdate

    @model_validator(mode="after")
    def _refs_plan(self) -> Self:
        _require_ref(self.refs, "updates", self.body.plan, "plan")
        return self


Item = Annotated[
    CaseStudyItem
    | InspectionPlanItem
    | LessonItem
    | EndorsementItem
    | RetractionItem
    | AgreementItem
    | InspectionReportItem
    | DeliberationOpinionItem
    | RectificationReplyItem
    | ResearchReportItem
    | MinutesItem
    | PlanUpdateItem,
    Field(discriminator="kind"),
]
"""Any item; ``kind`` selects the model."""

# The title names the adapter in error messages ("1 validation error for Item").
ITEM_ADAPTER: TypeAdapter[Item] = TypeAdapter(Item, config=ConfigDict(title="Item"))
"""Validates an :data:`Item` from a dict (``validate_python``) or JSON text."""


class SignedItem(StrictModel):
    """An item with its author's signature: ``{"item": {…}, "sig": {…}}``.

    This is a *validated view*. The signature covers the RFC 8785 canonical form of
    the ``item`` object as it was sent, not a re-serialisation of this model: keep
    the received bytes (or parsed JSON) next to the model and verify those.
    """

    item: Item
    sig: Signature
