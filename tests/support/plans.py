"""Build the signed items of a joint inspection, step by step, for the plan tests.

Each call makes a schema-valid item from the CLI templates, one minute after the
previous one (so the signed order is the order of the calls), and signs it when the
author's key is known.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from exchange.core.canonical import item_id
from exchange.core.items import sign_item
from exchange.core.plans import PlanEntry
from exchange.core.signing import Signer
from exchange.templates import template

CST = timezone(timedelta(hours=8))
LEAD = "huaibei-duji"
PARTICIPANTS = ("xuzhou-tongshan", "suzhou-wuzhong")
AUDIENCE = {"circles": ["huaihai", "yangtze-delta"], "sites": []}


class Flow:
    """Items of one joint plan led by ``lead``."""

    def __init__(
        self,
        keys: dict[str, Signer] | None = None,
        *,
        lead: str = LEAD,
        participants: tuple[str, ...] = PARTICIPANTS,
        start: datetime | None = None,
    ) -> None:
        self.keys = keys or {}
        self.lead = lead
        self.participants = participants
        self.t = start or (datetime.now(CST) - timedelta(days=2)).replace(microsecond=0)
        self.plan_item = self._plan()
        self.plan_id = item_id(self.plan_item)
        self.opinion_id: str | None = None

    # -- plumbing ---------------------------------------------------------------------
    def _tick(self) -> datetime:
        self.t += timedelta(minutes=1)
        return self.t

    def _base(self, kind: str, author: str) -> dict[str, Any]:
        it = template(kind, author, self.participants[0], now=self._tick())
        it["audience"] = dict(AUDIENCE)
        return it

    def _plan(self) -> dict[str, Any]:
        it = self._base("inspection_plan", self.lead)
        body = it["body"]
        body["participating_sites"] = list(self.participants)
        body["responsibilities"] = [
            {"site": s, "duties": ["组织本地检查，报送本地检查情况报告。"]}
            for s in (self.lead, *self.participants)
        ]
        body["phases"][1]["responsible_sites"] = [self.lead, *self.participants]
        return it

    def _workflow(
        self, kind: str, author: str, rel: str, **body: Any
    ) -> dict[str, Any]:
        it = self._base(kind, author)
        it["body"].update(plan=self.plan_id, **body)
        it["refs"] = [{"rel": rel, "id": self.plan_id}]
        return it

    def signed(self, item: dict[str, Any]) -> dict[str, Any]:
        """The signed wrapper (the author's key must be known)."""
        return sign_item(item, self.keys[item["author"]])  # type: ignore[arg-type]

    @staticmethod
    def entry(item: dict[str, Any]) -> PlanEntry:
        """As the state machine sees it."""
        return PlanEntry.from_item(item_id(item), item)

    # -- steps ------------------------------------------------------------------------
    def endorse(self, site: str, decision: str = "endorse") -> dict[str, Any]:
        it = self._base("endorsement", site)
        it["body"].update(plan=self.plan_id, decision=decision)
        if decision == "decline":
            it["body"]["commitments"] = []
        it["refs"] = [{"rel": "endorses", "id": self.plan_id}]
        return it

    def update(
        self, action: str, author: str | None = None, **body: Any
    ) -> dict[str, Any]:
        it = self._workflow(
            "plan_update", author or self.lead, "updates", action=action, **body
        )
        if action == "close" and "evidence" not in body:
            it["body"]["evidence"] = ["sha256:" + "e" * 64]
        return it

    def phase(
        self, name: str, status: str, author: str | None = None
    ) -> dict[str, Any]:
        return self.update("phase_progress", author, phase=name, phase_status=status)

    def vote(self, passed: bool, author: str | None = None) -> dict[str, Any]:
        vote = {
            "meeting": "区人大常委会第二十五次会议",
            "held_on": self.t.date().isoformat(),
            "members": 29,
            "present": 25,
            "satisfied": 15 if passed else 5,
            "basically_satisfied": 4 if passed else 3,
            "unsatisfied": 6 if passed else 17,
        }
        extra: dict[str, Any] = {"vote": vote}
        if not passed:
            extra["redo_deadline"] = (self.t.date() + timedelta(days=60)).isoformat()
        return self.update("satisfaction_vote", author, **extra)

    def report(self, author: str, scope: str = "local") -> dict[str, Any]:
        return self._workflow("inspection_report", author, "reports_on", scope=scope)

    def opinion(
        self,
        author: str | None = None,
        addressed: list[str] | None = None,
        deadline_days: int = 60,
    ) -> dict[str, Any]:
        it = self._workflow(
            "deliberation_opinion",
            author or self.lead,
            "follows",
            report=None,
            addressed_sites=addressed or [],
            deadline=(self.t.date() + timedelta(days=deadline_days)).isoformat(),
        )
        it["body"]["deliberated_on"] = self.t.date().isoformat()
        self.opinion_id = item_id(it)
        return it

    def reply(self, site: str, opinion: str | None = None) -> dict[str, Any]:
        target = opinion or self.opinion_id
        it = self._workflow("rectification_reply", site, "follows", opinion=target)
        it["refs"].append({"rel": "responds_to", "id": target})
        return it

    def retract_plan(self) -> dict[str, Any]:
        it = self._base("retraction", self.plan_item["author"])
        it["body"]["target"] = self.plan_id
        it["refs"] = [{"rel": "retracts", "id": self.plan_id}]
        return it

    def happy_path(self) -> list[tuple[dict[str, Any], str]]:
        """Every step of a joint inspection with the failed-vote loop, and the state
        after each."""
        p1, p2 = self.participants
        steps: list[tuple[dict[str, Any], str]] = [
            (self.update("approve"), "approved"),
            (self.endorse(p1), "approved"),
            (self.endorse(p2), "approved"),
            (self.update("start"), "in_progress"),
            (self.phase("动员部署", "completed"), "in_progress"),
            (self.phase("实地检查", "started", author=p2), "in_progress"),
            (self.report(p1), "in_progress"),
            (self.report(p2), "in_progress"),
            (self.report(self.lead, "joint"), "reported"),
            (self.opinion(), "handed_over"),
        ]
        steps += [(self.reply(s), "rectifying") for s in (self.lead, p1, p2)]
        steps.append((self.vote(passed=False), "handed_over"))
        steps += [(self.reply(s), "rectifying") for s in (p2, self.lead, p1)]
        steps += [
            (self.vote(passed=True), "evaluated"),
            (self.update("close"), "closed"),
        ]
        return steps
