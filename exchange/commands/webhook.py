"""``exchange webhook add|list|remove``: push items to a site's own system over HTTP."""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import urlsplit

from exchange.commands._common import (
    EXIT_FAIL,
    EXIT_OK,
    common_node_args,
    say,
    with_node,
)
from exchange.errors import ConfigError

__all__ = ["register"]


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"--url {url!r} is not an http(s) URL such as https://oa.example.gov.cn/exchange/hook"
        )
    return url


def _add(args: argparse.Namespace) -> int:
    url = _check_url(args.url)

    async def fn(node: Any) -> int:
        from exchange.storage.webhooks import WebhookStore

        cursor = -1 if args.from_start else await node.items.size() - 1
        hook = await WebhookStore(node.db).add(args.site, url, cursor)
        pub = node.key.public_key
        say(
            f"webhook {hook.id} 已添加 / added: items visible to {args.site} after "
            f"index "
            f"{cursor} will be POSTed to {url}"
        )
        say(
            f"the site checks each delivery with the node key {node.key.key_id} "
            f"(ed25519, public key {pub.b64()}), also published at GET /v1/node"
        )
        if urlsplit(url).scheme == "http":
            say(
                "note: plain http is readable on the way; the signature still proves "
                "origin "
                "and integrity"
            )
        print(hook.id)
        return EXIT_OK

    return with_node(args, fn)


def _list(args: argparse.Namespace) -> int:
    async def fn(node: Any) -> int:
        from exchange.storage.webhooks import WebhookStore

        hooks = await WebhookStore(node.db).list(args.site)
        size = await node.items.size()
        out = [
            {
                "id": h.id,
                "site": h.site_id,
                "url": h.url,
                "cursor": h.cursor,
                "log_size": size,
                "delivered": h.delivered_total,
                "attempts": h.attempts,
                "next_attempt_at": h.next_attempt_at.isoformat(),
                "last_success": h.last_success.isoformat() if h.last_success else None,
                "last_status": h.last_status,
                "last_error": h.last_error,
            }
            for h in hooks
        ]
        print(json.dumps({"webhooks": out}, ensure_ascii=False, indent=2))
        return EXIT_OK

    return with_node(args, fn)


def _remove(args: argparse.Namespace) -> int:
    async def fn(node: Any) -> int:
        from exchange.storage.webhooks import WebhookStore

        gone = await WebhookStore(node.db).remove(args.id)
        if gone is None:
            say(f"no webhook {args.id}; see 'exchange webhook list'")
            return EXIT_FAIL
        say(f"webhook {gone.id} ({gone.site_id} → {gone.url}) 已删除 / removed")
        return EXIT_OK

    return with_node(args, fn)


def register(sub: Any) -> None:
    """Add ``webhook``."""
    hook = sub.add_parser(
        "webhook",
        help="push each new item a site may see to the site's own system "
        "(signed by the node)",
    )
    hsub = hook.add_subparsers(dest="sub", required=True)
    p = hsub.add_parser("add", help="subscribe a URL to a site's items")
    p.add_argument("site", help="site id, e.g. huaibei-duji")
    p.add_argument(
        "--url", required=True, help="where to POST, e.g. https://oa.example/hook"
    )
    p.add_argument(
        "--from-start",
        action="store_true",
        help="also deliver every item already in the log (default: only new ones)",
    )
    common_node_args(p)
    p.set_defaults(func=_add)
    p = hsub.add_parser(
        "list", help="subscribers with cursor, backlog and last error (JSON)"
    )
    p.add_argument("site", nargs="?", help="only this site's")
    common_node_args(p)
    p.set_defaults(func=_list)
    p = hsub.add_parser("remove", help="stop delivering to a subscriber")
    p.add_argument("id", type=int, help="webhook id from 'exchange webhook list'")
    common_node_args(p)
    p.set_defaults(func=_remove)
