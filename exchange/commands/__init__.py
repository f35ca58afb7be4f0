"""CLI command groups beyond the core ones in :mod:`exchange.cli`.

Every module in this package defines ``register(subparsers) -> None`` and is loaded by
:func:`exchange.cli.build_parser` in name order. Handlers follow the CLI's conventions:
return an exit code, raise :class:`~exchange.errors.ExchangeError` for a clear one-line
error, show progress on stderr for long work.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

__all__ = ["command_modules"]


def command_modules() -> list[ModuleType]:
    """The command modules of this package, sorted by name."""
    return [
        importlib.import_module(f"{__name__}.{m.name}")
        for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name)
        if not m.name.startswith("_")
    ]
