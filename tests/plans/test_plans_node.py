"""A joint inspection on one node, over HTTP: every state, refused steps (422
``invalid_transition``, nothing written), batches, audience rules, and the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from exchange.core.canonical import item_id
from exchange.core.signing import save_private_key
from exchange.errors import AuthError, Conflict, NotFound
from schemas.plans import PlanList, PlanView
from tests.support.plans import LEAD, PARTICIPANTS, Flow

P1, P2 = PARTICIPANTS
SITES = {
    LEAD: ("淮北市杜集区人大常委会", ("huaihai", "yangtze-delta")),
    P1: ("徐州市铜山区人大常委会", ("huaihai",)),
    P2: ("苏州市吴中区人大常委会", ("yangtze-delta",)),
    "lianyungang-haizhou": ("连云港市海州区人大常委会", ("jiangsu-coast",)),
}


async def _setup(node: Any) -> Flow:
    keys = {}
    for sid, (name, circles) in SITES.items():
        keys[sid] = await node.add_site(sid, name, circles)
    return Flow(keys)


async def _push(node: Any, flow: Flow, item: dict[str, Any]) -> dict[str, Any]:
    async with node.client(item["author"]) as c:
        return await c.push(flow.signed(item))


async def _view(
    node: Any, plan_id: str, site: str = LEAD, **params: Any
) -> dict[str, Any]:
    async with node.client(site) as c:
        view = await c.request("GET", f"/v1/plans/{plan_id}", params=params)
    PlanView.model_validate(view)  # the documented shape
    return view


async def _count(node: Any) -> int:
    async with node.node.db.pool.acquire() as c:
        return int(await c.fetchval("SELECT count(*) FROM items"))


async def test_joint_plan_through_every_state(node: Any) -> None:
    flow = await _setup(node)
    res = await _push(node, flow, flow.plan_item)
    assert res["id"] == flow.plan_id
    assert (await _view(node, flow.plan_id))["state"] == "draft"
    states = ["draft"]
    for item, want in flow.happy_path():
        await _push(node, flow, item)
        view = await _view(node, flow.plan_id, site=P2)
        assert view["state"] == want, (item["kind"], item["body"].get("action"))
        if states[-1] != want:
            states.append(want)
    assert states == [
        "draft",
        "approved",
        "in_progress",
        "reported",
        "handed_over",
        "rectifying",
        "handed_over",
        "rectifying",
        "evaluated",
        "closed",
    ]
    assert view["round"] == 2 and view["ignored"] == 0
    assert [v["passed"] for v in view["votes"]] == [False, True]
    assert all(e["done"] and e["decision"] == "endorse" for e in view["endorsements"])
    assert view["handling_body"] == "区人民政府"
    assert [r["site"] for r in view["replies"]] == [LEAD, P1, P2]
    assert all(r["done"] for r in view["replies"])
    assert len(view["timeline"]) == len(flow.happy_path())
    assert not view["overdue"]
    # Each endorsement names the item that counts.
    ids = {t["author"]: t["id"] for t in view["timeline"] if t["kind"] == "endorsement"}
    assert {e["site"]: e["item"] for e in view["endorsements"]} == ids
    # The dashboard's activity: the closed plan is shown closed, and not as open.
    token = await node.add_monitor("huaibei-municipal", circles=("huaihai",))
    async with node.client(token=token) as c:
        act = await c.request("GET", "/v1/activity")
    (plan,) = act["plans"]
    assert plan["state"] == "closed" and plan["open"] is False
    assert act["totals"]["open_plans"] == 0
    assert act["names"]["sites"][LEAD] == "淮北市杜集区人大常委会"


async def test_refused_steps_write_nothing(node: Any) -> None:
    flow = await _setup(node)
    await _push(node, flow, flow.plan_item)
    cases = [
        (flow.update("start"), "wrong_state", "draft"),  # skips approval
        (flow.update("approve", author=P1), "wrong_site", "draft"),  # not the lead
        (flow.endorse(LEAD), "wrong_site", "draft"),
        (flow.report(LEAD, "joint"), "wrong_state", "draft"),
    ]
    other = Flow(flow.keys, start=flow.t - timedelta(days=1))  # a plan never seen here
    cases.append((other.endorse(P1), "plan_unknown", None))
    before = await _count(node)
    for item, reason, state in cases:
        with pytest.raises(Conflict) as exc:
            await _push(node, flow, item)
        err = exc.value
        assert err.code.value == "invalid_transition" and err.status == 422
        assert err.detail == {
            "plan": item["body"]["plan"],
            "reason": reason,
            "state": state,
        }
        assert " / " in err.message
        async with node.client(LEAD) as c:
            with pytest.raises(NotFound):
                await c.get_item(item_id(item))
    assert await _count(node) == before
    # Each participant's endorsement counts once: the second is refused.
    await _push(node, flow, flow.endorse(P1))
    with pytest.raises(Conflict, match="counts once"):
        await _push(node, flow, flow.endorse(P1, "decline"))
    view = await _view(node, flow.plan_id)
    assert {e["site"]: e["decision"] for e in view["endorsements"]} == {
        P1: "endorse",
        P2: None,
    }


async def test_a_batch_is_checked_in_order(node: Any) -> None:
    flow = await _setup(node)
    batch = [
        flow.plan_item,
        flow.update("approve"),
        flow.endorse(P1),
        flow.update("start"),
        flow.endorse(P2),
    ]
    async with node.client(LEAD) as c:
        res = await c.push_batch([flow.signed(i) for i in batch[:2]])
    assert [r["status"] for r in res["results"]] == ["accepted", "accepted"]
    async with node.client(LEAD) as c:
        res = await c.push_batch([flow.signed(batch[3])])
    assert res["refused"] == 1
    assert res["results"][0]["error"]["code"] == "invalid_transition"
    for item in (batch[2], batch[4]):
        await _push(node, flow, item)
    async with node.client(LEAD) as c:
        res = await c.push_batch(
            [
                flow.signed(i)
                for i in (
                    flow.update("start"),
                    flow.phase("动员部署", "completed"),
                    flow.update("approve"),
                )
            ]
        )
    assert [r["status"] for r in res["results"]] == ["accepted", "accepted", "refused"]
    assert (await _view(node, flow.plan_id))["state"] == "in_progress"


async def test_list_audience_and_overdue(node: Any) -> None:
    flow = await _setup(node)
    await _push(node, flow, flow.plan_item)
    await _push(node, flow, flow.endorse(P1))
    first = date.fromisoformat(flow.plan_item["body"]["phases"][0]["start"])
    async with node.client(P1) as c:
        page = await c.request("GET", "/v1/plans", params={"today": first.isoformat()})
        PlanList.model_validate(page)
        (plan,) = page["plans"]
        assert (
            plan["id"] == flow.plan_id
            and plan["state"] == "draft"
            and not plan["overdue"]
        )
        late = (first + timedelta(days=1)).isoformat()
        (plan,) = (await c.request("GET", "/v1/plans", params={"today": late}))["plans"]
        assert plan["overdue"] and plan["endorsed"] == 1
    view = await _view(
        node, flow.plan_id, today=(first + timedelta(days=1)).isoformat()
    )
    (endorse,) = [d for d in view["deadlines"] if d["what"] == "endorsements"]
    assert endorse == {
        "what": "endorsements",
        "label": "会签",
        "due": first.isoformat(),
        "sites": [P2],
        "overdue": True,
    }
    # A site outside the plan's audience sees neither the plan nor its state.
    async with node.client("lianyungang-haizhou") as c:
        assert (await c.request("GET", "/v1/plans"))["plans"] == []
        with pytest.raises(NotFound):
            await c.request("GET", f"/v1/plans/{flow.plan_id}")
    token = await node.add_monitor("huaibei-municipal", circles=("huaihai",))
    async with node.client(token=token) as c:
        (plan,) = (await c.request("GET", "/v1/plans"))["plans"]
        assert plan["id"] == flow.plan_id
    async with node.client() as c:
        with pytest.raises(AuthError) as exc:
            await c.request("GET", "/v1/plans")
        assert exc.value.code.value == "unauthenticated"


async def test_plan_status_cli(node: Any, tmp_path: Path) -> None:
    flow = await _setup(node)
    await _push(node, flow, flow.plan_item)
    for item, _ in flow.happy_path()[:11]:  # up to the first reply: rectifying
        await _push(node, flow, item)
    key = tmp_path / "p2.key"
    save_private_key(flow.keys[P2], key)  # type: ignore[arg-type]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}

    async def cli(*args: str) -> str:
        # The node serves on this event loop: run the CLI without blocking it.
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "exchange",
            "plan",
            *args,
            "--node",
            node.url,
            "--key",
            str(key),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=tmp_path,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, err.decode()
        return out.decode()

    out = await cli("status", flow.plan_id)
    assert "状态 state        整改中 (rectifying)" in out
    assert "会签 endorsements" in out and "同意 endorsed" in out
    assert "研究处理情况报告 replies" in out and "未报送 not filed" in out
    assert "时间线 timeline" in out
    assert json.loads(await cli("list", "--json"))["plans"][0]["state"] == "rectifying"
