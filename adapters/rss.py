"""``feed``: RSS 2.0 and Atom entries in, as lessons or case studies.

Each poll fetches the feed, and every entry not seen before becomes an item: its kind by
the config's rules (``kind_rules`` on ``title``, ``text``, ``tags``, ``category``,
``link`` or ``author``; else ``kind``), its tags from the entry's categories plus
``tags``, its ``created_at`` from the entry's date (``pubDate``/``published``, else
``updated``/``dc:date``) so that reading the entry again gives the same item. The text
(``content:encoded``/``content``, else ``description``/``summary``, HTML turned into
paragraphs and normalised) is split into body fields by headings, or by paragraph
position (:mod:`adapters.extract.prose`).

A feed that is not well-formed XML, or neither RSS 2.0 nor Atom (an HTML error page),
is an :class:`~adapters.base.AdapterError` naming the line: nothing of it is pushed,
and the position does not move. An entry without title or date is a problem of that
entry only.

Why the standard library's XML parser and not ``feedparser``: feedparser is built to
accept anything and flag it (``bozo``), and to guess; a signed item should come from a
feed we understood exactly, and a broken feed should stop with the parser's line and
column. RSS 2.0 and Atom need a few dozen lines. The parser is ``defusedxml``'s:
entity declarations and external references are refused wherever they are in the
document (no entity-expansion or external-entity attacks), and feeds in
GB2312/GBK/GB18030, which expat cannot decode itself, are transcoded first.

State: the ids (``guid``/``id``, else the link) of the last 2,000 entries turned into
items. An entry edited later keeps its id and is not sent again (not covered: updates).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import aiohttp
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as safe_fromstring
from pydantic import Field

from .base import AdapterConfig, AdapterContext, AdapterError, Draft, Poll
from .extract.fields import ShapeError, check_item
from .extract.mail import html_to_text
from .extract.page import is_attachment_line
from .extract.prose import ProseRules, shape_prose
from .fetch import fetch, gb_alias
from .text import DateError, normalize_line, paragraphs, parse_date

__all__ = ["FeedEntry", "FeedSource", "FeedSourceConfig", "parse_feed"]

_ATOM = "{http://www.w3.org/2005/Atom}"
_CONTENT = "{http://purl.org/rss/1.0/modules/content/}encoded"
_DC = "{http://purl.org/dc/elements/1.1/}"
_KEEP_SEEN = 2000


class FeedSourceConfig(AdapterConfig, ProseRules):
    """``[[source]] type = "feed"``."""

    url: str = Field(description="The RSS 2.0 or Atom feed URL")
    category_tags: bool = Field(True, description="Entry categories become tags")
    timeout: float = Field(30.0, gt=0, description="Seconds per request")
    max_bytes: int = Field(10_000_000, gt=0, description="Largest feed accepted")
    max_entries: int = Field(
        200, gt=0, description="Entries read per poll, newest first"
    )


@dataclass(frozen=True)
class FeedEntry:
    """One entry, as read from the feed (text still raw)."""

    id: str
    title: str
    link: str
    date: str
    categories: list[str] = field(default_factory=list)
    author: str = ""
    content: str = ""  # HTML or text
    summary: str = ""


def _text(el: ET.Element | None) -> str:
    return "".join(el.itertext()).strip() if el is not None else ""


def _transcode(data: bytes) -> bytes:
    """Expat reads UTF-8/16 and Latin-1 only: re-encode GB-family feeds as UTF-8."""
    m = re.match(rb"""\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9_.-]+)["']""", data)
    if m is None:
        return data
    enc = gb_alias(m.group(1).decode("ascii"))
    if enc in ("utf-8", "utf8", "utf-16", "iso-8859-1", "latin-1", "us-ascii", "ascii"):
        return data
    try:
        text = data.decode(enc)
    except (LookupError, UnicodeDecodeError) as exc:
        raise AdapterError(f"the feed declares encoding {enc!r} but {exc}") from None
    text = text[: m.start(1)] + "utf-8" + text[m.end(1) :]
    return text.encode("utf-8")


def _rss_entries(channel: ET.Element) -> list[FeedEntry]:
    out = []
    for it in channel.findall("item"):
        link = _text(it.find("link"))
        out.append(
            FeedEntry(
                id=_text(it.find("guid")) or link,
                title=_text(it.find("title")),
                link=link,
                date=_text(it.find("pubDate")) or _text(it.find(f"{_DC}date")),
                categories=[_text(c) for c in it.findall("category") if _text(c)],
                author=_text(it.find(f"{_DC}creator")) or _text(it.find("author")),
                content=_text(it.find(_CONTENT)),
                summary=_text(it.find("description")),
            )
        )
    return out


def _atom_entries(root: ET.Element) -> list[FeedEntry]:
    out = []
    for e in root.findall(f"{_ATOM}entry"):
        link = ""
        for ln in e.findall(f"{_ATOM}link"):
            if ln.get("rel", "alternate") == "alternate":
                link = ln.get("href", "")
                break
        cats = [
            c.get("label") or c.get("term") or "" for c in e.findall(f"{_ATOM}category")
        ]
        out.append(
            FeedEntry(
                id=_text(e.find(f"{_ATOM}id")) or link,
                title=_text(e.find(f"{_ATOM}title")),
                link=link,
                date=_text(e.find(f"{_ATOM}published"))
                or _text(e.find(f"{_ATOM}updated")),
                categories=[c for c in cats if c],
                author=_text(e.find(f"{_ATOM}author/{_ATOM}name")),
                content=_text(e.find(f"{_ATOM}content")),
                summary=_text(e.find(f"{_ATOM}summary")),
            )
        )
    return out


def parse_feed(data: bytes, url: str = "feed") -> list[FeedEntry]:
    """Entries of an RSS 2.0 or Atom document, in document order.

    Raises:
        AdapterError: not well-formed, declares entities, or neither RSS 2.0 nor Atom.
    """
    try:
        # defusedxml: entity declarations anywhere in the document (not only in its
        # first bytes) and external references are refused while parsing.
        root = safe_fromstring(_transcode(data))
    except DefusedXmlException as exc:
        raise AdapterError(
            f"{url}: 订阅源声明了 XML 实体或外部引用，已拒绝 / the feed declares XML "
            f"entities or external references ({type(exc).__name__}); refused (unsafe)"
        ) from None
    except ET.ParseError as exc:
        line, col = exc.position
        raise AdapterError(
            f"{url}: 订阅源格式错误 / the feed is not well-formed XML at line {line}, "
            f"column {col + 1}: {exc.msg if hasattr(exc, 'msg') else exc}; nothing was read"
        ) from None
    except AdapterError as exc:
        raise AdapterError(f"{url}: {exc.message}") from None
    if root.tag == "rss":
        channel = root.find("channel")
        if channel is None:
            raise AdapterError(f"{url}: an <rss> document without <channel>")
        return _rss_entries(channel)
    if root.tag == f"{_ATOM}feed":
        return _atom_entries(root)
    raise AdapterError(
        f"{url}: 不是 RSS 2.0 或 Atom 订阅源 / neither RSS 2.0 nor Atom (root element "
        f"<{root.tag}>); check the URL"
    )


class FeedSource:
    """Reads new entries of one feed.

    Args:
        config: The validated ``[[source]]`` table.
        ctx: Site id, data folder and logger from the runner.
    """

    config_model: ClassVar[type[AdapterConfig]] = FeedSourceConfig

    def __init__(self, config: FeedSourceConfig, ctx: AdapterContext) -> None:
        self.config = config
        self.ctx = ctx
        self._session: aiohttp.ClientSession | None = None

    def _entry_item(self, e: FeedEntry) -> dict[str, Any]:
        ref = e.link or e.id
        title = normalize_line(e.title)
        if not title:
            raise ShapeError(f"{ref}: the entry has no title")
        if not e.date:
            raise ShapeError(f"{ref}: the entry has no date (pubDate / published)")
        try:
            created: datetime = parse_date(e.date, self.config.tz)
        except DateError as exc:
            raise ShapeError(f"{ref}: {exc}") from None
        raw = e.content or e.summary
        paras = [
            p
            for p in paragraphs(html_to_text(raw) if "<" in raw else raw)
            if not is_attachment_line(p)  # "附件：方案.docx" is not body text
        ]
        summary = ""
        if e.content and e.summary:
            summary = normalize_line(html_to_text(e.summary))[:2000]
        cats = [normalize_line(c) for c in e.categories]
        item = shape_prose(
            ref=ref,
            title=title,
            created_at=created,
            paragraphs=paras,
            rules=self.config,
            site_id=self.ctx.site_id,
            summary=summary,
            tags=cats if self.config.category_tags else (),
            match={"category": "、".join(cats), "link": e.link, "author": e.author},
        )
        check_item(item, ref)
        return item

    async def poll(self, state: dict[str, Any]) -> Poll:
        """New entries as drafts; the state remembers the entries turned into items.

        Raises:
            AdapterError: the feed cannot be fetched (retryable) or is malformed.
        """
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.timeout)
            )
        got = await fetch(
            self._session, self.config.url, max_bytes=self.config.max_bytes, what="feed"
        )
        entries = parse_feed(got.data, self.config.url)[: self.config.max_entries]
        seen: list[str] = list(state.get("seen", []))
        known = set(seen)
        drafts: list[Draft] = []
        problems: list[str] = []
        for e in entries:
            key = e.id or e.link
            if not key:
                problems.append(f"{self.config.url}: an entry has neither id nor link")
                continue
            if key in known:
                continue
            try:
                item = self._entry_item(e)
            except ShapeError as exc:
                problems.append(str(exc))
                continue
            drafts.append(Draft(item, e.link or e.id))
            seen.append(key)
            known.add(key)
        return Poll(drafts, {"seen": seen[-_KEEP_SEEN:]}, problems)

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
