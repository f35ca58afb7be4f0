"""``portal``: a congress portal's article pages in, as lessons or case studies.

Each poll fetches the list page(s) (``pages`` of each, following 下一页 links; Hanweb
JCMS lists whose entries sit in a ``<script type="text/xml">`` datastore are read
too), follows the links to articles not seen before,
and reads each article (:mod:`adapters.extract.page`): title, 作者, 发布时间, 阅读次数,
body paragraphs, and links to attached files (``.doc``, ``.docx``, ``.pdf``, ``.xls``,
``.xlsx``, ``.wps`` by default), which are downloaded and attached as blobs. Pages are
decoded whatever mix of GBK, GB2312 and UTF-8 the site uses (:func:`adapters.fetch.
decode_html`), and text is normalised (:mod:`adapters.text`).

The item: ``title``; ``created_at`` from 发布时间 (midnight, +08:00, when the page
gives no time); the body from the paragraphs (headings, or paragraph positions: see
:mod:`adapters.extract.prose`); the summary names the author and the page. The read
count changes every time someone reads the page, so it is shown by ``exchange adapter
check`` but **not** put in the item: the same article must always give the same item.

A page whose layout changed (no title, no date, no body under the configured
selectors) is a problem naming the missing field and the selector: nothing is pushed
for it, and it is tried again at the next poll. A list page without article links is
an error of the whole source.

State: the URLs of the last 2,000 articles turned into items.
"""

from __future__ import annotations

import mimetypes
import re
from typing import Any, ClassVar

import aiohttp
from pydantic import Field, field_validator

from .base import AdapterConfig, AdapterContext, AdapterError, Attachment, Draft, Poll
from .extract.fields import ShapeError, check_item
from .extract.page import (
    Article,
    LayoutError,
    Selectors,
    article_links,
    next_page,
    parse_article,
)
from .extract.prose import ProseRules, shape_prose
from .fetch import decode_html, fetch

__all__ = ["PortalSource", "PortalSourceConfig"]

_KEEP_SEEN = 2000
_MEDIA = {
    ".doc": "application/msword",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xls": "application/vnd.ms-excel",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pdf": "application/pdf",
    ".wps": "application/vnd.ms-works",
    ".zip": "application/zip",
}


class PortalSourceConfig(AdapterConfig, ProseRules):
    """``[[source]] type = "portal"``."""

    list_url: list[str] = Field(description="List page(s) of the column to read")
    pages: int = Field(
        1,
        ge=1,
        le=50,
        description="List pages read from each list_url, following 下一页 links (or a "
        "TRS createPageHTML pager)",
    )
    selectors: Selectors = Field(default_factory=Selectors)
    attachments: list[str] = Field(
        default_factory=lambda: [".doc", ".docx", ".pdf", ".xls", ".xlsx", ".wps"],
        description="Extensions of linked files to attach",
    )
    max_articles: int = Field(50, gt=0, description="Articles read per poll")
    max_bytes: int = Field(5_000_000, gt=0, description="Largest page accepted")
    max_attachment_bytes: int = Field(50_000_000, gt=0, description="Largest file")
    timeout: float = Field(30.0, gt=0, description="Seconds per request")

    @field_validator("list_url", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("attachments")
    @classmethod
    def _dotted(cls, v: list[str]) -> list[str]:
        return [e.lower() if e.startswith(".") else "." + e.lower() for e in v]


def _safe_name(name: str, used: set[str]) -> str:
    name = re.sub(r"[/\\\x00-\x1f\x7f]", "_", name).strip().lstrip(".") or "附件"
    name = name[:200]
    base, dot, ext = name.rpartition(".")
    candidate, n = name, 1
    while candidate in used:
        n += 1
        candidate = f"{base}({n}).{ext}" if dot else f"{name}({n})"
    used.add(candidate)
    return candidate


class PortalSource:
    """Reads new articles from a portal column.

    Args:
        config: The validated ``[[source]]`` table.
        ctx: Site id, data folder and logger from the runner.
    """

    config_model: ClassVar[type[AdapterConfig]] = PortalSourceConfig

    def __init__(self, config: PortalSourceConfig, ctx: AdapterContext) -> None:
        self.config = config
        self.ctx = ctx
        self._session: aiohttp.ClientSession | None = None
        self.last_articles: list[Article] = []

    @property
    def session(self) -> aiohttp.ClientSession:
        """The HTTP session (opened on first use)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.timeout),
                headers={"User-Agent": "congress-exchange-adapter/0.1"},
            )
        return self._session

    async def _page(self, url: str, what: str) -> str:
        got = await fetch(self.session, url, max_bytes=self.config.max_bytes, what=what)
        return decode_html(got.data, got.charset)[0]

    async def _attachments(self, art: Article) -> tuple[Attachment, ...]:
        out: list[Attachment] = []
        used: set[str] = set()
        for name, link in art.attachments:
            got = await fetch(
                self.session,
                link,
                max_bytes=self.config.max_attachment_bytes,
                what=f"attachment {name}",
            )
            ext = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
            media = (
                _MEDIA.get(ext)
                or mimetypes.guess_type(name)[0]
                or "application/octet-stream"
            )
            out.append(Attachment(_safe_name(name, used), media, got.data))
        return tuple(out)

    def _item(self, art: Article) -> dict[str, Any]:
        parts = (
            [f"作者：{art.author}"] if art.author and art.author != art.source else []
        )
        if art.source:
            parts.append(f"来源：{art.source}")
        summary = "；".join([*parts, f"原文：{art.url}"])
        item = shape_prose(
            ref=art.url,
            title=art.title,
            created_at=art.date,
            paragraphs=art.paragraphs,
            rules=self.config,
            site_id=self.ctx.site_id,
            summary=summary,
            match={"author": art.author, "link": art.url},
        )
        check_item(item, art.url)
        return item

    async def poll(self, state: dict[str, Any]) -> Poll:
        """New articles as drafts; the state remembers the articles turned into items.

        Raises:
            AdapterError: a list page cannot be fetched (retryable) or has no links.
        """
        links: list[tuple[str, str]] = []
        for first in self.config.list_url:
            url: str | None = first
            visited: set[str] = set()
            for n in range(self.config.pages):
                if url is None or url in visited:
                    break
                visited.add(url)
                html = await self._page(url, "list page")
                try:
                    links += article_links(html, url, self.config.selectors)
                except LayoutError as exc:
                    if n == 0:
                        raise AdapterError(str(exc)) from None
                    break  # a later page without links: the column ends there
                url = next_page(html, url)
        seen: list[str] = list(state.get("seen", []))
        known = set(seen)
        drafts: list[Draft] = []
        problems: list[str] = []
        self.last_articles = []
        exts = tuple(self.config.attachments)
        for url, _ in links[: self.config.max_articles]:
            if url in known:
                continue
            try:
                art = parse_article(
                    await self._page(url, "article"),
                    url,
                    self.config.selectors,
                    exts=exts,
                )
                item = self._item(art)
                files = await self._attachments(art)
            except (LayoutError, ShapeError) as exc:
                problems.append(str(exc))
                continue
            except AdapterError as exc:
                problems.append(exc.message)  # this page only; tried again next poll
                continue
            self.last_articles.append(art)
            notes = () if art.read_count is None else (f"阅读次数={art.read_count}",)
            drafts.append(Draft(item, url, files, notes))
            seen.append(url)
            known.add(url)
        return Poll(drafts, {"seen": seen[-_KEEP_SEEN:]}, problems)

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
