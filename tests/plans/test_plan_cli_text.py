"""``exchange plan status`` text: a closed plan reads as closed, phases included."""

from __future__ import annotations

from datetime import date

from exchange.commands.plan import format_plan
from exchange.core.plans import evaluate
from exchange.service.plans import view_json
from tests.support.plans import Flow


def test_a_closed_plan_does_not_list_phases_as_not_started() -> None:
    flow = Flow()
    steps = flow.happy_path()
    st = evaluate(flow.entry(flow.plan_item), [flow.entry(i) for i, _ in steps])
    assert st.state == "closed"
    view = view_json(st, date(2030, 1, 1))
    text = "\n".join(format_plan(view))
    assert "已办结 (closed)" in text
    phases = text.split("阶段 phases\n", 1)[1].split("本地检查报告", 1)[0]
    assert "未开始" not in phases and "进行中" not in phases, phases
    assert "检查已结束" in phases
    # Nothing is owed on a closed plan, and the timeline names the states.
    assert "期限 deadlines" not in text and all(
        not d["sites"] for d in view["deadlines"]
    )
    assert "→ 已办结 closed" in text
    # Every endorsement names the item that counts.
    assert all(e["item"] for e in view["endorsements"])
