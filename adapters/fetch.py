"""HTTP GET for the web adapters (feed, portal): limits, clear errors, charsets.

:func:`fetch` turns every failure into an :class:`~adapters.base.AdapterError` that
names the URL: a server that cannot be reached or answers 5xx is ``retryable`` (the
runner tries again at the next poll); 4xx and oversized bodies are not.

:func:`decode_html` picks the text encoding the way Chinese government sites need it:
many declare ``gb2312`` but use GBK characters, or send ``charset=utf-8`` in the HTTP
header for pages that are really GBK (a server default), or the reverse. The order is:
a byte-order mark; valid UTF-8 (GBK text of any length is practically never valid
UTF-8, so this cannot misread a GBK page); the HTTP header's charset; the page's
``<meta charset>`` / ``http-equiv``; GB18030 (a superset of GB2312 and GBK). The first
that decodes without error wins; GB-family names always decode as GB18030.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

import aiohttp

from .base import AdapterError

__all__ = ["Fetched", "decode_html", "fetch", "gb_alias"]

_GB = {
    "gb2312",
    "gbk",
    "x-gbk",
    "gb_2312-80",
    "euc-cn",
    "cp936",
    "gb18030",
    "hz-gb-2312",
}
_META = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE
)


def gb_alias(charset: str) -> str:
    """``gb2312``/``gbk``/… → ``gb18030``; other names lowercased."""
    c = charset.strip().strip("\"'").lower()
    return "gb18030" if c in _GB else c


@dataclass(frozen=True)
class Fetched:
    """A response body and what the server said about it."""

    url: str
    data: bytes
    content_type: str
    charset: str


async def fetch(
    session: aiohttp.ClientSession, url: str, *, max_bytes: int, what: str = "page"
) -> Fetched:
    """GET ``url`` (redirects followed), at most ``max_bytes``.

    Raises:
        AdapterError: unreachable or 5xx (retryable), 4xx or too large (not).
    """
    try:
        async with session.get(url, allow_redirects=True) as resp:
            if resp.status >= 400:
                raise AdapterError(
                    f"{url}: HTTP {resp.status} fetching the {what}",
                    retryable=resp.status >= 500 or resp.status == 429,
                )
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > max_bytes:
                    raise AdapterError(
                        f"{url}: the {what} is larger than {max_bytes} bytes (raise "
                        "max_bytes in the adapter's config if it is genuine)"
                    )
                chunks.append(chunk)
            ctype = resp.headers.get("Content-Type", "")
            m = re.search(r"charset\s*=\s*([^\s;]+)", ctype, re.IGNORECASE)
            return Fetched(
                str(resp.url),
                b"".join(chunks),
                ctype.split(";")[0].strip().lower(),
                m.group(1) if m else "",
            )
    except AdapterError:
        raise
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise AdapterError(
            f"{url}: cannot fetch the {what} ({type(exc).__name__}: {exc})",
            retryable=True,
        ) from None


def _try(data: bytes, charset: str) -> str | None:
    try:
        codecs.lookup(charset)
        return data.decode(charset)
    except (LookupError, UnicodeDecodeError):
        return None


def decode_html(data: bytes, header_charset: str = "") -> tuple[str, str]:
    """Decode an HTML page; returns ``(text, encoding used)``."""
    for bom, enc in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            return data.decode(enc, errors="replace").lstrip("\ufeff"), enc
    candidates = ["utf-8"]
    if header_charset:
        candidates.append(gb_alias(header_charset))
    m = _META.search(data[:4096])
    if m:
        candidates.append(gb_alias(m.group(1).decode("ascii", "replace")))
    candidates.append("gb18030")
    for enc in candidates:
        text = _try(data, enc)
        if text is not None:
            return text, enc
    return data.decode("gb18030", errors="replace"), "gb18030"
