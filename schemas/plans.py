"""Response bodies of ``GET /v1/plans`` and ``GET /v1/plans/{id}``.

A plan's state is computed by the node from the signed items a reader may see (the
plan and every item referencing it); these models describe that computed view. Nothing
here is ever signed or pushed.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ._base import DateStr, ItemId, Line, SafeInt, SiteId, StrictModel, Timestamp, Title
from .kinds import PlanState

__all__ = [
    "PlanDeadline",
    "PlanList",
    "PlanPhaseStatus",
    "PlanSiteStatus",
    "PlanStep",
    "PlanSummary",
    "PlanView",
    "PlanVote",
]

_Sites = Annotated[list[SiteId], Field(max_length=500)]


class PlanSiteStatus(StrictModel):
    """Whether one site has endorsed / filed what it owes (会签 / 报送情况)."""

    site: SiteId = Field(description="The site.")
    done: bool = Field(description="Endorsed or filed (已完成).")
    item: ItemId | None = Field(default=None, description="The item that counts.")
    decision: Literal["endorse", "decline"] | None = Field(
        default=None, description="For endorsements: 同意 / 不同意."
    )


class PlanDeadline(StrictModel):
    """Something due, who still owes it, and whether it is overdue (期限)."""

    what: str = Field(
        description="endorsements, phase:<name>, local_reports, joint_report, replies."
    )
    label: str = Field(description="Chinese name, e.g. 研究处理情况报告.")
    due: DateStr = Field(description="Due date.")
    sites: _Sites = Field(description="Sites that still owe it.")
    overdue: bool = Field(description="Past due and still owed (逾期).")


class PlanPhaseStatus(StrictModel):
    """Progress of one phase of the plan (阶段进展)."""

    name: Line = Field(description="Phase name.")
    start: DateStr = Field(description="First day.")
    end: DateStr = Field(description="Last day.")
    status: Literal["pending", "started", "completed"] = Field(
        description="未开始 / 进行中 / 已完成."
    )


class PlanStep(StrictModel):
    """One item of the plan's history, applied or ignored with its reason (时间线)."""

    id: ItemId = Field(description="Item id.")
    kind: str = Field(description="Item kind.")
    author: SiteId = Field(description="Author site.")
    created_at: Timestamp = Field(
        description="Signed creation time (orders the steps)."
    )
    action: str = Field(description="approve, start, endorse, joint_report, reply, ...")
    label: str = Field(description="Chinese name of the step.")
    applied: bool = Field(
        description="False: the rules did not allow it here (ignored)."
    )
    state_after: PlanState = Field(description="The plan's state after this step.")
    reason: str | None = Field(default=None, description="Why ignored: a short code.")
    message: str | None = Field(default=None, description="Why ignored, in words.")


class PlanVote(StrictModel):
    """A satisfaction vote and its computed result (满意度测评)."""

    round: SafeInt = Field(description="Handling round the vote judged (1, 2, ...).")
    passed: bool = Field(description="满意 + 基本满意 > half of those present.")
    meeting: Line = Field(description="Meeting.")
    held_on: DateStr = Field(description="Day.")
    members: SafeInt = Field(description="Members of the standing committee.")
    present: SafeInt = Field(description="Present.")
    satisfied: SafeInt = Field(description="满意.")
    basically_satisfied: SafeInt = Field(description="基本满意.")
    unsatisfied: SafeInt = Field(description="不满意.")


class PlanSummary(StrictModel):
    """A plan in a list: its computed state and whether anything is overdue."""

    id: ItemId = Field(description="The plan item's id.")
    title: Title = Field(description="Title.")
    law: Line = Field(description="The law inspected.")
    lead: SiteId = Field(description="Lead site (牵头单位).")
    participants: _Sites = Field(description="Participating sites (参与单位).")
    created_at: Timestamp = Field(description="When the plan was created.")
    state: PlanState = Field(
        description="State computed from the signed items (docs/joint-inspections.md): "
        "draft 草案, approved 已批准, in_progress 实施中, reported 已报告, handed_over "
        "已交办, rectifying 整改中, evaluated 已测评, closed 已办结."
    )
    state_name: str = Field(description="State in Chinese, e.g. 整改中.")
    round: SafeInt = Field(
        description="Handling round (0 before the opinions are handed over)."
    )
    endorsed: SafeInt = Field(description="Participants that have endorsed.")
    overdue: bool = Field(description="Anything overdue today (China Standard Time).")


class PlanView(PlanSummary):
    """One plan in full: who has and has not endorsed or filed, deadlines, history."""

    today: DateStr = Field(description="The day overdue flags were computed for.")
    retracted: bool = Field(description="The author withdrew the plan.")
    endorsements: list[PlanSiteStatus] = Field(description="One per participant.")
    phases: list[PlanPhaseStatus] = Field(description="Phases in order.")
    local_reports: list[PlanSiteStatus] = Field(description="One per site of the plan.")
    opinion: ItemId | None = Field(
        description="The deliberation opinion (审议意见), once given."
    )
    handling_body: str | None = Field(
        description="Who handles the opinions (承办机关)."
    )
    reply_deadline: DateStr | None = Field(
        description="When this round's replies are due."
    )
    replies: list[PlanSiteStatus] = Field(
        description="This round, one per addressed site."
    )
    votes: list[PlanVote] = Field(description="Satisfaction votes, in order.")
    deadlines: list[PlanDeadline] = Field(description="What is due and by whom.")
    timeline: list[PlanStep] = Field(
        description="Every item referencing the plan, in order."
    )
    ignored: SafeInt = Field(
        description="Items the rules did not allow (from other nodes)."
    )


class PlanList(StrictModel):
    """A page of plans visible to the caller."""

    plans: list[PlanSummary] = Field(description="Plans, by log index.")
    next_cursor: int | None = Field(description="Pass as cursor for the next page.")
