"""The portal adapter against a real HTTP server on 127.0.0.1 serving CMS pages.

The fixtures (``fixtures/portal/``) have the shape of a county congress portal: a
column list page, the Duji article of ``tests/vectors/samples`` (UTF-8, with two attached
files), a Tongshan article in GBK declared as GB2312 — served with a wrong
``charset=utf-8`` header, as misconfigured servers do — and one page whose layout
changed (the title is no longer an ``<h1>``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.base import AdapterContext, AdapterError
from adapters.fetch import decode_html
from adapters.portal_html import PortalSource
from adapters.registry import load_adapter
from exchange.errors import ConfigError
from schemas.items import ITEM_ADAPTER

FIX = Path(__file__).parent / "fixtures" / "portal"
DOCX = b"PK\x03\x04 fake docx bytes for the attachment test"
PDF = b"%PDF-1.4\n% a small pdf\n"


def _page(name: str, charset: str = "utf-8") -> web.Response:
    return web.Response(
        body=(FIX / name).read_bytes(),
        headers={"Content-Type": f"text/html; charset={charset}"},
    )


@pytest.fixture
async def portal() -> AsyncIterator[dict[str, Any]]:
    """A portal on 127.0.0.1; ``state["pages"]`` can be changed by a test."""
    state: dict[str, Any] = {"hits": {}, "list": "list.html"}

    async def handler(request: web.Request) -> web.StreamResponse:
        path = request.path
        state["hits"][path] = state["hits"].get(path, 0) + 1
        if path == "/list/7.html":
            return _page(state["list"])
        if path == "/content/detail/61792.html":
            return _page("article-duji.html")
        if path == "/content/detail/61785.html":
            return _page("article-layout-changed.html")
        if path == "/content/detail/61770.html":
            return _page(
                "article-tongshan-gbk.html", "utf-8"
            )  # wrong header on purpose
        if path.endswith("duji-jiandu-jihua.docx"):
            return web.Response(body=DOCX, content_type="application/octet-stream")
        if path.endswith(".pdf"):
            return web.Response(body=PDF, content_type="application/pdf")
        return web.Response(status=404, text="not found")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    state["url"] = str(server.make_url("/list/7.html"))
    state["base"] = str(server.make_url("")).rstrip("/")
    try:
        yield state
    finally:
        await server.close()


def _ctx(tmp_path: Path) -> AdapterContext:
    return AdapterContext(
        "huaibei-duji", tmp_path / "portal", logging.getLogger("t"), tmp_path
    )


def _source(tmp_path: Path, url: str, **extra: Any) -> PortalSource:
    table = {
        "type": "portal",
        "name": "duji-portal",
        "list_url": url,
        "defaults": {"applicability": ["县（市、区）人大常委会"]},
        **extra,
    }
    src = load_adapter(table, _ctx(tmp_path))
    assert isinstance(src, PortalSource)
    return src


async def test_reads_articles_attachments_and_reports_the_changed_layout(
    portal: dict[str, Any], tmp_path: Path
) -> None:
    src = _source(tmp_path, portal["url"])
    try:
        poll = await src.poll({})
    finally:
        await src.close()
    by_ref = {d.ref.rsplit("/", 1)[1]: d for d in poll.drafts}
    assert sorted(by_ref) == ["61770.html", "61792.html"]
    duji = by_ref["61792.html"]
    item = duji.item
    assert item["title"] == "杜集区人大：在践行“全过程人民民主”中展现人大新作为"
    assert item["created_at"] == "2021-10-28T00:00:00+08:00"
    assert item["kind"] == "lesson"
    body = item["body"]
    assert body["conditions"].startswith("习近平总书记在中央人大工作会议上的重要讲话中")
    assert "始终不渝坚持党的领导，在政治建设上展现新作为。" in body["practice"]
    assert body["outcomes"].startswith("始终加强自身建设")
    assert body["outcomes"].endswith("（段飞）")
    assert body["applicability"] == ["县（市、区）人大常委会"]
    assert "作者：淮北市人大常委会研究室" in item["summary"]
    # Furniture is gone: navigation, 设为首页, font size switch, share, print, footer.
    text = str(item)
    for noise in (
        "设为首页",
        "字体",
        "打印本页",
        "分享到",
        "皖ICP备",
        "上一篇",
        "网站首页",
    ):
        assert noise not in text, noise
    assert (
        "2919" not in text
    )  # the read count changes with every reader: not in the item
    assert [a.name for a in duji.attachments] == [
        "杜集区人大常委会2022年监督工作计划.docx",
        "代表建议办理情况.pdf",
    ]
    assert [a.data for a in duji.attachments] == [DOCX, PDF]
    assert duji.attachments[1].media_type == "application/pdf"
    arts = {a.url.rsplit("/", 1)[1]: a for a in src.last_articles}
    assert arts["61792.html"].read_count == 2919
    assert arts["61792.html"].author == "淮北市人大常委会研究室"
    # The GBK page, served with a wrong utf-8 header, is read correctly (GBK-only 喆).
    ts = by_ref["61770.html"].item
    assert ts["title"] == "铜山区人大常委会开展安全生产法执法检查"
    assert ts["created_at"] == "2021-10-15T09:30:00+08:00"
    assert "喆园小区" in ts["body"]["outcomes"]
    assert arts["61770.html"].read_count == 1532
    for d in poll.drafts:
        ITEM_ADAPTER.validate_python(d.item)
    # The page whose layout changed: a problem naming the missing field, nothing else.
    assert len(poll.problems) == 1
    assert "61785.html" in poll.problems[0]
    assert "no title" in poll.problems[0] and "找不到标题" in poll.problems[0]
    assert sorted(poll.state["seen"]) == sorted(d.ref for d in poll.drafts)


async def test_second_poll_reads_only_what_is_new_and_items_are_deterministic(
    portal: dict[str, Any], tmp_path: Path
) -> None:
    src = _source(tmp_path, portal["url"])
    try:
        first = await src.poll({})
        again = await src.poll(first.state)
        fresh = await src.poll({})
    finally:
        await src.close()
    assert again.drafts == []
    assert portal["hits"]["/content/detail/61785.html"] == 3  # retried every poll
    assert [d.item for d in fresh.drafts] == [d.item for d in first.drafts]


async def test_list_page_without_article_links_is_an_error_of_the_source(
    portal: dict[str, Any], tmp_path: Path
) -> None:
    portal["list"] = "article-layout-changed.html"  # no links to articles on it
    src = _source(tmp_path, portal["url"], selectors={"list_area": ".nothing-here"})
    try:
        with pytest.raises(AdapterError, match="文章链接|no links"):
            await src.poll({})
    finally:
        await src.close()


async def test_unreachable_portal_is_retryable(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = _source(tmp_path, f"http://127.0.0.1:{port}/list/7.html")
    try:
        with pytest.raises(AdapterError) as err:
            await src.poll({})
    finally:
        await src.close()
    assert err.value.retryable and f"127.0.0.1:{port}" in err.value.message


async def test_custom_selectors_and_kind_rules(
    portal: dict[str, Any], tmp_path: Path
) -> None:
    src = _source(
        tmp_path,
        portal["url"],
        selectors={"title": "h1.title, div.bt"},
        kind_rules=[{"match": "执法检查|视察", "kind": "case_study"}],
        tags=["基层人大"],
    )
    try:
        poll = await src.poll({})
    finally:
        await src.close()
    kinds = {d.item["title"]: d.item["kind"] for d in poll.drafts}
    assert poll.problems == []
    assert kinds["烈山区人大常委会视察农村人居环境整治工作"] == "case_study"
    assert kinds["铜山区人大常委会开展安全生产法执法检查"] == "case_study"
    assert all("基层人大" in d.item["tags"] for d in poll.drafts)
    cs = next(d.item for d in poll.drafts if d.item["title"].startswith("铜山"))
    assert cs["body"]["background"].startswith("为深入贯彻落实")
    assert len(cs["body"]["actions"]) == 2
    assert cs["body"]["period"] == {"start": "2021-10-15"}


def test_config_errors_name_the_key_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"source\[3\]\.list_url: Field required"):
        load_adapter({"type": "portal", "name": "p"}, _ctx(tmp_path), index=3)
    with pytest.raises(
        ConfigError, match=r"source\[0\]\.selectors\.titel: unknown key"
    ):
        load_adapter(
            {
                "type": "portal",
                "name": "p",
                "list_url": "http://127.0.0.1/",
                "selectors": {"titel": "h1"},
            },
            _ctx(tmp_path),
        )


@pytest.mark.parametrize(
    ("data", "header", "expected"),
    [
        ("杜集区人大".encode(), "", "utf-8"),
        ("杜集区人大".encode("gbk"), "utf-8", "gb18030"),  # wrong header
        ('<meta charset="gb2312">喆园'.encode("gb18030"), "", "gb18030"),
        ("\ufeff杜集".encode(), "gbk", "utf-8"),  # BOM wins
        (b"plain ascii", "iso-8859-1", "utf-8"),
    ],
)
def test_decode_html_picks_the_real_encoding(
    data: bytes, header: str, expected: str
) -> None:
    text, enc = decode_html(data, header)
    assert enc == expected
    assert "\ufffd" not in text
