"""Portal CMS pages → article links and article fields, by CSS selectors (pure).

County and city congress portals run a handful of CMSs whose pages share a shape: a
list page of ``<li><a href=…>title</a><span>date</span></li>``, and article pages with
a title (``<h1>``), a meta line ``阅读次数:2919 作者: … 发布时间:2021-10-28 [字体:大 中
小]``, a body (``#zoom``, ``.TRS_Editor``, ``.content``…) and links to attached files,
all wrapped in navigation, "设为首页 | 加入收藏" and a footer. :class:`Selectors` holds
defaults that fit them; each can be overridden per site. Each selector is a CSS
selector list: the first element that matches (in the order given) is used.

:func:`parse_article` raises :class:`LayoutError` naming the field (title, date, body)
when the page no longer has it — the sign of a changed layout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urljoin, urlsplit

from bs4 import BeautifulSoup, Tag
from pydantic import BaseModel, ConfigDict, Field

from ..text import DateError, find_date, normalize_line, normalize_text

__all__ = [
    "Article",
    "LayoutError",
    "Selectors",
    "article_links",
    "is_attachment_line",
    "next_page",
    "parse_article",
]

_FIELD_NAMES = {
    "title": "标题",
    "date": "发布时间",
    "body": "正文",
    "author": "作者",
    "links": "文章链接",
}

# Lines that are page furniture, not article text.
_NOISE = re.compile(
    r"^(?:\[?\s*字[体号]\s*[:：].*|【?\s*(?:打印|关闭)(?:本页|窗口)?\s*】?|设为首页.*|加入收藏.*"
    r"|分享到[:：]?.*|上一篇[:：].*|下一篇[:：].*|返回顶部|您现在的位置.*|当前位置.*"
    r"|\[?\s*(?:大|中|小)(?:\s+(?:大|中|小))*\s*\]?)$"
)
_READS = re.compile(
    r"(?:阅读次数|阅读量|阅读|浏览次数|浏览量|浏览|点击数|点击率|点击|访问量)\s*[:：]?\s*"
    r"(\d{1,3}(?:[,，]\d{3})+(?!\d)|\d+)"
)
_LABELS = (
    r"(?:阅读次数|阅读量|阅读|浏览次数|浏览|点击数|点击|访问量|发布时间|发布日期|时间|日期"
    r"|来源|作者|编辑|责任编辑|审核|\[|【|字体|打印|关闭|分享)"
)
# Labels of a byline: an element holding one of these is where the meta line is.
_BYLINE = re.compile(
    r"(?:发布时间|发布日期|日期|来源|作者|阅读次数|阅读|浏览次数|浏览|点击数|点击)\s*[:：]"
)
# An attachment block's own words besides the links: "附件：", "附件2：", "1."…
_ATTACHMENT_LABEL = re.compile(
    r"^(?:相关)?附\s*件(?:下载)?\s*[\d一二三四五六七八九十]*\s*[:：]?|^[\s\d.、．:：()（）,，;；]+$"
)
# A line that only names attached files: "附件：方案.docx", "附件：", "附件2：".
_ATTACHMENT_LINE = re.compile(
    r"^(?:相关)?附\s*件(?:下载)?\s*[\d一二三四五六七八九十]*\s*[:：]?\s*"
    r"(?:(?:\d{1,2}[.、．]\s*)?[^。；;\s]{1,80}?\.(?:docx?|xlsx?|pdf|wps|et|ofd|zip|rar)"
    r"(?:\s*[（(][^）)]{1,20}[）)])?\s*)*$",
    re.IGNORECASE,
)
# Image captions: not the article's prose.
_CAPTION = re.compile(r"^(?:[（(]?图为|图[:：]|图片[:：]|▲|△)")
_DOC_EXTS = (
    ".doc",
    ".docx",
    ".pdf",
    ".xls",
    ".xlsx",
    ".wps",
    ".et",
    ".ofd",
    ".zip",
    ".rar",
)
_AUTHOR = re.compile(rf"作者\s*[:：]\s*(.+?)(?=\s*{_LABELS}|$)")
_SOURCE = re.compile(
    rf"(?:信息来源|来源|发布单位|发布机构)\s*[:：]\s*(.+?)(?=\s*{_LABELS}|$)"
)
# "附件1：" / "1." before an attachment's name in its link text.
_NAME_LABEL = re.compile(
    r"^(?:相关)?附\s*件\s*[\d一二三四五六七八九十]*\s*[:：]?\s*|^\d{1,2}\s*[.、．]\s*"
)
_DATE_LABEL = re.compile(r"(?:发布时间|发布日期|时间|日期)\s*[:：]\s*(.+)")


class Selectors(BaseModel):
    """CSS selectors for one portal (defaults fit the common county CMS layouts)."""

    model_config = ConfigDict(extra="forbid")

    list_area: str = Field(
        ".list, .news-list, .newslist, .article-list, .list_con, .lm_list, #list, "
        "ul.list, .main, body",
        description="Where the article links are on the list page",
    )
    link_pattern: str = Field(
        r"(?:/content/|/art/|/detail|/info/|/news/|\d{4,}[^/]*\.s?html?$|\.(?:s?html?|jsp|aspx?|php)(?:\?|$))",
        description="Regular expression an article link's URL must match",
    )
    min_link_chars: int = Field(6, description="Shorter link texts are navigation")
    title: str = Field(
        "h1.title, .article-title, .arc-title, .news-title, .detail-title, .title h1, "
        ".content-title, #title, h1, h2.title, .title",
        description="The article title",
    )
    meta: str = Field(
        ".info, .article-info, .arc-info, .news-info, .detail-info, .property, .attr, "
        ".source, .time",
        description="The line with 阅读次数 / 作者 / 发布时间",
    )
    body: str = Field(
        "#zoom, .TRS_Editor, .article-content, .arc-content, .news-content, "
        ".detail-content, .content, #content, .article, .main-content",
        description="The article body",
    )
    noise: str = Field(
        "script, style, noscript, iframe, nav, footer, form, .share, .print, "
        ".fontsize, .bdsharebuttonbox, .pages, .pagination, .position, .crumb",
        description="Elements removed before reading",
    )


class LayoutError(ValueError):
    """A field the page should have is missing; ``field`` names it."""

    def __init__(self, url: str, fld: str, selector: str) -> None:
        self.url, self.field, self.selector = url, fld, selector
        super().__init__(
            f"{url}: 页面结构已变化，找不到{_FIELD_NAMES.get(fld, fld)} / layout changed: "
            f"no {fld} (selector {selector!r}); fix the selector in site.toml"
        )


@dataclass(frozen=True)
class Article:
    """What an article page says."""

    url: str
    title: str
    date: str  # RFC 3339
    author: str  # 作者, else 来源
    read_count: int | None
    paragraphs: list[str]
    attachments: list[tuple[str, str]] = field(default_factory=list)  # (name, url)
    source: str = ""  # 来源 / 信息来源


def _first(
    soup: BeautifulSoup | Tag, selectors: str, *, not_a_link: bool = False
) -> Tag | None:
    for sel in (s.strip() for s in selectors.split(",")):
        if not sel:
            continue
        for el in soup.select(sel):
            text = el.get_text(strip=True)
            if not text:
                continue
            # A site logo (<h1><a href="/">淮北市人大常委会</a></h1>) is a link; an
            # article title is not.
            if (
                not_a_link
                and "".join(a.get_text(strip=True) for a in el.find_all("a")) == text
            ):
                continue
            return el
    return None


_CDATA = re.compile(r"<!\[CDATA\[(.*?)\]\]>", re.DOTALL)
_TRS_PAGER = re.compile(
    r"createPageHTML\(\s*['\"]?(\d+)['\"]?\s*,\s*['\"]?(\d+)['\"]?\s*,\s*['\"]([\w-]+)['\"]"
    r"\s*,\s*['\"](\w+)['\"]"
)
_NEXT_TEXT = re.compile(r"^\s*(?:下一页|下页|后一页|下一頁)\s*[>»›]*\s*$")


def _unpack_datastores(soup: BeautifulSoup) -> None:
    """Hanweb JCMS list pages carry their entries in ``<script type="text/xml">
    <datastore><recordset><record><![CDATA[<li>…</li>]]></record>…``: put the records'
    HTML where the script was, so the links are read like any other."""
    for script in soup.find_all("script"):
        text = script.string or ""
        if "<datastore" not in text and "<record" not in text:
            continue
        records = "".join(_CDATA.findall(text))
        if records:
            script.replace_with(BeautifulSoup(f"<ul>{records}</ul>", "html.parser"))


def next_page(html: str, base_url: str) -> str | None:
    """The URL of the next list page: a ``下一页`` link, or the page that a TRS
    ``createPageHTML(total, current, "index", "html")`` pager would link to."""
    soup = BeautifulSoup(html, "html.parser")
    for a in soup.find_all("a", href=True):
        href = str(a["href"]).strip()
        if (
            _NEXT_TEXT.match(a.get_text(" "))
            and href
            and not href.startswith(("javascript:", "#"))
        ):
            return urljoin(base_url, href)
    m = _TRS_PAGER.search(html)
    if m:
        total, current, stem, ext = (
            int(m.group(1)),
            int(m.group(2)),
            m.group(3),
            m.group(4),
        )
        if current + 1 < total:
            return urljoin(base_url, f"{stem}_{current + 1}.{ext}")
    return None


def article_links(html: str, base_url: str, sel: Selectors) -> list[tuple[str, str]]:
    """``(absolute URL, link text)`` of the article links on a list page, in order.

    Raises:
        LayoutError: no link on the page looks like an article.
    """
    soup = BeautifulSoup(html, "html.parser")
    _unpack_datastores(soup)
    for el in soup.select(sel.noise):
        el.decompose()
    area = _first(soup, sel.list_area)
    if area is None:
        raise LayoutError(base_url, "links", sel.list_area)
    host = urlsplit(base_url).netloc
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for a in area.select("a[href]"):
        href = str(a.get("href", "")).strip()
        if not href or href.startswith(("javascript:", "#", "mailto:")):
            continue
        url = urljoin(base_url, href).split("#")[0]
        text = normalize_line(str(a.get("title") or "") or a.get_text(" "))
        if (
            urlsplit(url).netloc != host
            or url in seen
            or len(text) < sel.min_link_chars
        ):
            continue
        if not re.search(
            sel.link_pattern, urlsplit(url).path + "?" + urlsplit(url).query
        ):
            continue
        seen.add(url)
        out.append((url, text))
    if not out:
        raise LayoutError(
            base_url, "links", f"{sel.list_area} a[href] ~ {sel.link_pattern}"
        )
    return out


def is_attachment_line(line: str) -> bool:
    """Whether a (normalised) line only names attached files (``附件：方案.docx``)."""
    return bool(_ATTACHMENT_LINE.match(line))


def _is_file_link(a: Tag, exts: tuple[str, ...]) -> bool:
    path = unquote(urlsplit(str(a.get("href", "")).strip()).path).lower()
    text = normalize_line(a.get_text(" ")).lower()
    return path.endswith(exts) or text.endswith(exts)


def _attachment_block(el: Tag, exts: tuple[str, ...]) -> bool:
    """A block whose words are only attachment links and an ``附件：`` label."""
    links = [a for a in el.find_all("a", href=True) if _is_file_link(a, exts)]
    if not links:
        return False
    rest = normalize_line(el.get_text(" "))
    for a in links:
        rest = rest.replace(normalize_line(a.get_text(" ")), " ", 1)
    rest = _ATTACHMENT_LABEL.sub("", normalize_line(rest)).strip()
    return not rest or bool(_ATTACHMENT_LABEL.fullmatch(rest))


def _caption(el: Tag, prev: Tag | None) -> bool:
    """An image caption: ``<figcaption>``, a caption class, ``图为…``, or a short
    centred line right after a paragraph that holds only an image."""
    if el.name == "figcaption" or el.find_parent("figcaption") is not None:
        return True
    cls = " ".join(el.get("class") or []).lower()
    if re.search(r"caption|img[-_]?(?:title|desc)|pic[-_]?(?:title|desc)", cls):
        return True
    text = normalize_line(el.get_text(" "))
    if _CAPTION.match(text):
        return True
    centred = "center" in str(el.get("style", "")).replace(" ", "").lower() or (
        str(el.get("align", "")).lower() == "center"
    )
    image_only = (
        prev is not None
        and prev.find("img") is not None
        and not normalize_line(prev.get_text(" "))
    )
    return centred and image_only and len(text) <= 60


def _nested(el: Tag, body: Tag) -> bool:
    """Whether ``el`` sits in a ``p``/``li``/``tr`` of the body (a table-layout page
    puts the whole body inside a ``tr``: that one does not count)."""
    for parent in el.parents:
        if parent is body:
            return False
        if parent.name in ("p", "li", "tr"):
            return True
    return False


def _paragraphs(body: Tag, exts: tuple[str, ...] = _DOC_EXTS) -> list[str]:
    blocks = body.find_all(["p", "h2", "h3", "h4", "li", "tr", "figcaption"])
    if blocks:
        texts = []
        prev: Tag | None = None
        for b in blocks:
            if b.name != "tr" and _nested(b, body):
                continue  # nested: its text is in the parent's
            if _attachment_block(b, exts) or _caption(b, prev):
                prev = b
                continue
            prev = b
            for br in b.find_all("br"):
                br.replace_with("\n")
            texts.append(b.get_text(""))
        text = "\n".join(texts)
    else:
        for br in body.find_all("br"):
            br.replace_with("\n")
        text = body.get_text("\n")
    return [
        ln
        for ln in normalize_text(text).split("\n")
        if ln and not _NOISE.match(ln) and not is_attachment_line(ln)
    ]


def _byline(soup: BeautifulSoup, body: Tag | None) -> str:
    """The meta line found by its labels when no ``meta`` selector matched: the
    smallest element around a ``发布时间：`` (or 来源/作者…) label that holds two
    labels, as one line — a line of spans, a table of cells, a paragraph."""
    for s in soup.find_all(string=_BYLINE):
        if body is not None and any(p is body for p in s.parents):
            continue
        el = s.parent
        if el is None:
            continue
        while (
            len(set(_BYLINE.findall(el.get_text(" ")))) < 2
            and el.parent is not None
            and el.parent.name not in ("body", "html", "[document]")
            and len(el.parent.get_text(" ", strip=True)) <= 300
        ):
            el = el.parent
        line = normalize_line(el.get_text(" "))
        if _DATE_LABEL.search(line):
            return line
    return ""


def parse_article(
    html: str, url: str, sel: Selectors, *, exts: tuple[str, ...] = ()
) -> Article:
    """Read an article page.

    Args:
        html: The decoded page.
        url: Its URL (for links and messages).
        sel: Selectors.
        exts: File extensions (``.pdf``…) whose links are attachments.

    Raises:
        LayoutError: no title, no publication date or no body text.
    """
    soup = BeautifulSoup(html, "html.parser")
    for el in soup.select(sel.noise):
        el.decompose()
    title_el = _first(soup, sel.title, not_a_link=True)
    if title_el is None:
        raise LayoutError(url, "title", sel.title)
    title = normalize_line(title_el.get_text(" "))
    meta_el = _first(soup, sel.meta)
    meta = normalize_line(meta_el.get_text(" ")) if meta_el is not None else ""
    body_el = _first(soup, sel.body)
    if not _DATE_LABEL.search(meta):
        # No meta block (or one without the date): find the byline by its labels.
        meta = _byline(soup, body_el) or meta
    if not meta:
        for line in normalize_text(soup.get_text("\n")).split("\n"):
            if _DATE_LABEL.search(line):
                meta = line
                break
    date = ""
    m = _DATE_LABEL.search(meta)
    for candidate in ((m.group(1),) if m else ()) + (meta,):
        try:
            date = find_date(candidate).isoformat()
            break
        except DateError:
            continue
    if not date:
        raise LayoutError(url, "date", sel.meta + " (发布时间)")
    if body_el is None:
        raise LayoutError(url, "body", sel.body)
    paras = _paragraphs(body_el, exts or _DOC_EXTS)
    if not paras:
        raise LayoutError(url, "body", sel.body)
    author_m = _AUTHOR.search(meta)
    source_m = _SOURCE.search(meta)
    source = normalize_line(source_m.group(1)) if source_m else ""
    reads_m = _READS.search(meta)
    attachments: list[tuple[str, str]] = []
    if exts:
        scope = body_el.parent if body_el.parent is not None else soup
        seen: set[str] = set()
        for a in scope.select("a[href]"):
            link = urljoin(url, str(a.get("href", "")).strip())
            path = unquote(urlsplit(link).path)
            text = normalize_line(a.get_text(" "))
            # A file by its path, or by its name behind a download script
            # (Hanweb: /module/download/downfile.jsp?…, the link text names the file).
            if link in seen or not (
                path.lower().endswith(exts) or text.lower().endswith(exts)
            ):
                continue
            seen.add(link)
            if text.lower().endswith(exts):
                name = _NAME_LABEL.sub("", _NAME_LABEL.sub("", text, count=1), count=1)
            else:
                name = path.rsplit("/", 1)[-1]
            attachments.append((name, link))
    return Article(
        url=url,
        title=title,
        date=date,
        author=normalize_line(author_m.group(1)) if author_m else source,
        source=source,
        read_count=int(re.sub(r"[,，]", "", reads_m.group(1))) if reads_m else None,
        paragraphs=paras,
        attachments=attachments,
    )
