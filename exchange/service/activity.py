"""The monitors' view: what ``GET /v1/activity`` and the dashboard show.

Everything is scoped to the sites the monitor's roster entry covers (its named sites plus
the members of its circles); nothing about other sites is returned, not even counts.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from exchange.core.trust import Reader
from exchange.node import Node
from exchange.storage.activity import china_today

__all__ = ["activity_report"]


def _iso(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat()
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def _clean(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: _iso(v) for k, v in r.items()} for r in rows]


async def activity_report(node: Node, reader: Reader, *, days: int = 30,
                          inactive_days: int = 14) -> dict[str, Any]:
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
    since = datetime.now(timezone.utc) - timedelta(days=days)
    summary = await node.activity.site_summary(sites)
    by_kind = await node.activity.pushed_by_kind(sites, since)
    daily = await node.activity.daily(sites, since_day)
    cutoff = datetime.now(timezone.utc) - timedelta(days=inactive_days)
    inactive = []
    for s in summary:
        last_push = s["last_push"]
        last_pull = s["last_pull_day"]
        active = (last_push is not None and last_push >= cutoff) or (
            last_pull is not None and last_pull >= (today - timedelta(days=inactive_days))
        )
        s["inactive"] = not active
        if not active:
            inactive.append(s["site"])
    week = today - timedelta(days=6)
    week_by = {}
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
    return {
        "scope": {"monitor": reader.id, "circles": sorted(reader.circles), "sites": sites},
        "generated_at": datetime.now(timezone.utc).isoformat(),
        "days": days,
        "inactive_days": inactive_days,
        "totals": {
            "sites": len(sites),
            "items": sum(s["items_shared"] for s in summary),
            "pushed_7d": sum(v for v in week_by.values()),
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
        "plans": _clean(await node.activity.plans(sites)),
        "security_events": _clean(await node.activity.events(sites, ["security"], 50)),
        "refusals": _clean(await node.activity.events(sites, ["refused"], 50)),
        **sections,
    }
