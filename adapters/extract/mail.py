"""An RFC 5322 message → subject, sender, date, readable text and attachments.

Pure: bytes in, a :class:`Mail` out. Handles what mail from Chinese government
offices really looks like: ``=?GB2312?B?…?=`` / ``=?GBK?…`` encoded words, bodies in
GBK or GB18030 whatever the declared charset, HTML-only messages (converted to text
paragraph by paragraph), attachments whose names are RFC 2231 or RFC 2047 encoded, and
reply/forward prefixes (``Re:``, ``转发：``) on subjects.
"""

from __future__ import annotations

import email
import re
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage, Message
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser

__all__ = [
    "Mail",
    "MailPart",
    "html_to_text",
    "imap_utf7",
    "parse_mail",
    "safe_filename",
]


@dataclass(frozen=True)
class MailPart:
    """One attached file."""

    name: str
    media_type: str
    data: bytes


@dataclass(frozen=True)
class Mail:
    """What a message says, decoded.

    Attributes:
        message_id: The Message-ID without angle brackets ('' if none).
        subject: Decoded subject without reply/forward prefixes.
        sender: The From address (lowercase), '' if none.
        recipients: To and Cc addresses (lowercase).
        date: The Date header as an aware datetime, or ``None``.
        text: Readable body text ('' if the message has none).
        attachments: Attached files.
    """

    message_id: str
    subject: str
    sender: str
    recipients: tuple[str, ...]
    date: datetime | None
    text: str
    attachments: tuple[MailPart, ...]


_BLOCK_TAGS = {
    "p",
    "div",
    "br",
    "li",
    "tr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "section",
    "article",
    "blockquote",
    "pre",
    "ul",
    "ol",
    "hr",
}
_SKIP_TAGS = {"script", "style", "head", "title"}


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.out.append(data.replace("\n", " "))


def html_to_text(html: str) -> str:
    """Readable text of HTML: one line per block, scripts and styles dropped."""
    p = _TextParser()
    p.feed(html)
    p.close()
    lines = [
        re.sub(r"[ \t\u00a0\u3000]+", " ", ln).strip()
        for ln in "".join(p.out).split("\n")
    ]
    return "\n".join(ln for ln in lines if ln)


_PREFIX = re.compile(
    r"^\s*(?:(?:re|fw|fwd|aw|答复|回复|转发)\s*[:：]\s*)+", re.IGNORECASE
)


def _decode_payload(part: Message) -> str:
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        return ""
    declared = (part.get_content_charset() or "").lower()
    # Offices often declare gb2312 but send GBK/GB18030 characters; GB18030 is a
    # superset of both, so decoding as GB18030 never loses text they meant.
    if declared in ("gb2312", "gbk", "x-gbk", "gb_2312-80", "euc-cn"):
        declared = "gb18030"
    for charset in (declared, "utf-8", "gb18030"):
        if not charset:
            continue
        try:
            return raw.decode(charset)
        except (LookupError, UnicodeDecodeError):
            continue
    return raw.decode("utf-8", errors="replace")


_UNSAFE_NAME = re.compile(r"[/\\\x00-\x1f\x7f]")


def safe_filename(name: str, fallback: str) -> str:
    """A file name acceptable in an item: no path separators or control characters."""
    name = _UNSAFE_NAME.sub("_", name).strip().lstrip(".") or fallback
    return name[:255]


def _addresses(msg: Message, *names: str) -> list[str]:
    values = [str(v) for n in names for v in (msg.get_all(n) or [])]
    return [addr.lower() for _, addr in getaddresses(values) if addr]


def parse_mail(data: bytes) -> Mail:
    """Decode a message.

    Text is the first ``text/plain`` part that is not an attachment; if there is none
    (or it is blank), the first ``text/html`` part converted to text.

    Args:
        data: The message as received (RFC 5322 bytes).

    Returns:
        The decoded message; ``text`` is '' when it has no usable body.
    """
    msg = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    plain: str | None = None
    html: str | None = None
    files: list[MailPart] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        disposition = part.get_content_disposition()
        filename = part.get_filename()
        ctype = part.get_content_type()
        if disposition == "attachment" or (filename and disposition != "inline"):
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                n = len(files) + 1
                files.append(
                    MailPart(
                        safe_filename(filename or "", f"attachment-{n}"),
                        ctype if "/" in ctype else "application/octet-stream",
                        payload,
                    )
                )
            continue
        if ctype == "text/plain" and plain is None:
            text = _decode_payload(part)
            if text.strip():
                plain = text
        elif ctype == "text/html" and html is None:
            text = html_to_text(_decode_payload(part))
            if text.strip():
                html = text
    body = plain if plain is not None else (html or "")
    date: datetime | None = None
    if msg.get("Date"):
        try:
            date = parsedate_to_datetime(str(msg["Date"]))
        except (TypeError, ValueError):
            date = None
        if date is not None and date.tzinfo is None:
            date = None
    senders = _addresses(msg, "From")
    return Mail(
        message_id=str(msg.get("Message-ID", "")).strip().strip("<>"),
        subject=_PREFIX.sub("", str(msg.get("Subject", ""))).strip(),
        sender=senders[0] if senders else "",
        recipients=tuple(_addresses(msg, "To", "Cc")),
        date=date,
        text=body.replace("\r\n", "\n").strip(),
        attachments=tuple(files),
    )


def imap_utf7(name: str) -> str:
    """A mailbox name in IMAP modified UTF-7 (RFC 3501): ``交流`` → ``&TqRtQQ-``."""
    import base64

    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            raw = "".join(run).encode("utf-16-be")
            out.append(
                "&"
                + base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",")
                + "-"
            )
            run.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)
