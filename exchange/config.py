"""Node configuration: one TOML file plus ``EXCHANGE_*`` environment overrides.

This is the only module that reads ``os.environ``. Sections are pydantic models, so a
wrong value is refused at start with the key path (``http.max_body_bytes: ...``).

Environment overrides (for secrets and containers) win over the file:

========================================  =========================================
``EXCHANGE_DATABASE_URL``                 ``database.url``
``EXCHANGE_DATABASE_READ_URL``            ``database.read_url``
``EXCHANGE_LISTEN``                       ``http.listen``
``EXCHANGE_DATA_DIR``                     ``node.data_dir``
``EXCHANGE_<SECTION>_<KEY>``              any other key, e.g. ``EXCHANGE_HTTP_MAX_BATCH``
========================================  =========================================
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from exchange.errors import ConfigError

__all__ = [
    "DatabaseConfig",
    "FederationConfig",
    "HttpConfig",
    "LimitsConfig",
    "LogConfig",
    "NodeConfig",
    "NodeSection",
    "WebhooksConfig",
    "child_env",
    "env_flag",
    "env_value",
    "load_config",
]

_SLUG = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class NodeSection(_Section):
    """``[node]``: who this node is."""

    id: str = Field("local", pattern=_SLUG, description="Node id, a lowercase slug")
    name: str = Field("", description="Display name, e.g. 淮海经济区节点")
    base_url: str = Field("", description="Public URL peers use to reach this node")
    key_file: str = Field(
        "node.key", description="Node private key, relative to data_dir"
    )
    data_dir: str = Field(
        "data", description="Data folder; relative to the config file"
    )
    circles: list[str] = Field(
        default_factory=list, description="Circles this node serves"
    )
    circle_names: dict[str, str] = Field(
        default_factory=dict,
        description=(
            'Display names of circles, e.g. huaihai = "淮海经济区" (for a node '
            "without a roster; an installed roster's names win)"
        ),
    )

    @field_validator("circle_names")
    @classmethod
    def _circle_names(cls, v: dict[str, str]) -> dict[str, str]:
        for cid, name in v.items():
            if not re.match(_SLUG, cid):
                raise ValueError(f"circle id {cid!r} is not a lowercase slug")
            if not name.strip() or len(name) > 100 or not name.isprintable():
                raise ValueError(
                    f"the name of circle {cid} must be 1-100 printable characters"
                )
        return {cid: name.strip() for cid, name in v.items()}


class HttpConfig(_Section):
    """``[http]``: the API listener and request limits."""

    listen: str = "127.0.0.1:8700"
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    max_batch: int = Field(500, ge=1, le=5000)
    max_blob_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    signature_max_age: int = Field(300, ge=10, le=3600)
    signature_max_skew: int = Field(30, ge=0, le=600)
    page_max_bytes: int = Field(
        4 * 1024 * 1024,
        ge=16 * 1024,
        description="A page of items ends at this many bytes of items (or at limit)",
    )
    # Hostile clients (issue 15): deadlines and caps of the listener.
    idle_timeout_s: float = Field(
        20.0,
        ge=0.5,
        le=3600,
        description="A connection closes when no complete request headers arrived for "
        "this long (from connect or from the last response): slow headers, idle keep-alive. "
        "Longer than clients keep idle connections (aiohttp: 15 s), so a client never "
        "reuses one the node is closing",
    )
    body_stall_s: float = Field(
        10.0,
        ge=0.5,
        le=600,
        description="A request body that sends nothing this long is dropped",
    )
    body_min_rate: int = Field(
        4096,
        ge=0,
        description="Bytes/s a request body must average once body_stall_s has passed",
    )
    handler_timeout_s: float = Field(
        60.0,
        ge=1,
        description="Longest time a request may take (event streams and blobs excepted)",
    )
    max_connections: int = Field(
        4096,
        ge=16,
        description="Open connections in all (also bounded by the fd limit)",
    )
    max_connections_per_address: int = Field(
        256,
        ge=0,
        description="Open connections per client address (0: no cap); "
        "http.trusted_proxies count toward max_connections only",
    )
    anonymous_body_bytes: int = Field(
        16 * 1024,
        ge=1024,
        description="Largest body of an unauthenticated request (login forms)",
    )
    blob_uploads_per_site: int = Field(
        4,
        ge=1,
        description="Blob uploads one site may have in flight at once",
    )

    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or networks (CIDR) of the TLS-terminating proxies whose "
        "X-Forwarded-Proto is believed (cookies are Secure behind them)",
    )

    extra_authorities: list[str] = Field(
        default_factory=list,
        description="Other host[:port] names clients may sign their requests for, "
        "besides base_url's and the listen address (e.g. the in-cluster service name "
        "congress-exchange.exchange.svc:8700)",
    )

    @field_validator("extra_authorities")
    @classmethod
    def _authorities(cls, v: list[str]) -> list[str]:
        for name in v:
            if not re.fullmatch(
                r"[a-z0-9.-]+(?::[0-9]{1,5})?|\[[0-9a-f:.]+\](?::[0-9]{1,5})?",
                name.strip().lower(),
            ):
                raise ValueError(
                    f"{name!r} is not a host or host:port (no scheme, no path), "
                    "e.g. congress-exchange.exchange.svc:8700"
                )
        return [name.strip().lower() for name in v]

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, v: list[str]) -> list[str]:
        for net in v:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(
                    f"{net!r} is not an IP address or network (CIDR)"
                ) from None
        return v

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if (
            not sep
            or not host
            or not (port.isascii() and port.isdigit())
            or not 0 <= int(port) < 65536
        ):
            raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:8700")
        return v


class DatabaseConfig(_Section):
    """``[database]``: empty ``url`` means the embedded PostgreSQL in ``data_dir/pg``."""

    url: str = ""
    read_url: str = ""
    pool_min: int = Field(2, ge=1)
    pool_max: int = Field(10, ge=1)
    embedded_port: int = Field(0, ge=0, lt=65536)
    embedded_max_restarts: int = Field(
        5,
        ge=0,
        description="Restarts of a dead embedded PostgreSQL within 5 minutes "
        "before the node gives up (/healthz then fails)",
    )


class LimitsConfig(_Section):
    """``[limits]``: what the node accepts."""

    max_depth: int = Field(32, ge=4, le=256)
    future_skew_seconds: int = Field(600, ge=0)
    site_requests_per_s: float = Field(
        100.0,
        ge=0,
        description="Sustained requests/s per site and process (0: no limit)",
    )
    site_burst: int = Field(500, ge=1, description="Requests a site may send at once")
    blob_quota_bytes: int = Field(
        2 * 1024**3,
        ge=0,
        description="Bytes of blobs one site may have uploaded (0: no quota)",
    )
    event_retention_days: int = Field(
        90,
        ge=1,
        le=3650,
        description="Security and refusal events are kept this many days",
    )


class LogConfig(_Section):
    """``[log]``: the Merkle log writer."""

    writer: bool = Field(
        True, description="Compete for the log-writer lock in this process"
    )
    checkpoint_interval_ms: int = Field(1000, ge=10, le=600_000)
    batch_size: int = Field(5000, ge=1, le=100_000)


class FederationConfig(_Section):
    """``[federation]``: trust root and replication to peers."""

    roster_keys: list[str] = Field(
        default_factory=list,
        description="Pinned roster keys, each 'KEY_ID ALG PUBLIC_KEY' (base64url)",
    )
    roster_file: str = Field(
        "", description="A signed roster to install at start if newer"
    )
    accepted_algs: list[str] = Field(
        default_factory=list,
        description="Signature suites accepted while no roster is installed, e.g. "
        "['sm2-sm3'] under 密评 (empty: every built-in suite); an installed roster's "
        "accepted_algs/required_algs take over",
    )
    replicate: bool = Field(True, description="Run the push and catch-up loops")
    batch_size: int = Field(200, ge=1, le=2000)
    push_gather_ms: int = Field(
        100,
        ge=0,
        le=5000,
        description="A push batch of fewer than 16 items waits until its oldest item "
        "is this old, gathering what arrives meanwhile (fewer, fuller requests at low "
        "rates; 0: send at once)",
    )
    backoff_base_ms: int = Field(500, ge=10)
    backoff_max_s: float = Field(300.0, ge=0.1)
    request_timeout_s: float = Field(10.0, ge=0.1)
    pull_interval_ms: int = Field(5000, ge=50)
    witness_interval_ms: int = Field(10000, ge=50)


class WebhooksConfig(_Section):
    """``[webhooks]``: delivery of items to sites' own systems (``exchange webhook add``)."""

    enabled: bool = Field(True, description="Run the delivery loops in this process")
    poll_interval_ms: int = Field(
        2000, ge=50, description="Check for new items this often"
    )
    backoff_base_ms: int = Field(1000, ge=10, description="First retry delay")
    backoff_max_s: float = Field(600.0, ge=0.1, description="Longest retry delay")
    request_timeout_s: float = Field(10.0, ge=0.1)
    batch_size: int = Field(100, ge=1, le=1000)


class IngestConfig(_Section):
    """``[ingest]``: how pushes are checked."""

    verify_processes: int = Field(
        2,
        ge=0,
        le=64,
        description="Helper processes that parse and verify large push bodies, for the "
        "whole node (shared among --workers); 0: everything on the event loop",
    )
    offload_min_bytes: int = Field(
        32 * 1024, ge=0, description="Bodies at least this large go to a helper process"
    )


class SearchConfig(_Section):
    """``[search]``: the search index, built behind the log."""

    indexer: bool = Field(
        True, description="Compete for the indexer lock in this process"
    )
    indexer_process: bool = Field(
        True, description="Tokenize in a helper process (false: on the event loop)"
    )
    batch_size: int = Field(
        200, ge=1, le=5000, description="Most items per index transaction"
    )
    fresh_wait_s: float = Field(
        3.0,
        ge=0,
        description="How long a search waits for the index to reach the log head",
    )
    indexer_nice: int = Field(
        10,
        ge=0,
        le=19,
        description=(
            "CPU priority steps the indexer's tokenizer and (embedded) PostgreSQL "
            "backend yield to pushes; 0: the same priority"
        ),
    )


class NodeConfig(_Section):
    """The whole configuration of one node."""

    node: NodeSection = Field(default_factory=NodeSection)
    http: HttpConfig = Field(default_factory=HttpConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    federation: FederationConfig = Field(default_factory=FederationConfig)
    webhooks: WebhooksConfig = Field(default_factory=WebhooksConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    config_dir: str = Field("", exclude=True)

    @property
    def data_path(self) -> Path:
        """Absolute data folder."""
        p = Path(self.node.data_dir).expanduser()
        if not p.is_absolute():
            p = Path(self.config_dir or ".") / p
        return p.resolve()

    @property
    def key_path(self) -> Path:
        """Absolute path of the node key file."""
        p = Path(self.node.key_file).expanduser()
        return p if p.is_absolute() else self.data_path / p

    @property
    def listen_host_port(self) -> tuple[str, int]:
        """``http.listen`` split."""
        host, _, port = self.http.listen.rpartition(":")
        return host.strip("[]"), int(port)


_SPECIAL_ENV = {
    "EXCHANGE_DATABASE_URL": ("database", "url"),
    "EXCHANGE_DATABASE_READ_URL": ("database", "read_url"),
    "EXCHANGE_LISTEN": ("http", "listen"),
    "EXCHANGE_DATA_DIR": ("node", "data_dir"),
}
# Every section of NodeConfig (derived, so a new section is reachable by environment too).
_SECTIONS: dict[str, type[_Section]] = {
    name: f.annotation
    for name, f in NodeConfig.model_fields.items()
    if isinstance(f.annotation, type) and issubclass(f.annotation, _Section)
}


def _coerce(section: str, key: str, raw: str) -> Any:
    field = _SECTIONS[section].model_fields.get(key)
    if field is None:
        return raw
    ann = field.annotation
    if ann is int:
        try:
            return int(raw)
        except ValueError:
            return raw
    if ann is float:
        try:
            return float(raw)
        except ValueError:
            return raw
    if ann is bool:
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if ann == list[str]:
        return [p.strip() for p in raw.split(",") if p.strip()]
    return raw


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Apply ``EXCHANGE_*`` overrides; returns ``{"section.key": variable name}``."""
    sources: dict[str, str] = {}
    for name, value in environ.items():
        if not name.startswith("EXCHANGE_"):
            continue
        if name in _SPECIAL_ENV:
            section, key = _SPECIAL_ENV[name]
        else:
            rest = name[len("EXCHANGE_") :].lower()
            section, _, key = rest.partition("_")
            if section not in _SECTIONS or not key:
                continue
            if key not in _SECTIONS[section].model_fields:
                continue
        data.setdefault(section, {})[key] = _coerce(section, key, value)
        sources[f"{section}.{key}"] = name
    return sources


def load_config(
    path: Path | None = None,
    *,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    environ: Mapping[str, str] | None = None,
) -> NodeConfig:
    """Load, merge and validate the configuration.

    Args:
        path: TOML file; ``None`` means defaults only.
        overrides: Values from the command line, by section (win over everything).
        environ: The environment (``os.environ`` by default).

    Raises:
        ConfigError: unreadable file, TOML syntax error, or an invalid value; the message
            names the key path and what is wrong.
    """
    data: dict[str, Any] = {}
    config_dir = Path.cwd()
    if path is not None:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"config file {path} not found; create one with 'exchange node init'"
            ) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        config_dir = path.resolve().parent
    from_env = _apply_env(data, os.environ if environ is None else environ)
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update(
            {k: v for k, v in values.items() if v is not None}
        )
    data["config_dir"] = str(config_dir)
    try:
        return NodeConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            src = next(
                (
                    f" (set by {v})"
                    for k, v in from_env.items()
                    if loc == k or loc.startswith(k + ".")
                ),
                "",
            )
            problems.append(f"{loc}{src}: {err['msg']}")
        where = f" in {path}" if path else ""
        raise ConfigError(
            f"invalid configuration{where}: " + "; ".join(problems)
        ) from None


def env_value(name: str, default: str = "") -> str:
    """Read one ``EXCHANGE_*`` variable (for tools that have no config file)."""
    if not name.startswith("EXCHANGE_"):
        raise ValueError("only EXCHANGE_* variables are read")
    return os.environ.get(name, default)


def env_flag(name: str) -> bool:
    """True if ``EXCHANGE_*`` variable ``name`` is set to 1/true/yes."""
    return env_value(name).lower() in ("1", "true", "yes")


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process (workers, pg_dump): ours plus ``extra``.

    Args:
        extra: Variables to set or replace in the child, e.g. ``EXCHANGE_DATABASE_URL``
            for workers or ``PGPASSWORD`` for PostgreSQL's tools.
    """
    env = dict(os.environ)
    env.update(extra or {})
    return env
