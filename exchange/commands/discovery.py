"""``exchange search`` (a readable, CJK-aware table) and ``exchange site token``."""

from __future__ import annotations

import argparse
import asyncio
import html
import re
from pathlib import Path
from typing import Any

from exchange.commands._common import (
    EXIT_FAIL,
    EXIT_OK,
    common_node_args,
    say,
    with_node,
)
from exchange.commands._table import display_width
from schemas.labels import kind_label

__all__ = ["display_width", "fit", "register", "render_table"]

_MARK = re.compile(r"</?mark>")
_TITLE_WIDTH = 48  # the only column cut to fit; the others are as wide as their text


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` columns (with ``…``) and padded to exactly ``width``."""
    if display_width(text) > width:
        out, used = [], 0
        for ch in text:
            w = display_width(ch)
            if used + w > width - 1:
                break
            out.append(ch)
            used += w
        text = "".join(out) + "…"
    return text + " " * (width - display_width(text))


def render_table(headers: list[str], rows: list[list[str]], widths: list[int]) -> str:
    """A plain table whose columns line up in a terminal, CJK included."""
    lines = [
        "  ".join(fit(h, w) for h, w in zip(headers, widths, strict=True)).rstrip(),
        "  ".join("─" * w for w in widths),
    ]
    lines += [
        "  ".join(fit(c, w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in rows
    ]
    return "\n".join(lines)


def _plain(fragment: str) -> str:
    return html.unescape(_MARK.sub("", fragment))


def _search(args: argparse.Namespace) -> int:
    from exchange.client import ExchangeClient
    from exchange.core.signing import load_private_key

    key = load_private_key(Path(args.key))
    params: dict[str, Any] = {
        "q": args.query,
        "kind": args.kind,
        "author": args.author,
        "circle": args.circle,
        "tag": args.tag,
        "since": args.since,
        "until": args.until,
        "limit": args.limit,
        "cursor": args.cursor,
    }

    async def run() -> int:
        async with ExchangeClient(args.node, key=key) as client:
            page = await client.request("GET", "/v1/search", params=params)
        hits = page["hits"]
        if not hits:
            say(
                f"没有找到 / no items found for {args.query!r} (only items visible to your site "
                "are searched)"
            )
            return EXIT_OK
        rows = [
            [
                str(n),
                h["created_at"][:10],
                kind_label(h["kind"]),
                h["author"],
                ("[已撤回 retracted] " if h.get("retracted") else "") + h["title"],
                h["id"][7:19],
            ]
            for n, h in enumerate(hits, 1)
        ]
        headers = ["#", "日期 date", "类型 kind", "单位 author", "标题 title", "id"]
        widths = [
            max(display_width(c) for c in [h, *(r[i] for r in rows)])
            for i, h in enumerate(headers)
        ]
        widths[4] = min(widths[4], _TITLE_WIDTH)
        print(render_table(headers, rows, widths))
        if args.snippets:
            print()
            for n, h in enumerate(hits, 1):
                print(f"{n:>3}  {_plain(h['snippet_html'])}")
        if page.get("next_cursor"):
            say(f"more results: add --cursor {page['next_cursor']}")
        return EXIT_OK

    return asyncio.run(run())


def _site_token(args: argparse.Namespace) -> int:
    async def fn(node: Any) -> int:
        if await node.sites.get_site(args.site) is None:
            say(
                f"error: site {args.site} is not registered here; add it with: exchange site add"
            )
            return EXIT_FAIL
        if args.revoke:
            if not await node.read_access.revoke_token(args.site):
                say(f"error: {args.site} has no read token")
                return EXIT_FAIL
            say(
                f"阅读令牌已吊销 / read token of {args.site} revoked; its sessions have ended"
            )
            return EXIT_OK
        token = await node.read_access.issue_token(args.site)
        print(token)
        base = node.config.node.base_url.rstrip("/") or "<node URL>"
        say(
            f"阅读令牌已签发 / read token for {args.site} issued (shown once; any earlier token "
            f"and its sessions no longer work). Staff sign in at {base}/read"
        )
        return EXIT_OK

    return with_node(args, fn)


def _site_parser(sub: Any) -> Any:
    """The existing ``site`` command's sub-command table (defined in exchange.cli)."""
    site = sub.choices["site"]
    for action in site._actions:  # argparse keeps sub-parsers as a private action
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError("the site command has no sub-commands")


def register(sub: Any) -> None:
    """Add ``search`` and ``site token``."""
    from schemas.items import KINDS

    p = sub.add_parser(
        "search",
        help="search the items your site may see (Chinese or English)",
        description="Full-text search on a node, as the site whose key signs the "
        "request: e.g. exchange search 安全生产法 --kind inspection_plan",
    )
    p.add_argument(
        "query", help='words to find; all must match; "…" for an exact phrase'
    )
    p.add_argument("--node", required=True, help="node URL, e.g. http://127.0.0.1:8700")
    p.add_argument(
        "--key", required=True, metavar="KEYFILE", help="the site's private key file"
    )
    p.add_argument("--kind", choices=KINDS)
    p.add_argument("--author", help="only items by this site")
    p.add_argument("--circle", help="only items addressed to this circle")
    p.add_argument("--tag", help="only items with this tag")
    p.add_argument("--since", help="created on or after (YYYY-MM-DD)")
    p.add_argument("--until", help="created on or before (YYYY-MM-DD)")
    p.add_argument("--limit", type=int, default=20, help="results per page (1-50)")
    p.add_argument("--cursor", help="next page (printed after a full page)")
    p.add_argument(
        "--snippets", action="store_true", help="also print a snippet per hit"
    )
    p.set_defaults(func=_search)

    p = _site_parser(sub).add_parser(
        "token", help="issue the site's read token for the reading view (/read)"
    )
    p.add_argument("site", help="site id, e.g. huaibei-duji")
    p.add_argument(
        "--revoke",
        action="store_true",
        help="withdraw the read token instead and end its sessions",
    )
    common_node_args(p)
    p.set_defaults(func=_site_token)
