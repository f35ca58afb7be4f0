"""The lifecycle is documented once, from the rules: docs, /openapi.json, templates."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from exchange.core.plan_doc import lifecycle_markdown
from exchange.core.plans import REASONS, TRANSITIONS, check_candidate, evaluate
from exchange.http.openapi import build_openapi
from exchange.templates import PLAN_ACTIONS, template
from schemas.items import ITEM_ADAPTER
from schemas.kinds import PlanAction
from tests.support.plans import Flow

DOC = Path(__file__).resolve().parents[2] / "docs" / "joint-inspections.md"


def test_the_doc_and_openapi_carry_the_generated_lifecycle() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert text.startswith("# 联合执法检查")  # Chinese first
    begin, end = "<!-- lifecycle:begin -->\n", "<!-- lifecycle:end -->"
    embedded = text.split(begin, 1)[1].split(end, 1)[0]
    assert embedded == lifecycle_markdown(), (
        "docs/joint-inspections.md is out of date: paste lifecycle_markdown() "
        "(exchange/core/plan_doc.py) between the lifecycle markers"
    )
    for step in TRANSITIONS:
        assert f"(`{step}`)" in embedded
    for reason in REASONS:
        assert f"`{reason}`" in embedded
    op = build_openapi()["paths"]["/v1/plans/{id}"]["get"]
    assert op["description"] == lifecycle_markdown()


def test_a_template_for_every_plan_action_applies_where_it_belongs() -> None:
    assert set(PLAN_ACTIONS) == set(get_args(PlanAction))
    flow = Flow()
    plan = flow.entry(flow.plan_item)
    states = {
        "approve": "draft",
        "start": "approved",
        "phase_progress": "in_progress",
        "satisfaction_vote": "rectifying",
        "close": "evaluated",
    }
    steps = [item for item, _ in flow.happy_path()]
    for n in range(len(steps) + 1):
        before = [flow.entry(i) for i in steps[:n]]
        state = evaluate(plan, before).state
        for action in [a for a, want in states.items() if want == state]:
            step = template(
                "plan_update", flow.lead, now=flow.t, plan=flow.plan_item, action=action
            )
            ITEM_ADAPTER.validate_python(step)
            if action == "close":  # the 回头看 report's id goes here
                step["body"]["evidence"] = ["sha256:" + "e" * 64]
            refusal = check_candidate(plan, before, flow.entry(step))
            if refusal is not None and refusal.reason == "precondition":
                continue  # e.g. the start before every endorsement: a later prefix
            assert refusal is None, (action, refusal.message)
            del states[action]
    assert not states, states
