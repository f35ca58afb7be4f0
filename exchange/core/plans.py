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

The rules are data: :data:`TRANSITIONS` says for each step which item kind carries it,
in which states it applies, where it leads and who signs it; the few extra checks
(every participant endorsed before the start, every addressed site replied before the
vote ...) are one small function per step. Refusals carry a reason code and a sentence
template from :mod:`schemas.labels`, rendered in Chinese or English with site names.

Order: items are applied by their signed ``created_at``; steps signed within the same
second (the precision of ``created_at``) in lifecycle order; then by id. So every node
holding the same set of items reaches the same state whatever order replication
delivered them in, and an approval and a start signed in the same second are not
refused for being in the wrong order.

An item that the rules do not allow where it falls is **ignored** and reported
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
from schemas.labels import (
    KIND_LABELS,
    REFUSAL_MESSAGES,
    STATE_LABELS,
    STEP_LABELS,
    STEP_VERBS,
    VALUE_LABELS,
    text,
)

__all__ = [
    "MESSAGE_CODES",
    "MESSAGE_FIELDS",
    "REASONS",
    "STATES",
    "STATE_NAMES",
    "STEPS",
    "TRANSITIONS",
    "PlanEntry",
    "PlanStatus",
    "Refusal",
    "TimelineEntry",
    "Transition",
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
STATE_NAMES = {s: STATE_LABELS[s][0] for s in STATES}
"""Chinese name of each state (for API fields such as ``state_name``)."""

STEPS = (
    "endorse",
    "decline",
    "approve",
    "start",
    "phase_progress",
    "local_report",
    "joint_report",
    "opinion",
    "reply",
    "satisfaction_vote",
    "close",
    "retraction",
    "related",
)
"""Every step an item can be for a plan, in lifecycle order."""

REASONS = (
    "plan_unknown",
    "not_a_plan",
    "missing_ref",
    "wrong_site",
    "wrong_state",
    "already_counted",
    "precondition",
    "out_of_order",
    "retracted",
    "audience_wider",
)
"""Refusal reason codes (``Refusal.reason``), stable on the wire."""


@dataclass(frozen=True)
class Transition:
    """One row of the lifecycle table.

    Attributes:
        kind: The item kind that carries the step.
        allowed: States in which the step applies.
        to: The state after it (None: unchanged).
        who: Who may sign it: ``lead``, ``participant`` (not the lead), ``site`` (any
            site of the plan), ``phase`` (the lead or the phase's responsible sites),
            ``addressed`` (sites the deliberation opinions address).
    """

    kind: str
    allowed: tuple[str, ...]
    to: str | None
    who: str


TRANSITIONS: dict[str, Transition] = {
    "endorse": Transition("endorsement", ("draft", "approved"), None, "participant"),
    "decline": Transition("endorsement", ("draft", "approved"), None, "participant"),
    "approve": Transition("plan_update", ("draft",), "approved", "lead"),
    "start": Transition("plan_update", ("approved",), "in_progress", "lead"),
    "phase_progress": Transition("plan_update", ("in_progress",), None, "phase"),
    "local_report": Transition("inspection_report", ("in_progress",), None, "site"),
    "joint_report": Transition(
        "inspection_report", ("in_progress",), "reported", "lead"
    ),
    "opinion": Transition("deliberation_opinion", ("reported",), "handed_over", "lead"),
    "reply": Transition(
        "rectification_reply", ("handed_over", "rectifying"), "rectifying", "addressed"
    ),
    # A failed vote returns the plan to handed_over for the next round.
    "satisfaction_vote": Transition(
        "plan_update", ("rectifying",), "evaluated", "lead"
    ),
    "close": Transition("plan_update", ("evaluated",), "closed", "lead"),
}
"""The lifecycle: which step applies in which states, where it leads, who signs it."""

_STAGE = {step: i for i, step in enumerate(STEPS)}
_STAGE["related"] = -1

_SITE_FIELDS = ("site", "lead", "author")
MESSAGE_FIELDS = frozenset(
    {
        "plan", "kind", "kind_en", "rel", "author", "site", "sites", "lead",
        "state", "state_en", "step", "step_en", "allowed", "allowed_en",
        "phase", "phases", "phase_status", "phase_status_en", "opinion", "current",
        "round", "created_at", "later",
    }
)  # fmt: skip
"""Placeholders a refusal template may use (``_en``: the English label)."""

MESSAGE_CODES = (
    "plan_unknown", "not_a_plan", "missing_ref", "retract_not_author", "retracted",
    "not_a_party", "wrong_state", "lead_only", "lead_not_endorse", "endorsed_once",
    "no_such_phase", "not_phase_site", "phase_done", "declined", "not_endorsed",
    "replies_missing", "local_report_once", "not_plan_sites", "not_addressed",
    "wrong_opinion", "reply_once", "out_of_order", "audience_wider",
)  # fmt: skip
"""Every sentence template the state machine uses (in :data:`schemas.labels.REFUSAL_MESSAGES`)."""


def _render_param(key: str, value: Any, lang: str, names: Mapping[str, str]) -> str:
    if key in _SITE_FIELDS:
        return names.get(str(value), str(value))
    if key == "sites":
        sep = "、" if lang != "en" else ", "
        return sep.join(names.get(str(s), str(s)) for s in value)
    if key == "state":
        return text(STATE_LABELS[value], lang)
    if key == "allowed":
        sep = "”或“" if lang != "en" else " or "
        return sep.join(text(STATE_LABELS[s], lang) for s in value)
    if key == "step":
        return text(STEP_VERBS[value], lang)
    if key == "kind":
        name = text(KIND_LABELS[value], lang) if value in KIND_LABELS else str(value)
        return name.lower() if lang == "en" else name
    if key == "phase_status":
        name = text(VALUE_LABELS["phase_status"][value], lang)
        return name.lower() if lang == "en" else name
    if key == "phases":
        return ("、" if lang != "en" else ", ").join(str(p) for p in value)
    return str(value)


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


@dataclass(frozen=True)
class Refusal:
    """Why an item is not applied: a reason code and the sentence that explains it.

    Attributes:
        reason: One of :data:`REASONS` (stable; clients branch on it).
        code: The sentence template, one of :data:`MESSAGE_CODES`.
        params: Values for the template (site ids, states, steps ...).
    """

    reason: str
    code: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def text(self, lang: str = "zh", names: Mapping[str, str] | None = None) -> str:
        """The sentence in ``lang``, site ids shown as ``names`` where given."""
        values: dict[str, str] = {}
        for key, value in self.params.items():
            values[key] = _render_param(key, value, lang, names or {})
            values[f"{key}_en"] = _render_param(key, value, "en", names or {})
        return text(REFUSAL_MESSAGES[self.code], lang).format(**values)

    @property
    def message(self) -> str:
        """Chinese, then English, with site ids (what the API returns)."""
        return f"{self.text('zh')} / {self.text('en')}"


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
    body: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Chinese name of the step."""
        return STEP_LABELS[self.action][0]

    def detail(self, lang: str = "zh") -> str:
        """What a person needs beside the step's name: the phase, or the vote result."""
        if self.action == "phase_progress":
            status = VALUE_LABELS["phase_status"].get(
                str(self.body.get("phase_status"))
            )
            return f"{self.body.get('phase')} · {text(status, lang)}" if status else ""
        if self.action == "satisfaction_vote" and isinstance(
            self.body.get("vote"), Mapping
        ):
            v = self.body["vote"]
            passed = 2 * (int(v["satisfied"]) + int(v["basically_satisfied"])) > int(
                v["present"]
            )
            return text(("通过", "passed") if passed else ("未通过", "failed"), lang)
        return ""


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
    endorsement_items: dict[str, str] = field(default_factory=dict)  # site -> item id
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
        still owing it, ``overdue``. Once the plan has moved past the states in which
        something can still be filed (a phase report after the inspection, replies
        after the vote), nobody owes it any more.
        """
        out: list[dict[str, Any]] = []
        phases = self.plan.body.get("phases") or []
        now = STATES.index(self.state)

        def add(
            what: str, label: str, due: str | None, owing: list[str], live: bool
        ) -> None:
            if due is None:
                return
            if not live and now > STATES.index(_LAST_OWED[what.split(":")[0]]):
                owing = []
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


# The last state in which each deadline's item can still be filed.
_LAST_OWED = {
    "endorsements": "approved",
    "phase": "in_progress",
    "local_reports": "in_progress",
    "joint_report": "in_progress",
    "replies": "rectifying",
}


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


def _order(e: PlanEntry, plan: PlanEntry) -> tuple[Any, ...]:
    """Signed time; within one second, lifecycle order; then id.

    Signing times have one-second precision, so two steps signed in the same second
    (an approval and the start, say) are put in the order the lifecycle needs rather
    than by id, and every node still sorts the same items the same way.
    """
    step = _action(e, plan.id)
    sub = 0
    if step == "phase_progress":
        names = [str(p["name"]) for p in plan.body.get("phases") or []]
        phase = str(e.body.get("phase"))
        sub = 2 * (names.index(phase) if phase in names else len(names))
        sub += e.body.get("phase_status") == "completed"
    return (e.created_at, _STAGE.get(step, -1), sub, e.id)


def _refuse(reason: str, code: str, **params: Any) -> Refusal:
    return Refusal(reason, code, params)


def _apply(st: PlanStatus, e: PlanEntry) -> Refusal | None:
    """Apply one item to ``st`` or return why it does not apply (``st`` unchanged)."""
    action = _action(e, st.plan.id)
    if action == "retraction":
        if e.body.get("target") == st.plan.id and e.author == st.plan.author:
            st.retracted = True
            return None
        return _refuse("wrong_site", "retract_not_author", author=st.plan.author)
    if action == "related":
        return None
    rel = PLAN_KINDS[e.kind]
    if (rel, st.plan.id) not in e.refs:
        return _refuse("missing_ref", "missing_ref", rel=rel, plan=st.plan.id)
    if st.retracted:
        return _refuse("retracted", "retracted")
    if e.author not in st.sites:
        return _refuse("wrong_site", "not_a_party", site=e.author)
    rule = TRANSITIONS[action]
    if rule.who == "lead" and e.author != st.lead:
        return _refuse(
            "wrong_site", "lead_only", lead=st.lead, step=action, site=e.author
        )
    if rule.who == "participant" and e.author == st.lead:
        return _refuse("wrong_site", "lead_not_endorse", lead=st.lead)
    phase: Mapping[str, Any] | None = None
    if rule.who == "phase":
        phases = {str(p["name"]): p for p in st.plan.body.get("phases") or []}
        phase = phases.get(str(e.body.get("phase")))
        if phase is None:
            return _refuse(
                "precondition", "no_such_phase",
                phase=e.body.get("phase"), phases=list(phases),
            )  # fmt: skip
        allowed = {st.lead, *(str(s) for s in phase.get("responsible_sites") or [])}
        if e.author not in allowed:
            return _refuse(
                "wrong_site", "not_phase_site", site=e.author, phase=phase["name"]
            )
    if st.state not in rule.allowed:
        return _refuse(
            "wrong_state", "wrong_state",
            state=st.state, step=action, allowed=list(rule.allowed),
        )  # fmt: skip
    refused = _STEP_RULES[action](st, e, phase)
    if refused is None and rule.to is not None and action != "satisfaction_vote":
        st.state = rule.to
    return refused


def _endorse(st: PlanStatus, e: PlanEntry, _: Any) -> Refusal | None:
    if e.author in st.endorsements:
        return _refuse("already_counted", "endorsed_once", site=e.author)
    st.endorsements[e.author] = _action(e, st.plan.id)
    st.endorsement_items[e.author] = e.id
    return None


def _phase_progress(st: PlanStatus, e: PlanEntry, phase: Any) -> Refusal | None:
    name = str(phase["name"])
    now, new = st.phases.get(name, "pending"), str(e.body["phase_status"])
    if now == "completed" or now == new:
        return _refuse("already_counted", "phase_done", phase=name, phase_status=now)
    st.phases[name] = new
    return None


def _start(st: PlanStatus, e: PlanEntry, _: Any) -> Refusal | None:
    declined = [s for s in st.participants if st.endorsements.get(s) == "decline"]
    if declined:
        return _refuse("precondition", "declined", sites=declined)
    missing = [s for s in st.participants if s not in st.endorsements]
    if missing:
        return _refuse("precondition", "not_endorsed", sites=missing)
    return None


def _local_report(st: PlanStatus, e: PlanEntry, _: Any) -> Refusal | None:
    if e.author in st.local_reports:
        return _refuse("already_counted", "local_report_once", site=e.author)
    st.local_reports[e.author] = e.id
    return None


def _opinion(st: PlanStatus, e: PlanEntry, _: Any) -> Refusal | None:
    addressed = [str(s) for s in e.body.get("addressed_sites") or []] or st.sites
    strangers = [s for s in addressed if s not in st.sites]
    if strangers:
        return _refuse("wrong_site", "not_plan_sites", sites=strangers)
    st.round, st.opinion = 1, e.id
    st.addressed, st.reply_deadline, st.replies = addressed, str(e.body["deadline"]), {}
    return None


def _reply(st: PlanStatus, e: PlanEntry, _: Any) -> Refusal | None:
    if e.author not in st.addressed:
        return _refuse("wrong_site", "not_addressed", site=e.author, sites=st.addressed)
    if e.body.get("opinion") != st.opinion:
        return _refuse(
            "precondition", "wrong_opinion",
            opinion=e.body.get("opinion"), current=st.opinion,
        )  # fmt: skip
    if e.author in st.replies:
        return _refuse("already_counted", "reply_once", site=e.author, round=st.round)
    st.replies[e.author] = e.id
    return None


def _vote(st: PlanStatus, e: PlanEntry, _: Any) -> Refusal | None:
    missing = [s for s in st.addressed if s not in st.replies]
    if missing:
        return _refuse("precondition", "replies_missing", sites=missing)
    vote = e.body["vote"]
    passed = 2 * (int(vote["satisfied"]) + int(vote["basically_satisfied"])) > int(
        vote["present"]
    )
    st.votes.append({"round": st.round, "passed": passed, **vote})
    if passed:
        st.state = "evaluated"
    else:
        st.state, st.round = "handed_over", st.round + 1
        st.replies, st.reply_deadline = {}, str(e.body["redo_deadline"])
    return None


def _nothing(st: PlanStatus, e: PlanEntry, _: Any) -> Refusal | None:
    return None


_STEP_RULES = {
    "endorse": _endorse,
    "decline": _endorse,
    "approve": _nothing,
    "start": _start,
    "phase_progress": _phase_progress,
    "local_report": _local_report,
    "joint_report": _nothing,
    "opinion": _opinion,
    "reply": _reply,
    "satisfaction_vote": _vote,
    "close": _nothing,
}


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
    for e in sorted(
        (r for r in related if r.id != plan.id), key=lambda r: _order(r, plan)
    ):
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
                e.body,
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
        return _refuse("plan_unknown", "plan_unknown", plan=plan_id)
    if plan.kind != "inspection_plan":
        return _refuse("not_a_plan", "not_a_plan", plan=plan_id, kind=plan.kind)
    if any(r.id == candidate.id for r in related):
        return None  # the same item again: an idempotent push
    before = {t.id for t in evaluate(plan, related).timeline if t.applied}
    after = evaluate(plan, [*related, candidate])
    mine = next(t for t in after.timeline if t.id == candidate.id)
    if not mine.applied:
        return mine.refusal
    lost = [t for t in after.timeline if t.id in before and not t.applied]
    if lost:
        return _refuse(
            "out_of_order", "out_of_order",
            created_at=candidate.created_at.isoformat(), later=lost[0].id,
        )  # fmt: skip
    return None
