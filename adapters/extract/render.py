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

from exchange.core.present import Block as _Field
from exchange.core.present import body_blocks
from schemas.labels import field_label
from schemas.labels import kind_label as _kind_name

__all__ = ["Block", "item_blocks", "kind_label", "to_docx", "to_markdown"]


def kind_label(kind: str) -> str:
    """``典型案例 (case_study)``."""
    return f"{_kind_name(kind)} ({kind})"


@dataclass(frozen=True)
class Block:
    """One section: a heading and a paragraph list, a numbered list, or a table."""

    heading: str
    paragraphs: tuple[str, ...] = ()
    numbered: tuple[str, ...] = ()
    header: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()


def _section(f: _Field) -> Block:
    heading = f"{f.label} ({f.name})"
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


def item_blocks(
    item: dict[str, Any], names: dict[str, str] | None = None
) -> list[Block]:
    """The sections of an item's body (and summary) in the schema's order.

    Args:
        item: The item object.
        names: Site id → name, where the caller knows them.
    """
    out: list[Block] = []
    if item.get("summary"):
        out.append(Block("摘要 (summary)", tuple(str(item["summary"]).split("\n"))))
    body = item.get("body") or {}
    out += [
        _section(f)
        for f in body_blocks(str(item.get("kind", "")), body, "zh", names=names)
    ]
    return out


def _meta(item: dict[str, Any], envelope: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [
        ("类型 Kind", kind_label(str(item.get("kind", "")))),
        ("作者 Author", str(item.get("author", ""))),
        ("时间 Created", str(item.get("created_at", ""))),
    ]
    if item.get("tags"):
        rows.append(("标签 Tags", "、".join(item["tags"])))
    aud = item.get("audience") or {}
    if aud.get("circles") or aud.get("sites"):
        rows.append(
            (
                "范围 Audience",
                "、".join([*aud.get("circles", []), *aud.get("sites", [])]),
            )
        )
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


def to_markdown(item: dict[str, Any], envelope: dict[str, Any]) -> str:
    """The item as Markdown: title, a metadata table, one section per field."""
    lines = [f"# {item.get('title', '')}", "", "| 项目 | 内容 |", "|---|---|"]
    lines += [f"| {k} | {_md_cell(v)} |" for k, v in _meta(item, envelope)]
    for b in item_blocks(item):
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


def to_docx(item: dict[str, Any], envelope: dict[str, Any]) -> bytes:
    """The item as a Word document (same content as :func:`to_markdown`)."""
    import docx

    doc = docx.Document()
    doc.add_heading(str(item.get("title", "")), level=0)
    meta = _meta(item, envelope)
    table = doc.add_table(rows=len(meta), cols=2)
    for row, (k, v) in zip(table.rows, meta, strict=True):
        row.cells[0].text, row.cells[1].text = k, v
    for b in item_blocks(item):
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
