"""Folder documents and mail text read like the reading view: schema order, labels."""

from __future__ import annotations

import json
from typing import Any

from adapters.base import Names
from adapters.extract.readable import item_text
from adapters.extract.render import to_markdown
from exchange.templates import template


def _as_received(kind: str) -> dict[str, Any]:
    # A received item comes from canonical JSON: every object's keys sorted.
    item: dict[str, Any] = json.loads(json.dumps(template(kind), sort_keys=True))
    return item


def test_markdown_sections_follow_the_schema_not_the_alphabet() -> None:
    md = to_markdown(_as_received("lesson"), {"id": "sha256:" + "a" * 64})
    heads = [ln[3:] for ln in md.splitlines() if ln.startswith("## ")]
    assert heads[:3] == [
        "做法 (Practice)",
        "背景与适用条件 (Setting and conditions)",
        "成效 (Outcomes)",
    ]


def test_values_are_labelled_and_lists_not_joined() -> None:
    md = to_markdown(_as_received("endorsement"), {"id": "sha256:" + "a" * 64})
    section = md.split("## 会签意见 (Decision)", 1)[1].split("##", 1)[0]
    assert section.strip() == "同意"
    plan = to_markdown(_as_received("inspection_plan"), {"id": "sha256:" + "b" * 64})
    assert "。；" not in plan
    report = _as_received("rectification_reply")
    report["body"]["items"][0]["measures"] = ["修订责任清单。", "开展季度巡查。"]
    text = item_text(report) + item_text(_as_received("inspection_plan"))
    assert (
        "。；" not in text
        and "。，" not in text
        and "修订责任清单。开展季度巡查。" in text
    )
    mail = item_text(_as_received("plan_update"))
    assert "【事项】\n批准方案" in mail and "\napprove" not in mail


def test_sites_and_circles_are_shown_by_name_labels_not_field_names() -> None:
    """A document or mail names congresses and circles as people know them, and heads
    sections with labels (Chinese, then English), never wire names of fields."""
    plan = _as_received("inspection_plan")
    plan["audience"] = {"circles": ["huaihai"], "sites": ["suzhou-wuzhong"]}
    names = Names(
        sites={
            "xuzhou-tongshan": "徐州市铜山区人大常委会",
            "huaibei-duji": "淮北市杜集区人大常委会",
        },
        circles={"huaihai": "淮海经济区"},
    )
    assert plan["author"] == "huaibei-duji"
    md = to_markdown(plan, {"id": "sha256:" + "c" * 64}, names)
    mail = item_text(plan, item_id="sha256:" + "c" * 64, names=names)
    for text in (md, mail):
        assert "淮北市杜集区人大常委会" in text and "huaibei-duji" not in text
        assert "淮海经济区" in text and "huaihai" not in text
        assert "suzhou-wuzhong" in text  # no verified name: the id, not nothing
        for wire in ("lead_site", "participating_sites", "inspection_plan", "phases"):
            assert wire not in text
    assert "| 作者 Author | 淮北市杜集区人大常委会 |" in md
    assert "| 范围 Audience | 淮海经济区、suzhou-wuzhong |" in md
    assert "| 类型 Kind | 联合执法检查方案 (Joint inspection plan) |" in md
    assert "## 牵头单位 (Lead)" in md
    assert "作者 Author: 淮北市杜集区人大常委会" in mail
    # Without names (a sink run before any pull pass verified a record) the ids stay.
    assert "huaibei-duji" in to_markdown(plan, {"id": "sha256:" + "c" * 64})
