"""HTTP GET for the web adapters (feed, portal): limits, clear errors, charsets.

:func:`fetch` turns every failure into an :class:`~adapters.base.AdapterError` that
names the URL: a server that cannot be reached or answers 5xx is ``retryable`` (the
runner tries again at the next poll); 4xx and oversized bodies are not.

:func:`decode_html` picks the text encoding the way Chinese government sites need it:
many declare ``gb2312`` but use GBK characters, or send ``charset=utf-8`` or
``ISO-8859-1`` in the HTTP header for pages that are really GBK (a server default), or
the reverse. The header and ``<meta>`` are treated as hints: valid UTF-8 first, then
GB18030 whenever the bytes are not plausible as the declared single-byte charset (see
:func:`decode_html` for the order).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

import aiohttp

from .base import AdapterError

__all__ = ["Fetched", "declared_charsets", "decode_html", "fetch", "gb_alias"]

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
_SINGLE_BYTE = {"latin-1", "iso8859-1", "ascii", "cp1252", "cp437", "koi8-r", "koi8-u"}
# Ideographs (with extensions and compatibility forms), CJK symbols and punctuation,
# full-width forms, and the box/number symbols GB2312 pages use (①, ★, ■, №).
_CJK = re.compile(
    "[\u2000-\u206f\u2100-\u27bf\u3000-\u303f\u3040-\u30ff\u3100-\u312f"
    "\u3200-\u33ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\ufe30-\ufe4f"
    "\uff00-\uffef\u00b7\u00d7\u00f7\u0391-\u03c9\u0401-\u0451\U00020000-\U0002fa1f]"
)
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


def _single_byte(charset: str) -> bool:
    """Whether ``charset`` maps every byte to a character (never fails to decode)."""
    try:
        name = codecs.lookup(charset).name
    except LookupError:
        return False
    return name in _SINGLE_BYTE or name.startswith(("iso8859", "cp125", "mac-"))


def _mostly_utf8(data: bytes) -> bool:
    """UTF-8 with a few broken bytes (a truncated paste), not another encoding: at
    least 20 valid multi-byte sequences and at most one invalid byte per 50 of them.
    GBK text read as UTF-8 breaks at nearly every character."""
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    good = sum(1 for ch in text if ord(ch) > 0x7F and ch != "\ufffd")
    return good >= 20 and bad * 50 <= good


def _gb_text(data: bytes) -> str | None:
    """The bytes as GB18030 when they are plausibly Chinese text in it: they decode
    strictly and most non-ASCII characters are ideographs or CJK punctuation. A
    Latin-1 page rarely decodes at all (``é`` then a space is not a GB18030 pair)."""
    text = _try(data, "gb18030")
    if text is None:
        return None
    wide = [ch for ch in text if ord(ch) > 0x7F]
    if not wide:
        return text
    cjk = sum(1 for ch in wide if _CJK.match(ch))
    return text if cjk * 10 >= len(wide) * 8 else None


def declared_charsets(data: bytes, header_charset: str = "") -> list[str]:
    """The charsets the HTTP header and the page's ``<meta>`` claim (hints only)."""
    out = []
    if header_charset:
        out.append(gb_alias(header_charset))
    m = _META.search(data[:8192])
    if m:
        out.append(gb_alias(m.group(1).decode("ascii", "replace")))
    return [c for i, c in enumerate(out) if c and c not in out[:i]]


def decode_html(data: bytes, header_charset: str = "") -> tuple[str, str]:
    """Decode an HTML page; returns ``(text, encoding used)``.

    The HTTP header's charset and the page's ``<meta>`` are hints, often wrong on
    government sites (a server default of ``ISO-8859-1`` or ``utf-8`` over GBK pages,
    ``gb2312`` over GBK characters). The order:

    1. a byte-order mark;
    2. valid UTF-8 (GBK text of any length is practically never valid UTF-8);
    3. each declared charset (header, then ``<meta>``): a GB name decodes as GB18030
       (a superset of GB2312 and GBK); a **single-byte** charset (ISO-8859-1,
       windows-1252…, which never fails to decode) is believed only when the bytes
       are not plausible GB18030 Chinese (:func:`_gb_text`); any other charset must
       decode without error;
    4. nothing usable declared: UTF-8 with a few broken bytes, else GB18030 Chinese,
       else GB18030 with replacement characters.
    """
    for bom, enc in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            return data.decode(enc, errors="replace").lstrip("\ufeff"), enc
    text = _try(data, "utf-8")
    if text is not None:
        return text, "utf-8"
    for enc in declared_charsets(data, header_charset):
        if enc in ("utf-8", "utf8"):
            continue  # not valid UTF-8 (tried above)
        if _single_byte(enc):
            gb = _gb_text(data)
            if gb is not None:
                return gb, "gb18030"
        got = _try(data, enc)
        if got is not None:
            return got, enc
    if _mostly_utf8(data):
        return data.decode("utf-8", errors="replace"), "utf-8"
    gb = _gb_text(data)
    if gb is not None:
        return gb, "gb18030"
    return data.decode("gb18030", errors="replace"), "gb18030"
