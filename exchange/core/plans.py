"""The state of a joint inspection plan, computed from signed items (pure code).

A plan's state is never a stored, editable field: it is a function of the
``inspection_plan`` item and every signed item that references it. This module is that
function. It takes the items as data and does no I/O, so a partner can recompute any
plan's state offline from the items it holds, and every node that holds the same
items computes the same state.

States and who moves them (``lead`` = the plan's ``lead_site``)::

    draft ──approve(lead)──► approved ──start(lead; every participant endorsed)──►
    in_progress ──joint inspection_report(lead)──► reported
    ──deliberation_opinion(lead)──► handed_over ──first rectification_reply──►
    rectifying ──satisfaction_vote(lead; every addressed site replied this round)──►
    evaluated ──close(lead; evidence of the follow-up review, 回头看)──► closed

    rectifying ──failed satisfaction_vote──► handed_over   (next round, new deadline)

Items that take part (``schemas.items.PLAN_KINDS``; each names the plan in its body
and carries a ref to it):

* ``endorsement`` — a participating site countersigns (或不同意) while the plan is
  ``draft`` or ``approved``; each participant counts once (its first endorsement).
* ``plan_update`` — ``approve``, ``start``, ``phase_progress`` (lead or the phase's
  responsible sites, while ``in_progress``), ``satisfaction_vote`` (the vote's counts
  decide pass or fail, see :class:`schemas.kinds.SatisfactionVote`), ``close``.
* ``inspection_report`` — ``local`` reports by any site of the plan while
  ``in_progress`` (once per site); the ``joint`` report by the lead ends the inspection.
* ``deliberation_opinion`` — by the lead, with the handling body, the addressed sites
  (default: every site of the plan) and the deadline for their replies.
* ``rectification_reply`` — by an addressed site, answering that opinion; once per
  site and round.

Order: items are applied by their signed ``created_at``, then id, so every node holding
the same set of items reaches the same state whatever order replication delivered
them in. An item that the rules do not allow where it falls is **ignored** and reported
with its reason (it is a signed fact; nothing is erased). A node refuses such items
when they are pushed locally (:func:`check_candidate`), so ignored items come only from
elsewhere. Retractions of the plan by its author freeze it (nothing after applies).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from schemas.items import PLAN_KINDS

__all__ = [
    "STATES",
    "STATE_NAMES",
    "PlanEntry",
    "PlanStatus",
    "Refusal",
    "TimelineEntry",
    "check_candidate",
    "evaluate",
]

STATES = (
    "draft",
    "approved",
    "in_progress",
    "reported",
    "handed_over",
    "rectifying",
    "evaluated",
    "closed",
)
STATE_NAMES = {
    "draft": "草案",
    "approved": "已批准",
    "in_progress": "实施中",
    "reported": "已报告",
    "handed_over": "已交办",
    "rectifying": "整改中",
    "evaluated": "已测评",
    "closed": "已办结",
}
_ACTION_NAMES = {
    "endorse": "会签同意",
    "decline": "会签不同意",
    "approve": "批准方案",
    "start": "启动实施",
    "phase_progress": "阶段进展",
    "satisfaction_vote": "满意度测评",
    "close": "办结",
    "local_report": "本地检查报告",
    "joint_report": "执法检查报告",
    "opinion": "审议意见",
    "reply": "研究处理情况报告",
    "retraction": "撤回方案",
    "related": "相关条目",
}


@dataclass(frozen=True)
class PlanEntry:
    """An item as the state machine sees it.

    Attributes:
        id: Item id.
        kind: Item kind.
        author: Authoring site.
        created_at: The signed creation time (orders the items).
        body: The item's ``body`` object.
        refs: ``(rel, id)`` pairs of the item's refs.
        title: Its title.
    """

    id: str
    kind: str
    author: str
    created_at: datetime
    body: Mapping[str, Any]
    refs: tuple[tuple[str, str], ...] = ()
    title: str = ""

    @classmethod
    def from_item(cls, item_id: str, item: Mapping[str, Any]) -> PlanEntry:
        """Build from an item object (already schema-valid).

        Args:
            item_id: The item's id.
            item: The item object (from its canonical bytes).
        """
        return cls(
            id=item_id,
            kind=str(item["kind"]),
            author=str(item["author"]),
            created_at=datetime.fromisoformat(str(item["created_at"])),
            body=item.get("body") or {},
            refs=tuple((str(r["rel"]), str(r["id"])) for r in item.get("refs", [])),
            title=str(item.get("title", "")),
        )

    @property
    def order(self) -> tuple[datetime, str]:
        """Sort key: signed time, then id."""
        return (self.created_at, self.id)


@dataclass(frozen=True)
class Refusal:
    """Why an item is not applied: a short code and a sentence (Chinese, then English).

    Codes: ``plan_unknown``, ``not_a_plan``, ``missing_ref``, ``wrong_site``,
    ``wrong_state``, ``already_counted``, ``precondition``, ``out_of_order``,
    ``retracted``.
    """

    reason: str
    message: str


@dataclass(frozen=True)
class TimelineEntry:
    """One item in a plan's history."""

    id: str
    kind: str
    author: str
    created_at: datetime
    action: str
    applied: bool
    state_after: str
    refusal: Refusal | None = None

    @property
    def label(self) -> str:
        """Chinese name of the step."""
        return _ACTION_NAMES.get(self.action, self.action)


@dataclass
class PlanStatus:
    """A plan's computed state and what is pending (see :func:`evaluate`)."""

    plan: PlanEntry
    state: str = "draft"
    round: int = 0
    retracted: bool = False
    endorsements: dict[str, str] = field(
        default_factory=dict
    )  # site -> endorse|decline
    local_reports: dict[str, str] = field(default_factory=dict)  # site -> item id
    phases: dict[str, str] = field(
        default_factory=dict
    )  # phase -> pending|started|completed
    opinion: str | None = None
    addressed: list[str] = field(default_factory=list)
    reply_deadline: str | None = None
    replies: dict[str, str] = field(
        default_factory=dict
    )  # site -> item id (this round)
    votes: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)

    @property
    def lead(self) -> str:
        """The lead site."""
        return str(self.plan.body["lead_site"])

    @property
    def participants(self) -> list[str]:
        """The participating sites."""
        return [str(s) for s in self.plan.body["participating_sites"]]

    @property
    def sites(self) -> list[str]:
        """Lead, then participants."""
        return [self.lead, *self.participants]

    @property
    def ignored(self) -> list[TimelineEntry]:
        """Items the rules did not allow (replicated from elsewhere)."""
        return [t for t in self.timeline if not t.applied]

    def deadlines(self, today: date) -> list[dict[str, Any]]:
        """What is due, by whom, and whether it is overdue on ``today``.

        Each entry: ``what`` (code), ``label`` (Chinese), ``due`` (ISO date), ``sites``
        still owing it, ``overdue``.
        """
        out: list[dict[str, Any]] = []
        phases = self.plan.body.get("phases") or []

        def add(
            what: str, label: str, due: str | None, owing: list[str], live: bool
        ) -> None:
            if due is None:
                return
            overdue = live and bool(owing) and today > date.fromisoformat(due)
            out.append(
                {
                    "what": what,
                    "label": label,
                    "due": due,
                    "sites": owing,
                    "overdue": overdue,
                }
            )

        if phases:
            first, last = str(phases[0]["start"]), str(phases[-1]["end"])
            pending = [s for s in self.participants if s not in self.endorsements]
            add(
                "endorsements",
                "会签",
                first,
                pending,
                self.state in ("draft", "approved"),
            )
            live = self.state == "in_progress"
            for ph in phases:
                name = str(ph["name"])
                owing = (
                    []
                    if self.phases.get(name) == "completed"
                    else [str(s) for s in ph.get("responsible_sites") or [self.lead]]
                )
                add(f"phase:{name}", f"阶段：{name}", str(ph["end"]), owing, live)
            add(
                "local_reports",
                "本地检查报告",
                last,
                [s for s in self.sites if s not in self.local_reports],
                live,
            )
            add(
                "joint_report",
                "执法检查报告",
                last,
                [self.lead] if self.state in STATES[:3] else [],
                live,
            )
        add(
            "replies",
            "研究处理情况报告",
            self.reply_deadline,
            [s for s in self.addressed if s not in self.replies],
            self.state in ("handed_over", "rectifying"),
        )
        return out

    def overdue(self, today: date) -> bool:
        """Whether anything is overdue on ``today``."""
        return any(d["overdue"] for d in self.deadlines(today))


def _plan_of(entry: PlanEntry) -> str | None:
    value = entry.body.get("plan") if entry.kind in PLAN_KINDS else None
    return str(value) if value else None


def _action(entry: PlanEntry, plan_id: str) -> str:
    k, b = entry.kind, entry.body
    if k in PLAN_KINDS and _plan_of(entry) != plan_id:
        return "related"  # refers to this plan, but is a step of another one
    if k == "endorsement":
        return str(b.get("decision", "endorse"))
    if k == "plan_update":
        return str(b["action"])
    if k == "inspection_report":
        return "joint_report" if b.get("scope") == "joint" else "local_report"
    if k == "deliberation_opinion":
        return "opinion"
    if k == "rectification_reply":
        return "reply"
    if k == "retraction":
        return "retraction"
    return "related"


def _names(sites: Sequence[str]) -> str:
    return ", ".join(sites)


def _apply(st: PlanStatus, e: PlanEntry) -> Refusal | None:
    """Apply one item to ``st`` or return why it does not apply (``st`` unchanged)."""
    action = _action(e, st.plan.id)
    if action == "retraction":
        if e.body.get("target") == st.plan.id and e.author == st.plan.author:
            st.retracted = True
            return None
        return Refusal(
            "wrong_site",
            f"只有方案作者可以撤回 / only {st.plan.author} may retract the plan",
        )
    if action == "related":
        return None
    rel = PLAN_KINDS[e.kind]
    if (rel, st.plan.id) not in e.refs:
        return Refusal(
            "missing_ref",
            f"条目缺少对方案的引用 / refs must include "
            f"{{'rel': '{rel}', 'id': '{st.plan.id}'}}",
        )
    if st.retracted:
        return Refusal("retracted", "方案已撤回 / the plan was retracted by its author")
    if e.author not in st.sites:
        return Refusal(
            "wrong_site",
            f"{e.author} 不是本方案的参与单位 / {e.author} is "
            f"neither the lead nor a participant of this plan",
        )
    state = st.state

    def wrong_state(allowed: Sequence[str]) -> Refusal:
        want = " / ".join(f"{STATE_NAMES[s]} ({s})" for s in allowed)
        return Refusal(
            "wrong_state",
            f"方案当前为{STATE_NAMES[state]}，不能{_ACTION_NAMES.get(action, action)} "
            f"/ the plan is {state}; {action} needs it to be {want}",
        )

    def lead_only() -> Refusal | None:
        if e.author != st.lead:
            return Refusal(
                "wrong_site",
                f"只有牵头单位可以{_ACTION_NAMES.get(action, action)} / "
                f"only the lead site {st.lead} may {action} (not {e.author})",
            )
        return None

    if e.kind == "endorsement":
        if e.author == st.lead:
            return Refusal(
                "wrong_site",
                f"牵头单位不会签自己的方案 / the lead {st.lead} does not "
                "countersign its own plan",
            )
        if state not in ("draft", "approved"):
            return wrong_state(("draft", "approved"))
        if e.author in st.endorsements:
            return Refusal(
                "already_counted",
                f"{e.author} 已会签，每个参与单位只计一次 / "
                f"{e.author} has already answered; each participant counts once",
            )
        st.endorsements[e.author] = action
        return None

    if e.kind == "plan_update":
        b = e.body
        if action == "phase_progress":
            phases = {str(p["name"]): p for p in st.plan.body.get("phases") or []}
            phase = phases.get(str(b.get("phase")))
            if phase is None:
                return Refusal(
                    "precondition",
                    f"方案中没有阶段“{b.get('phase')}” / the plan has no "
                    f"phase {b.get('phase')!r} (phases: {_names(list(phases))})",
                )
            allowed = {st.lead, *(str(s) for s in phase.get("responsible_sites") or [])}
            if e.author not in allowed:
                return Refusal(
                    "wrong_site",
                    f"{e.author} 不负责该阶段 / {e.author} is not responsible "
                    f"for phase {phase['name']!r}",
                )
            if state != "in_progress":
                return wrong_state(("in_progress",))
            now, new = (
                st.phases.get(str(phase["name"]), "pending"),
                str(b["phase_status"]),
            )
            if now == "completed" or now == new:
                return Refusal(
                    "already_counted",
                    f"阶段“{phase['name']}”已{('完成' if now == 'completed' else '开始')} / "
                    f"phase {phase['name']!r} is already {now}",
                )
            st.phases[str(phase["name"])] = new
            return None
        refused = lead_only()
        if refused:
            return refused
        if action == "approve":
            if state != "draft":
                return wrong_state(("draft",))
            st.state = "approved"
        elif action == "start":
            if state != "approved":
                return wrong_state(("approved",))
            declined = [
                s for s in st.participants if st.endorsements.get(s) == "decline"
            ]
            if declined:
                return Refusal(
                    "precondition",
                    f"{_names(declined)} 不同意方案，请修订后重新发布 / "
                    f"declined by {_names(declined)}; issue a revised plan",
                )
            missing = [s for s in st.participants if s not in st.endorsements]
            if missing:
                return Refusal(
                    "precondition",
                    f"尚未会签：{_names(missing)} / not yet countersigned "
                    f"by {_names(missing)}",
                )
            st.state = "in_progress"
        elif action == "satisfaction_vote":
            if state != "rectifying":
                return wrong_state(("rectifying",))
            missing = [s for s in st.addressed if s not in st.replies]
            if missing:
                return Refusal(
                    "precondition",
                    f"尚未报送研究处理情况：{_names(missing)} / no handling "
                    f"report yet this round from {_names(missing)}",
                )
            vote = b["vote"]
            passed = 2 * (
                int(vote["satisfied"]) + int(vote["basically_satisfied"])
            ) > int(vote["present"])
            st.votes.append({"round": st.round, "passed": passed, **vote})
            if passed:
                st.state = "evaluated"
            else:
                st.state, st.round = "handed_over", st.round + 1
                st.replies, st.reply_deadline = {}, str(b["redo_deadline"])
        elif action == "close":
            if state != "evaluated":
                return wrong_state(("evaluated",))
            st.state = "closed"
        return None

    if e.kind == "inspection_report":
        if action == "local_report":
            if state != "in_progress":
                return wrong_state(("in_progress",))
            if e.author in st.local_reports:
                return Refusal(
                    "already_counted",
                    f"{e.author} 已报送本地检查报告 / {e.author} has "
                    "already filed its local report",
                )
            st.local_reports[e.author] = e.id
            return None
        refused = lead_only()
        if refused:
            return refused
        if state != "in_progress":
            return wrong_state(("in_progress",))
        st.state = "reported"
        return None

    if e.kind == "deliberation_opinion":
        refused = lead_only()
        if refused:
            return refused
        if state != "reported":
            return wrong_state(("reported",))
        addressed = [str(s) for s in e.body.get("addressed_sites") or []] or st.sites
        strangers = [s for s in addressed if s not in st.sites]
        if strangers:
            return Refusal(
                "wrong_site",
                f"{_names(strangers)} 不是本方案的单位 / addressed_sites "
                f"name {_names(strangers)}, not sites of this plan",
            )
        st.state, st.round, st.opinion = "handed_over", 1, e.id
        st.addressed, st.reply_deadline, st.replies = (
            addressed,
            str(e.body["deadline"]),
            {},
        )
        return None

    # rectification_reply
    if state not in ("handed_over", "rectifying"):
        return wrong_state(("handed_over", "rectifying"))
    if e.author not in st.addressed:
        return Refusal(
            "wrong_site",
            f"审议意见未要求 {e.author} 报告 / the opinion does not "
            f"address {e.author} (addressed: {_names(st.addressed)})",
        )
    if e.body.get("opinion") != st.opinion:
        return Refusal(
            "precondition",
            f"答复的不是本方案的审议意见 / it answers "
            f"{e.body.get('opinion')}, not this plan's opinion {st.opinion}",
        )
    if e.author in st.replies:
        return Refusal(
            "already_counted",
            f"{e.author} 本轮已报送 / {e.author} has already "
            f"reported in round {st.round}",
        )
    st.replies[e.author] = e.id
    st.state = "rectifying"
    return None


def evaluate(plan: PlanEntry, related: Sequence[PlanEntry]) -> PlanStatus:
    """Compute a plan's state from the plan item and the items that reference it.

    Args:
        plan: The ``inspection_plan`` item.
        related: Items referencing it, in any order (the plan itself is skipped).

    Returns:
        State, round, who has endorsed or filed, votes, and the timeline (every
        item with whether it applied and, if not, why).
    """
    st = PlanStatus(plan=plan)
    for ph in plan.body.get("phases") or []:
        st.phases[str(ph["name"])] = "pending"
    for e in sorted((r for r in related if r.id != plan.id), key=lambda r: r.order):
        refusal = _apply(st, e)
        st.timeline.append(
            TimelineEntry(
                e.id,
                e.kind,
                e.author,
                e.created_at,
                _action(e, plan.id),
                refusal is None,
                st.state,
                refusal,
            )
        )
    return st


def check_candidate(
    plan: PlanEntry | None, related: Sequence[PlanEntry], candidate: PlanEntry
) -> Refusal | None:
    """Whether a node should accept ``candidate`` pushed locally for ``plan``.

    It must apply where its ``created_at`` puts it, and must not make any item that
    applied before stop applying (which a back-dated step would do).

    Args:
        plan: The plan named in the candidate's body, or None if not stored here.
        related: The items already stored that reference the plan.
        candidate: The new item.

    Returns:
        None to accept, or the refusal.
    """
    plan_id = _plan_of(candidate)
    if plan is None:
        return Refusal(
            "plan_unknown",
            f"本节点没有方案 {plan_id} / plan {plan_id} is not known "
            "on this node (yet): push the plan first, or retry once it has replicated here",
        )
    if plan.kind != "inspection_plan":
        return Refusal(
            "not_a_plan",
            f"{plan_id} 不是联合执法检查方案 / {plan_id} is a "
            f"{plan.kind}, not an inspection_plan",
        )
    if any(r.id == candidate.id for r in related):
        return None  # the same item again: an idempotent push
    before = {t.id for t in evaluate(plan, related).timeline if t.applied}
    after = evaluate(plan, [*related, candidate])
    mine = next(t for t in after.timeline if t.id == candidate.id)
    if not mine.applied:
        return mine.refusal
    lost = [t for t in after.timeline if t.id in before and not t.applied]
    if lost:
        return Refusal(
            "out_of_order",
            f"created_at {candidate.created_at.isoformat()} 早于已生效的 "
            f"{lost[0].id} / is earlier than steps it would invalidate; check the signer's clock",
        )
    return None
