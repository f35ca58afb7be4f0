"""A seeded generator of realistic Chinese items, with relevance known by construction.

Every sentence template carries the *concepts* it expresses (安全生产法, 执法检查, 方案,
12345热线, APP …); an item's concepts are the union over its title and sentences. A
query in :data:`QUERIES` lists the concepts it asks for, so the relevant items of a
query are exactly those whose concepts include all of them — whatever the wording:
some templates express a concept in other words (对预算执行实行联网监督 for 预算联网监督,
12345政务服务便民热线 for 12345热线, ＡＰＰ for APP), which is what makes recall worth
measuring.

Items are schema-valid for every kind (plans with phases, responsibilities, findings;
case studies; lessons; endorsements and retractions that reference earlier items),
spread over eight sites in two circles, with audiences for everyone, a circle or named
sites. The same seed gives the same items (ids depend only on content).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from exchange.core.canonical import item_id

__all__ = ["CIRCLES", "QUERIES", "SITES", "CorpusItem", "generate"]

_CST = timezone(timedelta(hours=8))

SITES: dict[str, tuple[str, tuple[str, ...]]] = {
    "huaibei-duji": ("淮北市杜集区人大常委会", ("huaihai", "yangtze-delta")),
    "xuzhou-tongshan": ("徐州市铜山区人大常委会", ("huaihai",)),
    "suqian-suyu": ("宿迁市宿豫区人大常委会", ("huaihai",)),
    "lianyungang-haizhou": ("连云港市海州区人大常委会", ("huaihai",)),
    "suzhou-wuzhong": ("苏州市吴中区人大常委会", ("yangtze-delta",)),
    "hangzhou-xihu": ("杭州市西湖区人大常委会", ("yangtze-delta",)),
    "hefei-shushan": ("合肥市蜀山区人大常委会", ("yangtze-delta",)),
    "jiaxing-nanhu": ("嘉兴市南湖区人大常委会", ("yangtze-delta",)),
}
CIRCLES = ("huaihai", "yangtze-delta")


@dataclass(frozen=True)
class _Topic:
    key: str
    law: str
    law_concepts: frozenset[str]
    tags: tuple[str, ...]
    titles: tuple[tuple[str, frozenset[str]], ...]  # title stem, its concepts
    sentences: tuple[tuple[str, frozenset[str]], ...]


def _c(*names: str) -> frozenset[str]:
    return frozenset(names)


_TOPICS: tuple[_Topic, ...] = (
    _Topic(
        "safety",
        "《中华人民共和国安全生产法》",
        _c("安全生产法"),
        ("安全生产法", "执法检查"),
        (("安全生产法", _c("安全生产法")), ("安全生产", _c())),
        (
            (
                "对照《中华人民共和国安全生产法》逐条梳理企业主体责任落实情况。",
                _c("安全生产法"),
            ),
            (
                "检查组深入危险化学品企业和矿山企业开展安全生产法执法检查。",
                _c("安全生产法", "执法检查"),
            ),
            ("重点检查安全生产法第二十一条规定的主要负责人职责。", _c("安全生产法")),
            ("督促应急管理部门加强安全生产执法力量建设。", _c()),
            ("推动建立跨区域安全生产联防联控机制。", _c()),
            (
                "围绕安全生产法实施情况，对重大事故隐患排查整治开展监督。",
                _c("安全生产法"),
            ),
        ),
    ),
    _Topic(
        "budget",
        "《中华人民共和国预算法》",
        _c(),
        ("预算法", "预算联网监督"),
        (
            ("预算联网监督", _c("预算联网监督")),
            ("预算审查监督", _c()),
            ("预算执行在线监督", _c("预算联网监督")),
        ),
        (
            (
                "建成预算联网监督系统，与财政国库集中支付系统实时对接。",
                _c("预算联网监督"),
            ),
            (
                "依托预算联网监督平台，对部门预算执行进度开展实时预警。",
                _c("预算联网监督"),
            ),
            (
                "对预算执行情况实行全口径联网监督，发现问题及时交办。",
                _c("预算联网监督"),
            ),
            ("组织代表分组开展预算执行情况专题调研。", _c()),
            ("对执行进度低于序时进度的部门进行约谈并跟踪整改。", _c()),
        ),
    ),
    _Topic(
        "liaison",
        "《中华人民共和国全国人民代表大会和地方各级人民代表大会代表法》",
        _c(),
        ("代表工作", "代表联络站"),
        (("代表联络站", _c("代表联络站")), ("代表履职服务", _c())),
        (
            (
                "建立代表联络站“周二接待日”制度，人大代表轮流到站接待群众。",
                _c("代表联络站"),
            ),
            ("全区代表联络站实现乡镇（街道）全覆盖。", _c("代表联络站")),
            ("通过代表之家和联络站收集群众意见建议。", _c()),
            ("推动代表联络站与12345热线工单互联互通。", _c("代表联络站", "12345热线")),
        ),
    ),
    _Topic(
        "ecology",
        "《中华人民共和国长江保护法》",
        _c("长江保护法"),
        ("生态环境保护", "长江保护法"),
        (("生态环境保护", _c("生态环境保护")), ("长江保护法", _c("长江保护法"))),
        (
            ("听取和审议政府关于生态环境保护工作情况的报告。", _c("生态环境保护")),
            ("对长江保护法贯彻实施情况开展执法检查。", _c("长江保护法", "执法检查")),
            ("推动落实生态环境保护“党政同责、一岗双责”。", _c("生态环境保护")),
            ("督促整改入河排污口和岸线违法占用问题。", _c()),
            ("开展生态环境保护专项监督，推动跨界水体联防联治。", _c("生态环境保护")),
            ("开展生态环保专项督查，推动跨界水体联防联治。", _c("生态环境保护")),
        ),
    ),
    _Topic(
        "food",
        "《中华人民共和国食品安全法》",
        _c("食品安全"),
        ("食品安全法", "食品安全"),
        (("食品安全", _c("食品安全")), ("校园食品安全", _c("食品安全"))),
        (
            ("对校园及周边食品安全开展专项检查。", _c("食品安全")),
            ("督促市场监管部门落实食品安全“四个最严”要求。", _c("食品安全")),
            (
                "对食品安全法执法检查中发现的问题建立整改台账。",
                _c("食品安全", "执法检查"),
            ),
            ("抽查农贸市场和小餐饮经营户。", _c()),
        ),
    ),
    _Topic(
        "hotline",
        "《优化营商环境条例》",
        _c(),
        ("12345热线", "营商环境"),
        (("12345热线", _c("12345热线")), ("政务服务便民热线", _c())),
        (
            ("梳理12345热线工单中反映集中的营商环境问题。", _c("12345热线")),
            ("对12345政务服务便民热线办理情况开展专题询问。", _c("12345热线")),
            ("建立12345 热线与人大代表建议办理的衔接机制。", _c("12345热线")),
            ("推动涉企政策“免申即享”。", _c()),
        ),
    ),
    _Topic(
        "digital",
        "《中华人民共和国各级人民代表大会常务委员会监督法》",
        _c(),
        ("数字人大", "APP"),
        (("数字人大APP", _c("数字人大", "APP")), ("数字人大", _c("数字人大"))),
        (
            (
                "上线“数字人大”APP，代表可在线提交建议、查看办理进度。",
                _c("数字人大", "APP"),
            ),
            ("通过手机ＡＰＰ开展代表履职积分管理。", _c("APP")),
            ("群众可通过微信小程序和App反映意见。", _c("APP")),
            ("建设数字人大监督平台，实现数据互通共享。", _c("数字人大")),
        ),
    ),
)

_FILLER = (
    "常委会组成人员和部分人大代表参加。",
    "会后形成调研报告，提交常委会会议审议。",
    "相关部门负责同志列席会议并回答询问。",
    "做到问题清单、责任清单、整改清单“三单”管理。",
    "下一步将持续跟踪监督，确保整改到位。",
)

QUERIES: dict[str, frozenset[str]] = {
    "安全生产法": _c("安全生产法"),
    "预算联网监督": _c("预算联网监督"),
    "执法检查 方案": _c("执法检查", "方案"),
    "代表联络站": _c("代表联络站"),
    "生态环境保护": _c("生态环境保护"),
    "食品安全": _c("食品安全"),
    "12345热线": _c("12345热线"),
    "APP": _c("APP"),
    "数字人大 app": _c("数字人大", "APP"),
    "长江保护法 执法检查": _c("长江保护法", "执法检查"),
}
"""The fixed query set: query text → the concepts a relevant item expresses."""


_TAG_CONCEPTS = {
    "安全生产法": "安全生产法",
    "执法检查": "执法检查",
    "预算联网监督": "预算联网监督",
    "代表联络站": "代表联络站",
    "生态环境保护": "生态环境保护",
    "长江保护法": "长江保护法",
    "食品安全法": "食品安全",
    "食品安全": "食品安全",
    "12345热线": "12345热线",
    "数字人大": "数字人大",
    "APP": "APP",
}


def _tag_concepts(tags: list[str]) -> set[str]:
    return {_TAG_CONCEPTS[t] for t in tags if t in _TAG_CONCEPTS}


@dataclass
class CorpusItem:
    """A generated item, unsigned, with the concepts it expresses."""

    item: dict[str, Any]
    concepts: set[str] = field(default_factory=set)
    topic: str = ""
    title_concepts: frozenset[str] = frozenset()

    @property
    def id(self) -> str:
        """The item's id."""
        return item_id(self.item)


def _sentences(
    rng: random.Random, topic: _Topic, n: int, concepts: set[str]
) -> list[str]:
    out = []
    for _ in range(n):
        if rng.random() < 0.2:
            out.append(rng.choice(_FILLER))
            continue
        text, cs = rng.choice(topic.sentences)
        concepts.update(cs)
        out.append(text)
    return out


def _audience(rng: random.Random, author: str) -> dict[str, list[str]]:
    r = rng.random()
    if r < 0.6:
        return {"circles": [], "sites": []}
    if r < 0.85:
        return {"circles": [rng.choice(SITES[author][1])], "sites": []}
    others = sorted(s for s in SITES if s != author)
    return {"circles": [], "sites": sorted(rng.sample(others, 2))}


def _let_read(audience: dict[str, list[str]], site: str) -> None:
    """Add ``site`` to a restricted audience it is not in yet."""
    circles, sites = audience["circles"], audience["sites"]
    if (
        (circles or sites)
        and site not in sites
        and not set(circles) & set(SITES[site][1])
    ):
        audience["sites"] = sorted([*sites, site])


def _date(d: datetime) -> str:
    return d.date().isoformat()


def _contact(rng: random.Random) -> list[dict[str, str]]:
    name = rng.choice(("张明", "李静", "王磊", "陈芳", "刘洋"))
    return [
        {
            "name": name,
            "role": rng.choice(("法工委主任", "研究室副主任", "财经工委主任")),
            "phone": f"05{rng.randint(10, 99)}-{rng.randint(3000000, 3999999)}",
        }
    ]


def _body(
    rng: random.Random,
    kind: str,
    topic: _Topic,
    author: str,
    created: datetime,
    concepts: set[str],
) -> dict[str, Any]:
    if kind == "case_study":
        concepts.update(topic.law_concepts)  # legal_basis names the law
        return {
            "background": "".join(_sentences(rng, topic, 2, concepts)),
            "actions": _sentences(rng, topic, 3, concepts),
            "results": "".join(_sentences(rng, topic, 1, concepts))
            + "相关问题整改率达95%。",
            "legal_basis": [topic.law],
            "period": {
                "start": _date(created - timedelta(days=90)),
                "end": _date(created),
            },
            "contacts": _contact(rng),
            "lessons_learned": "".join(_sentences(rng, topic, 1, concepts)),
        }
    if kind == "lesson":
        return {
            "practice": "".join(_sentences(rng, topic, 2, concepts)),
            "conditions": "适用于已建立常态化监督机制的县区。",
            "outcomes": "".join(_sentences(rng, topic, 1, concepts)),
            "applicability": ["县区人大常委会", "跨区域协作"],
            "challenges": rng.choice(_FILLER),
            "contacts": _contact(rng),
        }
    if kind == "inspection_plan":
        partner = rng.choice(sorted(s for s in SITES if s != author))
        start = created + timedelta(days=7)
        concepts.update({"执法检查", "方案"})
        concepts.update(topic.law_concepts)
        return {
            "law": topic.law,
            "articles": ["第二十一条", "第四十一条"][: rng.randint(1, 2)],
            "lead_site": author,
            "participating_sites": [partner],
            "objectives": _sentences(rng, topic, 2, concepts),
            "scope": "两地有关部门和重点单位。"
            + "".join(_sentences(rng, topic, 1, concepts)),
            "phases": [
                {
                    "name": "动员部署",
                    "start": _date(start),
                    "end": _date(start + timedelta(days=2)),
                    "activities": ["召开联合执法检查动员会，印发检查方案。"],
                    "responsible_sites": [author],
                },
                {
                    "name": "实地检查",
                    "start": _date(start + timedelta(days=10)),
                    "end": _date(start + timedelta(days=20)),
                    "activities": _sentences(rng, topic, 2, concepts),
                    "responsible_sites": [author, partner],
                },
                {
                    "name": "整改跟踪",
                    "start": _date(start + timedelta(days=30)),
                    "end": _date(start + timedelta(days=90)),
                    "activities": ["对发现的问题逐项跟踪整改。"],
                    "responsible_sites": [partner],
                },
            ],
            "responsibilities": [
                {"site": author, "duties": ["牵头制定检查方案，起草执法检查报告。"]},
                {"site": partner, "duties": ["组织本地检查，提供执法数据。"]},
            ],
            "findings": [
                {
                    "summary": rng.choice(_FILLER),
                    "severity": rng.choice(("low", "medium", "high")),
                    "site": partner,
                }
            ],
            "rectification": [
                {
                    "issue": "建立问题整改台账",
                    "responsible_body": "区应急管理局",
                    "deadline": _date(start + timedelta(days=60)),
                    "status": "in_progress",
                }
            ],
            "contacts": _contact(rng),
        }
    raise ValueError(kind)


def generate(
    n: int = 400, seed: int = 11, now: datetime | None = None
) -> list[CorpusItem]:
    """``n`` items in push order (an endorsement or retraction follows its target).

    Args:
        n: How many items.
        seed: The random seed.
        now: The newest creation time (default: now, China Standard Time).
    """
    rng = random.Random(seed)
    now = (now or datetime.now(_CST)).astimezone(_CST).replace(microsecond=0)
    out: list[CorpusItem] = []
    sites = sorted(SITES)
    open_plans: list[CorpusItem] = []  # plans not yet endorsed (each is endorsed once)
    plans_by_topic: dict[str, list[CorpusItem]] = {}
    for i in range(n):
        created = now - timedelta(days=(n - i) * 700 / n, minutes=rng.randint(0, 600))
        author = rng.choice(sites)
        r = rng.random()
        if open_plans and r < 0.08:
            plan = open_plans.pop(rng.randrange(len(open_plans)))
            partner = plan.item["body"]["participating_sites"][0]
            concepts: set[str] = {"执法检查", "方案"} | set(plan.title_concepts)
            concepts |= _tag_concepts(list(plan.item["tags"]))
            item = {
                "v": 1,
                "kind": "endorsement",
                "author": partner,
                "created_at": created.isoformat(),
                "audience": plan.item["audience"],
                "refs": [{"rel": "endorses", "id": plan.id}],
                "title": f"关于{plan.item['title']}的会签意见",
                "summary": "",
                "tags": list(plan.item["tags"]),
                "lang": "zh-CN",
                "body": {
                    "plan": plan.id,
                    "decision": "endorse",
                    "comment": "同意该执法检查方案，我区将按方案安排开展检查。",
                    "commitments": ["派出检查组成员2名", "按期提交本地检查情况报告"],
                },
                "attachments": [],
            }
            out.append(CorpusItem(item, concepts, plan.topic, plan.title_concepts))
            continue
        topic = rng.choice(_TOPICS)
        kind = rng.choices(("case_study", "inspection_plan", "lesson"), (4, 3, 3))[0]
        stem, cs = rng.choice(topic.titles)
        concepts = set(cs)
        place = SITES[author][0].removesuffix("人大常委会")
        suffix = {
            "case_study": "典型案例",
            "inspection_plan": "联合执法检查方案",
            "lesson": "经验做法",
        }[kind]
        title = f"{place}{stem}{suffix}"
        refs: list[dict[str, str]] = []
        same = plans_by_topic.get(topic.key, [])
        if kind != "inspection_plan" and same and rng.random() < 0.3:
            refs.append(
                {
                    "rel": "reports_on" if kind == "case_study" else "cites",
                    "id": rng.choice(same).id,
                }
            )
        body = _body(rng, kind, topic, author, created, concepts)
        summary = "".join(_sentences(rng, topic, 1, concepts))
        tags = [t for t in topic.tags if rng.random() < 0.6] or ["人大监督"]
        concepts |= _tag_concepts(tags)
        item = {
            "v": 1,
            "kind": kind,
            "author": author,
            "created_at": created.isoformat(),
            "audience": _audience(rng, author),
            "refs": refs,
            "title": title,
            "summary": summary,
            "tags": tags,
            "lang": "zh-CN",
            "body": body,
            "attachments": [],
        }
        if kind == "inspection_plan":  # its participant reads it (and may endorse it)
            _let_read(item["audience"], body["participating_sites"][0])
        title_concepts = frozenset(
            cs | ({"执法检查", "方案"} if kind == "inspection_plan" else set())
        )
        ci = CorpusItem(item, concepts, topic.key, title_concepts)
        out.append(ci)
        if kind == "inspection_plan":
            open_plans.append(ci)
            plans_by_topic.setdefault(topic.key, []).append(ci)
    return out
