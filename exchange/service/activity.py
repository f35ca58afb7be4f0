"""The monitors' view: what ``GET /v1/activity`` and the dashboard show.

Everything is scoped to the sites the monitor's roster entry covers (its named sites plus
the members of its circles); nothing about other sites is returned, not even counts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from exchange.core.trust import Reader
from exchange.errors import NotFound
from exchange.service.reading import directory
from exchange.storage.activity import china_today

if TYPE_CHECKING:
    from exchange.node import Node

__all__ = ["activity_report"]

_NODE_VIEW = Reader("operator")


async def _plans_with_state(
    node: Node, reader: Reader, plans: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each plan (one the monitor may read) with the plan's state.

    The state is the plan's own, computed from every step this node holds: a monitor
    reads only items of the congresses in its scope, and a state computed from those
    alone would show a closed plan as still waiting for an out-of-scope partner's
    endorsement. Only the state, round and overdue flag are added, never the steps.
    ``open`` is false for a closed or retracted plan; open plans come first.
    """
    today = china_today()
    for p in plans:
        try:
            st, _ = await node.plans.status(p["id"], _NODE_VIEW)
        except NotFound:  # not readable as a whole: shown without a state
            p.update(state=None, open=True, round=0, overdue=False, retracted=False)
            continue
        p.update(
            state=st.state,
            round=st.round,
            retracted=st.retracted,
            overdue=st.overdue(today),
            open=st.state != "closed" and not st.retracted,
        )
    plans.sort(key=lambda p: not p["open"])  # stable: newest first within each group
    return plans


def _iso(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat()
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def _clean(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: _iso(v) for k, v in r.items()} for r in rows]


async def activity_report(
    node: Node, reader: Reader, *, days: int = 30, inactive_days: int = 14
) -> dict[str, Any]:
    """Build the activity report for one monitor.

    Args:
        node: The node.
        reader: A monitor principal (its ``sites`` is the scope).
        days: How many days of daily counts to include.
        inactive_days: A site with no push and no pull for this long is inactive.
    """
    await node.activity.flush()
    sites = sorted(reader.sites)
    today = china_today()
    since_day = today - timedelta(days=days - 1)
    since = datetime.now(UTC) - timedelta(days=days)
    summary = await node.activity.site_summary(sites)
    by_kind = await node.activity.pushed_by_kind(sites, since)
    daily = await node.activity.daily(sites, since_day)
    cutoff = datetime.now(UTC) - timedelta(days=inactive_days)
    inactive = []
    for s in summary:
        last_push = s["last_push"]
        last_pull = s["last_pull_day"]
        active = (last_push is not None and last_push >= cutoff) or (
            last_pull is not None
            and last_pull >= (today - timedelta(days=inactive_days))
        )
        s["inactive"] = not active
        if not active:
            inactive.append(s["site"])
    week = today - timedelta(days=6)
    week_by: dict[tuple[str, str], int] = {}
    for r in by_kind:
        if r["day"] >= week:
            key = (r["circle"] or "(all)", r["kind"])
            week_by[key] = week_by.get(key, 0) + r["n"]
    sections: dict[str, Any] = {}
    for name, fn in node.activity_sections.items():
        try:
            sections[name] = await fn(reader)
        except Exception as exc:  # one broken section must not hide the rest
            sections[name] = {"error": f"{type(exc).__name__}"}
    plans = await _plans_with_state(
        node, reader, _clean(await node.activity.plans(sites))
    )
    names = await directory(node)
    in_scope = {c for s in summary for c in s["circles"]} | set(reader.circles)
    return {
        "scope": {
            "monitor": reader.id,
            "circles": sorted(reader.circles),
            "sites": sites,
        },
        "names": {
            "sites": {s: names.sites[s] for s in sites if s in names.sites},
            "circles": {
                c: names.circles[c] for c in sorted(in_scope) if c in names.circles
            },
            "monitor": names.monitors.get(reader.id, reader.id),
        },
        "generated_at": datetime.now(UTC).isoformat(),
        "days": days,
        "inactive_days": inactive_days,
        "totals": {
            "sites": len(sites),
            "items": sum(s["items_shared"] for s in summary),
            # New items, each counted once (by_kind has one row per audience circle,
            # and a re-pushed item is a duplicate, never a new row).
            "pushed_7d": await node.activity.new_items(
                sites, datetime.now(UTC) - timedelta(days=7)
            ),
            "open_plans": sum(1 for p in plans if p.get("open")),
            "refused_7d": sum(s["refused_7d"] for s in summary),
            "inactive_sites": len(inactive),
        },
        "week_by_circle_kind": [
            {"circle": c, "kind": k, "n": n} for (c, k), n in sorted(week_by.items())
        ],
        "daily_pushed": _clean(by_kind),
        "daily_counters": _clean(daily),
        "sites": _clean(summary),
        "inactive_sites": inactive,
        "plans": plans,
        "security_events": _clean(await node.activity.events(sites, ["security"], 50)),
        "refusals": _clean(await node.activity.events(sites, ["refused"], 50)),
        **sections,
    }
