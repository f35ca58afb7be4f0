"""Articles without section headings → a lesson or case-study body.

Portal articles and feed entries are prose: a lead paragraph that sets the scene,
paragraphs of what was done, a closing paragraph. :func:`shape_prose` first tries the
shared rules (:func:`adapters.extract.fields.shape_item`: headings such as
``一、主要做法`` decide the fields). When the text has **no** such headings and
``lead_paragraphs`` is on (the default), it reads the paragraphs by position instead:

========== ============================ =============================
kind       first paragraph              middle / last paragraphs
========== ============================ =============================
lesson     ``conditions`` (背景)         ``practice`` / ``outcomes``
case_study ``background`` (背景)         ``actions`` / ``results``
========== ============================ =============================

This needs at least three paragraphs. ``defaults`` fill only the fields that neither
headings nor positions gave (``applicability`` for a lesson usually); a field none of
them gives makes the document a problem naming it. See ``docs/adapters.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from pydantic import Field

from schemas.kinds import CaseStudy, InspectionPlan, Lesson

from .fields import (
    DocumentFields,
    ItemRules,
    choose_kind,
    sections,
    shape_item,
)

__all__ = ["ProseRules", "rules_for", "shape_prose"]

_R = TypeVar("_R", bound=ItemRules)
_BODY_FIELDS = {
    "lesson": set(Lesson.model_fields),
    "case_study": set(CaseStudy.model_fields),
    "inspection_plan": set(InspectionPlan.model_fields),
}


class ProseRules(ItemRules):
    """:class:`ItemRules` plus the paragraph fallback for prose without headings."""

    lead_paragraphs: bool = Field(
        True,
        description="Without headings, read paragraphs by position: first = setting, "
        "middle = what was done, last = outcome",
    )


def rules_for(kind: str, rules: _R) -> _R:
    """``rules`` with only the ``defaults`` that are body fields of ``kind``.

    One source may make lessons and case studies (by ``kind_rules``); a default such as
    ``applicability`` belongs to lessons and must not land in a case study's body.
    """
    fields = _BODY_FIELDS.get(kind)
    if fields is None:
        return rules
    kept = {k: v for k, v in rules.defaults.items() if k.split(".")[0] in fields}
    return rules.model_copy(update={"defaults": kept})


def _by_position(kind: str, paras: Sequence[str]) -> dict[str, Any]:
    first, middle, last = paras[0], "\n".join(paras[1:-1]), paras[-1]
    if kind == "lesson":
        return {"conditions": first, "practice": middle, "outcomes": last}
    return {"background": first, "actions": middle, "results": last}


def shape_prose(
    *,
    ref: str,
    title: str,
    created_at: datetime | str,
    paragraphs: Sequence[str],
    rules: ProseRules,
    site_id: str,
    summary: str = "",
    tags: Sequence[str] = (),
    match: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An unsigned item from an article's title, date and paragraphs.

    Raises:
        ShapeError: no title or date, or required fields neither headings, positions
            nor defaults provide (the message names them).
    """
    text = "\n".join(paragraphs)
    extra = dict(match or {})
    all_tags = "、".join([*tags, *rules.tags])
    kind = choose_kind(rules, {"title": title, "text": text, "tags": all_tags, **extra})
    rules = rules_for(kind, rules)
    _, found = sections(text, kind, rules.headings)
    if (
        found
        or not rules.lead_paragraphs
        or kind not in ("lesson", "case_study")
        or len(paragraphs) < 3
    ):
        # Headings rule when present; too short to read by position.
        doc = DocumentFields(
            ref,
            title,
            created_at,
            text=text,
            summary=summary,
            tags=list(tags),
            kind=kind,
            match=extra,
        )
        return shape_item(doc, rules, site_id)
    # No headings: positions first; defaults fill only the fields they leave.
    body = _by_position(kind, paragraphs)
    doc = DocumentFields(
        ref,
        title,
        created_at,
        summary=summary,
        tags=list(tags),
        kind=kind,
        body=body,
        match=extra,
    )
    return shape_item(doc, rules, site_id)
