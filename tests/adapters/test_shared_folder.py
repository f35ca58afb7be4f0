"""The folder adapter against a real folder of Word, Excel, JSON and YAML files.

The documents are written by python-docx and openpyxl in the tests, in the shape a
county congress office writes them: numbered headings (一、背景), a 联系人 section, a
closing date line, a phase table with 阶段 / 开始日期 / 结束日期 / 工作内容 / 责任单位.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import docx
import openpyxl
import pytest

from adapters.base import AdapterContext, AdapterError
from adapters.registry import load_adapter
from adapters.shared_folder import FolderSink, FolderSource
from exchange.core.canonical import item_id
from exchange.core.items import sign_item, verify_item
from exchange.core.signing import generate_key
from exchange.templates import template
from schemas.items import ITEM_ADAPTER


def _ctx(tmp_path: Path) -> AdapterContext:
    return AdapterContext(
        "huaibei-duji", tmp_path / "data", logging.getLogger("t"), tmp_path
    )


def _source(tmp_path: Path, **extra: Any) -> FolderSource:
    table = {
        "type": "folder",
        "name": "share",
        "path": "share",
        "settle_seconds": 0,
        "kind_rules": [{"field": "path", "match": "典型案例", "kind": "case_study"}],
        "defaults": {"applicability": ["县级人大常委会"]},
        "site_names": {
            "杜集区人大常委会": "huaibei-duji",
            "铜山区人大常委会": "xuzhou-tongshan",
            "吴中区人大常委会": "suzhou-wuzhong",
        },
        **extra,
    }
    src = load_adapter(table, _ctx(tmp_path))
    assert isinstance(src, FolderSource)
    return src


def _case_docx(path: Path) -> None:
    d = docx.Document()
    d.add_heading("杜集区人大常委会预算联网监督典型案例", level=1)
    d.add_paragraph("一、背景")
    d.add_paragraph(
        "区人大常委会在审查预算执行情况时发现，部分部门预算执行进度慢、绩效目标不清晰。"
    )
    d.add_paragraph("二、主要做法")
    d.add_paragraph("建成预算联网监督系统，与区财政局国库集中支付系统实时对接。")
    d.add_paragraph("组织代表分组开展预算执行情况专题调研。")
    d.add_paragraph("三、成效")
    d.add_paragraph("预算执行进度同比提高12个百分点，13个部门完成整改。")
    d.add_paragraph("四、联系人")
    d.add_paragraph("张明，法制工作委员会主任，0561-3012345")
    d.add_paragraph("2021年10月28日")
    path.parent.mkdir(parents=True, exist_ok=True)
    d.save(path)


def _lesson_docx(path: Path) -> None:
    d = docx.Document()
    d.add_heading("代表联络站“双述双评”工作经验", level=1)
    d.add_paragraph("【做法】")
    d.add_paragraph("每季度组织代表向选民述职，选民现场测评。")
    d.add_paragraph("【适用条件】")
    d.add_paragraph("代表联络站已建成并常态化运行的县区。")
    d.add_paragraph("【成效】")
    d.add_paragraph("代表履职积极性明显提高，群众满意度达96%。")
    d.add_paragraph("日期：2021年11月2日")
    path.parent.mkdir(parents=True, exist_ok=True)
    d.save(path)


def _plan_xlsx(path: Path, *, drop: tuple[str, ...] = ()) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "方案"
    for row in [
        ("项目", "内容"),
        ("标题", "淮海经济区安全生产法联合执法检查方案"),
        ("检查的法律", "《中华人民共和国安全生产法》"),
        ("重点条款", "第二十一条、第四十一条"),
        ("牵头单位", "杜集区人大常委会"),
        ("参与单位", "铜山区人大常委会"),
        ("检查目的", "检查安全生产法在两地的贯彻实施情况"),
        ("检查范围", "两地危险化学品企业和应急管理部门"),
        ("日期", "2021年10月28日"),
        ("标签", "安全生产法、联合执法检查"),
    ]:
        ws.append(row)
    ph = wb.create_sheet("阶段安排")
    cols = [
        c
        for c in ("阶段", "开始日期", "结束日期", "工作内容", "责任单位")
        if c not in drop
    ]
    ph.append(cols)
    rows = [
        {
            "阶段": "动员部署",
            "开始日期": datetime(2021, 11, 1),
            "结束日期": datetime(2021, 11, 5),
            "工作内容": "召开联合执法检查动员会",
            "责任单位": "杜集区人大常委会",
        },
        {
            "阶段": "实地检查",
            "开始日期": "2021年11月8日",
            "结束日期": "2021/11/19",
            "工作内容": "分组赴两地企业实地检查\n随机抽查应急预案",
            "责任单位": "杜集区人大常委会、铜山区人大常委会",
        },
    ]
    for r in rows:
        ph.append([r[c] for c in cols])
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)


async def test_reads_word_excel_json_and_yaml(tmp_path: Path) -> None:
    share = tmp_path / "share"
    _case_docx(share / "典型案例" / "预算联网监督.docx")
    _lesson_docx(share / "经验做法" / "双述双评.docx")
    _plan_xlsx(share / "联合检查" / "安全生产法.xlsx")
    (share / "item.json").write_text(
        json.dumps(
            {
                "kind": "lesson",
                "created_at": "2021-09-01T10:00:00+08:00",
                "title": "JSON 条目",
                "body": {
                    "practice": "做法",
                    "conditions": "条件",
                    "outcomes": "成效",
                    "applicability": ["县区"],
                },
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    (share / "item.yaml").write_text(
        "kind: lesson\ncreated_at: 2021-09-02T10:00:00+08:00\ntitle: YAML 条目\n"
        "body:\n  practice: 做法\n  conditions: 条件\n  outcomes: 成效\n"
        "  applicability: [县区]\n",
        encoding="utf-8",
    )
    (share / "~$锁文件.docx").write_bytes(b"lock")  # Word lock files are ignored
    src = _source(tmp_path)
    poll = await src.poll({})
    assert poll.problems == []
    items = {d.ref: d.item for d in poll.drafts}
    assert sorted(items) == [
        "item.json",
        "item.yaml",
        "典型案例/预算联网监督.docx",
        "经验做法/双述双评.docx",
        "联合检查/安全生产法.xlsx",
    ]
    for it in items.values():
        ITEM_ADAPTER.validate_python(it)
        assert it["author"] == "huaibei-duji"
    case = items["典型案例/预算联网监督.docx"]
    assert case["kind"] == "case_study"
    assert case["title"] == "杜集区人大常委会预算联网监督典型案例"
    assert case["created_at"] == "2021-10-28T00:00:00+08:00"
    assert case["body"]["background"].startswith("区人大常委会在审查预算执行情况时")
    assert case["body"]["actions"] == [
        "建成预算联网监督系统，与区财政局国库集中支付系统实时对接。",
        "组织代表分组开展预算执行情况专题调研。",
    ]
    assert (
        case["body"]["results"] == "预算执行进度同比提高12个百分点，13个部门完成整改。"
    )
    assert case["body"]["contacts"] == [
        {"name": "张明", "role": "法制工作委员会主任", "phone": "0561-3012345"}
    ]
    assert "applicability" not in case["body"]
    lesson = items["经验做法/双述双评.docx"]
    assert lesson["kind"] == "lesson"
    assert lesson["created_at"] == "2021-11-02T00:00:00+08:00"
    assert lesson["body"]["practice"] == "每季度组织代表向选民述职，选民现场测评。"
    assert lesson["body"]["conditions"] == "代表联络站已建成并常态化运行的县区。"
    assert lesson["body"]["outcomes"] == "代表履职积极性明显提高，群众满意度达96%。"
    plan = items["联合检查/安全生产法.xlsx"]
    assert plan["kind"] == "inspection_plan"
    assert plan["title"] == "淮海经济区安全生产法联合执法检查方案"
    assert plan["created_at"] == "2021-10-28T00:00:00+08:00"
    assert plan["tags"] == ["安全生产法", "联合执法检查"]
    b = plan["body"]
    assert b["lead_site"] == "huaibei-duji" and b["participating_sites"] == [
        "xuzhou-tongshan"
    ]
    assert [(p["name"], p["start"], p["end"]) for p in b["phases"]] == [
        ("动员部署", "2021-11-01", "2021-11-05"),
        ("实地检查", "2021-11-08", "2021-11-19"),
    ]
    assert b["phases"][1]["activities"] == [
        "分组赴两地企业实地检查",
        "随机抽查应急预案",
    ]
    assert b["phases"][1]["responsible_sites"] == ["huaibei-duji", "xuzhou-tongshan"]
    assert {r["site"] for r in b["responsibilities"]} == {
        "huaibei-duji",
        "xuzhou-tongshan",
    }
    assert items["item.yaml"]["created_at"] == "2021-09-02T10:00:00+08:00"
    # Same files, same items; nothing new on the next poll.
    assert (await src.poll(poll.state)).drafts == []
    again = await _source(tmp_path).poll({})
    assert [item_id(d.item) for d in again.drafts] == [
        item_id(d.item) for d in poll.drafts
    ]


async def test_corrupt_docx_and_missing_columns_are_problems_of_that_file(
    tmp_path: Path,
) -> None:
    share = tmp_path / "share"
    _lesson_docx(share / "好的.docx")
    good = (share / "好的.docx").read_bytes()
    (share / "损坏.docx").write_bytes(good[: len(good) // 2])  # truncated: corrupt zip
    (share / "改名.docx").write_bytes(b"{\\rtf1 this is an RTF file renamed to .docx}")
    _plan_xlsx(share / "缺列.xlsx", drop=("结束日期", "责任单位"))
    src = _source(tmp_path)
    poll = await src.poll({})
    assert [d.ref for d in poll.drafts] == ["好的.docx"]
    problems = sorted(poll.problems)
    assert len(problems) == 3
    assert any(
        p.startswith("损坏.docx: 不是有效的 Word 文档 / not a valid .docx")
        for p in problems
    )
    assert any(p.startswith("改名.docx: 不是有效的 Word 文档") for p in problems)
    missing = next(p for p in problems if p.startswith("缺列.xlsx"))
    assert "missing column(s) 结束日期, 责任单位" in missing
    assert "found: 阶段, 开始日期, 工作内容" in missing
    assert set(poll.state["files"]) == {
        "好的.docx"
    }  # the bad ones are read again later
    # Once a bad file is fixed it is picked up.
    _plan_xlsx(share / "缺列.xlsx")
    fixed = await src.poll(poll.state)
    assert [d.ref for d in fixed.drafts] == ["缺列.xlsx"]


async def test_document_without_required_sections_names_them(tmp_path: Path) -> None:
    share = tmp_path / "share" / "典型案例"
    share.mkdir(parents=True)
    d = docx.Document()
    d.add_heading("只有背景的案例", level=1)
    d.add_paragraph("一、背景")
    d.add_paragraph("有背景，没有做法和成效。")
    d.save(share / "不完整.docx")
    poll = await _source(tmp_path).poll({})
    assert poll.drafts == []
    assert "actions" in poll.problems[0] and "results" in poll.problems[0]
    assert "主要做法" in poll.problems[0]


async def test_unknown_unit_and_missing_folder(tmp_path: Path) -> None:
    src = _source(tmp_path)
    with pytest.raises(AdapterError, match="does not exist") as err:
        await src.poll({})
    assert err.value.retryable
    _plan_xlsx(tmp_path / "share" / "plan.xlsx")
    src = _source(tmp_path, site_names={"杜集区人大常委会": "huaibei-duji"})
    poll = await src.poll({})
    assert poll.drafts == []
    assert "铜山区人大常委会" in poll.problems[0] and "site_names" in poll.problems[0]


def _signed(title: str = "伙伴的经验") -> dict[str, Any]:
    key = generate_key(key_id="xuzhou-tongshan#k1")
    item = {
        "v": 1,
        "kind": "inspection_plan",
        "author": "xuzhou-tongshan",
        "created_at": "2021-10-28T09:30:00+08:00",
        "title": title,
        "tags": ["安全生产法"],
        "body": {
            "law": "《中华人民共和国安全生产法》",
            "lead_site": "xuzhou-tongshan",
            "participating_sites": ["huaibei-duji"],
            "objectives": ["检查贯彻实施情况"],
            "scope": "两地企业",
            "phases": [
                {
                    "name": "实地检查",
                    "start": "2021-11-01",
                    "end": "2021-11-05",
                    "activities": ["实地检查"],
                }
            ],
            "responsibilities": [{"site": "xuzhou-tongshan", "duties": ["牵头"]}],
        },
    }
    return sign_item(item, key) | {"_key": key}  # type: ignore[operator]


@pytest.mark.parametrize("fmt", ["md", "docx"])
async def test_sink_writes_readable_and_signed_files_idempotently(
    tmp_path: Path, fmt: str
) -> None:
    doc = _signed()
    key = doc.pop("_key")
    iid = item_id(doc["item"])
    env = {"index": 7, "id": iid, "received_at": "2021-10-28T10:00:00+00:00"}
    ctx = _ctx(tmp_path)
    sink = load_adapter(
        {"type": "folder", "name": "inbox", "path": "inbox", "format": fmt},
        ctx,
        role="sink",
    )
    assert isinstance(sink, FolderSink)
    # What the runner learned from the signed site records (see test_runner.py).
    ctx.names.sites.update({"xuzhou-tongshan": "徐州市铜山区人大常委会"})
    await sink.deliver(doc, env)
    hexid = iid.removeprefix("sha256:")
    inbox = tmp_path / "inbox"
    assert {p.name for p in inbox.iterdir()} == {f"{hexid}.{fmt}", f"{hexid}.json"}
    stored = json.loads((inbox / f"{hexid}.json").read_text(encoding="utf-8"))
    verify_item(stored, key.public_key)  # the signed original, verifiable
    if fmt == "md":
        md = (inbox / f"{hexid}.md").read_text(encoding="utf-8")
        assert md.startswith("# 伙伴的经验\n")
        assert "| 类型 Kind | 联合执法检查方案 (Joint inspection plan) |" in md
        assert (
            "## 检查步骤 (Phases)" in md
            and "| 实地检查 | 2021-11-01 | 2021-11-05 |" in md
        )
        assert "## 牵头单位 (Lead)\n\n徐州市铜山区人大常委会\n" in md
        assert "xuzhou-tongshan" not in md
        assert iid in md
    else:
        text = "\n".join(
            p.text for p in docx.Document(inbox / f"{hexid}.docx").paragraphs
        )
        assert "伙伴的经验" in text and "检查的法律 (Law inspected)" in text
        assert "徐州市铜山区人大常委会" in text and "xuzhou-tongshan" not in text
    before = {p.name: p.stat().st_mtime_ns for p in inbox.iterdir()}
    await sink.deliver(doc, env)  # again: nothing changes
    assert {p.name: p.stat().st_mtime_ns for p in inbox.iterdir()} == before


async def test_json_files_are_parsed_with_the_strict_parser(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    item = template("lesson", author="huaibei-duji", partner="xuzhou-tongshan")
    good = json.dumps(item, ensure_ascii=False)
    # A duplicate key (which one wins depends on the reader), a float, a huge integer.
    (share / "dup.json").write_text(
        good[:-1] + ', "title": "另一个标题"}', encoding="utf-8"
    )
    (share / "float.json").write_text(good[:-1] + ', "x": 1.0}', encoding="utf-8")
    (share / "big.json").write_text(good[:-1] + ', "x": 99999999999999999999}', "utf-8")
    (share / "bom.json").write_bytes(b"\xef\xbb\xbf" + good.encode("utf-8"))
    poll = await _source(tmp_path).poll({})
    assert [d.ref for d in poll.drafts] == ["bom.json"]
    problems = sorted(poll.problems)
    assert len(problems) == 3
    assert problems[0].startswith("big.json: cannot be parsed")
    assert "duplicate" in problems[1] and problems[1].startswith("dup.json")
    assert problems[2].startswith("float.json: cannot be parsed")


async def test_yaml_files_are_held_to_the_same_rules(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    head = (
        "v: 1\nkind: lesson\ncreated_at: '2021-10-28T09:30:00+08:00'\n"
        "title: 民生实事项目代表票决制\n"
    )
    body = (
        "body:\n  practice: 代表票决。\n  conditions: 县区人代会。\n"
        "  outcomes: 票决项目32个。\n  applicability: [各县区]\n"
    )
    (share / "good.yaml").write_text(head + body, encoding="utf-8")
    (share / "dup.yaml").write_text(head + "title: 另一个标题\n" + body, "utf-8")
    (share / "float.yaml").write_text(head + body + "x: 1.5\n", "utf-8")
    poll = await _source(tmp_path).poll({})
    assert [d.ref for d in poll.drafts] == ["good.yaml"]
    problems = sorted(poll.problems)
    assert problems[0].startswith("dup.yaml") and "duplicate key 'title'" in problems[0]
    assert problems[1].startswith("float.yaml: cannot be parsed")
