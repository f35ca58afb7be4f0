"""``exchange log audit|checkpoint`` and ``exchange export``.

These open the node's storage only: a CLI process never competes for the log-writer
lock (the sequencer runs in serving processes), so they are safe beside a running node.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import Any

from exchange.commands._common import (
    EXIT_OK,
    EXIT_VERIFY,
    common_node_args,
    progress,
    say,
    with_node,
)

__all__ = ["register"]


def _audit(args: argparse.Namespace) -> int:
    from exchange.service.audit import audit_log

    async def fn(node: Any) -> int:
        report = await audit_log(node, lambda d, t: progress(d, t, "audited"))
        rate = report.items / report.seconds if report.seconds else 0.0
        print(
            f"entries {report.items}, tree nodes compared {report.nodes_checked}, "
            f"checkpoints {report.checkpoints}, {report.seconds:.2f} s ({rate:,.0f} entries/s)"
        )
        if report.ok:
            print(
                "OK   日志完整 / the log verifies: every item, leaf, subtree and checkpoint"
            )
            return EXIT_OK
        for p in report.problems:
            print(f"FAIL {p}")
        return EXIT_VERIFY

    return with_node(args, fn)


def _checkpoint(args: argparse.Namespace) -> int:
    async def fn(node: Any) -> int:
        cp = await node.log.latest_checkpoint()
        if cp is None:
            say("no signed checkpoint yet")
            return 1
        print(cp.note, end="")
        say(f"log key: {node.sequencer.vkey}")
        return EXIT_OK

    return with_node(args, fn)


def _export(args: argparse.Namespace) -> int:
    from exchange.service.export import export_bundle

    since = datetime.fromisoformat(args.since) if args.since else None

    async def fn(node: Any) -> int:
        m = await export_bundle(
            node,
            Path(args.out),
            author=args.author,
            kind=args.kind,
            since=since,
            progress=lambda d, t: progress(d, t, "exported"),
        )
        say(
            f"exported {m['items']} item(s) with proofs against checkpoint size {m['size']} "
            f"to {args.out}; check it with: exchange verify {args.out}"
        )
        return EXIT_OK

    return with_node(args, fn)


def register(sub: Any) -> None:
    """Add ``log`` and ``export``."""
    log = sub.add_parser(
        "log", help="the node's Merkle log (operator, on the node host)"
    )
    lsub = log.add_subparsers(dest="sub", required=True)
    p = lsub.add_parser(
        "audit", help="recompute every leaf, subtree and checkpoint and compare"
    )
    common_node_args(p)
    p.set_defaults(func=_audit)
    p = lsub.add_parser("checkpoint", help="print the latest signed checkpoint")
    common_node_args(p)
    p.set_defaults(func=_checkpoint)
    p = sub.add_parser(
        "export", help="write an offline-verifiable bundle (items, proofs, keys)"
    )
    p.add_argument(
        "--out", required=True, metavar="DIR", help="new folder for the bundle"
    )
    p.add_argument("--author", help="only items by this site")
    p.add_argument("--kind", help="only items of this kind")
    p.add_argument("--since", help="only items created at or after this ISO 8601 time")
    common_node_args(p)
    p.set_defaults(func=_export)
