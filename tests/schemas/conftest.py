"""Factory fixtures: realistic, valid wire documents for the schema tests.

Each item fixture returns a *function* that builds a fresh dict, so a test can mutate
its copy freely. The content is what a county congress would actually write. Test
modules take everything through fixtures (never ``import conftest``: other test
folders have their own ``conftest`` module).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest

Json = dict[str, Any]
Factory = Callable[[], Json]


def item_id(seed: str) -> str:
    """A well-formed item id derived from ``seed``."""
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


PLAN_ID = item_id("安全生产法联合执法检查方案")


@pytest.fixture
def plan_id() -> str:
    """The id the endorsement fixture endorses."""
    return PLAN_ID


@pytest.fixture
def sig() -> Json:
    """A well-formed (not cryptographically valid) Ed25519 signature."""
    # 64 signature bytes -> 86 unpadded base64url characters.
    return {"key": "huaibei-duji#k1", "alg": "ed25519", "value": "A" * 85 + "Q"}


@pytest.fixture
def plan_item() -> Factory:
    """A 《安全生产法》 joint inspection plan led by Huaibei Duji."""

    def build() -> Json:
        return {
            "v": 1,
            "kind": "inspection_plan",
            "author": "huaibei-duji",
            "created_at": "2026-11-20T09:30:00+08:00",
            "audience": {"circles": ["huaihai", "yangtze-delta"], "sites": []},
            "refs": [{"rel": "cites", "id": item_id("2025年度执法检查报告")}],
            "title": "关于联合开展《中华人民共和国安全生产法》执法检查的方案",
            "summary": "淮北市杜集区与苏州市吴中区人大常委会联合检查安全生产法"
            "贯彻实施情况，重点关注危险化学品和建筑施工领域。",
            "tags": ["安全生产法", "执法检查", "跨区域协作"],
            "lang": "zh-CN",
            "body": {
                "law": "《中华人民共和国安全生产法》",
                "articles": ["第二十一条", "第四十一条", "第九十四条"],
                "lead_site": "huaibei-duji",
                "participating_sites": ["suzhou-wuzhong"],
                "objectives": [
                    "检查两地落实生产经营单位安全生产主体责任的情况",
                    "交流危险化学品企业监管的经验做法",
                ],
                "scope": "两区应急管理局、住房和城乡建设局及辖区内重点企业，"
                "包括危险化学品生产储存企业和在建工程项目。\n"
                "采取听取汇报、实地查看、随机抽查相结合的方式。",
                "phases": [
                    {
                        "name": "动员部署和自查",
                        "start": "2026-12-01",
                        "end": "2026-12-15",
                        "activities": [
                            "召开联合执法检查动员会",
                            "两区政府部门开展自查",
                        ],
                        "responsible_sites": ["huaibei-duji", "suzhou-wuzhong"],
                    },
                    {
                        "name": "实地检查",
                        "start": "2026-12-16",
                        "end": "2027-01-10",
                        "activities": ["赴两地重点企业实地检查", "召开座谈会听取意见"],
                        "responsible_sites": ["huaibei-duji"],
                    },
                    {
                        "name": "形成报告和跟踪整改",
                        "start": "2027-01-11",
                        "end": "2027-03-31",
                        "activities": ["起草执法检查报告", "提请常委会会议审议"],
                        "responsible_sites": [],
                    },
                ],
                "responsibilities": [
                    {
                        "site": "huaibei-duji",
                        "duties": ["牵头制定方案", "起草联合执法检查报告"],
                    },
                    {"site": "suzhou-wuzhong", "duties": ["组织吴中区实地检查"]},
                ],
                "findings": [
                    {
                        "summary": "部分企业安全生产教育培训记录不完整",
                        "severity": "medium",
                        "site": "suzhou-wuzhong",
                    },
                    {"summary": "基层执法力量不足", "severity": "high", "site": None},
                ],
                "rectification": [
                    {
                        "issue": "完善企业安全生产教育培训档案",
                        "responsible_body": "吴中区应急管理局",
                        "deadline": "2027-06-30",
                        "status": "in_progress",
                    }
                ],
                "contacts": [
                    {
                        "name": "王明",
                        "role": "杜集区人大常委会法工委主任",
                        "phone": "0561-3021234",
                        "email": "rdfgw@example.gov.cn",
                    }
                ],
            },
            "attachments": [
                {
                    "name": "联合执法检查方案.docx",
                    "media_type": "application/vnd.openxmlformats-officedocument"
                    ".wordprocessingml.document",
                    "size": 48211,
                    "sha256": hashlib.sha256(b"plan.docx").hexdigest(),
                }
            ],
        }

    return build


@pytest.fixture
def case_item() -> Factory:
    """A case study on networked budget supervision (预算联网监督)."""

    def build() -> Json:
        return {
            "v": 1,
            "kind": "case_study",
            "author": "suzhou-wuzhong",
            "created_at": "2026-10-08T15:00:00+08:00",
            "title": "吴中区人大常委会推进预算联网监督全覆盖",
            "tags": ["预算联网监督", "预算审查"],
            "body": {
                "background": "预算审查监督重点向支出预算和政策拓展，"
                "需要及时、全面掌握预算执行数据。",
                "actions": [
                    "建成预算联网监督系统，接入财政、税务、社保等部门数据",
                    "设置预警规则，对执行进度偏慢的项目自动提示",
                    "组织人大代表通过系统开展专题询问",
                ],
                "results": "2025年通过系统发现并督促整改问题23个，"
                "预算执行率同比提高6个百分点。",
                "legal_basis": [
                    "《中华人民共和国预算法》",
                    "《中华人民共和国各级人民代表大会常务委员会监督法》",
                ],
                "period": {"start": "2024-03-01", "end": None},
                "participants": [],
                "contacts": [{"name": "李华", "role": "预算工作委员会副主任"}],
                "lessons_learned": "数据接口要先统一标准，再逐步扩大接入范围。",
            },
        }

    return build


@pytest.fixture
def lesson_item() -> Factory:
    """A lesson on a grassroots legislative contact point (基层立法联系点)."""

    def build() -> Json:
        return {
            "v": 1,
            "kind": "lesson",
            "author": "xuzhou-tongshan",
            "created_at": "2026-09-01T08:00:00Z",
            "audience": {"circles": ["huaihai"], "sites": ["huaibei-duji"]},
            "title": "铜山区基层立法联系点“四个一”工作法",
            "body": {
                "practice": "每月一次集中征求意见，每季度一次专题调研，"
                "每半年一次意见反馈，每年一次工作评估。",
                "conditions": "适用于已设立基层立法联系点、联络员队伍稳定的地区。",
                "outcomes": "两年来收集法律草案意见建议316条，其中41条被采纳。",
                "applicability": ["县区人大常委会基层立法联系点", "乡镇人大代表之家"],
                "challenges": "联络员专业能力参差不齐。",
                "contacts": [],
            },
        }

    return build


@pytest.fixture
def endorsement_item() -> Factory:
    """Wuzhong countersigns Duji's inspection plan."""

    def build() -> Json:
        return {
            "v": 1,
            "kind": "endorsement",
            "author": "suzhou-wuzhong",
            "created_at": "2026-11-22T10:00:00+08:00",
            "refs": [{"rel": "endorses", "id": PLAN_ID}],
            "title": "吴中区人大常委会同意联合执法检查方案",
            "body": {
                "plan": PLAN_ID,
                "decision": "endorse",
                "comment": "同意方案，建议增加对小微企业的抽查比例。",
                "commitments": ["负责组织吴中区实地检查", "12月15日前报送自查报告"],
            },
        }

    return build


@pytest.fixture
def retraction_item() -> Factory:
    """Duji withdraws an earlier draft of its plan."""

    def build() -> Json:
        target = item_id("方案征求意见稿")
        return {
            "v": 1,
            "kind": "retraction",
            "author": "huaibei-duji",
            "created_at": "2026-11-20T09:35:00+08:00",
            "refs": [{"rel": "retracts", "id": target}],
            "title": "撤回联合执法检查方案征求意见稿",
            "body": {"target": target, "reason": "已发布正式方案，征求意见稿作废。"},
        }

    return build


@pytest.fixture
def every_item(
    plan_item: Factory,
    case_item: Factory,
    lesson_item: Factory,
    endorsement_item: Factory,
    retraction_item: Factory,
) -> dict[str, Factory]:
    """One factory per kind, keyed by kind."""
    return {
        "inspection_plan": plan_item,
        "case_study": case_item,
        "lesson": lesson_item,
        "endorsement": endorsement_item,
        "retraction": retraction_item,
        **{kind: _workflow_item(kind) for kind in _WORKFLOW_KINDS},
    }


# The cooperation and joint-inspection workflow kinds: the realistic CLI templates
# (exchange.templates), at a fixed time so the fixtures are deterministic.
_WORKFLOW_KINDS = (
    "agreement",
    "inspection_report",
    "deliberation_opinion",
    "rectification_reply",
    "research_report",
    "minutes",
    "plan_update",
)


def _workflow_item(kind: str) -> Factory:
    from datetime import datetime, timedelta, timezone

    from exchange.templates import template

    at = datetime(2026, 11, 20, 9, 30, tzinfo=timezone(timedelta(hours=8)))
    return lambda: template(kind, "huaibei-duji", "suzhou-wuzhong", now=at)


def key(owner: str, n: int = 1, **extra: Any) -> Json:
    """A key entry ``<owner>#k<n>``; ``extra`` adds or overrides fields."""
    return {
        "key_id": f"{owner}#k{n}",
        "alg": "ed25519",
        "public_key": "B" * 42 + "A",  # 32 bytes -> 43 characters
        "valid_from": "2026-01-01T00:00:00+08:00",
        **extra,
    }


@pytest.fixture
def make_key() -> Callable[..., Json]:
    """:func:`key`, as a fixture."""
    return key


@pytest.fixture
def roster_doc() -> Factory:
    """A two-node roster: Huaihai and Yangtze Delta, Huaibei in both circles."""

    def build() -> Json:
        return {
            "federation": "cn-county-congress",
            "version": 3,
            "issued_at": "2026-11-01T00:00:00+08:00",
            "nodes": [
                {
                    "id": "huaihai-node",
                    "base_url": "https://huaihai.exchange.example.cn",
                    "keys": [key("huaihai-node")],
                    "sites": ["huaibei-duji", "xuzhou-tongshan"],
                    "circles": ["huaihai", "yangtze-delta"],
                },
                {
                    "id": "yrd-node",
                    "base_url": "http://10.20.0.5:8080/exchange",
                    "keys": [key("yrd-node", 2)],
                    "sites": ["suzhou-wuzhong"],
                    "circles": ["yangtze-delta"],
                },
            ],
            "circles": [
                {
                    "id": "huaihai",
                    "name": "淮海经济区",
                    "members": ["huaibei-duji", "xuzhou-tongshan"],
                },
                {
                    "id": "yangtze-delta",
                    "name": "长三角",
                    "members": ["huaibei-duji", "suzhou-wuzhong"],
                },
            ],
            "monitors": [
                {
                    "id": "huaibei-rd",
                    "name": "淮北市人大常委会",
                    "circles": ["huaihai"],
                    "sites": ["huaibei-duji"],
                }
            ],
            "accepted_algs": ["ed25519"],
            "required_algs": ["ed25519"],
        }

    return build
