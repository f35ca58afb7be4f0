"""Folder documents and mail text read like the reading view: schema order, labels."""

from __future__ import annotations

import json
from typing import Any

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
        "做法 (practice)",
        "背景与适用条件 (conditions)",
        "成效 (outcomes)",
    ]


def test_values_are_labelled_and_lists_not_joined() -> None:
    md = to_markdown(_as_received("endorsement"), {"id": "sha256:" + "a" * 64})
    section = md.split("## 会签意见 (decision)", 1)[1].split("##", 1)[0]
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
