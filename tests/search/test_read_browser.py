"""The reading view as partner staff use it, in headless Chromium against a real node.

Log in with the site's read token, search, open a joint inspection plan, see its
signature verified and its log receipt, follow a reference to the endorsement and back,
switch to English, look at it on a tablet. Screenshots go to ``test-artifacts/read/``.
The whole browser session runs in a worker thread so that the node (on this event
loop) keeps serving it.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from selenium.webdriver.common.by import By

from exchange.core.items import sign_item
from exchange.templates import template
from tests.support import wait_for
from tests.support.browser import chromium, screenshot

from .conftest import Corpus


async def _extra_plan(node: Any) -> tuple[str, str, str]:
    """A plan with an attachment, its endorsement and a report on it; receipts awaited."""
    lead, partner = "huaibei-duji", "suzhou-wuzhong"
    data = "安全生产法联合执法检查方案（全文）".encode() * 200
    sha = hashlib.sha256(data).hexdigest()
    plan = template("inspection_plan", lead, partner)
    plan["title"] = "淮北杜集—苏州吴中安全生产法联合执法检查方案（2026年）"
    plan["summary"] = (
        "两地人大常委会联合开展安全生产法执法检查，重点检查危险化学品和矿山企业。"
    )
    plan["audience"] = {"circles": ["yangtze-delta"], "sites": []}
    plan["attachments"] = [
        {
            "name": "联合执法检查方案.pdf",
            "media_type": "application/pdf",
            "size": len(data),
            "sha256": sha,
        }
    ]
    async with node.client(lead) as c:
        await c.put_blob(data, "application/pdf")
        pid = (await c.push(sign_item(plan, node.keys[lead])))["id"]
    endo = template("endorsement", partner)
    endo["title"] = "吴中区关于安全生产法联合执法检查方案的会签意见"
    endo["audience"] = plan["audience"]
    endo["body"]["plan"] = pid
    endo["refs"] = [{"rel": "endorses", "id": pid}]
    async with node.client(partner) as c:
        eid = (await c.push(sign_item(endo, node.keys[partner])))["id"]
        for i in (pid, eid):
            await c.request("GET", f"/v1/items/{i}/receipt", params={"wait": 10})
    return pid, eid, plan["title"]


def _drive(url: str, token: str, pid: str, eid: str, title: str) -> list[str]:
    shots: list[str] = []
    with chromium(1366, 900) as d:

        def text(css: str) -> str:
            return str(d.find_element(By.CSS_SELECTOR, css).text)

        d.get(url + "/read")
        wait_for(
            lambda: d.find_element(By.ID, "token").is_displayed(), what="login form"
        )
        shots.append(str(screenshot(d, "read", "01-login-zh")))
        d.find_element(By.ID, "token").send_keys(token)
        d.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
        wait_for(lambda: d.find_element(By.ID, "q").is_displayed(), what="the list")
        assert "苏州市吴中区人大常委会" in text("#who")
        cookie = {c["name"]: c for c in d.get_cookies()}["exchange_read"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

        # Search, narrowed to plans.
        d.find_element(By.ID, "q").send_keys("安全生产法")
        d.find_element(By.CSS_SELECTOR, "#search button[type=submit]").click()
        wait_for(lambda: d.find_elements(By.CSS_SELECTOR, "#hits li.hit"), what="hits")
        d.find_element(By.CSS_SELECTOR, "#f-kind option[value=inspection_plan]").click()
        wait_for(lambda: "kind=inspection_plan" in d.current_url, what="kind filter")
        hits = d.find_elements(By.CSS_SELECTOR, "#hits li.hit")
        assert hits and {h.get_attribute("data-kind") for h in hits} == {
            "inspection_plan"
        }
        assert d.find_elements(By.CSS_SELECTOR, "#hits mark")
        shots.append(str(screenshot(d, "read", "02-search-plans-zh")))

        # Open the plan.
        d.find_element(By.CSS_SELECTOR, f'li.hit[data-id="{pid}"] a.title').click()
        wait_for(lambda: text("#title") == title, what="the plan page")
        assert "ok" in (d.find_element(By.ID, "sig").get_attribute("class") or "")
        assert "签名有效" in text("#sig") and text("#key-id") == "huaibei-duji#k1"
        assert "已记入日志" in text("#receipt")
        assert len(d.find_elements(By.CSS_SELECTOR, "#timeline li.phase")) == 2
        assert "联合执法检查方案.pdf" in text("#attachments")
        page = text("main")
        assert "长三角" in page and "yangtze-delta" not in page  # circles by name
        d.set_window_size(1366, 2400)
        shots.append(str(screenshot(d, "read", "03-plan-zh")))
        d.set_window_size(1366, 900)

        # Follow the reference to the endorsement, and back through its ref.
        d.find_element(By.CSS_SELECTOR, f'#refs-in a[href="/read/items/{eid}"]').click()
        wait_for(lambda: "会签意见" in text("#title"), what="the endorsement")
        assert "签名有效" in text("#sig") and "suzhou-wuzhong#k1" in text("#key-id")
        shots.append(str(screenshot(d, "read", "04-endorsement-zh")))
        d.find_element(
            By.CSS_SELECTOR, f'#refs-out a[href="/read/items/{pid}"]'
        ).click()
        wait_for(lambda: text("#title") == title, what="back to the plan")

        # English.
        d.find_element(By.ID, "lang").click()
        wait_for(lambda: "Signature verified" in text("#sig"), what="English")
        d.set_window_size(1366, 2400)
        shots.append(str(screenshot(d, "read", "05-plan-en")))

        # Tablet.
        d.set_window_size(820, 1180)
        d.get(url + "/read?q=" + "执法检查%20方案")
        wait_for(
            lambda: d.find_elements(By.CSS_SELECTOR, "#hits li.hit"), what="tablet hits"
        )
        shots.append(str(screenshot(d, "read", "06-search-tablet-en")))
        d.find_element(By.ID, "lang").click()
        wait_for(lambda: "检索结果" in d.page_source, what="Chinese again")

        # Out.
        d.find_element(By.ID, "logout").click()
        wait_for(
            lambda: d.find_element(By.ID, "token").is_displayed(), what="signed out"
        )
    return shots


async def test_read_view_in_chromium(corpus: Corpus) -> None:
    node = corpus.node
    pid, eid, title = await _extra_plan(node)
    token = await node.node.read_access.issue_token("suzhou-wuzhong")
    shots = await asyncio.to_thread(_drive, node.url, token, pid, eid, title)
    assert len(shots) == 6
