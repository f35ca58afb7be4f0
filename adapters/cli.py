"""``exchange adapter run|check|list``: the site-side commands.

Registered through the ``congress_exchange.cli`` entry-point group (``exchange`` never
imports ``adapters``). Status lines go to stderr, Chinese first; ``check`` prints one
tab-separated line per item it would push on stdout. Exit codes are those of
``exchange`` (0 ok, 1 failed, 2 usage, 4 node unreachable).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from exchange.core.canonical import item_id
from exchange.errors import ExchangeError

from .config import load_site_config
from .registry import available
from .runner import Runner

__all__ = ["register"]

# The documented exit codes of the ``exchange`` command (exchange.cli).
_OK, _FAIL, _UNREACHABLE = 0, 1, 4


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _run(args: argparse.Namespace) -> int:
    cfg = load_site_config(Path(args.config))

    async def main() -> int:
        runner = Runner(cfg, say=_say)
        await runner.open()
        try:
            if args.once:
                s = await runner.run_once()
                _say(
                    f"本次运行 / this run: {s.spooled} spooled, {s.pushed} pushed, "
                    f"{s.rejected} refused, {s.delivered} delivered, "
                    f"{len(s.problems)} document problem(s); backlog {runner.spool.backlog}"
                )
                if s.unreachable:
                    return _UNREACHABLE
                return _FAIL if s.errors else _OK
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await runner.run_forever(stop)
            _say(
                f"适配器已停止 / adapter runner stopped; backlog {runner.spool.backlog}"
            )
            return _OK
        finally:
            await runner.close()

    return asyncio.run(main())


def _check(args: argparse.Namespace) -> int:
    cfg = load_site_config(Path(args.config))

    async def main() -> int:
        runner = Runner(cfg, say=_say)
        await runner.open(dry_run=True)
        failed = False
        try:
            _say(
                f"配置有效 / configuration OK: site {cfg.site.id}, key "
                f"{runner.key.key_id if runner.key else '?'}, {len(runner.sources)} "
                f"source(s), {len(runner.sinks)} sink(s)"
            )
            try:
                await runner.client.health()
                site = await runner.client.request("GET", f"/v1/sites/{cfg.site.id}")
                keys = {k["key_id"] for k in site.get("keys", [])}
                assert runner.key is not None
                if runner.key.key_id in keys:
                    _say(f"节点可达 / node {cfg.site.node} reachable; key registered")
                else:
                    failed = True
                    _say(
                        f"节点可达，但密钥未登记 / node reachable, but key "
                        f"{runner.key.key_id} is not registered for {cfg.site.id}: ask "
                        "the operator to run 'exchange site key add'"
                    )
            except ExchangeError as exc:
                failed = True
                _say(f"节点不可达或拒绝 / node {cfg.site.node}: {exc.message}")
            drafts, problems = await runner.check()
            for name, d in drafts:
                it = d.item
                atts = ",".join(a["name"] for a in it.get("attachments", []))
                print(
                    "\t".join(
                        [
                            name,
                            d.ref,
                            str(it["kind"]),
                            str(it["created_at"]),
                            str(it["title"]),
                            item_id(it),
                            atts,
                            *d.notes,
                        ]
                    )
                )
            for p in problems:
                _say(f"  问题 / problem: {p}")
            _say(
                f"将推送 {len(drafts)} 条，未推送任何内容 / would push {len(drafts)} "
                f"item(s); nothing was pushed or saved"
            )
            return _FAIL if failed or problems else _OK
        finally:
            await runner.close()

    return asyncio.run(main())


def _list(args: argparse.Namespace) -> int:
    for info in available():
        print(f"{info.type}\t{info.role}\t{info.target}\t{info.origin}")
    return _OK


def register(sub: Any) -> None:
    """Add ``exchange adapter`` with ``run``, ``check`` and ``list``."""
    p = sub.add_parser(
        "adapter",
        help="run a site's adapters (feed, portal, folder, sql, mail, webhook)",
        description="适配器：把本单位现有系统（网站、共享文件夹、数据库、邮箱）的材料签名后"
        "推送到节点，并把伙伴的条目投递回来。 Adapters turn a site's documents into signed "
        "items and deliver partners' items back; see docs/adapters.md.",
    )
    asub = p.add_subparsers(dest="sub", required=True)
    r = asub.add_parser(
        "run", help="sign, spool and push new documents; deliver partners' items"
    )
    r.add_argument("config", metavar="site.toml")
    r.add_argument(
        "--once",
        action="store_true",
        help="one pass (poll, push, pull, report) then exit: for cron or a test",
    )
    r.set_defaults(func=_run)
    c = asub.add_parser(
        "check", help="dry run: connect, read, show what would be pushed"
    )
    c.add_argument("config", metavar="site.toml")
    c.set_defaults(func=_check)
    ls = asub.add_parser("list", help="adapter types: built-in and installed plugins")
    ls.set_defaults(func=_list)
