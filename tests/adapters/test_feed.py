"""The feed adapter against a real HTTP server on 127.0.0.1 serving RSS 2.0 and Atom."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.base import AdapterContext, AdapterError
from adapters.registry import load_adapter
from adapters.rss import FeedSource, parse_feed
from schemas.items import ITEM_ADAPTER

RSS = """<?xml version="1.0" encoding="{enc}"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel>
  <title>淮北市人大常委会 - 基层人大</title>
  <link>http://127.0.0.1/list/7.html</link>
  <item>
    <title>杜集区人大:在践行“全过程人民民主”中展现人大新作为</title>
    <link>http://127.0.0.1/content/detail/61792.html</link>
    <guid isPermaLink="false">61792</guid>
    <pubDate>Thu, 28 Oct 2021 09:30:00 +0800</pubDate>
    <category>基层人大</category>
    <category>全过程人民民主</category>
    <dc:creator>淮北市人大常委会研究室</dc:creator>
    <description>杜集区人大常委会认真贯彻落实中央人大工作会议精神。</description>
    <content:encoded><![CDATA[<p>　　习近平总书记在中央人大工作会议上的重要讲话中,再次提出“全过程人民民主”的重要论断。</p>
<p>始终不渝坚持党的领导,在政治建设上展现新作为。</p>
<p>始终坚持正确监督、依法监督,在回应民生关切上展现新作为。</p>
<p>始终加强自身建设,在提升整体工作水平上展现新作为。(段飞)</p>]]></content:encoded>
  </item>
  <item>
    <title>铜山区人大常委会开展安全生产法执法检查</title>
    <link>http://127.0.0.1/content/detail/61770.html</link>
    <guid>61770</guid>
    <pubDate>2021年10月15日 09:30</pubDate>
    <category>执法检查</category>
    <description><![CDATA[一、背景
为推动安全生产责任落实，组织开展执法检查。
二、主要做法
深入12家企业实地检查。
对问题逐项建立清单。
三、成效
46处隐患已整改41处。]]></description>
  </item>
  <item>
    <title>没有日期的条目</title>
    <link>http://127.0.0.1/content/detail/1.html</link>
    <description>内容</description>
  </item>
</channel>
</rss>
"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>吴中区人大</title>
  <id>urn:uuid:wuzhong</id>
  <updated>2021-11-02T08:00:00Z</updated>
  <entry>
    <title type="html">吴中区人大代表联络站“双述双评”经验</title>
    <id>tag:wzrd.example,2021:42</id>
    <link rel="alternate" href="http://127.0.0.1/wz/42.html"/>
    <published>2021-11-02T08:00:00Z</published>
    <updated>2021-11-03T08:00:00Z</updated>
    <author><name>吴中区人大常委会</name></author>
    <category term="代表工作" label="代表工作"/>
    <content type="html">&lt;p&gt;【做法】每季度组织代表向选民述职。&lt;/p&gt;&lt;p&gt;【适用条件】代表联络站常态化运行。&lt;/p&gt;&lt;p&gt;【成效】群众满意度达96%。&lt;/p&gt;</content>
  </entry>
</feed>
"""


@pytest.fixture
async def feeds() -> AsyncIterator[dict[str, Any]]:
    docs: dict[str, tuple[bytes, str]] = {
        "/rss.xml": (RSS.format(enc="utf-8").encode(), "application/rss+xml"),
        "/gbk.xml": (RSS.format(enc="gb2312").encode("gb18030"), "application/rss+xml"),
        "/atom.xml": (ATOM.encode(), "application/atom+xml"),
        "/broken.xml": (RSS.format(enc="utf-8").encode()[:900], "application/rss+xml"),
        "/html.xml": (b"<html><body>502 Bad Gateway</body></html>", "text/html"),
        "/bomb.xml": (
            b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><rss>&a;</rss>',
            "application/xml",
        ),
    }

    async def handler(request: web.Request) -> web.Response:
        if request.path == "/down.xml":
            return web.Response(status=503, text="maintenance")
        body, ctype = docs[request.path]
        return web.Response(body=body, content_type=ctype)

    app = web.Application()
    app.router.add_get("/{name}", handler)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield {"base": str(server.make_url("")).rstrip("/")}
    finally:
        await server.close()


def _source(tmp_path: Path, url: str, **extra: Any) -> FeedSource:
    ctx = AdapterContext(
        "huaibei-duji", tmp_path / "feed", logging.getLogger("t"), tmp_path
    )
    table = {
        "type": "feed",
        "name": "news",
        "url": url,
        "defaults": {"applicability": ["县级人大常委会"]},
        **extra,
    }
    src = load_adapter(table, ctx)
    assert isinstance(src, FeedSource)
    return src


async def _poll(src: FeedSource, state: dict[str, Any] | None = None) -> Any:
    try:
        return await src.poll(state or {})
    finally:
        await src.close()


@pytest.mark.parametrize("path", ["/rss.xml", "/gbk.xml"])
async def test_rss_entries_become_items_by_rules(
    feeds: dict[str, Any], tmp_path: Path, path: str
) -> None:
    src = _source(
        tmp_path,
        feeds["base"] + path,
        kind_rules=[{"field": "category", "match": "执法检查", "kind": "case_study"}],
    )
    poll = await _poll(src)
    by_title = {d.item["title"]: d.item for d in poll.drafts}
    assert len(by_title) == 2
    duji = by_title["杜集区人大：在践行“全过程人民民主”中展现人大新作为"]
    assert duji["kind"] == "lesson"
    assert duji["created_at"] == "2021-10-28T09:30:00+08:00"
    assert duji["tags"] == ["基层人大", "全过程人民民主"]
    assert duji["body"]["conditions"].startswith(
        "习近平总书记在中央人大工作会议上的重要讲话中，"
    )
    assert duji["body"]["outcomes"].endswith("（段飞）")
    assert duji["summary"] == "杜集区人大常委会认真贯彻落实中央人大工作会议精神。"
    ts = by_title["铜山区人大常委会开展安全生产法执法检查"]
    assert ts["kind"] == "case_study"
    assert ts["created_at"] == "2021-10-15T09:30:00+08:00"
    assert ts["body"]["actions"] == ["深入12家企业实地检查。", "对问题逐项建立清单。"]
    assert ts["body"]["results"] == "46处隐患已整改41处。"
    assert "applicability" not in ts["body"]
    for it in by_title.values():
        ITEM_ADAPTER.validate_python(it)
    assert len(poll.problems) == 1 and "no date" in poll.problems[0]
    assert poll.state == {"seen": ["61792", "61770"]}
    # The next poll from that state finds nothing new; a fresh read gives equal items.
    assert (
        await _poll(_source(tmp_path, feeds["base"] + path), poll.state)
    ).drafts == []


async def test_atom_entry(feeds: dict[str, Any], tmp_path: Path) -> None:
    poll = await _poll(_source(tmp_path, feeds["base"] + "/atom.xml", tags=["长三角"]))
    (d,) = poll.drafts
    assert d.ref == "http://127.0.0.1/wz/42.html"
    it = d.item
    assert it["created_at"] == "2021-11-02T16:00:00+08:00"  # same moment, site offset
    assert it["tags"] == ["代表工作", "长三角"]
    assert it["body"]["practice"] == "每季度组织代表向选民述职。"
    assert it["body"]["conditions"] == "代表联络站常态化运行。"
    assert it["body"]["outcomes"] == "群众满意度达96%。"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/broken.xml", r"not well-formed XML at line \d+, column \d+"),
        ("/html.xml", r"neither RSS 2.0 nor Atom \(root element <html>\)"),
        ("/bomb.xml", r"declares XML entities"),
    ],
)
async def test_malformed_feed_is_a_clear_error_and_yields_nothing(
    feeds: dict[str, Any], tmp_path: Path, path: str, message: str
) -> None:
    src = _source(tmp_path, feeds["base"] + path)
    with pytest.raises(AdapterError, match=message) as err:
        await _poll(src)
    assert not err.value.retryable
    assert path in err.value.message


async def test_server_error_is_retryable(feeds: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match="HTTP 503") as err:
        await _poll(_source(tmp_path, feeds["base"] + "/down.xml"))
    assert err.value.retryable


def test_parse_feed_reads_categories_and_authors() -> None:
    entries = parse_feed(RSS.format(enc="utf-8").encode())
    assert [e.id for e in entries] == [
        "61792",
        "61770",
        "http://127.0.0.1/content/detail/1.html",
    ]
    assert entries[0].author == "淮北市人大常委会研究室"
