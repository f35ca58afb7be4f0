"""Word and Excel files → item fields (pure: bytes in).

**Word (.docx)** — :func:`read_docx`: the title (a ``Title``/``Heading 1`` paragraph,
else the document's title property, else a short first line), the date (a labelled
line ``日期：2021年10月28日`` or a closing date line ``2021年10月28日`` as congress
documents end, else the document's creation time), the contacts (the ``联系人`` /
``联系方式`` section: ``张明，法制工作委员会主任，0561-3012345``) and the remaining
lines, headings included, for :func:`adapters.extract.fields.sections` to map
(背景 / 主要做法 / 成效 for a case study, 做法 / 适用条件 / 成效 for a lesson).

**Excel (.xlsx)** — :func:`read_plan_xlsx`: a joint inspection plan. The sheet whose
header row has ``阶段`` is the phase table, one row per phase, with the columns
``阶段``, ``开始日期``, ``结束日期``, ``工作内容``, ``责任单位`` (usual synonyms
accepted); a two-column sheet (``项目`` | ``内容``) gives the plan's own fields
(标题, 检查的法律, 重点条款, 牵头单位, 参与单位, 检查目的, 检查范围, 日期, 标签); an
optional ``职责分工`` sheet (``单位`` | ``职责``). Units are written by name and mapped
to site ids by the source's ``site_names``.

Every failure is an :class:`OfficeError` naming the file, sheet, row or column.

Before python-docx or openpyxl sees a file, every XML part of it is parsed with
``defusedxml`` (:func:`check_office_xml`): a part with a DTD, an entity declaration or
an external reference (entity-expansion and external-entity attacks) is refused, as is
an archive that would unpack to more than :data:`MAX_UNPACKED` bytes.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from ..text import (
    CHINA_TZ,
    DateError,
    find_date,
    normalize_line,
    normalize_text,
    parse_date,
)

__all__ = [
    "MAX_UNPACKED",
    "DocxDocument",
    "OfficeError",
    "check_office_xml",
    "parse_contacts",
    "read_docx",
    "read_plan_xlsx",
]


class OfficeError(ValueError):
    """A file that cannot be read as what it should be; ``str()`` says why."""


@dataclass(frozen=True)
class DocxDocument:
    """What a Word document says."""

    title: str
    created_at: datetime | None
    lines: list[str]
    contacts: list[dict[str, str]] = field(default_factory=list)


_HEADING_STYLES = re.compile(r"^(?:Title|Heading \d|标题(?: ?\d)?)$", re.IGNORECASE)
_CONTACT_HEAD = re.compile(
    r"^(?:[一二三四五六七八九十]+[、.．]|[（(][一二三四五六七八九十\d]+[)）]|\d{1,2}[、.．]|【)?"
    r"\s*(?:联系人|联系方式)\s*】?\s*[:：]?\s*(.*)$"
)
_NEXT_HEAD = re.compile(r"^(?:[一二三四五六七八九十]+[、.．]|【)")
_DATE_LINE = re.compile(
    r"^(?:(?:日期|时间|印发日期|发布时间|发布日期)\s*[:：]\s*)?(.{6,24})$"
)
_PHONE = re.compile(r"(?<![\d])(\+?\d[\d\- ()]{5,28}\d)(?![\d])")
_EMAIL = re.compile(
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)


def parse_contacts(lines: list[str]) -> list[dict[str, str]]:
    """``张明，法制工作委员会主任，0561-3012345`` → ``{"name", "role", "phone"}``."""
    out: list[dict[str, str]] = []
    for line in lines:
        email = _EMAIL.search(line)
        rest = _EMAIL.sub(" ", line)
        phone = _PHONE.search(rest)
        rest = _PHONE.sub(" ", rest)
        rest = re.sub(
            r"(?:联系人|姓名|职务|电话|手机|邮箱|电子邮箱|E-?mail)\s*[:：]?",
            " ",
            rest,
            flags=re.IGNORECASE,
        )
        parts = [p for p in re.split(r"[，,、；;（）()\s]+", rest) if p]
        if not parts or len(parts[0]) > 20:
            continue
        c = {"name": parts[0], "role": parts[1] if len(parts) > 1 else "联系人"}
        if phone:
            c["phone"] = re.sub(r"\s+", " ", phone.group(1)).strip()
        if email:
            c["email"] = email.group(0)
        out.append(c)
    return out[:20]


MAX_UNPACKED = 200_000_000
"""Most bytes an Office file's parts may unpack to (a zip bomb is refused)."""


def check_office_xml(data: bytes, name: str, what: str = "Office") -> None:
    """Refuse an Office file whose XML parts declare a DTD, entities or external
    references, or that unpacks to more than :data:`MAX_UNPACKED` bytes.

    Raises:
        OfficeError: naming the file and the part.
    """
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring as safe_fromstring

    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        return  # not a zip: the reader reports it in its own words
    if sum(i.file_size for i in infos) > MAX_UNPACKED:
        raise OfficeError(
            f"{name}: 解压后超过 {MAX_UNPACKED} 字节，已拒绝 / unpacks to more than "
            f"{MAX_UNPACKED} bytes; refused"
        )
    for info in infos:
        if not info.filename.lower().endswith((".xml", ".rels")):
            continue
        try:
            safe_fromstring(zf.read(info), forbid_dtd=True)
        except DefusedXmlException as exc:
            raise OfficeError(
                f"{name}: {info.filename} 含有 DTD 或 XML 实体，已拒绝 / declares a DTD, "
                f"entities or external references ({type(exc).__name__}); refused "
                "(unsafe)"
            ) from None
        except Exception as exc:  # ParseError, zlib and zipfile errors
            raise OfficeError(
                f"{name}: {info.filename} 不是有效的 XML / is not well-formed XML "
                f"({type(exc).__name__})"
            ) from None


def read_docx(data: bytes, name: str) -> DocxDocument:
    """Read a ``.docx`` file.

    Raises:
        OfficeError: not a Word document (corrupt, truncated, another format).
    """
    import docx  # python-docx; imported here so a missing extra fails only for .docx

    check_office_xml(data, name, "Word")
    try:
        doc = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise OfficeError(
            f"{name}: 不是有效的 Word 文档 / not a valid .docx file ({type(exc).__name__}: "
            f"{exc}); open and save it again in Word or WPS as .docx"
        ) from None
    except Exception as exc:  # python-docx and lxml raise their own classes
        raise OfficeError(
            f"{name}: 不是有效的 Word 文档 / not a valid .docx file ({type(exc).__name__})"
        ) from None
    title = ""
    lines: list[str] = []
    for p in doc.paragraphs:
        text = normalize_line(p.text)
        if not text:
            continue
        style = p.style.name if p.style is not None else ""
        if not title and not lines and _HEADING_STYLES.match(style or ""):
            title = text
            continue
        lines.append(text)
    props = doc.core_properties
    if not title and props.title:
        title = normalize_line(props.title)
    if not title and lines and len(lines[0]) <= 60 and not lines[0].endswith("。"):
        title = lines.pop(0)
    created: datetime | None = None
    for i in range(len(lines) - 1, -1, -1):
        m = _DATE_LINE.match(lines[i])
        if m is None:
            continue
        try:
            created = parse_date(m.group(1))
        except DateError:
            continue
        del lines[i]
        break
    if created is None and props.created is not None:
        c = props.created
        created = (c if c.tzinfo else c.replace(tzinfo=UTC)).astimezone(CHINA_TZ)
    contacts: list[dict[str, str]] = []
    for i, line in enumerate(lines):
        m = _CONTACT_HEAD.match(line)
        if m is None or (i and len(line) > 40 and not m.group(1)):
            continue
        end = i + 1
        while end < len(lines) and not _NEXT_HEAD.match(lines[end]):
            end += 1
        block = ([m.group(1)] if m.group(1) else []) + lines[i + 1 : end]
        contacts = parse_contacts(block)
        del lines[i:end]
        break
    return DocxDocument(title, created, lines, contacts)


# -- Excel ------------------------------------------------------------------------------

_PHASE_COLUMNS: dict[str, tuple[str, ...]] = {
    "阶段": ("阶段", "阶段名称", "步骤"),
    "开始日期": ("开始日期", "开始时间", "起始日期", "起始时间"),
    "结束日期": ("结束日期", "结束时间", "截止日期", "截止时间", "完成时间"),
    "工作内容": ("工作内容", "主要工作", "内容", "工作安排"),
    "责任单位": ("责任单位", "负责单位", "牵头单位", "承担单位"),
}
_PLAN_KEYS: dict[str, tuple[str, ...]] = {
    "title": ("标题", "方案名称", "名称"),
    "law": ("检查的法律", "法律", "检查法律", "法律法规"),
    "articles": ("重点条款", "条款"),
    "lead_site": ("牵头单位",),
    "participating_sites": ("参与单位", "参加单位"),
    "objectives": ("检查目的", "目的"),
    "scope": ("检查范围", "范围"),
    "date": ("日期", "印发日期", "制定日期"),
    "tags": ("标签", "关键词"),
}


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, datetime | date):
        return v.strftime("%Y-%m-%d")
    return normalize_text(str(v))


def _split(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"[、,，;；\n]+", text) if p.strip()]


def _day(v: Any, where: str) -> str:
    if isinstance(v, datetime | date):
        return v.strftime("%Y-%m-%d")
    try:
        return parse_date(_cell(v)).date().isoformat()
    except DateError:
        raise OfficeError(
            f"{where}: {_cell(v)!r} is not a date (e.g. 2021-10-28)"
        ) from None


def _site(unit: str, names: Mapping[str, str], where: str) -> str:
    if re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?", unit):
        return unit
    if unit in names:
        return names[unit]
    raise OfficeError(
        f"{where}: unit {unit!r} is not a site id and not in site_names; add "
        f'"{unit}" = "site-id" under [source.site_names]'
    )


def read_plan_xlsx(
    data: bytes, name: str, site_names: Mapping[str, str], own_site: str
) -> dict[str, Any]:
    """Read an inspection-plan workbook into ``title``, ``date``, ``tags``, ``body``.

    Raises:
        OfficeError: not a workbook, no phase sheet, missing columns, bad cells.
    """
    import openpyxl

    check_office_xml(data, name, "Excel")
    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # zipfile, KeyError, openpyxl's own
        raise OfficeError(
            f"{name}: 不是有效的 Excel 工作簿 / not a valid .xlsx file ({type(exc).__name__})"
        ) from None
    sheets = {
        ws.title: [list(r) for r in ws.iter_rows(values_only=True)]
        for ws in wb.worksheets
    }
    created = wb.properties.created
    wb.close()
    phase_sheet, header_at = None, 0
    for title, rows in sheets.items():
        for i, row in enumerate(rows[:5]):
            if any(_cell(c) in _PHASE_COLUMNS["阶段"] for c in row):
                phase_sheet, header_at = title, i
                break
        if phase_sheet:
            break
    if phase_sheet is None:
        raise OfficeError(
            f"{name}: no sheet has a header row with a 阶段 column (phase table)"
        )
    rows = sheets[phase_sheet]
    header = [_cell(c) for c in rows[header_at]]
    col: dict[str, int] = {}
    for key, names in _PHASE_COLUMNS.items():
        for n in names:
            if n in header:
                col[key] = header.index(n)
                break
    missing = [k for k in _PHASE_COLUMNS if k not in col]
    if missing:
        raise OfficeError(
            f"{name}, sheet {phase_sheet}: 缺少列 / missing column(s) {', '.join(missing)} "
            f"(found: {', '.join(h for h in header if h)})"
        )
    plan: dict[str, str] = {}
    duties: dict[str, list[str]] = {}
    for title, srows in sheets.items():
        if title == phase_sheet:
            continue
        for r in srows:
            cells = [_cell(c) for c in r[:2]] + ["", ""]
            k, v = cells[0], cells[1]
            if not k or not v:
                continue
            if "职责" in title:  # 单位 | 职责, one row per duty
                if k != "单位":
                    duties.setdefault(k, []).append(v)
                continue
            for fld, keys in _PLAN_KEYS.items():
                if k in keys:
                    plan[fld] = v
    where = f"{name}, sheet {phase_sheet}"
    lead = (
        _site(plan["lead_site"], site_names, f"{name}: 牵头单位")
        if "lead_site" in plan
        else own_site
    )
    parts = [
        _site(u, site_names, f"{name}: 参与单位")
        for u in _split(plan.get("participating_sites", ""))
    ]
    phases: list[dict[str, Any]] = []
    for row_no, r in enumerate(rows[header_at + 1 :], start=header_at + 2):
        cells = list(r) + [None] * len(header)
        if not any(_cell(c) for c in cells):
            continue
        units = [
            _site(u, site_names, f"{where}, row {row_no}, 责任单位")
            for u in _split(_cell(cells[col["责任单位"]]))
        ]
        phases.append(
            {
                "name": normalize_line(_cell(cells[col["阶段"]]))
                or f"第{len(phases) + 1}阶段",
                "start": _day(
                    cells[col["开始日期"]], f"{where}, row {row_no}, 开始日期"
                ),
                "end": _day(cells[col["结束日期"]], f"{where}, row {row_no}, 结束日期"),
                "activities": [
                    p for p in _cell(cells[col["工作内容"]]).split("\n") if p
                ]
                or [normalize_line(_cell(cells[col["阶段"]]))],
                "responsible_sites": units,
            }
        )
    if not phases:
        raise OfficeError(f"{where}: the phase table has no rows")
    if not parts:
        parts = sorted({u for p in phases for u in p["responsible_sites"]} - {lead})
    resp = []
    for site in [lead, *parts]:
        named = [
            d
            for unit, ds in duties.items()
            if _site(unit, site_names, f"{name}: 职责分工") == site
            for d in ds
        ]
        if not named:
            named = [
                f"{p['name']}：{'；'.join(p['activities'])}"[:2000]
                for p in phases
                if site in p["responsible_sites"]
            ]
        resp.append({"site": site, "duties": named or ["参加联合执法检查各阶段工作"]})
    body: dict[str, Any] = {
        "law": plan.get("law", ""),
        "articles": _split(plan.get("articles", "")),
        "lead_site": lead,
        "participating_sites": parts,
        "objectives": [p for p in plan.get("objectives", "").split("\n") if p],
        "scope": plan.get("scope", ""),
        "phases": phases,
        "responsibilities": resp,
    }
    when: datetime | None = None
    if plan.get("date"):
        try:
            when = find_date(plan["date"])
        except DateError:
            raise OfficeError(f"{name}: 日期 {plan['date']!r} is not a date") from None
    elif created is not None:
        when = (created if created.tzinfo else created.replace(tzinfo=UTC)).astimezone(
            CHINA_TZ
        )
    return {
        "title": normalize_line(plan.get("title", "")),
        "created_at": when,
        "tags": _split(plan.get("tags", "")),
        "body": body,
    }
