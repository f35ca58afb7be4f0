"""``exchange peer status``: how far behind each peer is, as a table.

Reads the node's per-peer delivery state (:meth:`Federation.peer_status
<exchange.federation.service.Federation.peer_status>`, the same data as
``GET /v1/federation/peers``) straight from the node's database, so it works on the
node host whether or not the node is running.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from exchange.commands._common import EXIT_OK, common_node_args, say, with_node

from ._table import clip, render

__all__ = ["format_ago", "register", "status_table"]

_HEADERS = [
    "对端 peer",
    "积压 backlog",
    "最近成功 last success",
    "最近错误 last error",
    "退避 backoff",
    "已推送/已拉取 pushed/pulled",
    "被拒 refused",
]


def format_ago(ts: str | None, now: datetime | None = None) -> str:
    """``"12s ago"``-style age of an ISO timestamp; ``"从未 never"`` for None.

    Args:
        ts: An ISO 8601 timestamp with offset, or None.
        now: The reference instant (default: now).
    """
    if not ts:
        return "从未 never"
    now = now or datetime.now(UTC)
    secs = max(0, int((now - datetime.fromisoformat(ts)).total_seconds()))
    if secs < 60:
        return f"{secs}s ago"
    if secs < 3600:
        return f"{secs // 60}m{secs % 60:02d}s ago"
    if secs < 86400:
        return f"{secs // 3600}h{secs % 3600 // 60:02d}m ago"
    return f"{secs // 86400}d{secs % 86400 // 3600}h ago"


def status_table(peers: list[dict[str, Any]], now: datetime | None = None) -> str:
    """Render :meth:`peer_status` rows as a CJK-aligned table.

    Args:
        peers: Rows as returned by ``Federation.peer_status()``.
        now: The reference instant for ages (default: now).
    """
    rows = []
    for p in peers:
        backlog = "?" if p.get("backlog") is None else str(p["backlog"])
        err = p.get("last_error") or "-"
        if p.get("last_error") and p.get("last_error_at"):
            err = f"{format_ago(p['last_error_at'], now)}: {err}"
        backoff = f"{p['backoff_s']:.1f}s" if p.get("backoff_s") else "-"
        if p.get("attempts"):
            backoff += f" ({p['attempts']} tries)"
        rows.append(
            [
                str(p["peer"]),
                backlog,
                format_ago(p.get("last_success"), now),
                clip(err, 60),
                backoff,
                f"{p.get('pushed_total', 0)}/{p.get('pulled_total', 0)}",
                str(p.get("refused_total", 0)),
            ]
        )
    return render(_HEADERS, rows, right=(1,))


def _status(args: argparse.Namespace) -> int:
    async def fn(node: Any) -> int:
        peers = await node.federation.peer_status()
        if args.json:
            print(json.dumps({"peers": peers}, ensure_ascii=False, indent=2))
            return EXIT_OK
        if node.federation.view is None:
            say(
                f"node {node.id} has no roster installed, so no peers; install one "
                "with: "
                "exchange roster publish roster.signed.json"
            )
            return EXIT_OK
        print(
            f"节点 / node {node.id}, roster version {node.federation.view.version}, "
            f"{len(peers)} peer(s)"
        )
        print(status_table(peers))
        return EXIT_OK

    return with_node(args, fn)


def register(sub: Any) -> None:
    """Add ``peer``."""
    peer = sub.add_parser("peer", help="federation peers: delivery backlog and errors")
    psub = peer.add_subparsers(dest="sub", required=True)
    p = psub.add_parser(
        "status", help="per-peer backlog, last success, last error, backoff"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    common_node_args(p)
    p.set_defaults(func=_status)
