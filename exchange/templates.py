"""Item templates, one per kind.

:func:`template` builds a schema-valid example with realistic Chinese content (tests and
demos use it). :func:`blank` is what ``exchange item new --kind K`` prints: the same
shape with every piece of prose, every referenced item id and an unnamed partner turned
into a ``<填写：…>`` placeholder (:mod:`exchange.core.placeholders`), which
``exchange item sign`` and the node refuse until the author has replaced them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from exchange.core.canonical import item_id
from exchange.core.placeholders import placeholder, templatize
from schemas.items import PLAN_KINDS
from schemas.labels import KIND_LABELS

__all__ = ["KIND_NAMES", "PLAN_ACTIONS", "blank", "template"]

_CST = timezone(timedelta(hours=8))

_KIND_HINTS = {
    "case_study": "case study",
    "inspection_plan": "joint inspection plan",
    "lesson": "lesson",
    "endorsement": "endorsement of a joint plan",
    "retraction": "retraction",
    "agreement": "cooperation agreement",
    "inspection_report": "inspection report",
    "deliberation_opinion": "deliberation opinions, with handling body and deadline",
    "rectification_reply": "handling / rectification report",
    "research_report": "research report",
    "minutes": "minutes or initiative",
    "plan_update": "step of a joint plan, with its evidence; see --action",
}
KIND_NAMES: dict[str, str] = {
    k: f"{KIND_LABELS[k][0]} ({hint})" for k, hint in _KIND_HINTS.items()
}
"""``典型案例 (case study)`` for each kind: the Chinese name from schemas.labels."""

_PLACEHOLDER_ID = "sha256:" + "0" * 64
_PLACEHOLDER_ID_2 = "sha256:" + "1" * 64

# Refs a workflow item needs (the schema requires them when the body names the item).
_REFS: dict[str, list[dict[str, str]]] = {
    "endorsement": [{"rel": "endorses", "id": _PLACEHOLDER_ID}],
    "retraction": [{"rel": "retracts", "id": _PLACEHOLDER_ID}],
    "inspection_report": [{"rel": "reports_on", "id": _PLACEHOLDER_ID}],
    "deliberation_opinion": [
        {"rel": "follows", "id": _PLACEHOLDER_ID},
        {"rel": "responds_to", "id": _PLACEHOLDER_ID_2},
    ],
    "rectification_reply": [
        {"rel": "follows", "id": _PLACEHOLDER_ID},
        {"rel": "responds_to", "id": _PLACEHOLDER_ID_2},
    ],
    "plan_update": [{"rel": "updates", "id": _PLACEHOLDER_ID}],
}


def _contact() -> list[dict[str, Any]]:
    return [{"name": "张明", "role": "法制工作委员会主任", "phone": "0561-3012345"}]


def _body(
    kind: str, author: str, partner: str, today: str, later: str
) -> dict[str, Any]:
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
            "legal_basis": [
                "《中华人民共和国预算法》",
                "《中华人民共和国各级人民代表大会常务委员会监督法》",
            ],
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
            "objectives": [
                "检查安全生产法在两地的贯彻实施情况，推动跨区域联合执法协作。"
            ],
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
    body = _workflow_body(kind, author, partner, today, later)
    if body is not None:
        return body
    raise ValueError(f"unknown kind {kind!r}; known kinds: {', '.join(KIND_NAMES)}")


def _workflow_body(
    kind: str, author: str, partner: str, today: str, later: str
) -> dict[str, Any] | None:
    """Bodies of the cooperation and joint-inspection workflow kinds."""
    if kind == "agreement":
        return {
            "parties": [author, partner],
            "signed_on": today,
            "term": {"start": today, "end": None},
            "purpose": "加强跨区域人大工作协作，推动区域协同立法、联动监督和代表工作交流。",
            "areas": [
                "联合开展执法检查和专题调研",
                "互通立法、监督工作信息",
                "交流代表工作经验",
            ],
            "mechanisms": [
                "每年召开一次人大工作联席会议，轮流承办",
                "建立联络员制度，每季度通报工作",
            ],
            "obligations": [
                {"site": author, "duties": ["承办首次联席会议，起草年度协作要点。"]},
                {"site": partner, "duties": ["牵头组织代表工作交流活动。"]},
            ],
            "contacts": _contact(),
        }
    if kind == "inspection_report":
        return {
            "plan": _PLACEHOLDER_ID,
            "scope": "joint",
            "law": "《中华人民共和国安全生产法》",
            "period": {"start": today, "end": later},
            "inspected": ["区应急管理局", "危险化学品生产企业3家", "非煤矿山企业2家"],
            "methods": [
                "听取政府及有关部门汇报",
                "实地检查重点企业",
                "随机抽查执法案卷",
            ],
            "overview": "两地政府认真贯彻实施安全生产法，安全生产责任体系不断健全，"
            "重点行业领域专项整治扎实推进，安全生产形势总体平稳。",
            "achievements": ["安全生产责任制全面落实", "跨区域执法协作机制初步建立"],
            "findings": [
                {
                    "summary": "部分企业安全培训流于形式，从业人员应急处置能力不足。",
                    "severity": "medium",
                    "site": partner,
                },
            ],
            "recommendations": [
                "压实企业主体责任，强化全员安全培训。",
                "完善跨区域联合执法和信息共享机制。",
            ],
        }
    if kind == "deliberation_opinion":
        return {
            "plan": _PLACEHOLDER_ID,
            "report": _PLACEHOLDER_ID_2,
            "meeting": "区第十八届人大常委会第二十三次会议",
            "deliberated_on": today,
            "handling_body": "区人民政府",
            "opinions": [
                "进一步压实安全生产属地管理责任。",
                "加强基层应急管理执法队伍建设。",
            ],
            "deadline": later,
            "addressed_sites": [],
        }
    if kind == "rectification_reply":
        return {
            "plan": _PLACEHOLDER_ID,
            "opinion": _PLACEHOLDER_ID_2,
            "handling_body": "区人民政府",
            "reported_on": today,
            "summary": "区政府高度重视常委会审议意见，逐条研究制定整改措施，明确责任单位和完成时限。",
            "items": [
                {
                    "opinion": "进一步压实安全生产属地管理责任。",
                    "measures": [
                        "修订乡镇（街道）安全生产责任清单",
                        "开展季度安全生产巡查",
                    ],
                    "status": "done",
                    "completed_on": today,
                },
                {
                    "opinion": "加强基层应急管理执法队伍建设。",
                    "measures": ["新增专职执法人员6名", "组织执法人员轮训"],
                    "status": "in_progress",
                    "completed_on": None,
                },
            ],
            "pending": ["执法装备配备仍有缺口，拟在明年预算中统筹解决。"],
        }
    if kind == "research_report":
        return {
            "topic": "安全生产法执法检查审议意见落实情况“回头看”",
            "period": {"start": today, "end": later},
            "methods": ["召开座谈会", "实地走访企业", "查阅整改台账"],
            "locations": ["区应急管理局", "经济开发区"],
            "participants": [partner],
            "findings": "审议意见提出的问题大部分已整改到位，跨区域执法协作机制运行良好。",
            "problems": ["个别企业隐患整改存在反弹。"],
            "recommendations": ["建立整改长效机制，将回头看纳入年度监督计划。"],
            "contacts": _contact(),
        }
    if kind == "minutes":
        return {
            "type": "minutes",
            "meeting": "淮海经济区人大工作联席会议",
            "held_on": today,
            "location": "淮北市",
            "attendees": [author, partner],
            "agenda": ["交流年度监督工作", "商定联合执法检查事项"],
            "decisions": ["明年联合开展安全生产法执法检查，由杜集区牵头。"],
            "follow_up": [{"site": author, "duties": ["起草联合执法检查方案。"]}],
        }
    if kind == "plan_update":
        return _plan_step("approve", today, later)
    return None


PLAN_ACTIONS = ("approve", "start", "phase_progress", "satisfaction_vote", "close")
"""The steps a ``plan_update`` can be (``exchange item new --kind plan_update --action``)."""

_PLACEHOLDER_EVIDENCE = "sha256:" + "2" * 64
_STEP_TITLES = {
    "approve": "关于批准联合执法检查方案的决定",
    "start": "关于启动联合执法检查的通知",
    "phase_progress": "联合执法检查实地检查阶段完成情况",
    "satisfaction_vote": "关于审议意见研究处理情况的满意度测评结果",
    "close": "关于联合执法检查办结的说明",
}


def _plan_step(action: str, today: str, later: str) -> dict[str, Any]:
    """The body of a ``plan_update`` for ``action`` (see docs/joint-inspections.md)."""
    body: dict[str, Any] = {
        "plan": _PLACEHOLDER_ID,
        "action": action,
        "effective_on": today,
        "evidence": [],
    }
    if action == "approve":
        body["note"] = "经主任会议研究，同意联合执法检查方案。"
    elif action == "start":
        body["note"] = "两地检查组已组建，联合执法检查自即日起按方案实施。"
    elif action == "phase_progress":
        body.update(
            phase="实地检查",
            phase_status="completed",
            note="两地检查组已完成对重点企业的实地检查，共检查企业12家。",
        )
    elif action == "satisfaction_vote":
        body.update(
            note="常委会会议对研究处理情况报告进行满意度测评。",
            vote={
                "meeting": "区第十八届人大常委会第二十五次会议",
                "held_on": today,
                "members": 29,
                "present": 25,
                "satisfied": 15,
                "basically_satisfied": 4,
                "unsatisfied": 6,
            },
        )
    elif action == "close":
        body.update(
            note="“回头看”调研表明审议意见已落实，本次联合执法检查办结。",
            evidence=[_PLACEHOLDER_EVIDENCE],
        )
    else:
        raise ValueError(
            f"unknown plan action {action!r}; one of: {', '.join(PLAN_ACTIONS)}"
        )
    return body


_TITLES = {
    "case_study": "预算联网监督典型案例",
    "inspection_plan": "安全生产法联合执法检查方案",
    "lesson": "代表联络站“周二接待日”经验做法",
    "endorsement": "关于安全生产法联合执法检查方案的会签意见",
    "retraction": "撤回说明",
    "agreement": "人大工作协作协议",
    "inspection_report": "关于检查安全生产法实施情况的报告",
    "deliberation_opinion": "关于安全生产法执法检查报告的审议意见",
    "rectification_reply": "关于安全生产法执法检查审议意见研究处理情况的报告",
    "research_report": "安全生产法执法检查“回头看”调研报告",
    "minutes": "淮海经济区人大工作联席会议纪要",
    "plan_update": "关于批准联合执法检查方案的决定",
}
_TAGS = {
    "case_study": ["预算法", "预算联网监督"],
    "inspection_plan": ["安全生产法", "执法检查"],
    "lesson": ["代表工作", "代表联络站"],
    "endorsement": ["安全生产法", "执法检查"],
    "retraction": [],
    "agreement": ["区域协作"],
    "inspection_report": ["安全生产法", "执法检查"],
    "deliberation_opinion": ["安全生产法", "审议意见"],
    "rectification_reply": ["安全生产法", "整改"],
    "research_report": ["安全生产法", "回头看"],
    "minutes": ["联席会议"],
    "plan_update": ["执法检查"],
}


def template(
    kind: str,
    author: str = "huaibei-duji",
    partner: str = "suzhou-wuzhong",
    now: datetime | None = None,
    plan: Mapping[str, Any] | None = None,
    action: str | None = None,
) -> dict[str, Any]:
    """A schema-valid item of ``kind`` to edit.

    Args:
        kind: An item kind.
        author: The authoring site id.
        partner: A partner site id used where a plan needs participants.
        now: The creation time (now, China Standard Time, by default).
        plan: For a step of a joint plan, the plan item (or its signed wrapper): the
            step names it and is addressed to the plan's audience (a node refuses a
            step addressed wider than its plan).
        action: For ``plan_update``: the step (:data:`PLAN_ACTIONS`, default approve).

    Raises:
        ValueError: unknown kind, or an action for another kind or unknown.
    """
    now = (now or datetime.now(_CST)).astimezone(_CST).replace(microsecond=0)
    today = now.date().isoformat()
    later = (now.date() + timedelta(days=30)).isoformat()
    if action is not None and kind != "plan_update":
        raise ValueError("--action is only for --kind plan_update")
    body = (
        _plan_step(action, today, later)
        if action is not None
        else _body(kind, author, partner, today, later)
    )
    refs = [dict(r) for r in _REFS.get(kind, [])]
    audience: dict[str, list[str]] = {"circles": [], "sites": []}
    if plan is not None and kind in PLAN_KINDS:
        plan_item = plan.get("item", plan)
        plan_id = item_id(plan_item)
        body["plan"] = plan_id
        refs = [{**r, "id": plan_id} if r["id"] == _PLACEHOLDER_ID else r for r in refs]
        aud = plan_item.get("audience") or {}
        audience = {k: list(aud.get(k) or []) for k in ("circles", "sites")}
    return {
        "v": 1,
        "kind": kind,
        "author": author,
        "created_at": now.isoformat(),
        "audience": audience,
        "refs": refs,
        "title": _STEP_TITLES[action] if action else _TITLES[kind],
        "summary": "",
        "tags": _TAGS[kind],
        "lang": "zh-CN",
        "body": body,
        "attachments": [],
    }


def _swap(value: Any, table: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _swap(v, table) for k, v in value.items()}
    if isinstance(value, list):
        return [_swap(v, table) for v in value]
    return table.get(value, value) if isinstance(value, str) else value


def blank(
    kind: str,
    author: str,
    partner: str | None = None,
    now: datetime | None = None,
    plan: Mapping[str, Any] | None = None,
    action: str | None = None,
) -> dict[str, Any]:
    """The template ``exchange item new`` prints: structure and dates of :func:`template`,
    placeholders wherever only the author can know the content.

    Args:
        kind: An item kind.
        author: The authoring site id.
        partner: A partner site id where the kind names participants (else a placeholder).
        now: The creation time (now, China Standard Time, by default).
        plan: For a step of a joint plan, the plan (see :func:`template`).
        action: For ``plan_update``: the step (:data:`PLAN_ACTIONS`).

    Raises:
        ValueError: unknown kind, or an action for another kind or unknown.
    """
    partner = partner or placeholder("伙伴站点 id，如 suzhou-wuzhong")
    doc = template(kind, author, partner, now, plan, action)
    doc = _swap(
        doc,
        {
            _PLACEHOLDER_ID: placeholder(
                "所指条目的 id（sha256:…，本节点已收录的条目）"
            ),
            _PLACEHOLDER_ID_2: placeholder("所回应条目的 id（sha256:…）"),
            _PLACEHOLDER_EVIDENCE: placeholder("“回头看”调研报告的 id（sha256:…）"),
        },
    )
    out: dict[str, Any] = templatize(doc)
    return out
