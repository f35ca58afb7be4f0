"""``exchange backup`` and ``exchange restore``: the node's database with a signed manifest.

See :mod:`exchange.service.backup` for the file format and the checks. The node may keep
running during ``backup`` (the dump is one consistent snapshot); ``restore`` needs the
node and all its workers stopped.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from exchange.commands._common import (
    EXIT_OK,
    common_node_args,
    node_config,
    progress,
    say,
)

__all__ = ["register"]


def _progress(what: str, done: int, total: int | None) -> None:
    progress(done, total, what)


def _backup(args: argparse.Namespace) -> int:
    from exchange.service.backup import create_backup, describe

    cfg = node_config(args)
    say(f"备份节点 {cfg.node.id} / backing up node {cfg.node.id} to {args.out}")
    manifest = asyncio.run(create_backup(cfg, Path(args.out), _progress))
    size = manifest["dump"]["bytes"]
    say(
        f"完成 / done: {describe(manifest)}; dump {size:,} bytes, sha256 "
        f"{manifest['dump']['sha256'][:16]}…"
    )
    say(f"check it any time with: exchange restore {args.out} --check")
    return EXIT_OK


def _restore(args: argparse.Namespace) -> int:
    from exchange.service.backup import describe, restore_backup

    cfg = node_config(args)
    report = asyncio.run(
        restore_backup(
            cfg,
            Path(args.file),
            force=args.force,
            replace=args.replace,
            check_only=args.check,
            progress=_progress,
        )
    )
    for p in report.problems:
        say(f"警告 / warning (forced): {p}")
    if args.check:
        say(
            f"备份完好，属于本节点 / the backup is intact and this node's: "
            f"{describe(report.manifest)}"
        )
        return EXIT_OK
    f = report.facts
    assert f is not None
    say(
        f"已恢复 / restored: schema {f.schema_version}, {f.items} items, log size "
        f"{f.log_size}, latest checkpoint {f.checkpoint_size}"
    )
    if report.signed_on_disk > f.checkpoint_size:
        say(
            f"注意 / note: this node already signed size {report.signed_on_disk} "
            f"(recorded in its data folder), more than this backup holds: it will refuse to "
            "sign checkpoints until that is resolved — see deploy/README.md, disaster recovery"
        )
    say(
        "next: exchange node up, then exchange log audit (verifies every item and checkpoint)"
    )
    return EXIT_OK


def register(sub: Any) -> None:
    """Add ``backup`` and ``restore``."""
    p = sub.add_parser(
        "backup",
        help="dump the node's database (pg_dump) with a signed manifest",
        description="Writes one file: the database dump plus a manifest signed by the node "
        "key (node id, schema version, item count, log size, latest checkpoint, sha256). "
        "The node may keep running.",
    )
    p.add_argument(
        "--out", required=True, metavar="FILE", help="backup file to write (new)"
    )
    common_node_args(p)
    p.set_defaults(func=_backup)

    p = sub.add_parser(
        "restore",
        help="restore a backup into this node's (empty) database",
        description="Checks the manifest's signature with this node's key, the node id and "
        "the dump's sha256, then restores in one transaction. Stop the node first.",
    )
    p.add_argument("file", metavar="FILE", help="a file from 'exchange backup'")
    p.add_argument(
        "--check", action="store_true", help="only check the file; restore nothing"
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="overwrite a database that already holds data",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="restore even if the manifest does not match (other node, altered)",
    )
    common_node_args(p)
    p.set_defaults(func=_restore)
