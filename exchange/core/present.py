"""An item body as people read it: labelled blocks shaped by the schema (pure code).

:func:`body_blocks` walks the body model of the item's kind (:mod:`schemas.kinds`) in
declaration order and turns each filled field into a :class:`Block` whose ``shape``
says how to show it: a paragraph, a list, congress names, linked items, a date range, a
labelled value, people (name / role / phone), a table by congress, the phases of a
plan, or the result of a vote. Labels come from :mod:`schemas.labels`; site ids become
names and item ids titles through the mappings the caller passes, so the reading view,
the folder documents and the mail digests show one body the same way.

Shapes and their ``value``:

* ``text`` — paragraphs (``list[str]``); ``list`` — entries (``list[str]``)
* ``sites`` — congress names; ``items`` — ``(id, title or "")`` pairs
* ``date`` / ``number`` / ``line`` — one string; ``value`` — a :class:`Cell` with the
  label and the raw code (for a badge colour)
* ``period`` — ``"2026-03-01 至 2026-04-30"`` (open end: ``起至今`` / ``ongoing``)
* ``contacts`` — ``list[dict]`` with ``name``, ``role``, ``phone``, ``email``
* ``table`` — :class:`Table` (labelled columns, rows of :class:`Cell`)
* ``phases`` — ``list[dict]`` with ``name``, ``when``, ``activities``, ``sites``
* ``vote`` — ``dict``: ``rows`` (label, count) pairs, ``passed``, ``result`` (words)
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schemas import items as _items
from schemas import kinds as _kinds
from schemas._base import DateStr, ItemId, SiteId
from schemas.labels import field_label, value_label

__all__ = [
    "BODY_MODELS",
    "Block",
    "Cell",
    "Table",
    "body_blocks",
    "period_text",
    "vote_result",
]


def _body_models() -> dict[str, type[Any]]:
    out: dict[str, type[Any]] = {}
    union = typing.get_args(_items.Item)[0]
    for cls in typing.get_args(union):
        (kind,) = typing.get_args(cls.model_fields["kind"].annotation)
        out[str(kind)] = cls.model_fields["body"].annotation
    return out


BODY_MODELS: dict[str, type[Any]] = _body_models()
"""Item kind → its body model (``"lesson"`` → :class:`schemas.kinds.Lesson`)."""


@dataclass(frozen=True)
class Cell:
    """One table cell or labelled value: its lines, and the raw code behind a label."""

    lines: tuple[str, ...]
    code: str = ""
    names: bool = False  # the lines are names of congresses (kept whole on one line)

    @property
    def text(self) -> str:
        """The lines joined for one-line output."""
        return "；".join(self.lines)


@dataclass(frozen=True)
class Table:
    """Rows of records with labelled columns."""

    header: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


@dataclass(frozen=True)
class Block:
    """One filled body field, labelled and shaped for display.

    Attributes:
        name: The field's wire name (for CSS classes and tests).
        label: Its label in the requested language.
        shape: How to show it (see the module docstring).
        value: Shape-specific data.
        fact: A short value, shown in the facts list at the top.
    """

    name: str
    label: str
    shape: str
    value: Any
    fact: bool = False


def _pattern(t: Any) -> str:
    return str(typing.get_args(t)[1].pattern)


_SITE, _ITEM, _DATE = _pattern(SiteId), _pattern(ItemId), _pattern(DateStr)


def _strip_optional(t: Any) -> Any:
    args = [a for a in typing.get_args(t) if a is not type(None)]
    if typing.get_origin(t) in (typing.Union, types.UnionType):
        return args[0]
    return t


def _atom(t: Any, metadata: list[Any]) -> str:
    """What a scalar annotation holds: site, item, date, literal, int, model, line, text."""
    t = _strip_optional(t)
    if typing.get_origin(t) is typing.Annotated:
        metadata = [*metadata, *typing.get_args(t)[1:]]
        t = typing.get_args(t)[0]
    if isinstance(t, type) and hasattr(t, "model_fields"):
        return "model"
    if typing.get_origin(t) is typing.Literal:
        return "literal"
    if t is int:
        return "int"
    flat: list[Any] = []
    for m in metadata:
        flat += [m, *(getattr(m, "metadata", None) or [])]
    for m in flat:
        pattern = getattr(m, "pattern", None)
        if pattern == _SITE:
            return "site"
        if pattern == _ITEM:
            return "item"
        if pattern == _DATE:
            return "date"
        if (getattr(m, "max_length", None) or 10**6) <= 200:
            return "line"
    return "text"


def _shape_of(fi: Any) -> tuple[str, bool, Any]:
    """``(atom, is_list, model class or None)`` of a field."""
    t = _strip_optional(fi.annotation)
    if typing.get_origin(t) is list:
        inner = typing.get_args(t)[0]
        atom = _atom(inner, [])
        return atom, True, _strip_optional(inner) if atom == "model" else None
    atom = _atom(t, list(fi.metadata))
    return atom, False, t if atom == "model" else None


def period_text(p: Mapping[str, Any], lang: str, *, term: bool = False) -> str:
    """``2026-03-01 至 2026-04-30``; an open end reads 至今 / ongoing, or for the
    term of an agreement (``term``) 长期有效 / open-ended."""
    start, end = str(p.get("start") or ""), p.get("end")
    if lang == "en":
        if end:
            return f"{start} – {end}"
        return f"from {start}, open-ended" if term else f"from {start} (ongoing)"
    if end == start:
        return start
    if end:
        return f"{start} 至 {end}"
    return f"{start} 起长期有效" if term else f"{start} 起至今"


def vote_result(v: Mapping[str, Any], lang: str) -> tuple[bool, str]:
    """Whether a satisfaction vote passed, and the result in words."""
    yes = int(v.get("satisfied", 0)) + int(v.get("basically_satisfied", 0))
    present = int(v.get("present", 0))
    passed = 2 * yes > present
    if lang == "en":
        verdict = "passed" if passed else "failed"
        return passed, (
            f"{verdict}: {yes} of {present} present were satisfied or basically "
            "satisfied (more than half needed)"
        )
    verdict = "通过" if passed else "未通过"
    return (
        passed,
        f"{verdict}：满意和基本满意共 {yes} 票，出席 {present} 人（须超过半数）",
    )


class _Presenter:
    def __init__(
        self, lang: str, names: Mapping[str, str], titles: Mapping[str, str]
    ) -> None:
        self.lang, self.names, self.titles = lang, names, titles

    def site(self, sid: Any) -> str:
        return self.names.get(str(sid), str(sid))

    def literal(self, name: str, value: Any) -> Cell:
        return Cell((value_label(name, str(value), self.lang),), str(value))

    def cell(self, model: type[Any], name: str, value: Any) -> Cell:
        atom, many, _ = _shape_of(model.model_fields[name])
        values = value if many else [value]
        if atom == "site":
            return Cell(tuple(self.site(s) for s in values if s), names=True)
        if atom == "literal":
            return self.literal(name, value)
        if atom == "item":
            return Cell(tuple(self.titles.get(str(i)) or str(i) for i in values))
        return Cell(tuple(str(v) for v in values if v not in (None, "")))

    def table(self, model: type[Any], rows: list[Mapping[str, Any]]) -> Table:
        cols = [
            n
            for n in model.model_fields
            if any(r.get(n) not in (None, "", []) for r in rows)
        ]
        return Table(
            tuple(field_label(model.__name__, n, self.lang) for n in cols),
            tuple(tuple(self.cell(model, n, r.get(n)) for n in cols) for r in rows),
        )

    def block(self, model: type[Any], name: str, value: Any) -> Block | None:
        if value in (None, "", [], {}):
            return None
        label = field_label(model.__name__, name, self.lang)
        atom, many, sub = _shape_of(model.model_fields[name])

        def mk(shape: str, v: Any, fact: bool = False) -> Block:
            return Block(name, label, shape, v, fact)

        if sub is _kinds.Period:
            return mk(
                "period", period_text(value, self.lang, term=name == "term"), True
            )
        if sub is _kinds.Contact:
            return mk("contacts", [dict(c) for c in value])
        if sub is _kinds.Phase:
            return mk(
                "phases",
                [
                    {
                        "name": p["name"],
                        "start": p["start"],
                        "end": p["end"],
                        "when": period_text(p, self.lang),
                        "activities": list(p.get("activities") or []),
                        "sites": [
                            self.site(s) for s in p.get("responsible_sites") or []
                        ],
                    }
                    for p in value
                ],
            )
        if sub is _kinds.SatisfactionVote:
            passed, result = vote_result(value, self.lang)
            rows = [
                (field_label("SatisfactionVote", n, self.lang), str(value.get(n, "")))
                for n in model_fields(sub)
            ]
            return mk("vote", {"rows": rows, "passed": passed, "result": result})
        if sub is not None:
            records: list[Mapping[str, Any]] = list(value) if many else [value]
            return mk("table", self.table(sub, records))
        if atom == "site":
            return mk(
                "sites", [self.site(s) for s in (value if many else [value])], True
            )
        if atom == "item":
            ids = value if many else [value]
            return mk(
                "items", [(str(i), self.titles.get(str(i), "")) for i in ids], True
            )
        if atom == "literal":
            return mk("value", self.literal(name, value), True)
        if atom in ("date", "int"):
            return mk("date" if atom == "date" else "number", str(value), True)
        if many:
            return mk("list", [str(v) for v in value])
        if atom == "line":
            return mk("line", str(value), True)
        return mk("text", [p for p in str(value).split("\n") if p.strip()])


def model_fields(model: type[Any]) -> list[str]:
    """Field names of a body model in declaration order."""
    return list(model.model_fields)


def body_blocks(
    kind: str,
    body: Mapping[str, Any],
    lang: str = "zh",
    *,
    names: Mapping[str, str] | None = None,
    titles: Mapping[str, str] | None = None,
) -> list[Block]:
    """The filled fields of an item body, in schema order, labelled in ``lang``.

    Args:
        kind: The item kind.
        body: The item's ``body`` object (schema-valid).
        lang: ``"zh"`` or ``"en"``.
        names: Site id → name (ids stay when unknown).
        titles: Item id → title, for referenced items the reader may see.

    Returns:
        One :class:`Block` per filled field, contacts last; fields a newer schema
        added that this node does not know are shown as plain text under their wire
        name.
    """
    model = BODY_MODELS.get(kind)
    p = _Presenter(lang, names or {}, titles or {})
    out: list[Block] = []
    known = model_fields(model) if model is not None else []
    for name in known:
        assert model is not None
        b = p.block(model, name, body.get(name))
        if b is not None:
            out.append(b)
    for name, value in body.items():
        if name not in known and value not in (None, "", [], {}):
            out.append(Block(name, name, "text", [str(value)]))
    # Whom to ask comes last, as at the end of a document.
    return sorted(out, key=lambda b: b.shape == "contacts")
