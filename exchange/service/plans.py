"""Joint inspection plans: computed views for readers, and the push-time guard.

Design
------
A plan's state is computed, never stored (:mod:`exchange.core.plans`): this service
loads the plan and the items referencing it (:class:`~exchange.storage.plans.PlanStore`)
and runs the pure state machine.

* **Reading** (``GET /v1/plans``, ``GET /v1/plans/{id}``, ``exchange plan status``): the
  view is computed from the items *the reader may see*, so everything it shows can be
  fetched and verified by that reader; when workflow items are addressed like the plan
  (the normal practice), every reader sees the same state. Overdue flags use today's
  date in China Standard Time unless a day is given.
* **Guarding local pushes** (:meth:`PlanService.guard`, an ingest guard): a workflow item
  pushed by a local site is refused with ``invalid_transition`` (422) and a reason when
  the plan's rules do not allow it — wrong state, wrong site, counted twice, a
  precondition unmet, a back-dated step, a step addressed wider than its plan, or a
  plan this node does not hold *or the pusher may not read* (the same answer, so the
  check reveals nothing). The plan and its steps are read as the pusher sees them.
  Items of one batch are checked in order, each seeing the ones before it.
* **Replicated items** are not guarded: they are facts signed elsewhere. The state
  machine ignores the ones that do not apply and each view lists them with the reason.

The guard reads and the commit writes in separate steps, so two local pushes racing
for the same plan can both pass (e.g. two satisfaction votes at once). That is safe:
the state machine is the authority and applies only the first by signed time, showing
the other as ignored.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import orjson

from exchange.core.plans import (
    STATE_NAMES,
    PlanEntry,
    PlanStatus,
    Refusal,
    check_candidate,
    evaluate,
)
from exchange.core.trust import Reader
from exchange.errors import Conflict, ExchangeError, NotFound
from exchange.storage.items import StoredItem
from exchange.storage.plans import PlanStore
from schemas.errors import ErrorCode
from schemas.items import PLAN_KINDS

if TYPE_CHECKING:
    from exchange.node import Node
    from exchange.service.ingest import VerifiedItem

__all__ = ["PlanService", "audience_within", "china_today"]
_CST = timezone(timedelta(hours=8))


def china_today() -> date:
    """Today's date in China Standard Time (deadlines are calendar days there)."""
    return datetime.now(_CST).date()


def _entry(it: StoredItem) -> PlanEntry:
    return PlanEntry.from_item(it.id, orjson.loads(it.canonical))


def _summary(st: PlanStatus, today: date) -> dict[str, Any]:
    body = st.plan.body
    return {
        "id": st.plan.id,
        "title": st.plan.title,
        "law": str(body.get("law", "")),
        "lead": st.lead,
        "participants": st.participants,
        "created_at": st.plan.created_at.isoformat(),
        "state": st.state,
        "state_name": STATE_NAMES[st.state],
        "round": st.round,
        "endorsed": sum(1 for d in st.endorsements.values() if d == "endorse"),
        "overdue": st.overdue(today),
    }


def view_json(
    st: PlanStatus, today: date, handling_body: str | None = None
) -> dict[str, Any]:
    """A :class:`schemas.plans.PlanView` body for a computed status."""
    body = st.plan.body
    return {
        **_summary(st, today),
        "today": today.isoformat(),
        "retracted": st.retracted,
        "endorsements": [
            {
                "site": s,
                "done": s in st.endorsements,
                "item": st.endorsement_items.get(s),
                "decision": st.endorsements.get(s),
            }
            for s in st.participants
        ],
        "phases": [
            {
                "name": p["name"],
                "start": p["start"],
                "end": p["end"],
                "status": st.phases.get(str(p["name"]), "pending"),
            }
            for p in body.get("phases") or []
        ],
        "local_reports": [
            {
                "site": s,
                "done": s in st.local_reports,
                "item": st.local_reports.get(s),
                "decision": None,
            }
            for s in st.sites
        ],
        "opinion": st.opinion,
        "handling_body": handling_body,
        "reply_deadline": st.reply_deadline,
        "replies": [
            {
                "site": s,
                "done": s in st.replies,
                "item": st.replies.get(s),
                "decision": None,
            }
            for s in st.addressed
        ],
        "votes": [dict(vote) for vote in st.votes],
        "deadlines": st.deadlines(today),
        "timeline": [
            {
                "id": t.id,
                "kind": t.kind,
                "author": t.author,
                "created_at": t.created_at.isoformat(),
                "action": t.action,
                "label": t.label,
                "applied": t.applied,
                "state_after": t.state_after,
                "reason": t.refusal.reason if t.refusal else None,
                "message": t.refusal.message if t.refusal else None,
            }
            for t in st.timeline
        ],
        "ignored": len(st.ignored),
    }


class PlanService:
    """Computed plan views and the ingest guard.

    Args:
        node: The started node (database).
    """

    def __init__(self, node: Node) -> None:
        assert node.db is not None
        self.store = PlanStore(node.db)

    async def status(
        self, plan_id: str, reader: Reader
    ) -> tuple[PlanStatus, str | None]:
        """The computed status of one plan as ``reader`` may see it.

        Returns:
            The status and the handling body of the current opinion, if any.

        Raises:
            NotFound: no such plan visible to the reader.
        """
        found = (
            await self.store.by_ids([plan_id], reader)
            if plan_id.startswith("sha256:")
            else {}
        )
        plan = found.get(plan_id)
        if plan is None or plan.kind != "inspection_plan":
            raise NotFound(
                f"no joint inspection plan {plan_id} visible to you",
                code=ErrorCode.NOT_FOUND,
            )
        related = (await self.store.related([plan_id], reader))[plan_id]
        entries = [_entry(r) for r in related]
        st = evaluate(_entry(plan), entries)
        handling = next(
            (str(e.body.get("handling_body")) for e in entries if e.id == st.opinion),
            None,
        )
        return st, handling

    async def view(
        self, plan_id: str, reader: Reader, today: date | None = None
    ) -> dict[str, Any]:
        """``GET /v1/plans/{id}``: a :class:`schemas.plans.PlanView` body.

        Raises:
            NotFound: no such plan visible to the reader.
        """
        st, handling = await self.status(plan_id, reader)
        return view_json(st, today or china_today(), handling)

    async def list_plans(
        self,
        reader: Reader,
        *,
        cursor: int = -1,
        limit: int = 50,
        today: date | None = None,
    ) -> dict[str, Any]:
        """``GET /v1/plans``: a :class:`schemas.plans.PlanList` body."""
        plans, nxt = await self.store.plans(reader, after=cursor, limit=limit)
        related = await self.store.related([p.id for p in plans], reader)
        day = today or china_today()
        out = [
            _summary(evaluate(_entry(p), [_entry(r) for r in related[p.id]]), day)
            for p in plans
        ]
        return {"plans": out, "next_cursor": nxt}

    async def guard(
        self, items: list[VerifiedItem], pusher: Reader
    ) -> dict[int, ExchangeError]:
        """Ingest guard: refuse local workflow items the plan's rules do not allow.

        The plan and its steps are read as the pusher may see them, so a refusal tells
        nothing about an item the pusher cannot read: a hidden plan (or a hidden item of
        another kind) is refused exactly like an unknown id. A step whose audience is
        wider than its plan's is refused (``audience_wider``)."""
        todo: list[tuple[int, PlanEntry, dict[str, Any]]] = []
        in_batch: dict[str, PlanEntry] = {}
        audiences: dict[str, dict[str, Any]] = {}
        for i, v in enumerate(items):
            item = v.parsed.item
            if v.row.kind == "inspection_plan":
                in_batch[v.row.id] = PlanEntry.from_item(v.row.id, item)
                audiences[v.row.id] = item.get("audience") or {}
            elif v.row.kind in PLAN_KINDS and (item.get("body") or {}).get("plan"):
                todo.append(
                    (i, PlanEntry.from_item(v.row.id, item), item.get("audience") or {})
                )
        if not todo:
            return {}
        ids = sorted({str(e.body["plan"]) for _, e, _ in todo})
        stored = await self.store.by_ids(ids, pusher, read_replica=False)
        related = await self.store.related(ids, pusher, read_replica=False)
        plans = {pid: _entry(it) for pid, it in stored.items()} | in_batch
        for pid, it in stored.items():
            audiences.setdefault(pid, orjson.loads(it.canonical).get("audience") or {})
        entries = {pid: [_entry(r) for r in rows] for pid, rows in related.items()}
        out: dict[int, ExchangeError] = {}
        for i, cand, audience in todo:
            pid = str(cand.body["plan"])
            plan = plans.get(pid)
            refusal = check_candidate(plan, entries[pid], cand)
            if (
                refusal is None
                and plan is not None
                and not audience_within(audience, audiences.get(pid) or {})
            ):
                refusal = Refusal("audience_wider", "audience_wider")
            if refusal is None:
                entries[pid].append(cand)
                continue
            state = (
                evaluate(plan, entries[pid]).state
                if plan is not None and plan.kind == "inspection_plan"
                else None
            )
            out[i] = Conflict(
                f"方案步骤被拒收：{refusal.text('zh')} / plan step refused: {refusal.text('en')}",
                code=ErrorCode.INVALID_TRANSITION,
                detail={"plan": pid, "reason": refusal.reason, "state": state},
            )
        return out


def audience_within(step: dict[str, Any], plan: dict[str, Any]) -> bool:
    """Whether an item addressed to ``step`` reaches no one outside ``plan`` (an empty
    audience means every partner)."""
    plan_circles, plan_sites = (
        set(plan.get("circles") or ()),
        set(plan.get("sites") or ()),
    )
    if not plan_circles and not plan_sites:
        return True
    circles, sites = set(step.get("circles") or ()), set(step.get("sites") or ())
    if not circles and not sites:
        return False
    return circles <= plan_circles and sites <= plan_sites
