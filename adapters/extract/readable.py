"""A received item → readable plain text, Chinese labels first.

Used where a person reads partners' items outside any program: mail bodies and
digests. Every body field of every kind gets a label (``主要做法 (actions)``); lists
become numbered lines; unknown fields are shown with their JSON name, so nothing a
partner wrote is silently dropped.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["FIELD_LABELS", "KIND_LABELS", "item_text", "kind_label"]

KIND_LABELS: dict[str, str] = {
    "case_study": "典型案例",
    "inspection_plan": "联合执法检查方案",
    "lesson": "经验做法",
    "endorsement": "会签",
    "retraction": "撤回",
}
"""Chinese name of each kind."""

FIELD_LABELS: dict[str, str] = {
    "background": "背景",
    "actions": "主要做法",
    "results": "成效",
    "legal_basis": "法律依据",
    "period": "时间",
    "participants": "参与单位",
    "contacts": "联系人",
    "lessons_learned": "经验启示",
    "law": "检查的法律",
    "articles": "重点条款",
    "lead_site": "牵头单位",
    "participating_sites": "参与单位",
    "objectives": "检查目的",
    "scope": "检查范围",
    "phases": "检查步骤",
    "responsibilities": "职责分工",
    "findings": "发现的问题",
    "rectification": "整改跟踪",
    "practice": "做法",
    "conditions": "背景与适用条件",
    "outcomes": "成效",
    "applicability": "可推广的情形",
    "challenges": "困难与不足",
    "plan": "方案编号",
    "decision": "意见",
    "comment": "说明",
    "commitments": "承诺事项",
    "target": "被撤回条目",
    "reason": "撤回理由",
}
"""Chinese label of each body field."""


def kind_label(kind: str) -> str:
    """``典型案例 (case_study)``."""
    return f"{KIND_LABELS.get(kind, kind)} ({kind})"


def _value_lines(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split("\n")
    if isinstance(value, list):
        out: list[str] = []
        for i, v in enumerate(value, 1):
            sub = _value_lines(v)
            out.append(f"{i}. {sub[0] if sub else ''}")
            out.extend("   " + s for s in sub[1:])
        return out
    if isinstance(value, dict):
        if set(value) <= {"start", "end"}:
            return [f"{value.get('start', '')} 至 {value.get('end') or '今'}"]
        parts = []
        for k, v in value.items():
            if v in (None, "", []):
                continue
            text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
            parts.append(f"{FIELD_LABELS.get(k, k)}: {text}")
        return ["；".join(parts)]
    return [json.dumps(value, ensure_ascii=False)]


def item_text(item: dict[str, Any], *, item_id: str = "") -> str:
    """The item as plain text: header lines, then each body field under its label.

    Args:
        item: The (verified) item object.
        item_id: Its id, shown in the header when given.
    """
    lines = [
        str(item.get("title", "")),
        "",
        f"类型 Kind: {kind_label(str(item.get('kind', '')))}",
        f"作者 Author: {item.get('author', '')}",
        f"时间 Created: {item.get('created_at', '')}",
    ]
    if item.get("tags"):
        lines.append(f"标签 Tags: {'、'.join(item['tags'])}")
    if item_id:
        lines.append(f"编号 Id: {item_id}")
    if item.get("summary"):
        lines += ["", f"摘要 Summary: {item['summary']}"]
    body = item.get("body") or {}
    for name, value in body.items():
        if value in (None, "", [], {}):
            continue
        lines += ["", f"【{FIELD_LABELS.get(name, name)}】", *_value_lines(value)]
    for att in item.get("attachments") or []:
        lines.append(f"附件 Attachment: {att.get('name')} ({att.get('size')} bytes)")
    return "\n".join(lines).rstrip() + "\n"
