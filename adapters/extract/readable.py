"""A received item → readable plain text, Chinese labels first.

Used where a person reads partners' items outside any program: mail bodies and
digests. The body is shown as the reading view shows it (:func:`render.item_blocks`,
labels from :mod:`schemas.labels`): each field under its Chinese label, lists as
numbered lines, records as one line each; fields a newer schema added are shown under
their JSON name, so nothing a partner wrote is silently dropped.
"""

from __future__ import annotations

from typing import Any

from adapters.base import Names

from .render import audience_names, author_name, item_blocks, kind_label

__all__ = ["item_text", "kind_label"]


def _one_line(cell: str) -> str:
    """A cell's lines on one line: 。-ended sentences run on, others take a ；."""
    parts = [p.strip() for p in cell.split("\n") if p.strip()]
    return "".join(
        p if p.endswith(("。", "；", "！", "？")) or i == len(parts) - 1 else p + "；"
        for i, p in enumerate(parts)
    )


def item_text(
    item: dict[str, Any], *, item_id: str = "", names: Names | None = None
) -> str:
    """The item as plain text: header lines, then each body field under its label.

    Args:
        item: The (verified) item object.
        item_id: Its id, shown in the header when given.
        names: Site and circle names (sites and circles are shown by id without).
    """
    lines = [
        str(item.get("title", "")),
        "",
        f"类型 Kind: {kind_label(str(item.get('kind', '')))}",
        f"作者 Author: {author_name(item, names)}",
        f"时间 Created: {item.get('created_at', '')}",
    ]
    if item.get("tags"):
        lines.append(f"标签 Tags: {'、'.join(item['tags'])}")
    audience = audience_names(item, names)
    if audience:
        lines.append(f"范围 Audience: {audience}")
    if item_id:
        lines.append(f"编号 Id: {item_id}")
    for b in item_blocks(item, names):
        lines += ["", f"【{b.heading.split(' (')[0]}】", *b.paragraphs]
        lines += [f"{i}. {t}" for i, t in enumerate(b.numbered, 1)]
        for row in b.rows:  # a record: its first cell as a bullet, the rest indented
            first, *rest = [(h, c) for h, c in zip(b.header, row, strict=True) if c]
            lines.append(f"· {_one_line(first[1])}")
            lines += [f"  {h}：{_one_line(c)}" for h, c in rest]
    for att in item.get("attachments") or []:
        lines.append(f"附件 Attachment: {att.get('name')} ({att.get('size')} bytes)")
    return "\n".join(lines).rstrip() + "\n"
