"""The dashboard as a person uses it, in headless Chromium against a real node."""

from __future__ import annotations

import asyncio
from typing import Any

from selenium.webdriver.common.by import By

from exchange.core.items import sign_item
from exchange.templates import template
from tests.support import wait_for
from tests.support.browser import chromium, screenshot
from tests.support.federation import CIRCLE_NAMES

from .test_activity import _populate


def _text(d: Any, css: str) -> str:
    return str(d.find_element(By.CSS_SELECTOR, css).text)


async def _run(fn: Any, *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


async def test_dashboard_login_live_language_filter_scope(node_factory: Any) -> None:
    # A node without a roster names its circles in its config.
    node = await node_factory(node={"circle_names": CIRCLE_NAMES})
    await _populate(node)
    async with node.node.db.pool.acquire() as conn:  # a peer that cannot be reached
        await conn.execute(
            "INSERT INTO peers (node_id, base_url, last_error, attempts) VALUES "
            "('yangtze-delta', 'http://127.0.0.1:1', $1, 3)",
            "ClientConnectorError: Cannot connect to host 127.0.0.1:1 [Connection refused]",
        )
    token = await node.add_monitor(
        "huaibei-municipal", circles=("huaihai",), name="淮北市人大常委会"
    )
    other = await node.add_monitor("yangtze", circles=("yangtze-delta",))
    url = node.url + "/dashboard"

    with chromium() as d:

        def login(tok: str) -> None:
            d.get(url)
            wait_for(
                lambda: d.find_element(By.ID, "token").is_displayed(), what="login form"
            )
            d.find_element(By.ID, "token").send_keys(tok)
            d.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
            wait_for(
                lambda: d.find_element(By.ID, "app-view").is_displayed(),
                what="dashboard",
            )

        await _run(login, token)
        await _run(wait_for, lambda: _text(d, "#c-items .v") == "3", 15, "3 items")
        assert _text(d, "h1") == "人大工作交流平台 · 监督看板"
        rows = d.find_elements(By.CSS_SELECTOR, "#sites tbody tr")
        assert sorted(r.get_attribute("data-site") for r in rows) == [
            "huaibei-duji",
            "xuzhou-tongshan",
        ]
        assert (
            "苏州" not in d.page_source
        )  # another circle's site never reaches the page
        assert "endorse" not in _text(d, "#plans") and "已会签 1/1" in _text(
            d, "#plans"
        )
        # Security events in words: what happened, who, what to do; no raw code.
        sec = _text(d, "#security")
        assert (
            "签名无法验证" in sec
            and "处理建议" in sec
            and "淮北市杜集区人大常委会" in sec
        )
        assert "bad_signature" not in sec
        assert "草案" in _text(d, "#plans")  # the plan's state
        week = _text(d, "#week")
        assert "联合执法检查方案" in week and "inspection_plan" not in week, week
        fed = _text(d, "#federation")
        assert "无法连接对方节点" in fed and "对等节点" in fed
        assert "ClientConnectorError" not in fed and "refused" not in fed
        # Who watches and which circles, by name: no monitor or circle ids.
        assert (
            _text(d, "#scope") == "监督范围: 淮北市人大常委会 · 淮海经济区 · 2 个单位"
        )
        sites = _text(d, "#sites")
        assert "淮海经济区、长三角" in sites and "淮海经济区" in week
        for shown in (sites, week, _text(d, "#scope")):
            assert "huaihai" not in shown and "yangtze-delta" not in shown
        await _run(
            wait_for,
            lambda: (
                "on" in (d.find_element(By.ID, "live").get_attribute("class") or "")
            ),
            15,
            "SSE",
        )
        screenshot(d, "dashboard", "overview-zh")

        # A new push appears without a reload.
        d.execute_script("window.__marker = 1")
        async with node.client("xuzhou-tongshan") as c:
            await c.push(
                sign_item(
                    template("lesson", "xuzhou-tongshan"), node.keys["xuzhou-tongshan"]
                )
            )
        await _run(
            wait_for,
            lambda: _text(d, "#c-items .v") == "4",
            20,
            "live update to 4 items",
        )
        assert d.execute_script("return window.__marker") == 1, "the page was reloaded"

        # Filter and sort the table.
        d.find_element(By.ID, "filter").send_keys("tongshan")
        rows = d.find_elements(By.CSS_SELECTOR, "#sites tbody tr")
        assert [r.get_attribute("data-site") for r in rows] == ["xuzhou-tongshan"]
        d.find_element(By.ID, "filter").clear()
        d.execute_script(
            "document.getElementById('filter').dispatchEvent(new Event('input'))"
        )
        header = d.find_element(By.CSS_SELECTOR, "#sites th[data-sort=items_shared]")
        header.click()
        header.click()  # descending: the site with most items first
        first = d.find_elements(By.CSS_SELECTOR, "#sites tbody tr")[0].get_attribute(
            "data-site"
        )
        assert first == "huaibei-duji"

        # Switch language.
        d.find_element(By.ID, "lang").click()
        await _run(
            wait_for,
            lambda: _text(d, "h1") == "Congress Exchange · Monitoring",
            5,
            "English",
        )
        assert _text(d, "#sites thead").startswith("Site")
        screenshot(d, "dashboard", "overview-en")
        d.find_element(By.ID, "lang").click()

        # Tablet width still shows everything.
        d.set_window_size(820, 1180)
        screenshot(d, "dashboard", "tablet-zh")

        # Log out, then a monitor of the other circle sees only its own sites.
        d.find_element(By.ID, "logout").click()
        await _run(
            wait_for,
            lambda: d.find_element(By.ID, "login-view").is_displayed(),
            10,
            "logout",
        )
        await _run(login, other)
        await _run(
            wait_for,
            lambda: len(d.find_elements(By.CSS_SELECTOR, "#sites tbody tr")) == 2,
            15,
            "rows",
        )
        rows = d.find_elements(By.CSS_SELECTOR, "#sites tbody tr")
        assert sorted(r.get_attribute("data-site") for r in rows) == [
            "huaibei-duji",
            "suzhou-wuzhong",
        ]
        assert "铜山" not in d.page_source
        cookies = {c["name"]: c for c in d.get_cookies()}
        assert cookies["exchange_session"]["httpOnly"] is True
        assert cookies["exchange_session"]["sameSite"] == "Strict"
        assert (
            d.execute_script("return document.cookie") == ""
        )  # not readable from scripts
