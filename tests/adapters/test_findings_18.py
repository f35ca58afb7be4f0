"""Each finding of issue 18 on a page or feed that shows it (real HTTP on 127.0.0.1).

* an attachment-only paragraph (``附件：联合执法检查方案.docx``) was read as body text;
* ``defaults`` overrode the text taken from paragraph positions;
* a GBK page under ``Content-Type: …; charset=ISO-8859-1`` was decoded as Latin-1;
* the read count ``1,204`` parsed as 1, and ``exchange adapter check`` did not show it;
* body field names per kind and relative paths in ``site.toml`` were documented nowhere;
* the feed's XML guard only looked at the first 64 KB.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from adapters.base import AdapterContext, AdapterError
from adapters.extract.page import Selectors, parse_article
from adapters.portal_html import PortalSource
from adapters.registry import load_adapter
from adapters.rss import FeedSource, parse_feed
from exchange.core.signing import generate_key, save_private_key

REPO = Path(__file__).resolve().parents[2]

LIST = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>基层人大</title></head>
<body><div class="list"><ul>
<li><a href="/content/detail/{n}.html">{title}</a><span>2021-10-28</span></li>
</ul></div></body></html>"""

ARTICLE = """<!DOCTYPE html><html><head>{meta}<title>{title}</title></head><body>
<div class="position">您现在的位置：网站首页 / 基层人大</div>
<h1 class="title">{title}</h1>
<div class="info">{info}</div>
<div id="zoom">{body}</div>
<div class="footer">主办：某县人大常委会办公室</div>
</body></html>"""

P1 = "<p>今年以来，县人大常委会把食品安全执法检查列为监督工作重点。</p>"
P2 = "<p>常委会组成人员分三组深入12个乡镇，随机抽查农贸市场和学校食堂。</p>"
P3 = "<p>检查组共发现问题27个，已全部交县政府研究处理。</p>"


def _article(title: str, body: str, *, info: str = "", meta: str = "") -> str:
    return ARTICLE.format(
        title=title,
        body=body,
        info=info or "来源：县人大常委会办公室 发布时间：2021-10-28",
        meta=meta or '<meta charset="utf-8">',
    )


def _portal(web_pages: Any, tmp_path: Path, **extra: Any) -> PortalSource:
    ctx = AdapterContext(
        "huaibei-duji", tmp_path / "p", logging.getLogger("t"), tmp_path
    )
    table = {
        "type": "portal",
        "name": "portal",
        "list_url": web_pages.url("/list.html"),
        **extra,
    }
    src = load_adapter(table, ctx)
    assert isinstance(src, PortalSource)
    return src


def _serve_one(web_pages: Any, html: bytes, ctype: str, title: str) -> None:
    web_pages.pages["/list.html"] = (
        LIST.format(n=101, title=title).encode(),
        "text/html; charset=utf-8",
    )
    web_pages.pages["/content/detail/101.html"] = (html, ctype)


async def _poll(src: PortalSource) -> Any:
    try:
        return await src.poll({})
    finally:
        await src.close()


async def test_attachment_only_paragraph_is_not_body_text(
    web_pages: Any, tmp_path: Path
) -> None:
    title = "县人大常委会开展食品安全联合执法检查"
    body = (
        P1
        + P2
        + P3
        + '<p>附件：<a href="/u/cms/202110/lhzfjcfa.docx">联合执法检查方案.docx</a></p>'
    )
    _serve_one(
        web_pages, _article(title, body).encode(), "text/html; charset=utf-8", title
    )
    web_pages.pages["/u/cms/202110/lhzfjcfa.docx"] = (
        b"PK\x03\x04docx",
        "application/octet-stream",
    )
    poll = await _poll(
        _portal(web_pages, tmp_path, defaults={"applicability": ["县级人大"]})
    )
    assert poll.problems == []
    (draft,) = poll.drafts
    b = draft.item["body"]
    assert b["conditions"].startswith("今年以来")
    assert b["practice"].startswith("常委会组成人员分三组")
    assert b["outcomes"] == "检查组共发现问题27个，已全部交县政府研究处理。"
    assert [a.name for a in draft.attachments] == ["联合执法检查方案.docx"]


async def test_defaults_fill_only_what_headings_and_positions_leave(
    web_pages: Any, tmp_path: Path
) -> None:
    title = "县人大常委会听取审议食品安全工作报告"
    _serve_one(
        web_pages,
        _article(title, P1 + P2 + P3).encode(),
        "text/html; charset=utf-8",
        title,
    )
    src = _portal(
        web_pages,
        tmp_path,
        defaults={
            "conditions": "详见原文。",
            "outcomes": "详见原文。",
            "applicability": ["县级人大"],
        },
    )
    (draft,) = (await _poll(src)).drafts
    b = draft.item["body"]
    assert b["conditions"].startswith("今年以来")
    assert b["practice"].startswith("常委会组成人员分三组")
    assert b["outcomes"].startswith("检查组共发现问题27个")
    assert b["applicability"] == ["县级人大"]


async def test_gbk_page_under_a_lying_latin1_header_is_decoded(
    web_pages: Any, tmp_path: Path
) -> None:
    title = "铜山区人大常委会视察农村人居环境整治工作"
    html = _article(
        title,
        P1 + P2 + P3,
        info="作者：区人大常委会研究室　发布时间：2021年10月20日",
        meta="",
    ).replace('<meta charset="utf-8">', "")
    _serve_one(web_pages, html.encode("gbk"), "text/html; charset=ISO-8859-1", title)
    poll = await _poll(
        _portal(web_pages, tmp_path, defaults={"applicability": ["县级人大"]})
    )
    assert poll.problems == []
    (draft,) = poll.drafts
    assert draft.item["title"] == title
    assert draft.item["created_at"] == "2021-10-20T00:00:00+08:00"
    assert draft.item["summary"].startswith("作者：区人大常委会研究室")


def test_read_count_with_thousands_separator() -> None:
    for info, want in (
        ("阅读次数：1,204 作者：县人大常委会办公室 发布时间：2021-10-28", 1204),
        ("浏览次数：１，２０４　发布日期：2021-10-28", 1204),
        ("发布时间：2021-10-28 点击数：38", 38),
    ):
        html = _article("县人大常委会召开第三十六次会议", P1 + P2 + P3, info=info)
        art = parse_article(html, "http://x/content/1.html", Selectors())
        assert art.read_count == want, info


async def test_adapter_check_shows_the_read_count(
    web_pages: Any, tmp_path: Path
) -> None:
    title = "县人大常委会召开第三十六次会议"
    html = _article(
        title,
        P1 + P2 + P3,
        info="阅读次数：1,204 作者：县人大常委会办公室 发布时间：2021-10-28",
    )
    _serve_one(web_pages, html.encode(), "text/html; charset=utf-8", title)
    save_private_key(generate_key("ed25519", "huaibei-duji#k1"), tmp_path / "duji.key")
    (tmp_path / "site.toml").write_text(
        '[site]\nid = "huaibei-duji"\nkey_file = "duji.key"\n'
        'node = "http://127.0.0.1:9"\n\n[runner]\nrequest_timeout = 2\n\n'
        '[[source]]\ntype = "portal"\nname = "p"\n'
        f'list_url = "{web_pages.url("/list.html")}"\n'
        'defaults = { applicability = ["县级人大"] }\n',
        encoding="utf-8",
    )
    # The CLI runs in a thread-free subprocess while this loop keeps serving pages.
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "exchange",
        "adapter",
        "check",
        str(tmp_path / "site.toml"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
    lines = out.decode().splitlines()
    assert len(lines) == 1, err.decode()
    assert title in lines[0]
    assert "阅读次数=1204" in lines[0].split("\t"), lines[0]


def test_docs_list_each_kinds_body_fields_and_relative_paths() -> None:
    """Every body field of every kind is in a table row with its Chinese name (as the
    schema gives it) and marked 必填 exactly when the schema requires it."""
    import typing

    from schemas import items

    doc = (REPO / "docs" / "adapters.md").read_text(encoding="utf-8")
    models = {
        typing.get_args(c.model_fields["kind"].annotation)[0]: c.model_fields[
            "body"
        ].annotation
        for c in vars(items).values()
        if isinstance(c, type)
        and hasattr(c, "model_fields")
        and {"kind", "body"} <= set(c.model_fields)
    }
    assert set(models) == set(items.KINDS)
    for name, model in models.items():
        section = doc.split(f"#### `{name}`", 1)[1].split("####", 1)[0]
        for fld, info in model.model_fields.items():
            row = re.search(rf"^\|\s*`{fld}`\s*\|[^\n]*$", section, re.MULTILINE)
            assert row, f"{name}.{fld} is not in the table of docs/adapters.md"
            zh = re.search(r"\(([^()]*)\)\.?$", info.description or "")
            assert zh and zh.group(1) in row.group(0), (name, fld)
            assert ("必填" in row.group(0)) == info.is_required(), row.group(0)
    assert "relative to the folder of `site.toml`" in doc
    for adapter in ("feed", "portal", "folder", "sql", "mail", "webhook"):
        assert f"### `{adapter}`" in doc
    assert "docs/adapters.md" in (REPO / "README.md").read_text(encoding="utf-8")


def test_one_paragraph_feed_entry_error_names_the_fields_and_the_doc(
    tmp_path: Path,
) -> None:
    ctx = AdapterContext(
        "huaibei-duji", tmp_path / "f", logging.getLogger("t"), tmp_path
    )
    src = load_adapter(
        {"type": "feed", "name": "f", "url": "http://127.0.0.1:9/x"}, ctx
    )
    assert isinstance(src, FeedSource)
    (entry,) = parse_feed(
        "<rss version='2.0'><channel><item><title>县人大常委会召开主任会议</title>"
        "<guid>g1</guid><pubDate>2021-10-28</pubDate><description>会议研究了下次常委会"
        "会议的议程。</description></item></channel></rss>".encode()
    )
    from adapters.extract.fields import ShapeError

    with pytest.raises(ShapeError) as exc:
        src._entry_item(entry)  # noqa: SLF001
    msg = str(exc.value)
    assert "适用条件" in msg or "背景与适用条件" in msg
    assert "docs/adapters.md" in msg


def test_feed_doctype_after_64kb_of_comments_is_refused() -> None:
    pad = b"<!--" + b"x" * 70_000 + b"-->"
    bomb = (
        b'<?xml version="1.0" encoding="utf-8"?>'
        + pad
        + b'<!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
        + b"<rss version='2.0'><channel><item><title>&b;</title></item></channel></rss>"
    )
    with pytest.raises(AdapterError, match="DTD|DOCTYPE|实体|entit"):
        parse_feed(bomb, "http://127.0.0.1/bomb.xml")


def _office_with_doctype(tmp_path: Path, kind: str) -> bytes:
    """A real .docx/.xlsx whose main part gains an entity declaration."""
    import io
    import zipfile

    path = tmp_path / f"x.{kind}"
    if kind == "docx":
        import docx

        d = docx.Document()
        d.add_paragraph("县人大常委会执法检查报告")
        d.save(str(path))
        part = "word/document.xml"
    else:
        import openpyxl

        wb = openpyxl.Workbook()
        wb.active.append(["阶段", "开始日期"])
        wb.save(str(path))
        part = "xl/workbook.xml"
    out = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == part:
                decl = (
                    b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
                    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
                )
                if data.startswith(b"<?xml"):
                    head, _, rest = data.partition(b"?>")
                    data = head + b"?>" + decl + rest
                else:
                    data = decl + data
            dst.writestr(info, data)
    return out.getvalue()


@pytest.mark.parametrize("kind", ["docx", "xlsx"])
def test_office_parts_with_entities_are_refused(tmp_path: Path, kind: str) -> None:
    from adapters.extract.office import OfficeError, read_docx, read_plan_xlsx

    data = _office_with_doctype(tmp_path, kind)
    with pytest.raises(OfficeError, match="DTD|entit"):
        if kind == "docx":
            read_docx(data, "报告.docx")
        else:
            read_plan_xlsx(data, "方案.xlsx", {}, "huaibei-duji")


def test_a_real_latin1_page_stays_latin1() -> None:
    """The header is still believed when the bytes are plausible in it."""
    from adapters.fetch import decode_html

    page = "<p>Café au lait, naïve façade — Zürich</p>".encode("cp1252")
    for header in ("ISO-8859-1", "windows-1252"):
        text, enc = decode_html(page, header)
        assert "Café au lait, naïve façade" in text and enc != "gb18030"
