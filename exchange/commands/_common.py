"""What every CLI command shares: exit codes, output helpers, opening the node.

Kept apart from :mod:`exchange.cli` (which loads the command modules) so that a command
module never imports the module that imports it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from exchange.config import NodeConfig, env_value, load_config
from exchange.errors import ConfigError

__all__ = [
    "EXIT_FAIL",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "EXIT_VERIFY",
    "common_node_args",
    "node_config",
    "node_config_path",
    "progress",
    "say",
    "with_node",
]

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_VERIFY, EXIT_UNREACHABLE = 0, 1, 2, 3, 4


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def progress(done: int, total: int | None, what: str) -> None:
    """A progress counter on stderr: rewritten in place on a terminal; in a log or a
    pipe, plain lines (every 500, and the last) without carriage returns."""
    finished = total is not None and done >= total
    tail = f"/{total}" if total is not None else ""
    if sys.stderr.isatty():
        end = "\n" if finished else "\r"
        print(f"  {what}: {done}{tail}", end=end, file=sys.stderr, flush=True)
    elif finished or done % 500 == 0:
        print(f"  {what}: {done}{tail}", file=sys.stderr, flush=True)


# -- configuration helpers ------------------------------------------------------------
def node_config_path(args: argparse.Namespace) -> Path:
    """The node.toml a command changes: ``--config``, ``$EXCHANGE_CONFIG``, ./node.toml.

    Raises:
        ConfigError: there is none.
    """
    path = getattr(args, "config", None) or env_value("EXCHANGE_CONFIG") or "node.toml"
    if not Path(path).exists():
        raise ConfigError(f"no configuration file {path}; pass --config FILE")
    return Path(path)


def node_config(args: argparse.Namespace) -> NodeConfig:
    path = getattr(args, "config", None) or env_value("EXCHANGE_CONFIG") or None
    if path is None and Path("node.toml").exists():
        path = "node.toml"
    overrides: dict[str, dict[str, Any]] = {}
    if getattr(args, "data_dir", None):
        overrides.setdefault("node", {})["data_dir"] = str(
            Path(args.data_dir).resolve()
        )
    if getattr(args, "listen", None):
        overrides.setdefault("http", {})["listen"] = args.listen
    return load_config(Path(path) if path else None, overrides=overrides)


def with_node(
    args: argparse.Namespace, fn: Callable[[Any], Coroutine[Any, Any, int]]
) -> int:
    """Open the node's storage (not its HTTP server), run ``fn(node)``, close it."""
    from exchange.node import Node

    async def run() -> int:
        # Command use: storage and services only; no federation loops, no log writer.
        async with Node(node_config(args)) as node:
            return await fn(node)

    return asyncio.run(run())


def common_node_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        metavar="FILE",
        help="node.toml (default: $EXCHANGE_CONFIG or ./node.toml)",
    )
    p.add_argument("--data-dir", metavar="DIR", help="override node.data_dir")
