"""The joint-inspection lifecycle in words, generated from the rules themselves.

:func:`lifecycle_markdown` writes the states, each step (the item kind that carries
it, who signs it, when it is allowed, where it leads, what else it needs) and every
refusal, Chinese first, from :data:`exchange.core.plans.TRANSITIONS` and
:mod:`schemas.labels`. ``docs/joint-inspections.md`` embeds this text and
``/openapi.json`` carries it for the plan endpoints; a test keeps the three equal, so
the documentation cannot drift from the state machine.
"""

from __future__ import annotations

from schemas.labels import (
    KIND_LABELS,
    REFUSAL_LABELS,
    REFUSAL_MESSAGES,
    STATE_LABELS,
    STEP_LABELS,
    STEP_NEEDS,
    WHO_LABELS,
)

from .plans import REASONS, STATES, TRANSITIONS

__all__ = ["DIAGRAM", "lifecycle_markdown"]

DIAGRAM = """\
草案 draft
  │ 批准方案 approve（牵头单位 lead）
  ▼
已批准 approved       ◄── 会签 endorsement（各参与单位；草案或已批准时）
  │ 启动实施 start（牵头单位；全部参与单位已会签同意）
  ▼
实施中 in_progress    ◄── 阶段进展 phase_progress、本地检查情况报告 local report
  │ 执法检查报告 joint inspection_report（牵头单位）
  ▼
已报告 reported
  │ 审议意见 deliberation_opinion（牵头单位；承办机关、须报送的单位、期限）
  ▼
已交办 handed_over    ◄── 满意度测评未通过：进入下一轮，重新报告 / failed vote: next round
  │ 研究处理情况报告 rectification_reply（第一份 first one）
  ▼
整改中 rectifying
  │ 满意度测评通过 satisfaction_vote passed（牵头单位；本轮报告齐全）
  ▼
已测评 evaluated
  │ 办结 close（牵头单位；依据：“回头看”调研报告）
  ▼
已办结 closed"""
"""The lifecycle as a text diagram (both languages)."""


def _zh_en(label: tuple[str, str]) -> str:
    return f"{label[0]} / {label[1]}"


def lifecycle_markdown() -> str:
    """The lifecycle section: diagram, states, steps and refusals (Markdown)."""
    out = [
        "### 方案状态 / States",
        "",
        "方案的状态不由任何单位填写，而是节点根据已签名的条目按时间顺序计算得出；"
        "同一秒内签署的步骤按流程先后排序。",
        "A plan's state is never sent by a site: every node computes it from the signed "
        "items, in signing order; steps signed within the same second are taken in "
        "lifecycle order.",
        "",
        "```text",
        DIAGRAM,
        "```",
        "",
        " → ".join(f"{STATE_LABELS[s][0]}（{s}）" for s in STATES),
        "",
        "### 各步骤 / Steps",
        "",
        "| 步骤 Step | 条目类型 Item kind | 签署单位 Signed by | 方案须处于 Allowed in "
        "| 之后 Then | 其他要求 Also needs |",
        "|---|---|---|---|---|---|",
    ]
    for step, rule in TRANSITIONS.items():
        allowed = "、".join(f"{STATE_LABELS[s][0]} {s}" for s in rule.allowed)
        then = f"{STATE_LABELS[rule.to][0]} {rule.to}" if rule.to else "不变 unchanged"
        if step == "satisfaction_vote":
            then += "；未通过 failed: 已交办 handed_over"
        out.append(
            f"| {_zh_en(STEP_LABELS[step])} (`{step}`) "
            f"| {_zh_en(KIND_LABELS[rule.kind])} (`{rule.kind}`) "
            f"| {_zh_en(WHO_LABELS[rule.who])} | {allowed} | {then} "
            f"| {_zh_en(STEP_NEEDS[step])} |"
        )
    out += [
        "",
        "每个步骤条目的正文都要写明所属方案（`plan`），并在 `refs` 中引用方案；"
        "可见范围不得超出方案本身。",
        "Every step names its plan in the body (`plan`), references it in `refs`, and "
        "is addressed no wider than the plan.",
        "",
        "### 拒收原因 / Refusals",
        "",
        "本节点推送的步骤如不符合流程，会被拒收（HTTP 422，错误代码 "
        "`invalid_transition`，`detail.reason` 为下列代码之一），什么也不写入；"
        "从其他节点同步来的这类条目照常保存，但不生效，并在方案的时间线中注明原因。",
        "A step pushed here that the rules do not allow is refused (HTTP 422, code "
        "`invalid_transition`, `detail.reason` one of the codes below) and nothing is "
        "written; such items replicated from elsewhere are kept but ignored, with the "
        "reason in the plan's timeline.",
        "",
        "| 代码 Code | 含义 Meaning |",
        "|---|---|",
    ]
    out += [f"| `{r}` | {_zh_en(REFUSAL_LABELS[r])} |" for r in REASONS]
    out += [
        "",
        "拒收说明的原文（`{…}` 处填入单位、状态、步骤等）"
        " / The sentences, with `{…}` filled in:",
        "",
    ]
    for code, (zh, en) in REFUSAL_MESSAGES.items():
        out.append(f"- `{code}`：{zh}<br>{en}")
    return "\n".join(out) + "\n"
