"""The demo's joint inspection: a plan between sites of both regions, step by step.

淮北市杜集区 (huaihai node) leads a joint inspection of the Work Safety Law with
徐州市铜山区 (huaihai) and 苏州市吴中区 (yangtze-delta node). Each step is a signed item
pushed by its author to its home node; before the next step the demo waits until that
author's node shows the state the step produced, so the story also shows replication.
The satisfaction vote fails once and the plan loops back before it closes.

Items have fixed contents and creation times, so re-running the demo pushes duplicates
(accepted idempotently) and the plan ends in the same state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from exchange.client import ExchangeClient
from exchange.core.canonical import item_id
from exchange.core.items import sign_item
from exchange.core.plans import STATE_NAMES
from exchange.core.signing import Signer
from exchange.templates import template

__all__ = ["LEAD", "PARTICIPANTS", "joint_inspection_steps", "run_joint_inspection"]

LEAD = "huaibei-duji"
PARTICIPANTS = ("xuzhou-tongshan", "suzhou-wuzhong")
_CST = timezone(timedelta(hours=8))
_AUDIENCE = {"circles": ["huaihai", "yangtze-delta"], "sites": []}


def joint_inspection_steps(
    base: datetime | None = None,
) -> tuple[str, list[tuple[str, dict[str, Any], str]]]:
    """The plan's id and its steps: ``(author, item, state after the step)``.

    The first step is the plan itself (state ``draft``).
    """
    at = base or datetime(2026, 11, 20, 8, 0, tzinfo=_CST)
    clock = [at]
    p1, p2 = PARTICIPANTS

    def item(kind: str, author: str, **body: Any) -> dict[str, Any]:
        clock[0] += timedelta(minutes=15)
        it = template(kind, author, p1, now=clock[0])
        it["audience"] = dict(_AUDIENCE)
        it["body"].update(body)
        return it

    plan = item("inspection_plan", LEAD, participating_sites=[p1, p2])
    plan["title"] = "淮海—长三角安全生产法联合执法检查方案（杜集—铜山—吴中）"
    plan["body"]["responsibilities"] = [
        {"site": s, "duties": ["组织本地实地检查，报送本地检查情况报告。"]}
        for s in (LEAD, p1, p2)
    ]
    plan["body"]["phases"][1]["responsible_sites"] = [LEAD, p1, p2]
    pid = item_id(plan)

    def step(kind: str, author: str, rel: str, **body: Any) -> dict[str, Any]:
        it = item(kind, author, plan=pid, **body)
        it["refs"] = [{"rel": rel, "id": pid}]
        return it

    def endorse(site: str) -> dict[str, Any]:
        return step("endorsement", site, "endorses")

    def update(action: str, **body: Any) -> dict[str, Any]:
        return step("plan_update", LEAD, "updates", action=action, **body)

    def vote(satisfied: int, basic: int, against: int) -> dict[str, Any]:
        day = clock[0].date()
        v = {
            "meeting": "杜集区第十八届人大常委会第二十五次会议",
            "held_on": day.isoformat(),
            "members": 29,
            "present": 25,
            "satisfied": satisfied,
            "basically_satisfied": basic,
            "unsatisfied": against,
        }
        passed = 2 * (satisfied + basic) > 25
        extra = (
            {} if passed else {"redo_deadline": (day + timedelta(days=60)).isoformat()}
        )
        return update("satisfaction_vote", vote=v, **extra)

    steps: list[tuple[str, dict[str, Any], str]] = [
        (LEAD, plan, "draft"),
        (LEAD, update("approve"), "approved"),
        (p1, endorse(p1), "approved"),
        (p2, endorse(p2), "approved"),
        (LEAD, update("start"), "in_progress"),
        (p2, step("inspection_report", p2, "reports_on", scope="local"), "in_progress"),
        (
            LEAD,
            step("inspection_report", LEAD, "reports_on", scope="joint"),
            "reported",
        ),
    ]
    opinion = step(
        "deliberation_opinion",
        LEAD,
        "follows",
        report=None,
        deliberated_on=clock[0].date().isoformat(),
        deadline=(clock[0].date() + timedelta(days=60)).isoformat(),
    )
    opinion_id = item_id(opinion)

    def reply(site: str) -> dict[str, Any]:
        it = step("rectification_reply", site, "follows", opinion=opinion_id)
        it["refs"].append({"rel": "responds_to", "id": opinion_id})
        return it

    steps.append((LEAD, opinion, "handed_over"))
    steps += [(s, reply(s), "rectifying") for s in (LEAD, p1, p2)]
    steps.append((LEAD, vote(5, 3, 17), "handed_over"))
    steps += [(s, reply(s), "rectifying") for s in (LEAD, p1, p2)]
    steps.append((LEAD, vote(16, 5, 4), "evaluated"))
    steps.append((LEAD, update("close", evidence=[pid]), "closed"))
    return pid, steps


async def run_joint_inspection(
    urls: Mapping[str, str],
    homes: Mapping[str, str],
    keys: Mapping[str, Signer],
    say: Callable[[str], None],
    *,
    timeout: float = 60.0,
) -> str:
    """Push every step at its author's home node, waiting for replication in between.

    Returns:
        The plan's id.
    """
    pid, steps = joint_inspection_steps()
    say(
        f"联合执法检查 / joint inspection {pid[:19]}… "
        f"({LEAD} 牵头，{'、'.join(PARTICIPANTS)} 参加)"
    )
    for n, (author, it, want) in enumerate(steps):
        node = homes[author]
        async with ExchangeClient(urls[node], key=keys[author]) as c:
            deadline = time.monotonic() + timeout
            while True:  # the author's node must hold the plan and every earlier step
                try:
                    if it["kind"] == "inspection_plan":
                        break
                    view = await c.request("GET", f"/v1/plans/{pid}")
                    if len(view["timeline"]) >= n - 1:
                        break
                except Exception:  # not replicated yet
                    pass
                if time.monotonic() > deadline:
                    say(
                        f"  (node {node} has not caught up after {timeout:.0f} s; "
                        "see: exchange peer status)"
                    )
                    return pid
                await asyncio.sleep(0.2)
            res = await c.push(sign_item(it, keys[author]))  # type: ignore[arg-type]
        body = it["body"]
        label = (
            body.get("action")
            or body.get("decision")
            or (body.get("scope") if it["kind"] == "inspection_report" else "")
            or "-"
        )
        say(
            f"  {res['status']:9} {node:13} {author:16} {it['kind']}:{label:12} → "
            f"{STATE_NAMES[want]} ({want})"
        )
    return pid
