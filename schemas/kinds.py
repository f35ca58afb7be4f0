"""Kind-specific item bodies: what a congress actually fills in for each kind.

Each body is the ``body`` of an item envelope (:mod:`schemas.items`). Cross-field rules
(dates in order, the lead site not among the participants, responsibilities only for
sites of the plan) are model validators with messages that name the offending value.

* ``case_study`` — :class:`CaseStudy` (典型案例)
* ``inspection_plan`` — :class:`InspectionPlan` (联合执法检查方案)
* ``lesson`` — :class:`Lesson` (经验做法 / 工作交流)
* ``endorsement`` — :class:`Endorsement` (参与单位会签联合检查方案)
* ``retraction`` — :class:`Retraction` (撤回)
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from ._base import (
    UNIQUE,
    DateStr,
    ItemId,
    Line,
    Matches,
    Paragraph,
    SiteId,
    StrictModel,
    Text,
)

__all__ = [
    "CaseStudy",
    "Contact",
    "Endorsement",
    "Finding",
    "InspectionPlan",
    "Lesson",
    "Period",
    "Phase",
    "Rectification",
    "Responsibility",
    "Retraction",
]

_Phone = Annotated[
    str,
    Matches(
        "^[+]?[0-9(][0-9() -]{3,30}[0-9]$",
        "a phone number of digits, spaces, '-', '(' ')' and a leading '+', "
        "e.g. '0561-3021234'",
    ),
]
_Email = Annotated[
    str,
    Field(max_length=254),
    Matches(
        "^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:[.][A-Za-z0-9-]+)*[.][A-Za-z]{2,}$",
        "an e-mail address, e.g. 'rdbgs@example.gov.cn'",
        format="email",
    ),
]
_SiteIds = Annotated[list[SiteId], Field(max_length=500), UNIQUE]
_Paragraphs = Annotated[list[Paragraph], Field(max_length=100)]
_Lines = Annotated[list[Line], Field(max_length=100)]


class Contact(StrictModel):
    """A person partners can reach about the item (联系人)."""

    name: Line = Field(description="Person's name (姓名).")
    role: Line = Field(description="Position or office, e.g. 法工委主任 (职务).")
    phone: _Phone | None = Field(default=None, description="Office phone (电话).")
    email: _Email | None = Field(default=None, description="E-mail (电子邮箱).")


_Contacts = Annotated[list[Contact], Field(max_length=20)]


class Period(StrictModel):
    """When the work ran (时间段); ``end`` is ``None`` while it is ongoing."""

    start: DateStr = Field(description="First day (开始日期).")
    end: DateStr | None = Field(
        default=None, description="Last day, or null while ongoing (结束日期)."
    )

    @model_validator(mode="after")
    def _end_not_before_start(self) -> Self:
        # ISO dates compare correctly as text.
        if self.end is not None and self.end < self.start:
            raise ValueError(f"period end {self.end} is before its start {self.start}")
        return self


class CaseStudy(StrictModel):
    """A case study (典型案例): what was done, on what legal basis, to what effect."""

    background: Text = Field(description="Why the work was needed (背景).")
    actions: _Paragraphs = Field(
        min_length=1, description="What was done, one entry per step (主要做法)."
    )
    results: Text = Field(description="What changed as a result (成效).")
    legal_basis: _Lines = Field(
        default=[],
        description="Laws and regulations relied on, e.g. "
        "《中华人民共和国安全生产法》 (法律依据).",
    )
    period: Period = Field(description="When the work ran (时间).")
    participants: _SiteIds = Field(
        default=[], description="Other sites that took part (参与单位)."
    )
    contacts: _Contacts = Field(default=[], description="Whom to ask (联系人).")
    lessons_learned: Text | None = Field(
        default=None, description="What others can take from it (经验启示)."
    )


class Phase(StrictModel):
    """One phase of a joint inspection (阶段), e.g. 自查 / 实地检查 / 整改."""

    name: Line = Field(description="Phase name (阶段名称).")
    start: DateStr = Field(description="First day (开始日期).")
    end: DateStr = Field(description="Last day (结束日期).")
    activities: _Paragraphs = Field(
        min_length=1, description="What happens in this phase (主要工作)."
    )
    responsible_sites: _SiteIds = Field(
        default=[], description="Sites that carry this phase (责任单位)."
    )

    @model_validator(mode="after")
    def _end_not_before_start(self) -> Self:
        if self.end < self.start:
            raise ValueError(
                f"phase {self.name!r} ends {self.end}, before it starts {self.start}"
            )
        return self


class Responsibility(StrictModel):
    """What one site is responsible for in a joint plan (职责分工)."""

    site: SiteId = Field(description="The responsible site (单位).")
    duties: _Paragraphs = Field(min_length=1, description="Its duties (职责).")


class Finding(StrictModel):
    """A problem the inspection found (发现的问题)."""

    summary: Paragraph = Field(description="What was found (问题描述).")
    severity: Literal["low", "medium", "high"] = Field(
        description="How serious it is (严重程度)."
    )
    site: SiteId | None = Field(
        default=None,
        description="The site whose area it concerns, if one (所在地区).",
    )


class Rectification(StrictModel):
    """Follow-up on a finding (整改跟踪)."""

    issue: Paragraph = Field(description="What must be rectified (整改事项).")
    responsible_body: Line = Field(
        description="Who must rectify it, e.g. 区应急管理局 (责任单位)."
    )
    deadline: DateStr = Field(description="Due date (整改期限).")
    status: Literal["open", "in_progress", "done"] = Field(
        description="Progress (整改进展)."
    )


class InspectionPlan(StrictModel):
    """A joint law-enforcement inspection plan (联合执法检查方案).

    The lead site runs the inspection together with the participating sites, each of
    which may countersign it with an :class:`Endorsement`. Findings and rectification
    follow-up are added by later items that ``updates`` the plan.
    """

    law: Line = Field(
        description="The law inspected, e.g. 《中华人民共和国安全生产法》 (检查的法律)."
    )
    articles: _Lines = Field(
        default=[],
        description="Articles in focus, e.g. 第二十一条 (重点条款).",
    )
    lead_site: SiteId = Field(description="The site that leads (牵头单位).")
    participating_sites: _SiteIds = Field(
        min_length=1,
        description="Other sites taking part; not the lead (参与单位).",
    )
    objectives: _Paragraphs = Field(min_length=1, description="Aims (检查目的).")
    scope: Text = Field(description="What and where is inspected (检查范围).")
    phases: Annotated[list[Phase], Field(max_length=50)] = Field(
        min_length=1, description="Phases in date order (检查步骤)."
    )
    responsibilities: Annotated[list[Responsibility], Field(max_length=500)] = Field(
        min_length=1, description="Who does what, one entry per site (职责分工)."
    )
    findings: Annotated[list[Finding], Field(max_length=500)] = Field(
        default=[], description="Problems found so far (发现的问题)."
    )
    rectification: Annotated[list[Rectification], Field(max_length=500)] = Field(
        default=[], description="Rectification follow-up (整改跟踪)."
    )
    contacts: _Contacts = Field(default=[], description="Whom to ask (联系人).")

    def sites(self) -> list[SiteId]:
        """Return the lead site followed by the participating sites."""
        return [self.lead_site, *self.participating_sites]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.lead_site in self.participating_sites:
            raise ValueError(
                f"lead_site {self.lead_site!r} must not also be listed in "
                "participating_sites"
            )
        sites = set(self.sites())
        for earlier, later in zip(self.phases, self.phases[1:], strict=False):
            if later.start < earlier.start:
                raise ValueError(
                    f"phases must be in date order: {later.name!r} starts "
                    f"{later.start}, before {earlier.name!r} ({earlier.start})"
                )
        for phase in self.phases:
            for site in phase.responsible_sites:
                if site not in sites:
                    raise ValueError(
                        f"phase {phase.name!r} names {site!r}, which is neither "
                        "the lead nor a participating site"
                    )
        seen: set[str] = set()
        for duty in self.responsibilities:
            if duty.site not in sites:
                raise ValueError(
                    f"responsibilities name {duty.site!r}, which is neither the "
                    "lead nor a participating site"
                )
            if duty.site in seen:
                raise ValueError(
                    f"responsibilities list {duty.site!r} twice; merge its duties"
                )
            seen.add(duty.site)
        for finding in self.findings:
            if finding.site is not None and finding.site not in sites:
                raise ValueError(
                    f"a finding names {finding.site!r}, which is neither the lead "
                    "nor a participating site"
                )
        return self


class Lesson(StrictModel):
    """A lesson or work-experience write-up (经验做法 / 工作交流)."""

    practice: Text = Field(description="What the practice is (做法).")
    conditions: Text = Field(description="The setting it grew in (适用条件 / 背景).")
    outcomes: Text = Field(description="What it achieved (成效).")
    applicability: _Paragraphs = Field(
        min_length=1,
        description="Contexts where it transfers (可推广的情形).",
    )
    challenges: Text | None = Field(
        default=None, description="Difficulties met (困难与不足)."
    )
    contacts: _Contacts = Field(default=[], description="Whom to ask (联系人).")


class Endorsement(StrictModel):
    """A participating site's answer to a joint inspection plan (会签)."""

    plan: ItemId = Field(description="Id of the inspection plan (方案编号).")
    decision: Literal["endorse", "decline"] = Field(
        description="Countersign or decline (同意 / 不同意)."
    )
    comment: Text | None = Field(default=None, description="Remarks (意见).")
    commitments: _Paragraphs = Field(
        default=[],
        description="What this site commits to; empty when declining (承诺事项).",
    )

    @model_validator(mode="after")
    def _decline_commits_nothing(self) -> Self:
        if self.decision == "decline" and self.commitments:
            raise ValueError("a declining endorsement must not list commitments")
        return self


class Retraction(StrictModel):
    """The author withdraws one of its items (撤回); the item stays in the log."""

    target: ItemId = Field(description="Id of the withdrawn item (被撤回条目).")
    reason: Text = Field(description="Why it is withdrawn (撤回理由).")
