"""Kind-specific item bodies: what a congress actually fills in for each kind.

Each body is the ``body`` of an item envelope (:mod:`schemas.items`). Cross-field rules
(dates in order, the lead site not among the participants, responsibilities only for
sites of the plan) are model validators with messages that name the offending value.

* ``case_study`` — :class:`CaseStudy` (典型案例)
* ``inspection_plan`` — :class:`InspectionPlan` (联合执法检查方案)
* ``lesson`` — :class:`Lesson` (经验做法 / 工作交流)
* ``endorsement`` — :class:`Endorsement` (参与单位会签联合检查方案)
* ``retraction`` — :class:`Retraction` (撤回)
* ``agreement`` — :class:`Agreement` (协作协议)
* ``inspection_report`` — :class:`InspectionReport` (执法检查报告)
* ``deliberation_opinion`` — :class:`DeliberationOpinion` (审议意见)
* ``rectification_reply`` — :class:`RectificationReply` (研究处理情况报告)
* ``research_report`` — :class:`ResearchReport` (调研报告)
* ``minutes`` — :class:`Minutes` (会议纪要 / 倡议)
* ``plan_update`` — :class:`PlanUpdate` (方案进展, with :class:`SatisfactionVote`)
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
    "Agreement",
    "CaseStudy",
    "Contact",
    "DeliberationOpinion",
    "Endorsement",
    "Finding",
    "InspectionPlan",
    "InspectionReport",
    "Lesson",
    "MeasureTaken",
    "Minutes",
    "Period",
    "Phase",
    "PlanAction",
    "PlanState",
    "PlanUpdate",
    "Rectification",
    "RectificationReply",
    "ResearchReport",
    "Responsibility",
    "Retraction",
    "SatisfactionVote",
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


# ------------------------------------------------------- joint inspection workflow

PlanState = Literal[
    "draft",
    "approved",
    "in_progress",
    "reported",
    "handed_over",
    "rectifying",
    "evaluated",
    "closed",
]
"""State of a joint inspection plan, *computed* from signed items, never sent by a site.

草案 → 已批准 → 实施中 → 已报告 → 已交办 → 整改中 → 已测评 → 已办结; a failed
satisfaction vote returns the plan from ``rectifying`` to ``handed_over``.
"""

PlanAction = Literal["approve", "start", "phase_progress", "satisfaction_vote", "close"]
"""What a :class:`PlanUpdate` does: 批准方案 / 启动实施 / 阶段进展 / 满意度测评 / 办结."""

_ItemIds = Annotated[list[ItemId], Field(max_length=50), UNIQUE]
_Count = Annotated[int, Field(ge=0, le=100000)]


def _obligations_of(duties: list[Responsibility], allowed: set[str], what: str) -> None:
    seen: set[str] = set()
    for duty in duties:
        if duty.site not in allowed:
            raise ValueError(
                f"{what} name {duty.site!r}, which is not one of the parties"
            )
        if duty.site in seen:
            raise ValueError(f"{what} list {duty.site!r} twice; merge its duties")
        seen.add(duty.site)


class Agreement(StrictModel):
    """A cooperation agreement between congresses (协作协议), e.g. 淮海经济区人大协作协议.

    Every party is a site; the author must be one of them (checked on the item).
    """

    parties: Annotated[_SiteIds, Field(min_length=2)] = Field(
        description="Every site that signs the agreement, the author included (协议各方)."
    )
    signed_on: DateStr = Field(description="Day it was signed (签订日期).")
    term: Period = Field(
        description="When it is in force; end null if open-ended (有效期)."
    )
    purpose: Text = Field(description="What the cooperation is for (合作宗旨).")
    areas: _Paragraphs = Field(
        min_length=1, description="Areas of cooperation (合作事项)."
    )
    mechanisms: _Paragraphs = Field(
        default=[],
        description="Working mechanisms, e.g. 联席会议、信息互通 (工作机制).",
    )
    obligations: Annotated[list[Responsibility], Field(max_length=500)] = Field(
        default=[], description="What each party undertakes (各方职责)."
    )
    contacts: _Contacts = Field(default=[], description="Whom to ask (联系人).")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.term.end is not None and self.term.end < self.signed_on:
            raise ValueError(
                f"the agreement ends {self.term.end}, before it was signed {self.signed_on}"
            )
        _obligations_of(self.obligations, set(self.parties), "obligations")
        return self


class InspectionReport(StrictModel):
    """A law-enforcement inspection report (执法检查报告).

    ``scope`` ``joint``: the lead's report on a whole joint plan (it moves the plan to
    ``reported``); ``local``: one site's report on its own area during the inspection
    (本地检查情况报告). Outside a joint plan, ``plan`` is null and scope is ``local``.
    """

    plan: ItemId | None = Field(
        default=None, description="The joint inspection plan reported on (所属方案)."
    )
    scope: Literal["joint", "local"] = Field(
        description="Joint report of the plan, or one site's local report (联合 / 本地)."
    )
    law: Line = Field(description="The law inspected (检查的法律).")
    period: Period = Field(description="When the inspection ran (检查时间).")
    inspected: _Lines = Field(
        min_length=1,
        description="Departments, enterprises and places inspected (检查对象).",
    )
    methods: _Paragraphs = Field(
        min_length=1,
        description="How: 听取汇报、实地检查、随机抽查、问卷调查 ... (检查方式).",
    )
    overview: Text = Field(description="How the law is implemented (法律实施基本情况).")
    achievements: _Paragraphs = Field(default=[], description="What works (主要成效).")
    findings: Annotated[list[Finding], Field(max_length=500)] = Field(
        default=[], description="Problems found (存在的问题)."
    )
    recommendations: _Paragraphs = Field(
        min_length=1, description="Opinions and proposals (意见建议)."
    )

    @model_validator(mode="after")
    def _joint_needs_plan(self) -> Self:
        if self.scope == "joint" and self.plan is None:
            raise ValueError("a joint report must name its plan")
        return self


class DeliberationOpinion(StrictModel):
    """Deliberation opinions (审议意见) handed to a handling body with a deadline.

    The standing committee deliberates an inspection report and hands its opinions to
    a handling body (usually the people's government), which must report how it dealt
    with them (研究处理情况报告, :class:`RectificationReply`) by ``deadline``.
    """

    plan: ItemId | None = Field(
        default=None, description="The joint inspection plan (所属方案)."
    )
    report: ItemId | None = Field(
        default=None, description="The inspection report deliberated (审议的报告)."
    )
    meeting: Line = Field(
        description="Meeting, e.g. 杜集区第十八届人大常委会第二十三次会议 (审议会议)."
    )
    deliberated_on: DateStr = Field(description="Day of deliberation (审议日期).")
    handling_body: Line = Field(
        description="Who must handle the opinions, e.g. 区人民政府 (承办机关)."
    )
    opinions: _Paragraphs = Field(min_length=1, description="The opinions (审议意见).")
    deadline: DateStr = Field(
        description="Day the handling report is due (研究处理情况报告期限)."
    )
    addressed_sites: _SiteIds = Field(
        default=[],
        description="Sites of the plan whose handling report is expected; empty: "
        "every site of the plan (须报送研究处理情况的单位).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.deadline <= self.deliberated_on:
            raise ValueError(
                f"deadline {self.deadline} must be after the deliberation "
                f"{self.deliberated_on}"
            )
        if self.addressed_sites and self.plan is None:
            raise ValueError("addressed_sites apply only to opinions on a joint plan")
        return self


class MeasureTaken(StrictModel):
    """How one opinion or problem was handled (逐条办理情况)."""

    opinion: Paragraph = Field(description="The opinion or problem (审议意见 / 问题).")
    measures: _Paragraphs = Field(min_length=1, description="What was done (整改措施).")
    status: Literal["done", "in_progress", "planned"] = Field(
        description="Progress (已完成 / 推进中 / 计划中)."
    )
    completed_on: DateStr | None = Field(
        default=None, description="Day it was completed (完成日期)."
    )

    @model_validator(mode="after")
    def _date_iff_done(self) -> Self:
        if (self.status == "done") != (self.completed_on is not None):
            raise ValueError("completed_on is given exactly when status is 'done'")
        return self


class RectificationReply(StrictModel):
    """The handling body's report on deliberation opinions (研究处理情况报告)."""

    plan: ItemId | None = Field(
        default=None, description="The joint inspection plan (所属方案)."
    )
    opinion: ItemId = Field(description="The deliberation opinion answered (审议意见).")
    handling_body: Line = Field(description="Who reports, e.g. 区人民政府 (承办机关).")
    reported_on: DateStr = Field(description="Day of the report (报告日期).")
    summary: Text = Field(description="Overall handling (总体情况).")
    items: Annotated[list[MeasureTaken], Field(min_length=1, max_length=200)] = Field(
        description="Handling of each opinion (逐条办理情况)."
    )
    pending: _Paragraphs = Field(
        default=[], description="What remains and next steps (存在问题及下一步打算)."
    )


class ResearchReport(StrictModel):
    """A research report (调研报告), e.g. a follow-up review (回头看) of an inspection."""

    topic: Line = Field(description="Research topic (调研课题).")
    period: Period = Field(description="When the research ran (调研时间).")
    methods: _Paragraphs = Field(
        min_length=1, description="座谈、走访、问卷 ... (调研方式)."
    )
    locations: _Lines = Field(default=[], description="Places visited (调研地点).")
    participants: _SiteIds = Field(
        default=[], description="Other sites that took part (参与单位)."
    )
    findings: Text = Field(description="What was found (调研发现).")
    problems: _Paragraphs = Field(default=[], description="Problems (存在问题).")
    recommendations: _Paragraphs = Field(
        min_length=1, description="Proposals (对策建议)."
    )
    contacts: _Contacts = Field(default=[], description="Whom to ask (联系人).")


class Minutes(StrictModel):
    """Minutes of a joint meeting (会议纪要), or a joint initiative (倡议书).

    The author must be one of the attendees (checked on the item).
    """

    type: Literal["minutes", "initiative"] = Field(
        description="Meeting minutes or an initiative (会议纪要 / 倡议)."
    )
    meeting: Line = Field(
        description="Meeting, e.g. 淮海经济区人大工作联席会议 (会议)."
    )
    held_on: DateStr = Field(description="Day held (日期).")
    location: Line | None = Field(default=None, description="Where (地点).")
    attendees: Annotated[_SiteIds, Field(min_length=1)] = Field(
        description="Sites that attended, or that sign the initiative (参会 / 倡议单位)."
    )
    agenda: _Paragraphs = Field(default=[], description="Topics discussed (议题).")
    decisions: _Paragraphs = Field(
        min_length=1,
        description="What was agreed, or the initiative (议定事项 / 倡议内容).",
    )
    follow_up: Annotated[list[Responsibility], Field(max_length=500)] = Field(
        default=[], description="Who follows up on what (分工落实)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _obligations_of(self.follow_up, set(self.attendees), "follow_up entries")
        return self


class SatisfactionVote(StrictModel):
    """A satisfaction vote on the handling reports (满意度测评).

    It passes when satisfied plus basically-satisfied votes are more than half of the
    members present (:attr:`passed`); the result is computed, never claimed.
    """

    meeting: Line = Field(description="Meeting that voted (测评会议).")
    held_on: DateStr = Field(description="Day of the vote (测评日期).")
    members: Annotated[int, Field(ge=1, le=100000)] = Field(
        description="Members of the standing committee (组成人员总数)."
    )
    present: _Count = Field(description="Members present (出席人数).")
    satisfied: _Count = Field(description="满意票.")
    basically_satisfied: _Count = Field(description="基本满意票.")
    unsatisfied: _Count = Field(description="不满意票.")

    @property
    def passed(self) -> bool:
        """Whether the handling was judged satisfactory (满意 + 基本满意 > 出席人数的一半)."""
        return 2 * (self.satisfied + self.basically_satisfied) > self.present

    @model_validator(mode="after")
    def _counts(self) -> Self:
        votes = self.satisfied + self.basically_satisfied + self.unsatisfied
        if votes > self.present:
            raise ValueError(
                f"{votes} votes were cast but only {self.present} members present"
            )
        if self.present > self.members:
            raise ValueError(
                f"{self.present} present is more than the {self.members} members"
            )
        if 2 * self.present <= self.members:
            raise ValueError(
                f"no quorum: {self.present} of {self.members} members present, more "
                "than half are needed"
            )
        return self


class PlanUpdate(StrictModel):
    """A step of a joint inspection plan, with its evidence (方案进展).

    ``approve`` (批准方案), ``start`` (启动实施), ``phase_progress`` (阶段进展:
    ``phase`` and ``phase_status``), ``satisfaction_vote`` (满意度测评: ``vote``; a vote
    that fails needs ``redo_deadline`` for the new handling report), ``close`` (办结,
    after the follow-up review: ``evidence`` names the 回头看 report). Whether the step
    is allowed in the plan's current state is decided by the state machine
    (:mod:`exchange.core.plans`), not here.
    """

    plan: ItemId = Field(description="The plan (所属方案).")
    action: PlanAction = Field(description="The step taken (事项).")
    effective_on: DateStr = Field(description="Day of the decision (日期).")
    note: Text | None = Field(default=None, description="Explanation (说明).")
    evidence: _ItemIds = Field(
        default=[], description="Ids of items that support the step (依据材料)."
    )
    phase: Line | None = Field(
        default=None, description="Phase name, for phase_progress (阶段名称)."
    )
    phase_status: Literal["started", "completed"] | None = Field(
        default=None, description="Phase started or completed (开始 / 完成)."
    )
    vote: SatisfactionVote | None = Field(
        default=None, description="The vote, for satisfaction_vote (测评结果)."
    )
    redo_deadline: DateStr | None = Field(
        default=None,
        description="After a failed vote: day the new handling report is due (重新报告期限).",
    )

    @model_validator(mode="after")
    def _fields_match_action(self) -> Self:
        progress = self.action == "phase_progress"
        if progress != (self.phase is not None) or progress != (
            self.phase_status is not None
        ):
            raise ValueError(
                "phase and phase_status are given exactly for phase_progress"
            )
        voting = self.action == "satisfaction_vote"
        if voting != (self.vote is not None):
            raise ValueError("vote is given exactly for satisfaction_vote")
        failed = self.vote is not None and not self.vote.passed
        if failed and self.redo_deadline is None:
            raise ValueError(
                "the vote fails (satisfied + basically satisfied are not more than half "
                "of those present): give redo_deadline for the new handling report"
            )
        if not failed and self.redo_deadline is not None:
            raise ValueError("redo_deadline is only for a failed satisfaction vote")
        if failed and self.vote is not None and self.redo_deadline is not None:
            if self.redo_deadline <= self.vote.held_on:
                raise ValueError("redo_deadline must be after the vote")
        if self.action == "close" and not self.evidence:
            raise ValueError(
                "closing needs evidence: the id of the follow-up review (回头看) report"
            )
        return self
