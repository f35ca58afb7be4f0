"""Filled-in item templates, one per kind, for ``exchange item new --kind K``.

Each template is schema-valid as printed (a test checks it), with realistic Chinese
content to edit: a partner changes the text, signs it with ``exchange item sign`` and
pushes it.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = ["KIND_NAMES", "template"]

_CST = timezone(timedelta(hours=8))

KIND_NAMES: dict[str, str] = {
    "case_study": "典型案例 (case study)",
    "inspection_plan": "联合执法检查方案 (joint inspection plan)",
    "lesson": "经验做法 (lesson)",
    "endorsement": "会签 (endorsement of a joint plan)",
    "retraction": "撤回 (retraction)",
}

_PLACEHOLDER_ID = "sha256:" + "0" * 64


def _contact() -> list[dict[str, Any]]:
    return [{"name": "张明", "role": "法制工作委员会主任", "phone": "0561-3012345"}]


def _body(kind: str, author: str, partner: str, today: str, later: str) -> dict[str, Any]:
    if kind == "case_study":
        return {
            "background": "区人大常委会在审查预算执行情况时发现，部分部门预算执行进度慢、"
            "绩效目标不清晰，需要建立常态化的预算联网监督机制。",
            "actions": [
                "建成预算联网监督系统，与区财政局国库集中支付系统实时对接。",
                "组织代表分组开展预算执行情况专题调研，形成调研报告。",
                "对执行进度低于序时进度的部门进行约谈并跟踪整改。",
            ],
            "results": "预算执行进度同比提高12个百分点，13个部门完成整改。",
            "legal_basis": ["《中华人民共和国预算法》", "《中华人民共和国各级人民代表大会常务委员会监督法》"],
            "period": {"start": today, "end": later},
            "participants": [author],
            "contacts": _contact(),
            "lessons_learned": "系统对接要早谋划，数据口径须与财政部门事先统一。",
        }
    if kind == "inspection_plan":
        return {
            "law": "《中华人民共和国安全生产法》",
            "articles": ["第二十一条", "第四十一条"],
            "lead_site": author,
            "participating_sites": [partner],
            "objectives": ["检查安全生产法在两地的贯彻实施情况，推动跨区域联合执法协作。"],
            "scope": "两地危险化学品生产、储存企业和矿山企业，以及应急管理部门的执法工作。",
            "phases": [
                {
                    "name": "动员部署",
                    "start": today,
                    "end": today,
                    "activities": ["召开联合执法检查动员会，印发检查方案。"],
                    "responsible_sites": [author],
                },
                {
                    "name": "实地检查",
                    "start": later,
                    "end": later,
                    "activities": ["分组赴两地重点企业开展实地检查。"],
                    "responsible_sites": [author, partner],
                },
            ],
            "responsibilities": [
                {"site": author, "duties": ["牵头制定方案，起草执法检查报告。"]},
                {"site": partner, "duties": ["组织本地企业检查，提供执法数据。"]},
            ],
            "findings": [],
            "rectification": [],
            "contacts": _contact(),
        }
    if kind == "lesson":
        return {
            "practice": "建立代表联络站“周二接待日”制度，人大代表轮流到站接待群众。",
            "conditions": "适用于代表联络站覆盖所有乡镇（街道）、有固定场所的县区。",
            "outcomes": "一年收集群众意见建议386条，办结率达97%。",
            "applicability": ["县区人大代表联络站建设", "基层民主议事协商"],
            "challenges": "需要统筹代表本职工作时间，避免接待流于形式。",
            "contacts": _contact(),
        }
    if kind == "endorsement":
        return {
            "plan": _PLACEHOLDER_ID,
            "decision": "endorse",
            "comment": "同意联合执法检查方案，我区将按方案安排开展检查。",
            "commitments": ["派出检查组成员2名", "按期提交本地检查情况报告"],
        }
    if kind == "retraction":
        return {"target": _PLACEHOLDER_ID, "reason": "内容有误，已重新发布更正版本。"}
    raise ValueError(f"unknown kind {kind!r}; known kinds: {', '.join(KIND_NAMES)}")


_TITLES = {
    "case_study": "预算联网监督典型案例",
    "inspection_plan": "安全生产法联合执法检查方案",
    "lesson": "代表联络站“周二接待日”经验做法",
    "endorsement": "关于安全生产法联合执法检查方案的会签意见",
    "retraction": "撤回说明",
}
_TAGS = {
    "case_study": ["预算法", "预算联网监督"],
    "inspection_plan": ["安全生产法", "执法检查"],
    "lesson": ["代表工作", "代表联络站"],
    "endorsement": ["安全生产法", "执法检查"],
    "retraction": [],
}


def template(
    kind: str,
    author: str = "huaibei-duji",
    partner: str = "suzhou-wuzhong",
    now: datetime | None = None,
) -> dict[str, Any]:
    """A schema-valid item of ``kind`` to edit.

    Args:
        kind: An item kind.
        author: The authoring site id.
        partner: A partner site id used where a plan needs participants.
        now: The creation time (now, China Standard Time, by default).

    Raises:
        ValueError: unknown kind.
    """
    now = (now or datetime.now(_CST)).astimezone(_CST).replace(microsecond=0)
    today = now.date().isoformat()
    later = (now.date() + timedelta(days=30)).isoformat()
    body = _body(kind, author, partner, today, later)
    refs: list[dict[str, str]] = []
    if kind == "endorsement":
        refs = [{"rel": "endorses", "id": _PLACEHOLDER_ID}]
    if kind == "retraction":
        refs = [{"rel": "retracts", "id": _PLACEHOLDER_ID}]
    return {
        "v": 1,
        "kind": kind,
        "author": author,
        "created_at": now.isoformat(),
        "audience": {"circles": [], "sites": []},
        "refs": refs,
        "title": _TITLES[kind],
        "summary": "",
        "tags": _TAGS[kind],
        "lang": "zh-CN",
        "body": body,
        "attachments": [],
    }
