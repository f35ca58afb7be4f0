"""A received item → a readable Markdown or Word document, Chinese labels first.

Every body field gets a section under its label (``## 主要做法 (actions)``); lists
become numbered lists, lists of records (phases, contacts, duties) become tables with
labelled columns, so nothing a partner wrote is dropped. :func:`to_markdown` is pure;
:func:`to_docx` needs python-docx (the ``folder`` extra).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from adapters.base import Names
from exchange.core.present import Block as _Field
from exchange.core.present import body_blocks
from schemas.labels import field_label
from schemas.labels import kind_label as _kind_name

__all__ = [
    "Block",
    "audience_names",
    "author_name",
    "item_blocks",
    "kind_label",
    "to_docx",
    "to_markdown",
]


def _both(zh: str, en: str) -> str:
    """A Chinese label with its English one: ``典型案例 (Case study)``."""
    return zh if not en or en == zh else f"{zh} ({en})"


def kind_label(kind: str) -> str:
    """``典型案例 (Case study)``."""
    return _both(_kind_name(kind), _kind_name(kind, "en"))


@dataclass(frozen=True)
class Block:
    """One section: a heading and a paragraph list, a numbered list, or a table."""

    heading: str
    paragraphs: tuple[str, ...] = ()
    numbered: tuple[str, ...] = ()
    header: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()


def _section(f: _Field, en: str) -> Block:
    heading = _both(f.label, en)
    v = f.value
    if f.shape == "text":
        return Block(heading, tuple(v))
    if f.shape == "list":
        return Block(heading, numbered=tuple(v))
    if f.shape == "sites":
        return Block(heading, ("、".join(v),))
    if f.shape == "items":
        return Block(
            heading, tuple(f"{title}（{i}）" if title else i for i, title in v)
        )
    if f.shape == "value":
        return Block(heading, (v.text,))
    if f.shape == "contacts":
        cols = ("name", "role", "phone", "email")
        return Block(
            heading,
            header=tuple(field_label("Contact", c) for c in cols),
            rows=tuple(tuple(str(c.get(k) or "") for k in cols) for c in v),
        )
    if f.shape == "phases":
        return Block(
            heading,
            header=tuple(
                field_label("Phase", c)
                for c in ("name", "start", "end", "activities", "responsible_sites")
            ),
            rows=tuple(
                (
                    p["name"],
                    p["start"],
                    p["end"],
                    "\n".join(p["activities"]),
                    "、".join(p["sites"]),
                )
                for p in v
            ),
        )
    if f.shape == "table":
        return Block(
            heading,
            header=v.header,
            rows=tuple(tuple("\n".join(c.lines) for c in r) for r in v.rows),
        )
    if f.shape == "vote":
        counts = "，".join(f"{label} {n}" for label, n in v["rows"][2:])
        meeting = "，".join(f"{label}：{n}" for label, n in v["rows"][:2])
        return Block(heading, (meeting, counts, v["result"]))
    return Block(heading, (str(v),))


def item_blocks(item: dict[str, Any], names: Names | None = None) -> list[Block]:
    """The sections of an item's body (and summary) in the schema's order, headed by
    their Chinese and English labels.

    Args:
        item: The item object.
        names: Site and circle names, where the caller knows them (ids otherwise).
    """
    out: list[Block] = []
    if item.get("summary"):
        out.append(Block("摘要 (Summary)", tuple(str(item["summary"]).split("\n"))))
    body = item.get("body") or {}
    kind = str(item.get("kind", ""))
    sites = names.sites if names is not None else {}
    zh = body_blocks(kind, body, "zh", names=sites)
    en = body_blocks(kind, body, "en", names=sites)
    out += [_section(f, e.label) for f, e in zip(zh, en, strict=True)]
    return out


def author_name(item: dict[str, Any], names: Names | None = None) -> str:
    """Who wrote the item: the site's name (its id when no name is known)."""
    author = str(item.get("author", ""))
    return names.site(author) if names is not None else author


def audience_names(item: dict[str, Any], names: Names | None = None) -> str:
    """The item's circles and sites by name, ``、``-joined ("" when public)."""
    aud = item.get("audience") or {}
    n = names if names is not None else Names()
    return "、".join(
        [
            *(n.circle(str(c)) for c in aud.get("circles", [])),
            *(n.site(str(s)) for s in aud.get("sites", [])),
        ]
    )


def _meta(
    item: dict[str, Any], envelope: dict[str, Any], names: Names | None
) -> list[tuple[str, str]]:
    rows = [
        ("类型 Kind", kind_label(str(item.get("kind", "")))),
        ("作者 Author", author_name(item, names)),
        ("时间 Created", str(item.get("created_at", ""))),
    ]
    if item.get("tags"):
        rows.append(("标签 Tags", "、".join(item["tags"])))
    audience = audience_names(item, names)
    if audience:
        rows.append(("范围 Audience", audience))
    rows.append(("编号 Id", str(envelope.get("id", ""))))
    if "index" in envelope:
        rows.append(("日志序号 Log index", str(envelope["index"])))
    for a in item.get("attachments") or []:
        rows.append(
            (
                "附件 Attachment",
                f"{a.get('name')} ({a.get('size')} bytes, sha256 {a.get('sha256')})",
            )
        )
    return rows


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def to_markdown(
    item: dict[str, Any], envelope: dict[str, Any], names: Names | None = None
) -> str:
    """The item as Markdown: title, a metadata table, one section per field; sites
    and circles by name where ``names`` knows them."""
    lines = [f"# {item.get('title', '')}", "", "| 项目 | 内容 |", "|---|---|"]
    lines += [f"| {k} | {_md_cell(v)} |" for k, v in _meta(item, envelope, names)]
    for b in item_blocks(item, names):
        lines += ["", f"## {b.heading}", ""]
        lines += (
            [p for para in b.paragraphs for p in (para, "")][:-1]
            if b.paragraphs
            else []
        )
        lines += [f"{i}. {t}" for i, t in enumerate(b.numbered, 1)]
        if b.header:
            lines += ["| " + " | ".join(b.header) + " |", "|" + "---|" * len(b.header)]
            lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in b.rows]
    lines += [
        "",
        "---",
        "",
        "本文件由 Congress Exchange 适配器根据已验证签名的条目生成；同名 .json 文件为签名原件。",
        "Written from a signature-verified item; the .json file beside it is the signed original.",
    ]
    return "\n".join(lines) + "\n"


def to_docx(
    item: dict[str, Any], envelope: dict[str, Any], names: Names | None = None
) -> bytes:
    """The item as a Word document (same content as :func:`to_markdown`)."""
    import docx

    doc = docx.Document()
    doc.add_heading(str(item.get("title", "")), level=0)
    meta = _meta(item, envelope, names)
    table = doc.add_table(rows=len(meta), cols=2)
    for row, (k, v) in zip(table.rows, meta, strict=True):
        row.cells[0].text, row.cells[1].text = k, v
    for b in item_blocks(item, names):
        doc.add_heading(b.heading, level=1)
        for p in b.paragraphs:
            doc.add_paragraph(p)
        for t in b.numbered:
            doc.add_paragraph(t, style="List Number")
        if b.header:
            t = doc.add_table(rows=1 + len(b.rows), cols=len(b.header))
            for cell, h in zip(t.rows[0].cells, b.header, strict=True):
                cell.text = h
            for trow, r in zip(t.rows[1:], b.rows, strict=True):
                for cell, c in zip(trow.cells, r, strict=True):
                    cell.text = c
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()
