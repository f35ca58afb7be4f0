"""Which adapter a ``type = "…"`` names: built-ins, then third-party entry points.

Built-ins sit in two sorted ``name → "module:Class"`` maps (:data:`SOURCES`,
:data:`SINKS`) and are imported only when a config uses them, so a site that reads a
feed never needs the MySQL driver. A built-in whose optional dependency is missing
fails with the ``pip install`` line that brings it.

Third-party adapters register in the ``congress_exchange.adapters`` entry-point group
of their own distribution::

    [project.entry-points."congress_exchange.adapters"]
    oa-tongda = "tongda_adapter:TongdaSource"          # role taken from the class
    oa-tongda.sink = "tongda_adapter:TongdaSink"       # or named explicitly

A class with ``poll`` is a source, one with ``deliver`` a sink. Built-in names win
over entry points of the same name (a plugin cannot silently replace ``folder``).

:func:`load_adapter` validates the ``[[source]]``/``[[sink]]`` table with the class's
``config_model`` and constructs it as ``cls(config, ctx)``; errors name the key path
(``source[2].url: Field required``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Literal

from pydantic import ValidationError

from exchange.errors import ConfigError

from .base import AdapterConfig, AdapterContext, Sink, Source
from .config import format_validation_error

__all__ = [
    "ENTRY_POINT_GROUP",
    "SINKS",
    "SOURCES",
    "AdapterInfo",
    "available",
    "load_adapter",
    "resolve",
]

Role = Literal["source", "sink"]

ENTRY_POINT_GROUP = "congress_exchange.adapters"
"""The entry-point group third-party adapters register in."""

SOURCES: dict[str, str] = dict(
    sorted(
        {
            "feed": "adapters.rss:FeedSource",
            "folder": "adapters.shared_folder:FolderSource",
            "mail": "adapters.imap_smtp:ImapSource",
            "portal": "adapters.portal_html:PortalSource",
            "sql": "adapters.sql_table:SqlSource",
            "webhook": "adapters.webhook:WebhookSource",
        }.items()
    )
)
"""Built-in sources: ``type`` → ``module:Class``."""

SINKS: dict[str, str] = dict(
    sorted(
        {
            "folder": "adapters.shared_folder:FolderSink",
            "mail": "adapters.imap_smtp:SmtpSink",
            "sql": "adapters.sql_table:SqlSink",
        }.items()
    )
)
"""Built-in sinks: ``type`` → ``module:Class``."""

# Optional extras of this distribution that bring a built-in's dependencies.
_EXTRAS: dict[str, str] = {
    "adapters.imap_smtp": "mail",
    "adapters.portal_html": "portal",
    "adapters.shared_folder": "folder",
    "adapters.sql_table": "sql",
}


@dataclass(frozen=True)
class AdapterInfo:
    """One adapter type as the registry knows it."""

    type: str
    role: Role
    target: str
    origin: str  # "built-in" or the distribution that provides it


def _plugin_targets() -> list[tuple[str, str, str]]:
    """``(name, target, distribution)`` of every entry point in the group."""
    out = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else "?"
        out.append((ep.name, ep.value, dist))
    return sorted(out)


def _import(target: str, what: str) -> type[Any]:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or "?"
        if missing == module_name or module_name.startswith(missing + "."):
            raise ConfigError(
                f"{what}: adapter module {module_name} is not installed"
            ) from None
        extra = _EXTRAS.get(module_name)
        hint = (
            f"pip install 'congress-exchange[{extra}]'"
            if extra
            else f"pip install {missing}"
        )
        raise ConfigError(
            f"{what}: this adapter needs the Python package {missing!r}, which is "
            f"not installed; install it with: {hint}"
        ) from None
    try:
        cls = getattr(module, attr)
    except AttributeError:
        raise ConfigError(
            f"{what}: {module_name} has no adapter class {attr}"
        ) from None
    if not isinstance(cls, type):
        raise ConfigError(f"{what}: {target} is not a class")
    return cls


def resolve(kind: str, role: Role) -> tuple[str, str]:
    """``(target, origin)`` for an adapter type in a role.

    Raises:
        ConfigError: no such type for this role (the message lists the known ones).
    """
    builtin = (SOURCES if role == "source" else SINKS).get(kind)
    if builtin is not None:
        return builtin, "built-in"
    for name, target, dist in _plugin_targets():
        if name in (kind, f"{kind}.{role}"):
            return target, dist
    known = sorted({i.type for i in available() if i.role == role})
    raise ConfigError(
        f"no {role} adapter of type {kind!r}; known: {', '.join(known)} "
        f"(third-party adapters register in the {ENTRY_POINT_GROUP!r} entry-point group)"
    )


def available() -> list[AdapterInfo]:
    """Every adapter type: built-ins, then entry points (without importing them)."""
    out = [AdapterInfo(k, "source", v, "built-in") for k, v in SOURCES.items()]
    out += [AdapterInfo(k, "sink", v, "built-in") for k, v in SINKS.items()]
    for name, target, dist in _plugin_targets():
        base, _, suffix = name.rpartition(".")
        if suffix in ("source", "sink"):
            out.append(AdapterInfo(base, suffix, target, dist))  # type: ignore[arg-type]
        else:
            out.append(AdapterInfo(name, "source", target, dist))
            out.append(AdapterInfo(name, "sink", target, dist))
    return out


def load_adapter(
    table: dict[str, Any],
    ctx: AdapterContext,
    *,
    role: Role = "source",
    index: int = 0,
) -> Source | Sink:
    """Validate one ``[[source]]``/``[[sink]]`` table and construct its adapter.

    Args:
        table: The table as read from ``site.toml`` (``type`` and ``name`` included).
        ctx: What the adapter gets from the runner.
        role: ``source`` or ``sink``.
        index: The table's position, for messages (``source[2].url``).

    Raises:
        ConfigError: unknown type, missing dependency, or an invalid table (the
            message names the key path).
    """
    where = f"{role}[{index}]"
    kind = table.get("type")
    if not isinstance(kind, str) or not kind:
        raise ConfigError(f'{where}.type: missing (e.g. type = "feed")')
    target, _ = resolve(kind, role)
    cls = _import(target, f"{where} (type {kind!r})")
    required = "poll" if role == "source" else "deliver"
    if not callable(getattr(cls, required, None)):
        raise ConfigError(f"{where}: {target} is not a {role} (it has no {required}())")
    model = getattr(cls, "config_model", None)
    if not (isinstance(model, type) and issubclass(model, AdapterConfig)):
        raise ConfigError(f"{where}: {target} has no config_model (an AdapterConfig)")
    try:
        config = model.model_validate(table)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, where)) from None
    adapter = cls(config, ctx)
    if not isinstance(adapter, Source if role == "source" else Sink):
        raise ConfigError(f"{where}: {target} does not implement the {role} protocol")
    result: Source | Sink = adapter
    return result
