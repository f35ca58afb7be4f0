"""``exchange healthcheck``: ask the local node whether it is alive (or ready).

For container ``HEALTHCHECK`` lines and systemd watchdogs: it reads ``http.listen`` from
the same configuration the node uses (``--config``, ``$EXCHANGE_CONFIG``, ``./node.toml``,
``EXCHANGE_LISTEN``), so the probe follows the node wherever it listens. Exit code 0 when
``/healthz`` (or ``/readyz`` with ``--ready``) answers 200 within the timeout, else 1.
It uses only the standard library's HTTP client, so it starts fast.
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from typing import Any

from exchange.commands._common import EXIT_FAIL, EXIT_OK, node_config, say

__all__ = ["probe_url", "register"]


def probe_url(listen_host: str, port: int, ready: bool) -> str:
    """The URL to probe for a node listening on ``listen_host:port``.

    Args:
        listen_host: ``http.listen``'s host; wildcard addresses become 127.0.0.1.
        port: ``http.listen``'s port.
        ready: Probe ``/readyz`` instead of ``/healthz``.
    """
    host = "127.0.0.1" if listen_host in ("", "0.0.0.0", "::", "*") else listen_host
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/{'readyz' if ready else 'healthz'}"


def _healthcheck(args: argparse.Namespace) -> int:
    if args.url:
        url = args.url
    else:
        host, port = node_config(args).listen_host_port
        url = probe_url(host, port, args.ready)
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as r:  # noqa: S310 - local URL
            body = r.read()
            status = r.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read(), exc.code
    except OSError as exc:
        say(f"不健康 / unhealthy: {url}: {exc}")
        return EXIT_FAIL
    try:
        checks = json.loads(body).get("checks", {})
    except (ValueError, AttributeError):
        checks = {}
    if status != 200:
        say(
            f"不健康 / unhealthy: {url} answered {status} {json.dumps(checks, ensure_ascii=False)}"
        )
        return EXIT_FAIL
    if args.verbose_checks:
        print(json.dumps(checks, ensure_ascii=False))
    return EXIT_OK


def register(sub: Any) -> None:
    """Add ``healthcheck``."""
    p = sub.add_parser(
        "healthcheck",
        help="exit 0 if the local node answers /healthz (for HEALTHCHECK)",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="node.toml (default: $EXCHANGE_CONFIG or ./node.toml)",
    )
    p.add_argument("--data-dir", help=argparse.SUPPRESS)
    p.add_argument(
        "--ready",
        action="store_true",
        help="probe /readyz (database, log writer) instead",
    )
    p.add_argument("--url", help="probe this URL instead of the configured listener")
    p.add_argument(
        "--timeout", type=float, default=3.0, metavar="S", help="seconds (default 3)"
    )
    p.add_argument(
        "--print", dest="verbose_checks", action="store_true", help="print the checks"
    )
    p.set_defaults(func=_healthcheck)
