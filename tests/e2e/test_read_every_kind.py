"""Every kind as congress staff read it, in headless Chromium, Chinese and English.

A node with a roster (circle names) holds one item of each of the 12 kinds with
realistic Chinese content: a joint inspection taken from approval to closing (plan,
endorsement, plan steps, inspection report, deliberation opinions, handling report,
the 回头看 research report) plus a case study, a lesson, an agreement, minutes and a
retraction. Each item page is opened at 1366×900 and 390×844 in both languages; the
visible text must hold no raw field name, no ``{``/``[`` repr, no ``k_`` key and no
untranslated code. The list (kind badges, filter) and the dashboard are checked too.
Full-page screenshots go to ``test-artifacts/read-kinds/`` and
``test-artifacts/dashboard/``. One browser serves the whole test.
"""

from __future__ import annotations

import asyncio
import base64
import re
import typing
from typing import Any

from selenium.webdriver.common.by import By

from exchange.core.canonical import item_id
from exchange.core.items import sign_item
from exchange.core.plans import STATES, STEPS
from exchange.core.present import BODY_MODELS
from exchange.templates import template
from schemas.errors import ErrorCode
from schemas.items import KINDS
from schemas.labels import VALUE_LABELS
from tests.support import wait_for
from tests.support.browser import ARTIFACTS, chromium
from tests.support.federation import build
from tests.support.plans import Flow

LEAD, PARTNER = "huaibei-duji", "xuzhou-tongshan"
SIZES = {"desktop": (1366, 900, False), "phone": (390, 844, True)}


def _field_names() -> set[str]:
    """Wire names of every body field, nested models included."""
    names: set[str] = set()
    todo = list(BODY_MODELS.values())
    seen: set[type] = set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        for name, fi in m.model_fields.items():
            names.add(name)
            stack = [fi.annotation]
            while stack:
                t = stack.pop()
                if isinstance(t, type) and hasattr(t, "model_fields"):
                    todo.append(t)
                stack.extend(typing.get_args(t))
    return names


FIELDS = _field_names()
CODES = (
    set(KINDS)
    | set(STATES)
    | set(STEPS)
    | {v for vs in VALUE_LABELS.values() for v in vs}
    | {c.value for c in ErrorCode}
)


def raw_text_problems(text: str, lang: str) -> list[str]:
    """What a person should never see: wire names, reprs, ``k_`` keys, codes."""
    problems = [f"repr bracket {ch!r}" for ch in "{}[]" if ch in text]
    problems += [f"k_ key {m}" for m in re.findall(r"\bk_[a-z_]+", text)]
    words = set(re.findall(r"(?<![\w#./:-])[a-z][a-z_]*[a-z](?![\w#/-])", text))
    if lang == "zh":
        # Chinese pages hold no lowercase English words at all beyond names of
        # algorithms and hosts; any field name or code is a leak.
        problems += [f"field {w}" for w in sorted(words & FIELDS)]
        problems += [f"code {w}" for w in sorted(words & CODES)]
    else:
        # English pages use ordinary words ("plan", "status"); a leak is a
        # snake_case wire name or code.
        problems += [
            f"wire name {w}" for w in sorted(words & (FIELDS | CODES)) if "_" in w
        ]
    return problems


async def _push(rn: Any, item: dict[str, Any]) -> str:
    async with rn.client(item["author"]) as c:
        res = await c.push(sign_item(item, rn.keys[item["author"]]))
    return str(res["id"])


async def _fill(rn: Any) -> dict[str, str]:
    """One item of every kind (the plan taken to closing); returns kind → id shown."""
    flow = Flow(rn.keys, lead=LEAD, participants=(PARTNER,))
    flow.plan_item["title"] = "淮北杜集—徐州铜山安全生产法联合执法检查方案（2026年）"
    flow.plan_item["summary"] = (
        "两地人大常委会联合检查安全生产法实施情况，重点检查危险化学品和非煤矿山企业。"
    )
    flow.plan_id = item_id(flow.plan_item)  # the steps name the plan as pushed
    shown: dict[str, str] = {"inspection_plan": await _push(rn, flow.plan_item)}
    approve = flow.update("approve")
    approve["title"] = "关于批准安全生产法联合执法检查方案的决定"
    await _push(rn, approve)
    endorse = flow.endorse(PARTNER)
    endorse["title"] = "铜山区人大常委会关于联合执法检查方案的会签意见"
    shown["endorsement"] = await _push(rn, endorse)
    await _push(rn, flow.update("start", note="两地检查组于动员会后分组开展检查。"))
    await _push(rn, flow.phase("动员部署", "completed"))
    local = flow.report(PARTNER)
    local["title"] = "铜山区安全生产法实施情况检查报告"
    local["body"]["findings"] = [
        {"summary": "部分非煤矿山企业应急预案未按规定演练。", "severity": "high",
         "site": PARTNER}
    ]  # fmt: skip
    await _push(rn, local)
    joint = flow.report(LEAD, "joint")
    joint["title"] = "关于检查安全生产法实施情况的报告"
    shown["inspection_report"] = await _push(rn, joint)
    opinion = flow.opinion()
    opinion["title"] = "关于安全生产法执法检查报告的审议意见"
    shown["deliberation_opinion"] = await _push(rn, opinion)
    await _push(rn, flow.reply(LEAD))
    reply = flow.reply(PARTNER)
    reply["title"] = "铜山区人民政府关于安全生产法执法检查审议意见研究处理情况的报告"
    shown["rectification_reply"] = await _push(rn, reply)
    vote = flow.vote(passed=True)
    vote["title"] = "关于审议意见研究处理情况的满意度测评结果"
    vote["body"]["note"] = (
        "常委会第二十五次会议对两地政府研究处理情况进行满意度测评，测评通过。"
    )
    shown["plan_update"] = await _push(rn, vote)
    review = flow._base("research_report", LEAD)
    review["title"] = "安全生产法执法检查“回头看”调研报告"
    shown["research_report"] = await _push(rn, review)
    close = flow.update("close", evidence=[item_id(review)])
    close["title"] = "关于安全生产法联合执法检查办结的说明"
    await _push(rn, close)
    audience = {"circles": ["huaihai"], "sites": []}
    for kind in ("case_study", "lesson", "agreement", "minutes"):
        it = template(kind, LEAD, PARTNER)
        it["audience"] = audience
        shown[kind] = await _push(rn, it)
    wrong = template("lesson", LEAD, PARTNER)
    wrong["title"] = "代表联络站经验做法（初稿，已撤回）"
    wrong["audience"] = audience
    wrong_id = await _push(rn, wrong)
    retract = template("retraction", LEAD, PARTNER)
    retract["audience"] = audience
    retract["body"]["target"] = wrong_id
    retract["refs"] = [{"rel": "retracts", "id": wrong_id}]
    shown["retraction"] = await _push(rn, retract)
    # A forged item: refused, and a security event for the dashboard.
    forged = sign_item(template("lesson", PARTNER, LEAD), rn.keys[PARTNER])
    forged["item"]["title"] = "篡改后的标题"
    async with rn.client(PARTNER) as c:
        assert (await c.push_batch([forged]))["refused"] == 1
    assert set(shown) == set(KINDS)
    return shown


def _full_page(d: Any, path: Any) -> None:
    """A screenshot of the whole page, not only the viewport."""
    size = d.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = d.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"],
                     "height": min(size["height"], 12000), "scale": 1},
        },
    )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


def _size(d: Any, name: str) -> None:
    w, h, mobile = SIZES[name]
    d.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": mobile},
    )


def _no_overflow(d: Any) -> bool:
    """Nothing wider than the viewport (a phone must not scroll sideways)."""
    return bool(
        d.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1"
        )
    )


def _check_and_shoot(d: Any, lang: str, size: str, what: str, path: Any) -> str:
    """Assert the visible text is words, not wire data; save a full-page screenshot.

    English phone pages are checked but not saved (a screenshot costs more than the
    check; Chinese at both widths and English on the desktop are the ones to look at).
    """
    text = str(d.find_element(By.TAG_NAME, "body").text)
    problems = raw_text_problems(text, lang)
    assert not problems, (what, lang, size, problems)
    assert not _broken_inside(d), (what, lang, size, _broken_inside(d))
    if size == "phone":
        assert _no_overflow(d), (what, lang, "wider than the phone")
        if lang == "en":
            return ""
    _full_page(d, path)
    return str(path)


# Elements that must stay on one line: dates, names in chips, kind badges.
_ONE_LINE = "time, .pill.name, .kind, .status, .state"


def _broken_inside(d: Any) -> list[str]:
    """Texts of one-line elements that the layout broke across lines."""
    return list(
        d.execute_script(
            "return [...document.querySelectorAll(arguments[0])]"
            ".filter(e => e.getClientRects().length > 1)"
            ".map(e => e.textContent)",
            _ONE_LINE,
        )
    )


def _login(d: Any, page: str, token: str, ready: str) -> None:
    """Sign in on ``page`` with ``token`` and wait for ``ready`` (a CSS selector)."""
    d.get(page)
    wait_for(lambda: d.find_element(By.ID, "token").is_displayed(), what="login")
    d.find_element(By.ID, "token").send_keys(token)
    d.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
    wait_for(lambda: d.find_elements(By.CSS_SELECTOR, ready), what=ready)


def _drive(url: str, token: str, monitor: str, shown: dict[str, str]) -> list[str]:
    shots: list[str] = []
    out = ARTIFACTS / "read-kinds"
    with chromium(1366, 900) as d:
        _login(d, url + "/read", token, "#hits li.hit")
        for lang in ("zh", "en"):
            d.get(f"{url}/read/lang/{lang}?next=/read")
            for size in SIZES:
                _size(d, size)
                for kind, iid in shown.items():
                    d.get(f"{url}/read/items/{iid}")
                    wait_for(lambda: d.find_element(By.ID, "title").text, what=kind)
                    path = out / f"{kind}-{lang}-{size}.png"
                    shots.append(_check_and_shoot(d, lang, size, kind, path))
                # The list: every kind with a badge, the filter offers all 12.
                d.get(f"{url}/read")
                wait_for(
                    lambda: d.find_elements(By.CSS_SELECTOR, "#hits li.hit"),
                    what="hits",
                )
                options = d.find_elements(By.CSS_SELECTOR, "#f-kind option[value]")
                labelled = [o for o in options if o.get_attribute("value")]
                assert len(labelled) == 12 and all(o.text.strip() for o in labelled)
                badges = d.find_elements(By.CSS_SELECTOR, "#hits .kind")
                assert badges and all(b.text.strip() for b in badges)
                assert d.find_elements(
                    By.CSS_SELECTOR, "#hits li.retracted .retracted-mark"
                )
                path = out / f"list-{lang}-{size}.png"
                shots.append(_check_and_shoot(d, lang, size, "list", path))

        # The dashboard, as the municipal committee's monitor.
        _size(d, "desktop")
        _login(d, url + "/dashboard", monitor, "#plans li.plan")  # Chinese by default
        for lang in ("zh", "en"):
            if lang == "en":
                d.find_element(By.ID, "lang").click()
                wait_for(lambda: "Monitoring" in d.find_element(By.TAG_NAME, "h1").text)
            for size in SIZES:
                _size(d, size)
                path = ARTIFACTS / "dashboard" / f"kinds-{lang}-{size}.png"
                shots.append(_check_and_shoot(d, lang, size, "dashboard", path))
        # The chart's last date label lies inside the chart (not clipped), on a phone.
        _size(d, "phone")
        assert d.execute_script(
            "const s = document.querySelector('#chart svg');"
            "const t = [...s.querySelectorAll('text')].pop();"
            "return t.getBoundingClientRect().right <= s.getBoundingClientRect().right + 0.5"
        )
        plans = d.find_element(By.ID, "plans").text
        assert "closed" in plans.lower()
        security = d.find_element(By.ID, "security").text
        assert "signature" in security and "What to do" in security
    return shots


async def test_every_kind_reads_as_words(node_factory: Any) -> None:
    fed = await build(node_factory, regions=("huaihai",))
    rn = fed.nodes["huaihai"]
    shown = await _fill(rn)
    token = await rn.node.read_access.issue_token(PARTNER)
    monitor = "mon-" + "x" * 20
    await rn.node.sites.add_monitor(
        "huaibei-municipal", "淮北市人大常委会", monitor, ["huaihai"], []
    )
    shots = await asyncio.to_thread(_drive, rn.url, token, monitor, shown)
    assert len([s for s in shots if s]) == (12 + 1) * 3 + 3
