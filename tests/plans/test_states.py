"""The plan state machine (pure): every state, the failed-vote loop, every refused
transition, convergence whatever the delivery order, and deadlines."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from exchange.core.plans import STATES, check_candidate, evaluate
from exchange.templates import template
from tests.support.plans import Flow

Step = tuple[dict[str, Any], str]


def _run(flow: Flow, steps: list[Step]) -> Any:
    return evaluate(flow.entry(flow.plan_item), [flow.entry(it) for it, _ in steps])


def test_every_state_including_the_failed_vote_loop() -> None:
    flow = Flow()
    steps = flow.happy_path()
    done: list[Step] = []
    assert evaluate(flow.entry(flow.plan_item), []).state == "draft"
    seen = {"draft"}
    for item, want in steps:
        assert (
            check_candidate(
                flow.entry(flow.plan_item),
                [flow.entry(i) for i, _ in done],
                flow.entry(item),
            )
            is None
        ), item["body"]
        done.append((item, want))
        st = _run(flow, done)
        assert st.state == want, (item["kind"], item["body"].get("action"))
        seen.add(st.state)
    assert seen == set(STATES)
    assert all(t.applied for t in st.timeline) and st.ignored == []
    assert st.round == 2
    assert [v["passed"] for v in st.votes] == [False, True]
    assert st.endorsements == {
        "xuzhou-tongshan": "endorse",
        "suzhou-wuzhong": "endorse",
    }
    assert set(st.local_reports) == {"xuzhou-tongshan", "suzhou-wuzhong"}
    assert st.phases == {"动员部署": "completed", "实地检查": "started"}
    assert [t.state_after for t in st.timeline] == [w for _, w in steps]


def _prefix(flow: Flow, upto: str) -> list[Step]:
    """The happy path up to (and including) the first step that reaches ``upto``."""
    out: list[Step] = []
    for item, want in flow.happy_path():
        out.append((item, want))
        if want == upto:
            return out
    raise AssertionError(upto)


P1, P2, LEAD = "xuzhou-tongshan", "suzhou-wuzhong", "huaibei-duji"
Bad = Callable[[Flow], tuple[list[Step], dict[str, Any]]]

REFUSED: dict[str, tuple[Bad, str]] = {
    "start skips approval": (lambda f: ([], f.update("start")), "wrong_state"),
    "participant approves": (
        lambda f: ([], f.update("approve", author=P1)),
        "wrong_site",
    ),
    "lead endorses itself": (lambda f: ([], f.endorse(LEAD)), "wrong_site"),
    "outsider endorses": (lambda f: ([], f.endorse("jiaxing-nanhu")), "wrong_site"),
    "second endorsement": (
        lambda f: ([(f.endorse(P1), "draft")], f.endorse(P1, "decline")),
        "already_counted",
    ),
    "start before every endorsement": (
        lambda f: (
            [(f.update("approve"), "approved"), (f.endorse(P1), "approved")],
            f.update("start"),
        ),
        "precondition",
    ),
    "start after a decline": (
        lambda f: (
            [
                (f.update("approve"), "approved"),
                (f.endorse(P1), "approved"),
                (f.endorse(P2, "decline"), "approved"),
            ],
            f.update("start"),
        ),
        "precondition",
    ),
    "endorsement after the start": (
        lambda f: (_prefix(f, "in_progress"), f.endorse("jiaxing-nanhu")),
        "wrong_site",
    ),
    "late endorsement": (
        lambda f: (_prefix(f, "in_progress"), f.endorse(P1)),
        "wrong_state",
    ),
    "participant files the joint report": (
        lambda f: (_prefix(f, "in_progress"), f.report(P1, "joint")),
        "wrong_site",
    ),
    "joint report before the start": (
        lambda f: ([(f.update("approve"), "approved")], f.report(LEAD, "joint")),
        "wrong_state",
    ),
    "local report twice": (
        lambda f: (
            [*_prefix(f, "in_progress"), (f.report(P1), "in_progress")],
            f.report(P1),
        ),
        "already_counted",
    ),
    "unknown phase": (
        lambda f: (_prefix(f, "in_progress"), f.phase("验收", "started")),
        "precondition",
    ),
    "phase by a site not responsible": (
        lambda f: (
            _prefix(f, "in_progress"),
            f.phase("动员部署", "started", author=P1),
        ),
        "wrong_site",
    ),
    "opinion before the report": (
        lambda f: (_prefix(f, "in_progress"), f.opinion()),
        "wrong_state",
    ),
    "opinion addressed to an outsider": (
        lambda f: (_prefix(f, "reported"), f.opinion(addressed=[P1, "jiaxing-nanhu"])),
        "wrong_site",
    ),
    "reply by a site not addressed": (
        lambda f: (
            [*_prefix(f, "reported"), (f.opinion(addressed=[P1]), "handed_over")],
            f.reply(P2),
        ),
        "wrong_site",
    ),
    "reply to another opinion": (
        lambda f: (
            _prefix(f, "handed_over"),
            f.reply(P1, opinion="sha256:" + "9" * 64),
        ),
        "precondition",
    ),
    "reply twice in a round": (
        lambda f: (_prefix(f, "rectifying"), f.reply(LEAD)),
        "already_counted",
    ),
    "vote before every reply": (
        lambda f: (_prefix(f, "rectifying"), f.vote(passed=True)),
        "precondition",
    ),
    "participant holds the vote": (
        lambda f: (
            [
                *_prefix(f, "rectifying"),
                (f.reply(P1), "rectifying"),
                (f.reply(P2), "rectifying"),
            ],
            f.vote(True, author=P1),
        ),
        "wrong_site",
    ),
    "close before the vote": (
        lambda f: (_prefix(f, "rectifying"), f.update("close")),
        "wrong_state",
    ),
    "anything after closing": (
        lambda f: (f.happy_path(), f.update("approve")),
        "wrong_state",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_transitions(case: str) -> None:
    make, reason = REFUSED[case]
    flow = Flow()
    before, bad = make(flow)
    plan = flow.entry(flow.plan_item)
    related = [flow.entry(i) for i, _ in before]
    refusal = check_candidate(plan, related, flow.entry(bad))
    assert refusal is not None and refusal.reason == reason, (case, refusal)
    assert " / " in refusal.message  # Chinese, then English
    # Replicated anyway: the state machine ignores it and says why.
    st = evaluate(plan, [*related, flow.entry(bad)])
    assert st.state == evaluate(plan, related).state
    (ignored,) = st.ignored
    assert ignored.refusal is not None and ignored.refusal.reason == reason


def test_missing_ref_retraction_and_unknown_plans() -> None:
    flow = Flow()
    plan = flow.entry(flow.plan_item)
    endorsement = flow.endorse(P1)
    endorsement["refs"] = []
    refusal = check_candidate(plan, [], flow.entry(endorsement))
    assert refusal is not None and refusal.reason == "missing_ref"
    retracted = [flow.entry(flow.retract_plan())]
    refusal = check_candidate(plan, retracted, flow.entry(flow.update("approve")))
    assert refusal is not None and refusal.reason == "retracted"
    assert evaluate(plan, retracted).retracted
    refusal = check_candidate(None, [], flow.entry(flow.endorse(P1)))
    assert refusal is not None and refusal.reason == "plan_unknown"
    lesson = Flow.entry(template("lesson", LEAD))
    refusal = check_candidate(lesson, [], flow.entry(flow.endorse(P1)))
    assert refusal is not None and refusal.reason == "not_a_plan"


def _plus30(item: dict[str, Any]) -> str:
    return (
        datetime.fromisoformat(item["created_at"]) + timedelta(seconds=30)
    ).isoformat()


def test_a_back_dated_step_is_refused() -> None:
    flow = Flow()
    approve, e1, e2, start = (
        flow.update("approve"),
        flow.endorse(P1),
        flow.endorse(P2),
        flow.update("start"),
    )
    plan = flow.entry(flow.plan_item)
    stored = [flow.entry(i) for i in (approve, e1, e2)]
    # Signed with a slow clock, a start falls before the endorsements: not allowed there.
    early = dict(start, created_at=_plus30(approve), title="启动实施（时钟偏慢）")
    refusal = check_candidate(plan, stored, flow.entry(early))
    assert refusal is not None and refusal.reason == "precondition"
    # A back-dated decline would apply, but would undo the endorsement and start that
    # already applied: refused as out of order.
    stored.append(flow.entry(start))
    decline = dict(flow.endorse(P2, "decline"), created_at=_plus30(e1))
    refusal = check_candidate(plan, stored, flow.entry(decline))
    assert refusal is not None and refusal.reason == "out_of_order"
    assert "clock" in refusal.message
    # Pushing an item that is already there is idempotent.
    assert check_candidate(plan, stored, flow.entry(e1)) is None


def test_same_items_in_any_order_give_the_same_state() -> None:
    flow = Flow()
    entries = [flow.entry(i) for i, _ in flow.happy_path()]
    plan = flow.entry(flow.plan_item)
    want = evaluate(plan, entries)
    rng = random.Random(10)
    for _ in range(5):
        shuffled = entries[:]
        rng.shuffle(shuffled)
        got = evaluate(plan, shuffled)
        assert (got.state, got.round, [t.id for t in got.timeline]) == (
            want.state,
            want.round,
            [t.id for t in want.timeline],
        )


def test_deadlines_and_overdue_flags() -> None:
    flow = Flow()
    plan = flow.entry(flow.plan_item)
    first = date.fromisoformat(flow.plan_item["body"]["phases"][0]["start"])
    st = evaluate(plan, [flow.entry(flow.endorse(P1))])
    d = {x["what"]: x for x in st.deadlines(first)}
    assert d["endorsements"]["sites"] == [P2] and not d["endorsements"]["overdue"]
    assert st.deadlines(first + timedelta(days=1))[0]["overdue"]
    assert st.overdue(first + timedelta(days=1)) and not st.overdue(first)
    # Replies: overdue only for sites that have not filed, only after the deadline.
    steps = [*_prefix(flow, "handed_over"), (flow.reply(P1), "rectifying")]
    st = _run(flow, steps)
    due = date.fromisoformat(st.reply_deadline)
    (replies,) = [x for x in st.deadlines(due) if x["what"] == "replies"]
    assert replies["sites"] == [LEAD, P2] and not replies["overdue"]
    (replies,) = [
        x for x in st.deadlines(due + timedelta(days=1)) if x["what"] == "replies"
    ]
    assert replies["overdue"]
    # Nothing is overdue once the plan is closed.
    st = _run(flow, flow.happy_path())
    assert not st.overdue(due + timedelta(days=365))


def test_steps_signed_in_the_same_second_apply_in_lifecycle_order() -> None:
    """``created_at`` has one-second precision: a tie must not refuse a valid step."""
    for attempt in range(12):  # item ids differ each time; the order must not matter
        flow = Flow()
        approve, e1, e2 = flow.update("approve"), flow.endorse(P1), flow.endorse(P2)
        start = flow.update("start", note=f"第{attempt}次")
        p1 = flow.phase("动员部署", "started")
        p2 = flow.phase("动员部署", "completed")
        same = approve["created_at"]
        for it in (e1, e2, start, p1, p2):
            it["created_at"] = same
        plan = flow.entry(flow.plan_item)
        stored = [flow.entry(i) for i in (approve, e1, e2)]
        assert check_candidate(plan, stored, flow.entry(start)) is None
        st = evaluate(plan, [*stored, *(flow.entry(i) for i in (start, p2, p1))])
        assert st.state == "in_progress" and st.ignored == [], [
            (t.action, t.refusal) for t in st.ignored
        ]
        assert st.phases["动员部署"] == "completed"


def test_refusals_read_as_sentences_in_both_languages() -> None:
    flow = Flow()
    plan = flow.entry(flow.plan_item)
    names = {LEAD: "杜集区人大常委会", P1: "铜山区人大常委会"}
    report = flow.entry(flow.report(P1, scope="joint"))
    refusal = check_candidate(plan, [], report)
    assert refusal is not None and refusal.reason == "wrong_site"
    assert refusal.text("zh", names) == (
        "只有牵头单位（杜集区人大常委会）可以报送执法检查报告，铜山区人大常委会不能。"
    )
    assert refusal.text("en", names) == (
        "Only the lead, 杜集区人大常委会, can file the joint inspection report; "
        "铜山区人大常委会 cannot."
    )
    reply = flow.entry(flow.reply(LEAD, opinion="sha256:" + "9" * 64))
    refusal = check_candidate(plan, [], reply)
    assert refusal is not None and refusal.reason == "wrong_state"
    assert refusal.text("zh") == (
        "方案目前为“草案”，不能报送研究处理情况报告；此步骤须在方案为“已交办”或"
        "“整改中”时进行。"
    )
    assert "may reply" not in refusal.message and "joint_report" not in refusal.message


def test_each_endorsement_is_linked_to_its_item() -> None:
    flow = Flow()
    e1 = flow.endorse(P1)
    st = evaluate(flow.entry(flow.plan_item), [flow.entry(e1)])
    assert st.endorsement_items == {P1: flow.entry(e1).id}
