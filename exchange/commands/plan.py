"""``exchange plan status|list``: joint inspection plans and their computed state.

With ``--node URL --key FILE`` the command asks a node as that site (what the site may
see); without, it opens the local node's storage as its operator (everything).
Output is Chinese first, English beside it; ``--json`` prints the API body instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import date
from pathlib import Path
from typing import Any

from exchange.commands._common import EXIT_OK, common_node_args, with_node
from exchange.commands._table import display_width
from exchange.errors import ConfigError
from schemas.labels import STATE_LABELS, VALUE_LABELS, bilingual

__all__ = ["format_plan", "register"]

_DECISION = {
    k: f"{zh} {en.lower()}" for k, (zh, en) in VALUE_LABELS["decision"].items()
}
_PHASE = {
    "pending": "未开始 pending",
    "started": "进行中 started",
    "completed": "已完成 completed",
}
# Once the inspection has been reported, a phase nobody reported on has not "not
# started": the inspection is over and only its progress report is missing.
_PHASE_OVER = {
    "pending": "检查已结束，未报告阶段进展 inspection over, no progress reported",
    "started": "检查已结束，未报告完成 inspection over, completion not reported",
    "completed": _PHASE["completed"],
}
_LIVE = ("draft", "approved", "in_progress")


def _pad(text: str, width: int) -> str:
    return text + " " * max(1, width - display_width(text))


def _mark(done: bool) -> str:
    return "✓" if done else "·"


def format_plan(v: dict[str, Any]) -> list[str]:
    """Readable lines for a :class:`schemas.plans.PlanView` body (Chinese first)."""
    lines = [
        f"联合执法检查方案 joint inspection plan  {v['id']}",
        f"  标题 title        {v['title']}",
        f"  检查的法律 law     {v['law']}",
        f"  牵头单位 lead      {v['lead']}",
        f"  参与单位 sites     {', '.join(v['participants'])}",
        f"  状态 state        {STATE_LABELS[v['state']][0]} ({v['state']})"
        + (f"  第{v['round']}轮 round {v['round']}" if v["round"] else "")
        + ("  [已撤回 retracted]" if v["retracted"] else ""),
        "会签 endorsements",
    ]
    for e in v["endorsements"]:
        lines.append(
            f"  {_mark(e['done'])} {e['site']:24} "
            f"{_DECISION.get(e['decision'] or '', '未会签 not yet')}"
        )
    if v["phases"]:
        lines.append("阶段 phases")
        names = _PHASE if v["state"] in _LIVE else _PHASE_OVER
        for p in v["phases"]:
            lines.append(
                f"  {_mark(p['status'] == 'completed')} {_pad(p['name'], 12)} "
                f"{p['start']} – {p['end']}  {names[p['status']]}"
            )
    lines.append("本地检查报告 local reports")
    for r in v["local_reports"]:
        lines.append(
            f"  {_mark(r['done'])} {r['site']:24} {'已报送 filed' if r['done'] else '未报送 not filed'}"
        )
    if v["opinion"]:
        lines.append(
            f"审议意见 opinion     {v['opinion']}  承办机关 {v['handling_body'] or '-'}  "
            f"期限 due {v['reply_deadline']}"
        )
        lines.append(f"研究处理情况报告 replies (第{v['round']}轮 round {v['round']})")
        for r in v["replies"]:
            lines.append(
                f"  {_mark(r['done'])} {r['site']:24} {'已报送 filed' if r['done'] else '未报送 not filed'}"
            )
    for vote in v["votes"]:
        result = "通过 passed" if vote["passed"] else "未通过 failed"
        lines.append(
            f"满意度测评 vote (第{vote['round']}轮) {vote['held_on']}: {result} — 满意 "
            f"{vote['satisfied']}，基本满意 {vote['basically_satisfied']}，不满意 "
            f"{vote['unsatisfied']}，出席 {vote['present']}/{vote['members']}"
        )
    owing = [d for d in v["deadlines"] if d["sites"]]
    if owing:
        lines.append(f"期限 deadlines (按 {v['today']} as of)")
        for d in owing:
            flag = "逾期 OVERDUE " if d["overdue"] else ""
            lines.append(
                f"  {flag}{d['label']} due {d['due']}: {', '.join(d['sites'])}"
            )
    lines.append("时间线 timeline")
    for t in v["timeline"]:
        when = t["created_at"][:16].replace("T", " ")
        tail = (
            f"→ {STATE_LABELS[t['state_after']][0]} {t['state_after']}"
            if t["applied"]
            else f"[未生效 ignored: {t['message']}]"
        )
        lines.append(f"  {when}  {t['author']:18} {t['label']} ({t['action']}) {tail}")
    if v["ignored"]:
        lines.append(
            f"注意 note: {v['ignored']} 条不符合流程的条目未生效 / items ignored by the rules"
        )
    return lines


def _today(args: argparse.Namespace) -> date | None:
    return date.fromisoformat(args.today) if args.today else None


def _remote(args: argparse.Namespace, path: str, params: dict[str, Any]) -> Any:
    from exchange.client import ExchangeClient
    from exchange.core.signing import load_private_key

    if not args.key:
        raise ConfigError(
            "--node needs --key FILE: the site key that signs the request"
        )
    key = load_private_key(Path(args.key))

    async def run() -> Any:
        async with ExchangeClient(args.node, key=key) as c:
            return await c.request("GET", path, params=params)

    return asyncio.run(run())


def _local(args: argparse.Namespace, call: Any) -> Any:
    """Run ``call(node, operator_reader)`` against the local node's storage."""
    from exchange.core.trust import Reader

    out: list[Any] = []

    async def fn(node: Any) -> int:
        await node.sequencer.stop()  # read-only: do not compete for the log writer
        out.append(await call(node, Reader("operator")))
        return EXIT_OK

    with_node(args, fn)
    return out[0]


def _status(args: argparse.Namespace) -> int:
    params = {"today": args.today} if args.today else {}
    if args.node:
        view = _remote(args, f"/v1/plans/{args.plan}", params)
    else:
        view = _local(
            args, lambda node, op: node.plans.view(args.plan, op, _today(args))
        )
    if args.json:
        print(json.dumps(view, ensure_ascii=False, indent=2))
    else:
        print("\n".join(format_plan(view)))
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    params = {"today": args.today} if args.today else {}
    if args.node:
        page = _remote(args, "/v1/plans", params)
    else:
        page = _local(
            args, lambda node, op: node.plans.list_plans(op, today=_today(args))
        )
    if args.json:
        print(json.dumps(page, ensure_ascii=False, indent=2))
        return EXIT_OK
    for p in page["plans"]:
        flag = " 逾期 OVERDUE" if p["overdue"] else ""
        print(
            f"{p['id']}\t{bilingual(STATE_LABELS[p['state']])}\t{p['lead']}\t"
            f"{p['title']}{flag}"
        )
    if not page["plans"]:
        print("没有可见的联合执法检查方案 / no joint inspection plans visible")
    return EXIT_OK


def register(sub: Any) -> None:
    """Add ``plan status`` and ``plan list``."""
    plan = sub.add_parser(
        "plan", help="joint inspection plans and their state (联合执法检查)"
    )
    psub = plan.add_subparsers(dest="sub", required=True)
    for name, func, hlp in (
        (
            "status",
            _status,
            "state, who has endorsed or filed, deadlines and timeline of a plan",
        ),
        ("list", _list, "plans with their state and overdue flag"),
    ):
        p = psub.add_parser(name, help=hlp)
        if name == "status":
            p.add_argument("plan", metavar="ID", help="the plan item's id, sha256:…")
        p.add_argument(
            "--node",
            help="ask this node as a site (with --key); default: the "
            "local node's storage, as its operator",
        )
        p.add_argument(
            "--key", metavar="FILE", help="the site's private key file (with --node)"
        )
        p.add_argument("--today", metavar="YYYY-MM-DD", help="day for overdue flags")
        p.add_argument("--json", action="store_true", help="print the API body as JSON")
        common_node_args(p)
        p.set_defaults(func=func)
