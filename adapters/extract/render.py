"""A received item → a readable Markdown or Word document, Chinese labels first.

Every body field gets a section under its label (``## 主要做法 (actions)``); lists
become numbered lists, lists of records (phases, contacts, duties) become tables with
labelled columns, so nothing a partner wrote is dropped. :func:`to_markdown` is pure;
:func:`to_docx` needs python-docx (the ``folder`` extra).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

from .readable import FIELD_LABELS, kind_label

__all__ = ["Block", "item_blocks", "to_docx", "to_markdown"]

_EXTRA_LABELS = {
    "name": "名称",
    "role": "职务",
    "phone": "电话",
    "email": "电子邮箱",
    "start": "开始",
    "end": "结束",
    "activities": "工作内容",
    "responsible_sites": "责任单位",
    "site": "单位",
    "duties": "职责",
    "summary": "问题描述",
    "severity": "严重程度",
    "issue": "整改事项",
    "responsible_body": "责任单位",
    "deadline": "整改期限",
    "status": "进展",
}


def _label(key: str) -> str:
    zh = FIELD_LABELS.get(key) or _EXTRA_LABELS.get(key)
    return f"{zh} ({key})" if zh else key


def _scalar(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        return "；".join(_scalar(x) for x in v)
    if isinstance(v, dict):
        if set(v) <= {"start", "end"}:
            return f"{v.get('start', '')} 至 {v.get('end') or '今'}"
        return "；".join(f"{_label(k)}: {_scalar(x)}" for k, x in v.items())
    if v is None:
        return ""
    return json.dumps(v, ensure_ascii=False)


@dataclass(frozen=True)
class Block:
    """One section: a heading and a paragraph list, a numbered list, or a table."""

    heading: str
    paragraphs: tuple[str, ...] = ()
    numbered: tuple[str, ...] = ()
    header: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()


def item_blocks(item: dict[str, Any]) -> list[Block]:
    """The sections of an item's body (and summary) in document order."""
    out: list[Block] = []
    if item.get("summary"):
        out.append(Block("摘要 (summary)", tuple(str(item["summary"]).split("\n"))))
    for key, value in (item.get("body") or {}).items():
        if value in (None, "", [], {}):
            continue
        heading = _label(key)
        if isinstance(value, str):
            out.append(Block(heading, tuple(p for p in value.split("\n") if p)))
        elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
            keys: list[str] = []
            for v in value:
                keys += [k for k in v if k not in keys]
            out.append(
                Block(
                    heading,
                    header=tuple(_label(k) for k in keys),
                    rows=tuple(tuple(_scalar(v.get(k)) for k in keys) for v in value),
                )
            )
        elif isinstance(value, list):
            out.append(Block(heading, numbered=tuple(_scalar(v) for v in value)))
        else:
            out.append(Block(heading, (_scalar(value),)))
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
