"""The cooperation and joint-inspection item kinds: `exchange item new` prints a
schema-valid item for every kind, and each kind's cross-field rules refuse what they
should, with a message naming the problem."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from exchange.cli import main
from exchange.templates import KIND_NAMES, template
from schemas.items import ITEM_ADAPTER, KINDS, PLAN_KINDS
from tests.support import fill_placeholders

PLAN = "sha256:" + "0" * 64


@pytest.mark.parametrize("kind", KINDS)
def test_item_new_prints_a_valid_item_of_every_kind(kind: str, capsys: Any) -> None:
    """Valid once its placeholders are filled in (and refused before: see
    tests/e2e/test_first_hour.py)."""
    assert main(["item", "new", "--kind", kind, "--author", "xuzhou-tongshan"]) == 0
    item = fill_placeholders(json.loads(capsys.readouterr().out))
    model = ITEM_ADAPTER.validate_python(item)
    assert model.kind == kind and item["author"] == "xuzhou-tongshan"
    assert set(KIND_NAMES) == set(KINDS)


def _refused(item: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError) as exc:
        ITEM_ADAPTER.validate_python(item)
    assert needle in str(exc.value), str(exc.value)


def _t(kind: str) -> dict[str, Any]:
    return template(kind, "huaibei-duji", "suzhou-wuzhong")


def test_workflow_items_must_ref_their_plan() -> None:
    for kind, rel in PLAN_KINDS.items():
        item = _t(kind)
        item["refs"] = [r for r in item["refs"] if r["rel"] != rel]
        if kind == "endorsement":
            ITEM_ADAPTER.validate_python(
                item
            )  # checked by the plan rules, not the schema
            continue
        _refused(item, f"'rel': '{rel}'")
    reply = _t("rectification_reply")
    reply["refs"] = [r for r in reply["refs"] if r["rel"] != "responds_to"]
    _refused(reply, "'rel': 'responds_to'")


def test_plan_update_fields_follow_the_action() -> None:
    item = _t("plan_update")
    item["body"]["action"] = "phase_progress"
    _refused(item, "phase and phase_status are given exactly for phase_progress")
    item["body"].update(phase="实地检查", phase_status="started")
    ITEM_ADAPTER.validate_python(item)
    item = _t("plan_update")
    item["body"]["action"] = "close"
    _refused(item, "closing needs evidence")
    vote = {
        "meeting": "第二十五次会议",
        "held_on": "2026-12-20",
        "members": 29,
        "present": 25,
        "satisfied": 5,
        "basically_satisfied": 3,
        "unsatisfied": 17,
    }
    item = _t("plan_update")
    item["body"].update(action="satisfaction_vote", vote=vote)
    _refused(item, "give redo_deadline")
    item["body"]["redo_deadline"] = "2027-02-20"
    ITEM_ADAPTER.validate_python(item)
    item["body"]["redo_deadline"] = "2026-12-01"
    _refused(item, "redo_deadline must be after the vote")
    passing = dict(vote, satisfied=15, basically_satisfied=4, unsatisfied=6)
    item["body"].update(vote=passing, redo_deadline="2027-02-20")
    _refused(item, "redo_deadline is only for a failed satisfaction vote")
    del item["body"]["redo_deadline"]
    ITEM_ADAPTER.validate_python(item)
    for bad, needle in (
        (
            dict(vote, present=14, satisfied=5, basically_satisfied=3, unsatisfied=6),
            "no quorum",
        ),
        (dict(vote, present=20), "25 votes were cast but only 20"),
        (dict(vote, present=30), "more than the 29 members"),
    ):
        item["body"]["vote"] = bad
        _refused(item, needle)
    item = _t("plan_update")
    item["body"]["vote"] = passing
    _refused(item, "vote is given exactly for satisfaction_vote")


def test_reports_opinions_and_replies() -> None:
    report = _t("inspection_report")
    report["body"]["plan"] = None
    report["refs"] = []
    _refused(report, "a joint report must name its plan")
    report["body"]["scope"] = "local"
    ITEM_ADAPTER.validate_python(report)  # a congress's own report, outside any plan
    opinion = _t("deliberation_opinion")
    opinion["body"]["deadline"] = opinion["body"]["deliberated_on"]
    _refused(opinion, "must be after the deliberation")
    opinion = _t("deliberation_opinion")
    opinion["body"].update(plan=None, addressed_sites=["suzhou-wuzhong"])
    opinion["refs"] = [r for r in opinion["refs"] if r["rel"] != "follows"]
    _refused(opinion, "addressed_sites apply only to opinions on a joint plan")
    reply = _t("rectification_reply")
    reply["body"]["items"][0]["completed_on"] = None
    _refused(reply, "completed_on is given exactly when status is 'done'")
    reply = _t("rectification_reply")
    reply["body"]["items"] = []
    _refused(reply, "body.items")


def test_agreements_and_minutes_name_their_author() -> None:
    agreement = _t("agreement")
    agreement["author"] = "xuzhou-tongshan"
    _refused(agreement, "not one of the agreement's parties")
    agreement = _t("agreement")
    agreement["body"]["parties"] = ["huaibei-duji"]
    _refused(agreement, "body.parties")
    agreement = _t("agreement")
    agreement["body"]["obligations"].append({"site": "jiaxing-nanhu", "duties": ["x"]})
    _refused(agreement, "not one of the parties")
    agreement = _t("agreement")
    agreement["body"]["term"] = {"start": "2019-01-01", "end": "2020-01-01"}
    _refused(agreement, "before it was signed")
    minutes = _t("minutes")
    minutes["author"] = "jiaxing-nanhu"
    _refused(minutes, "not among the attendees")
    minutes = _t("minutes")
    minutes["body"]["follow_up"] = [{"site": "jiaxing-nanhu", "duties": ["x"]}]
    _refused(minutes, "not one of the parties")
    minutes["body"]["type"] = "initiative"
    minutes["body"]["follow_up"] = []
    ITEM_ADAPTER.validate_python(minutes)
