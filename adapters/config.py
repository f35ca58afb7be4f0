"""``site.toml``: one site's adapter runner — who it is, where its node is, what it reads.

::

    [site]
    id = "huaibei-duji"               # the site id registered on the node
    key_file = "duji.key"             # private key, mode 0600; relative to this file
    node = "http://127.0.0.1:8700"    # the home node
    data_dir = "adapter-data"         # spool, states, pull cursor; relative to this file

    [runner]                          # all optional
    poll_interval = 300               # seconds between polls of each source
    pull_interval = 60                # seconds between pulls for the sinks

    [[source]]                        # any number; each validated by its adapter
    type = "feed"
    name = "duji-news"
    url = "https://…/rss.xml"

    [[sink]]
    type = "folder"
    name = "inbox"
    path = "收件箱"

The ``[[source]]`` and ``[[sink]]`` tables are kept as plain dicts here and validated
by each adapter's own config model when :func:`adapters.registry.load_adapter` loads
it, so errors name the full key path (``source[2].url``). Adapter names must be unique:
they key the saved states. Relative paths in adapter tables are resolved against the
folder of ``site.toml`` by the adapters (``AdapterContext.base_dir``).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from exchange.errors import ConfigError

__all__ = [
    "RunnerSection",
    "SiteConfig",
    "SiteSection",
    "format_validation_error",
    "load_site_config",
]

_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


class SiteSection(BaseModel):
    """``[site]``: identity, key and node."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Site id registered on the node, e.g. huaibei-duji")
    key_file: Path = Field(description="Private key file (mode 0600)")
    node: str = Field(description="Home node URL, e.g. http://127.0.0.1:8700")
    data_dir: Path = Field(Path("adapter-data"), description="Spool, states, cursor")
    roster_keys: list[str] = Field(
        default_factory=list,
        description="The federation's roster keys, 'KEY_ID ALG PUBLIC_KEY' (as in "
        "node.toml); without them the keys the node announces are pinned on first use",
    )

    @field_validator("id")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not _SLUG.match(v):
            raise ValueError("must be a lowercase site id such as 'huaibei-duji'")
        return v

    @field_validator("roster_keys")
    @classmethod
    def _keys(cls, v: list[str]) -> list[str]:
        from .trust import parse_key_entries

        parse_key_entries(v, "roster_keys")
        return v

    @field_validator("node")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("must be an http(s) URL such as 'http://127.0.0.1:8700'")
        return v.rstrip("/")


class RunnerSection(BaseModel):
    """``[runner]``: timings and limits (all optional)."""

    model_config = ConfigDict(extra="forbid")

    poll_interval: float = Field(
        300.0, gt=0, description="Seconds between source polls"
    )
    pull_interval: float = Field(60.0, gt=0, description="Seconds between pulls")
    health_interval: float = Field(60.0, gt=0, description="Seconds between reports")
    push_batch: int = Field(100, ge=1, le=500, description="Items per push request")
    backoff_initial: float = Field(1.0, gt=0, description="First retry delay, seconds")
    backoff_max: float = Field(300.0, gt=0, description="Longest retry delay, seconds")
    request_timeout: float = Field(30.0, gt=0, description="Seconds per node request")
    pull: bool = Field(True, description="Pull partners' items for the sinks")


class SiteConfig(BaseModel):
    """The whole ``site.toml``, paths resolved against its folder."""

    model_config = ConfigDict(extra="forbid")

    site: SiteSection
    runner: RunnerSection = RunnerSection()
    source: list[dict[str, Any]] = Field(default_factory=list)
    sink: list[dict[str, Any]] = Field(default_factory=list)
    base_dir: Path = Field(Path("."), description="Folder of site.toml (set on load)")

    @property
    def key_path(self) -> Path:
        """The key file, absolute."""
        return self.base_dir / self.site.key_file

    @property
    def data_path(self) -> Path:
        """The data folder, absolute."""
        return self.base_dir / self.site.data_dir


def format_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """``source[2].url: Field required; …`` from a pydantic error."""
    parts = []
    for err in exc.errors()[:10]:
        path = prefix
        for loc in err["loc"]:
            if isinstance(loc, int):
                path += f"[{loc}]"
            else:
                path += ("." if path else "") + str(loc)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling against the adapter's documentation)"
        parts.append(f"{path or '(top)'}: {msg}")
    return "; ".join(parts)


def _names(tables: list[dict[str, Any]], role: str, seen: dict[str, str]) -> None:
    for i, table in enumerate(tables):
        kind = table.get("type")
        if not isinstance(kind, str) or not kind:
            raise ConfigError(f'{role}[{i}].type: missing (e.g. type = "feed")')
        name = table.get("name") or (kind if role == "source" else f"{kind}-out")
        if not isinstance(name, str) or not _SLUG.match(name):
            raise ConfigError(
                f"{role}[{i}].name: {name!r} must be a lowercase name such as 'duji-news'"
            )
        if name in seen:
            raise ConfigError(
                f"{role}[{i}].name: {name!r} is also the name of {seen[name]}; "
                "give each source and sink its own name"
            )
        seen[name] = f"{role}[{i}]"
        table["name"] = name


def load_site_config(path: Path) -> SiteConfig:
    """Read and check ``site.toml`` (not the adapter tables: see the registry).

    Args:
        path: The file.

    Raises:
        ConfigError: unreadable, not TOML, or a key that is missing or wrong (the
            message names its path, e.g. ``site.node``, ``source[1].name``).
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    if "base_dir" in raw:
        raise ConfigError(f"{path}: base_dir: unknown key")
    seen: dict[str, str] = {}
    for role in ("source", "sink"):
        tables = raw.get(role, [])
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            raise ConfigError(f"{path}: {role}: write each one as a [[{role}]] table")
        _names(tables, role, seen)
    try:
        cfg = SiteConfig.model_validate({**raw, "base_dir": path.resolve().parent})
    except ValidationError as exc:
        raise ConfigError(f"{path}: {format_validation_error(exc)}") from None
    return cfg
