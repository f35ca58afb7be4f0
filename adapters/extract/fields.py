"""Flat document fields → an unsigned item: kind by rules, body from sectioned text.

Sources that read loosely structured documents (a database row, a mail, a posted
mapping) share the same problem: a title, some text, a date and maybe tags must become
a schema-valid item of one kind with a real kind-specific body. This module solves it
once, purely:

* :class:`ItemRules` — the config every such source embeds: the default kind, kind
  rules (first matching regular expression wins), audience, extra tags, time zone for
  dates without one, heading keywords and default body values.
* :func:`sections` — split Chinese text at headings such as ``一、主要做法``,
  ``（二）取得成效``, ``【背景】`` or ``成效：…`` into body fields of a kind.
* :func:`shape_item` — put it together; raises :class:`ShapeError` naming each
  missing field, so the source reports the document as a problem and pushes nothing.

Only ``case_study`` and ``lesson`` bodies can be built from text; other kinds need a
structured body (``body`` mapping in a webhook post, a JSON column in SQL).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from adapters.text import DateError, normalize_text, parse_date
from exchange.core.items import schema_error
from exchange.core.present import BODY_MODELS
from schemas.items import ITEM_ADAPTER
from schemas.labels import field_label

__all__ = [
    "HEADINGS",
    "TEXT_KINDS",
    "DocumentFields",
    "ItemRules",
    "KindRule",
    "ShapeError",
    "check_item",
    "choose_kind",
    "clean_text",
    "parse_offset",
    "parse_when",
    "sections",
    "shape_item",
    "split_tags",
    "to_timestamp",
]

_FieldKind = Literal["text", "list", "lines"]
_FixedOffset = timezone  # ItemRules has a field named "timezone"

# Body fields that text can fill, per kind, with their shape: ``text`` (one string),
# ``list`` (paragraphs), ``lines`` (one-line entries such as laws).
_SHAPES: dict[str, dict[str, _FieldKind]] = {
    "lesson": {
        "practice": "text",
        "conditions": "text",
        "outcomes": "text",
        "applicability": "list",
        "challenges": "text",
    },
    "case_study": {
        "background": "text",
        "actions": "list",
        "results": "text",
        "legal_basis": "lines",
        "lessons_learned": "text",
    },
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "lesson": ("practice", "conditions", "outcomes", "applicability"),
    "case_study": ("background", "actions", "results"),
}
_MAIN_FIELD = {"lesson": "practice", "case_study": "background"}

TEXT_KINDS: tuple[str, ...] = tuple(_SHAPES)
"""Kinds whose body :func:`shape_item` can build from text."""

HEADINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "lesson": {
        "practice": ("主要做法", "具体做法", "工作做法", "经验做法", "做法"),
        "conditions": ("基本情况", "工作背景", "适用条件", "背景"),
        "outcomes": ("取得成效", "主要成效", "工作成效", "成效", "效果"),
        "applicability": (
            "推广价值",
            "可推广",
            "推广",
            "借鉴",
            "经验启示",
            "启示",
            "适用",
        ),
        "challenges": ("困难与不足", "存在问题", "困难", "不足"),
    },
    "case_study": {
        "background": ("案例背景", "基本情况", "背景"),
        "actions": ("主要做法", "主要措施", "工作举措", "做法", "措施"),
        "results": ("取得成效", "工作成效", "成效", "结果", "效果"),
        "legal_basis": ("法律依据", "法规依据", "依据"),
        "lessons_learned": ("经验启示", "启示", "体会"),
    },
}
"""Default heading keywords per kind and body field (a heading containing one of them
starts that field's section; longer keywords are tried first)."""


class ShapeError(ValueError):
    """A document cannot become an item; ``str()`` names what is missing or bad."""


class KindRule(BaseModel):
    """``[[source.kind_rules]]``: a document whose ``field`` matches gets ``kind``."""

    model_config = ConfigDict(extra="forbid")

    match: str = Field(description="A regular expression, searched (not anchored)")
    kind: Literal[
        "case_study", "lesson", "inspection_plan", "endorsement", "retraction"
    ]
    field: str = Field(
        "title",
        description="What to search: title, text, tags, or a source-specific field "
        "such as from/to (mail) or a column name (sql)",
    )

    @field_validator("match")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return v


def parse_offset(text: str) -> timezone:
    """``+08:00`` / ``-05:30`` / ``Z`` → a fixed-offset time zone.

    Raises:
        ValueError: not an offset.
    """
    if text in ("Z", "UTC", "+00:00"):
        return UTC
    m = re.fullmatch(r"([+-])(\d{2}):(\d{2})", text)
    if m is None:
        raise ValueError(f"{text!r} is not a UTC offset such as '+08:00'")
    delta = timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
    return timezone(-delta if m.group(1) == "-" else delta)


class ItemRules(BaseModel):
    """How a source shapes items; embedded in each such source's config section."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal[
        "case_study", "lesson", "inspection_plan", "endorsement", "retraction"
    ] = Field("lesson", description="Kind when no rule matches")
    kind_rules: list[KindRule] = Field(default_factory=list)
    circles: list[str] = Field(default_factory=list, description="Audience circles")
    sites: list[str] = Field(default_factory=list, description="Audience sites")
    tags: list[str] = Field(
        default_factory=list, description="Tags added to every item"
    )
    lang: str = "zh-CN"
    timezone: str = Field("+08:00", description="Offset for dates without one")
    headings: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Extra heading keywords per body field, e.g. practice=['创新举措']",
    )
    defaults: dict[str, Any] = Field(
        default_factory=dict,
        description="Body values used when the text has no section for a field",
    )
    text_field: str = Field(
        "",
        description="Body field that receives text before the first heading (default: "
        "practice for lessons, background for case studies)",
    )

    @field_validator("timezone")
    @classmethod
    def _offset(cls, v: str) -> str:
        parse_offset(v)
        return v

    @property
    def tz(self) -> _FixedOffset:
        """The configured offset."""
        return parse_offset(self.timezone)


@dataclass(frozen=True)
class DocumentFields:
    """What a source read from one document, before shaping.

    Attributes:
        ref: Where it came from (for messages).
        title: Title text (whitespace is collapsed).
        created_at: A datetime, date, or date string (``2021年10月28日`` works).
        text: Free text to split into body sections, if any.
        summary: Summary text.
        tags: Tags (a list, or one string separated by ``、,;``).
        kind: An explicit kind (wins over rules), or ``None``.
        body: Body fields given directly (dotted keys such as ``period.start``).
        match: Extra strings kind rules may search, by field name (``from``, columns).
    """

    ref: str
    title: str | None
    created_at: datetime | date | str | None
    text: str | None = None
    summary: str | None = None
    tags: Sequence[str] | str | None = None
    kind: str | None = None
    body: Mapping[str, Any] = field(default_factory=dict)
    match: Mapping[str, str] = field(default_factory=dict)


_WS = re.compile(r"[ \t\u3000\u00a0]+")


def clean_text(text: str) -> str:
    """Normalised text (:func:`adapters.text.normalize_text`): line ends, stray
    spaces, full-width ASCII, half-width punctuation in Chinese prose, blank runs."""
    return normalize_text(text)


def _one_line(text: str, limit: int) -> str:
    line = _WS.sub(" ", clean_text(text).replace("\n", " ")).strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


def split_tags(value: Sequence[str] | str | None) -> list[str]:
    """Tags from a list or a ``、,，;；|`` separated string; trimmed, de-duplicated."""
    if value is None:
        return []
    parts = re.split(r"[、,，;；|\n]", value) if isinstance(value, str) else list(value)
    out: list[str] = []
    for p in parts:
        t = _one_line(str(p), 40)
        if t and t not in out:
            out.append(t)
    return out


def parse_when(value: datetime | date | str, tz: timezone) -> datetime:
    """A datetime from a datetime, a date or a string; naive values get ``tz``.

    Strings go through :func:`adapters.text.parse_date`: ISO 8601, RFC 822 and the
    usual Chinese forms (``2021年10月28日 9时30分``, ``二〇二一年十月二十八日``).

    Raises:
        ShapeError: the string is not a date.
    """
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    else:
        try:
            dt = parse_date(value, tz)
        except DateError as exc:
            raise ShapeError(str(exc)) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt


def to_timestamp(dt: datetime) -> str:
    """RFC 3339 with offset, to the second (``2021-10-28T09:30:00+08:00``)."""
    return dt.replace(microsecond=0).isoformat()


def choose_kind(rules: ItemRules, fields: Mapping[str, str]) -> str:
    """The kind of the first rule whose field matches, else the default kind."""
    for rule in rules.kind_rules:
        if rule.field == "any":
            hay = "\n".join(fields.values())
        else:
            hay = fields.get(rule.field, "")
        if re.search(rule.match, hay):
            return rule.kind
    return rules.kind


# -- sections --------------------------------------------------------------------------

_NUMBERED = re.compile(
    r"^(?:[一二三四五六七八九十]+[、.．]|[（(][一二三四五六七八九十\d]+[)）]"
    r"|\d{1,2}[、.．](?!\d)|第[一二三四五六七八九十]+[部分章节]?[、:：\s]?)\s*"
)
_BRACKETED = re.compile(r"^[【\[]([^】\]]{1,20})[】\]]\s*(.*)$")
_LABELLED = re.compile(r"^([^:：。；;，,]{1,20})[:：]\s*(.*)$")


def _keywords(kind: str, extra: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
    table = {f: list(k) for f, k in HEADINGS.get(kind, {}).items()}
    for f, words in extra.items():
        table.setdefault(f, [])[:0] = list(words)
    pairs = [(w, f) for f, words in table.items() for w in words if w]
    return sorted(pairs, key=lambda p: -len(p[0]))


def _field_for(heading: str, keywords: list[tuple[str, str]]) -> str | None:
    for word, fld in keywords:
        if word in heading:
            return fld
    return None


def _heading(line: str, keywords: list[tuple[str, str]]) -> tuple[str, str] | None:
    """``(field, inline text)`` if ``line`` is a heading of a known section."""
    m = _BRACKETED.match(line)
    if m:
        fld = _field_for(m.group(1), keywords)
        return (fld, m.group(2)) if fld else None
    stripped = _NUMBERED.sub("", line, count=1)
    numbered = stripped != line
    m = _LABELLED.match(stripped)
    if m:
        fld = _field_for(m.group(1), keywords)
        if fld:
            return fld, m.group(2)
    # A bare line is a heading only when it is short and not a sentence (no 。 at the
    # end): "主要做法" is, "适用于有信息化基础的人大。" is not.
    if not numbered and stripped.endswith(("。", ".")):
        return None
    head = stripped.rstrip("。.:：")
    if len(head) <= (20 if numbered else 10) and not re.search(r"[，。；,;]", head):
        fld = _field_for(head, keywords)
        if fld:
            return fld, ""
    return None


def sections(
    text: str, kind: str, extra: Mapping[str, Sequence[str]] | None = None
) -> tuple[str, dict[str, str]]:
    """Split ``text`` at headings of ``kind``'s body fields.

    Args:
        text: The document text.
        kind: ``lesson`` or ``case_study`` (other kinds have no text headings).
        extra: Extra keywords per field, tried before the defaults.

    Returns:
        The text before the first heading, and each field's text (a repeated heading
        appends to its field).
    """
    keywords = _keywords(kind, extra or {})
    pre: list[str] = []
    found: dict[str, list[str]] = {}
    current: list[str] = pre
    # Normalised once here; the sections are slices of normalised text.
    for line in clean_text(text).split("\n"):
        hit = _heading(line, keywords) if line else None
        if hit is not None:
            fld, inline = hit
            current = found.setdefault(fld, [])
            if inline:
                current.append(inline)
            continue
        current.append(line)
    joined = {f: "\n".join(v).strip() for f, v in found.items()}
    return "\n".join(pre).strip(), {f: t for f, t in joined.items() if t}


def _paragraphs(text: str, limit: int) -> list[str]:
    items = [p.strip() for p in re.split(r"\n+", text) if p.strip()]
    return [p if len(p) <= limit else p[: limit - 1] + "…" for p in items][:100]


def _shape_value(kind: _FieldKind, value: Any, *, clean: bool = False) -> Any:
    """A body value of the field's shape; ``clean`` says it is already normalised."""
    if isinstance(value, str):
        text = value if clean else clean_text(value)
        if kind == "list":
            return _paragraphs(text, 2000)
        if kind == "lines":
            return [
                p if len(p) <= 200 else p[:199] + "…"
                for p in (q.replace("\n", " ") for q in _paragraphs(text, 2000))
            ]
        return text
    return value


def _set_path(body: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = body
    for p in parts[:-1]:
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ShapeError(f"body field {path!r} conflicts with {p!r}")
        node = nxt
    node[parts[-1]] = value


def _jsonable(value: Any, tz: timezone) -> Any:
    if isinstance(value, datetime):
        return parse_when(value, tz).date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def shape_item(doc: DocumentFields, rules: ItemRules, site_id: str) -> dict[str, Any]:
    """Build an unsigned item (without attachments) from a document's fields.

    Args:
        doc: What the source read.
        rules: The source's item rules.
        site_id: The author.

    Returns:
        The item object; the caller validates it against the schema.

    Raises:
        ShapeError: no title, no usable date, or required body fields that neither
            the text, the direct body fields nor the defaults provide (all named).
    """
    tz = rules.tz
    title = _one_line(doc.title or "", 200)
    if not title:
        raise ShapeError(f"{doc.ref}: no title")
    if doc.created_at is None or doc.created_at == "":
        raise ShapeError(f"{doc.ref}: no date (created_at)")
    try:
        # Shown in the site's own offset whatever the source stored (UTC in
        # timestamptz columns), so the same moment always gives the same text.
        created = parse_when(doc.created_at, tz).astimezone(tz)
    except ShapeError as exc:
        raise ShapeError(f"{doc.ref}: created_at {exc}") from None
    tags = split_tags(doc.tags)
    for t in rules.tags:
        if t not in tags:
            tags.append(t)
    match = {
        "title": title,
        "text": doc.text or "",
        "tags": "、".join(tags),
        **doc.match,
    }
    kind = doc.kind or choose_kind(rules, match)
    body: dict[str, Any] = {}
    for path, value in doc.body.items():
        if value is None or value == "":
            continue
        shape = _SHAPES.get(kind, {}).get(path, "text")
        _set_path(body, path, _shape_value(shape, _jsonable(value, tz)))
    if kind in _SHAPES:
        shapes = _SHAPES[kind]
        if doc.text and doc.text.strip():
            pre, parts = sections(doc.text, kind, rules.headings)
            main = rules.text_field or _MAIN_FIELD[kind]
            if pre:
                parts[main] = (pre + "\n" + parts[main]) if main in parts else pre
            for fld, text in parts.items():
                if fld not in body:
                    body[fld] = _shape_value(shapes.get(fld, "text"), text, clean=True)
        for fld, value in rules.defaults.items():
            if fld not in body:
                body[fld] = _shape_value(shapes.get(fld, "text"), value)
        if kind == "case_study":
            period = body.setdefault("period", {})
            if isinstance(period, dict):
                period.setdefault("start", created.date().isoformat())
        missing = [f for f in _REQUIRED[kind] if not body.get(f)]
        if missing:
            heads = "; ".join(
                f"{f} {field_label(BODY_MODELS[kind].__name__, f)} (heading such as "
                f"{HEADINGS[kind][f][0]})"
                for f in missing
            )
            raise ShapeError(
                f"{doc.ref}: 缺少必填正文字段 / the text has no section for {heads}; add "
                f"the heading to the document or a default in the source's [defaults] "
                f"(fields per kind: docs/adapters.md)"
            )
    elif not body:
        raise ShapeError(
            f"{doc.ref}: kind {kind} needs a structured body; only "
            f"{' and '.join(TEXT_KINDS)} can be built from text"
        )
    item: dict[str, Any] = {
        "v": 1,
        "kind": kind,
        "author": site_id,
        "created_at": to_timestamp(created),
        "title": title,
        "lang": rules.lang,
        "body": body,
    }
    summary = clean_text(doc.summary or "")
    if summary:
        item["summary"] = summary[:2000]
    if tags:
        item["tags"] = tags[:20]
    if rules.circles or rules.sites:
        item["audience"] = {"circles": list(rules.circles), "sites": list(rules.sites)}
    return item


def check_item(item: Mapping[str, Any], ref: str) -> None:
    """Validate an unsigned item against the schema.

    Raises:
        ShapeError: naming the first invalid fields (``item.body.outcomes: ...``).
    """
    try:
        ITEM_ADAPTER.validate_python(item)
    except ValidationError as exc:
        raise ShapeError(f"{ref}: {schema_error(exc, 'item').message}") from None
