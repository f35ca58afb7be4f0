"""Chinese text normalisation for documents that come out of CMSs, Word and mail.

Pure functions, no I/O. What real county-congress material looks like, and what is
done about it:

* **Full-width ASCII** (``２０２１``, ``ＡＢＣ``, ``％``) becomes half-width, as NFKC
  would do it — but only for characters where that is safe. Chinese punctuation in
  prose is kept as it is (``，。、；：？！“”‘’（）《》【】…—``): NFKC would turn ``，``
  into ``,`` and change the text's look and meaning for a Chinese reader.
* **Half-width punctuation in Chinese prose** (``杜集区人大,在践行``, typical of text
  pasted through an English input method or exported by an old CMS) becomes the
  full-width form when it touches a Chinese character, never between digits
  (``2,919``, ``09:30`` stay).
* **Stray whitespace**: non-breaking spaces, ideographic spaces used for paragraph
  indentation (``　　``), zero-width characters and BOMs, soft hyphens, spaces beside
  full-width punctuation; line endings become ``\\n``; runs of blank lines become one.
* **Dates** such as ``2021-10-28``, ``2021/10/28``, ``2021.10.28``, ``2021年10月28日``,
  ``2021年10月28日 09:30``, ``二〇二一年十月二十八日``, RFC 822 (feeds) and ISO 8601
  become RFC 3339 timestamps with an explicit offset (``+08:00`` unless the text has
  one): :func:`parse_date`, :func:`find_date`, :func:`to_rfc3339`.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

__all__ = [
    "CHINA_TZ",
    "DateError",
    "find_date",
    "normalize_line",
    "normalize_text",
    "paragraphs",
    "parse_date",
    "to_rfc3339",
]

CHINA_TZ = timezone(timedelta(hours=8))
"""China Standard Time, the offset given to dates that carry none."""


class DateError(ValueError):
    """The text holds no date this module understands; ``str()`` quotes it."""


# Chinese punctuation that NFKC would fold into ASCII; kept in prose.
_KEEP = frozenset("，。、；：？！“”‘’（）《》〈〉【】「」『』〔〕…—–·～￥")
# Characters that vanish: zero-width space/joiners, word joiner, BOM, soft hyphen,
# and the bidi marks some editors leave behind.
_INVISIBLE = re.compile(
    "[\u200b\u200c\u200d\u2060\ufeff\u00ad\u200e\u200f\u202a-\u202e]"
)
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Every kind of horizontal space a CMS export produces, ASCII space included.
_SPACES = re.compile("[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_PUNCT = "，。、；：？！“”‘’（）《》〈〉【】「」『』…—"
# Full-width punctuation carries its own spacing: a space beside it is noise
# ("作者： 淮北市" → "作者：淮北市"). Spaces between two Chinese characters stay: in
# a CMS meta line they separate fields ("研究室 发布时间").
_SPACE_AT_PUNCT = re.compile(f" (?=[{_CJK_PUNCT}])|(?<=[{_CJK_PUNCT}]) ")
_HALF_TO_FULL = {",": "，", ";": "；", ":": "：", "?": "？", "!": "！"}
# A half-width mark right after a Chinese character, or right before one (but not a
# mark between two digits, a time or a URL scheme).
_HALF_AFTER_HAN = re.compile(f"(?<=[{_HAN}])([,;:?!])(?!//)")
_HALF_BEFORE_HAN = re.compile(f"(?<![0-9A-Za-z])([,;?!])(?=\\s*[{_HAN}])")
_OPEN_PAREN = re.compile(f"\\((?=[{_HAN}])")
_CLOSE_PAREN = re.compile(f"(?<=[{_HAN}])\\)")


def _safe_nfkc(ch: str) -> str:
    """NFKC for one character, where that does not change Chinese prose."""
    if ch in _KEEP:
        return ch
    code = ord(ch)
    if (
        0xFF01 <= code <= 0xFF5E  # full-width ASCII letters, digits and symbols
        or 0xF900 <= code <= 0xFAFF  # CJK compatibility ideographs
        or 0xFB00 <= code <= 0xFB06  # Latin ligatures
    ):
        return unicodedata.normalize("NFKC", ch)
    # Everything else stays: circled numbers (①) mark list items, and NFKC of
    # other compatibility forms would change what a reader sees.
    return ch


def _fold(text: str) -> str:
    if text.isascii():
        return text
    return "".join(_safe_nfkc(ch) for ch in text)


def normalize_line(text: str) -> str:
    """Normalise one line: folding, punctuation, spaces; no line breaks in the result.

    Args:
        text: Any text; line breaks become single spaces.

    Returns:
        The line, trimmed.
    """
    return _line(" ".join(ln for ln in normalize_text(text).split("\n") if ln))


def _line_once(text: str) -> str:
    text = _SPACES.sub(" ", text).strip()
    text = _HALF_AFTER_HAN.sub(lambda m: _HALF_TO_FULL[m.group(1)], text)
    text = _HALF_BEFORE_HAN.sub(lambda m: _HALF_TO_FULL[m.group(1)], text)
    text = _OPEN_PAREN.sub("（", text)
    text = _CLOSE_PAREN.sub("）", text)
    return _SPACE_AT_PUNCT.sub("", text)


def _line(text: str) -> str:
    # Each rule can expose a case for another ("中 ,文" → "中 ，文" → "中，文"): apply
    # them until nothing changes, so that normalising twice changes nothing.
    for _ in range(8):
        new = _line_once(text)
        if new == text:
            break
        text = new
    return text


def normalize_text(text: str) -> str:
    """Normalise a document's text for an item field.

    Line endings (``\\r\\n``, ``\\r``, U+2028/2029, form feeds) become ``\\n``; each
    line is folded (:func:`normalize_line` rules) and trimmed; runs of blank lines
    become one blank line; leading and trailing blank lines go. Idempotent.

    Args:
        text: Raw text.

    Returns:
        The normalised text.
    """
    text = re.sub("\r\n?|[\u2028\u2029\x0c\x0b\x85]", "\n", text)
    text = _INVISIBLE.sub("", text)
    text = _CONTROL.sub("", _fold(text))
    out: list[str] = []
    for raw in text.split("\n"):
        line = _line(raw)
        if line or (out and out[-1]):
            out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def paragraphs(text: str) -> list[str]:
    """The non-empty lines of the normalised text (a CMS paragraph is one line)."""
    return [ln for ln in normalize_text(text).split("\n") if ln]


# -- dates ------------------------------------------------------------------------------

_CN_DIGITS = {
    "〇": 0,
    "零": 0,
    "○": 0,
    "Ｏ": 0,
    "O": 0,
    "一": 1,
    "二": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}


def _cn_number(text: str) -> int:
    """``二〇二一`` → 2021 (digit by digit); ``二十八`` → 28; ``十`` → 10."""
    if "十" in text:
        tens, _, ones = text.partition("十")
        return (_CN_DIGITS[tens] if tens else 1) * 10 + (
            _CN_DIGITS[ones] if ones else 0
        )
    value = 0
    for ch in text:
        value = value * 10 + _CN_DIGITS[ch]
    return value


_CN_NUM = "[〇零○一二三四五六七八九十]"
_CN_DATE = re.compile(
    f"({_CN_NUM}{{4}})\\s*年\\s*({_CN_NUM}{{1,3}})\\s*月\\s*({_CN_NUM}{{1,3}})\\s*日"
)
_NUM_DATE = re.compile(
    r"(?<!\d)(\d{4})\s*(?:年|[-/.])\s*(\d{1,2})\s*(?:月|[-/.])\s*(\d{1,2})(?!\d)\s*日?"
    r"(?:(?:\s*|T)(\d{1,2})\s*(?:[:：]|时|点)\s*(\d{1,2})\s*分?"
    r"(?:\s*[:：]\s*(\d{1,2})(?:[.,]\d+)?\s*秒?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2}(?!\d))?"
)


def _offset(text: str | None, default: timezone) -> timezone:
    if not text:
        return default
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    if delta >= timedelta(hours=24):
        raise DateError(f"offset {text!r} is out of range")
    return timezone(sign * delta)


def _build(
    y: int, mo: int, d: int, hh: int, mm: int, ss: int, tz: timezone, src: str
) -> datetime:
    try:
        return datetime(y, mo, d, hh, mm, ss, tzinfo=tz)
    except ValueError as exc:
        raise DateError(f"{src!r} is not a valid date: {exc}") from None


def _match_date(m: re.Match[str], tz: timezone, src: str) -> datetime:
    y, mo, d, hh, mm, ss, off = m.groups()
    return _build(
        int(y),
        int(mo),
        int(d),
        int(hh or 0),
        int(mm or 0),
        int(ss or 0),
        _offset(off, tz),
        src,
    )


def find_date(text: str, tz: timezone = CHINA_TZ) -> datetime:
    """The first date in running text (``发布时间：2021-10-28 09:30``).

    Args:
        text: Text that contains a date somewhere.
        tz: Offset for a date without one.

    Raises:
        DateError: no date found.
    """
    folded = _fold(text)
    m = _NUM_DATE.search(folded)
    if m is not None:
        return _match_date(m, tz, text)
    c = _CN_DATE.search(folded)
    if c is not None:
        return _build(
            _cn_number(c.group(1)),
            _cn_number(c.group(2)),
            _cn_number(c.group(3)),
            0,
            0,
            0,
            tz,
            text,
        )
    raise DateError(
        f"no date in {text[:80]!r} (expected e.g. 2021-10-28 or 2021年10月28日)"
    )


def parse_date(text: str, tz: timezone = CHINA_TZ) -> datetime:
    """Parse a text that is a date, in any of the usual forms.

    Accepts ISO 8601 / RFC 3339, RFC 822 (``Thu, 28 Oct 2021 09:30:00 +0800``, as in
    RSS), ``2021-10-28``, ``2021/10/28``, ``2021.10.28``, ``2021年10月28日``,
    ``2021年10月28日 09:30``, ``2021年10月28日9时30分``, ``二〇二一年十月二十八日``,
    with full-width digits too.

    Args:
        text: The date text (surrounding spaces allowed, nothing else).
        tz: Offset given to a date or time without one.

    Returns:
        An aware datetime.

    Raises:
        DateError: not a date, or an impossible one (2021-02-30).
    """
    folded = _fold(text).strip()
    if not folded:
        raise DateError("empty date")
    if re.match(r"^[A-Za-z]{3},|^\d{1,2} [A-Za-z]{3} \d{4}", folded):
        try:
            dt = parsedate_to_datetime(folded)
        except (TypeError, ValueError):
            raise DateError(f"{text!r} is not a valid RFC 822 date") from None
        return dt if dt.tzinfo is not None else dt.replace(tzinfo=tz)
    m = _NUM_DATE.fullmatch(folded)
    if m is not None:
        return _match_date(m, tz, text)
    c = _CN_DATE.fullmatch(folded)
    if c is not None:
        return _build(
            _cn_number(c.group(1)),
            _cn_number(c.group(2)),
            _cn_number(c.group(3)),
            0,
            0,
            0,
            tz,
            text,
        )
    try:
        dt = datetime.fromisoformat(folded.replace("Z", "+00:00"))
    except ValueError:
        raise DateError(
            f"{text!r} is not a date (expected e.g. 2021-10-28, 2021年10月28日 09:30)"
        ) from None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=tz)


def to_rfc3339(value: str | datetime, tz: timezone = CHINA_TZ) -> str:
    """An RFC 3339 timestamp to the second, with offset: ``2021-10-28T09:30:00+08:00``.

    Args:
        value: A datetime (naive means ``tz``) or date text (see :func:`parse_date`).
        tz: Offset for values without one.

    Raises:
        DateError: text that is not a date.
    """
    dt = parse_date(value, tz) if isinstance(value, str) else value
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt.replace(microsecond=0).isoformat()
