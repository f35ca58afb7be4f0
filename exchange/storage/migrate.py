"""Forward-only, numbered SQL migrations.

Files ``migrations/NNNN_name.sql`` are applied in order, each in its own transaction
together with its row in ``schema_migrations``. Concurrent starters serialise on an
advisory lock. A database that has migrations this code does not know is refused
(``schema_too_new``): never run an older node against a newer schema.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from exchange.errors import OperationalError
from schemas.errors import ErrorCode

__all__ = ["Migration", "available_migrations", "current_version", "migrate"]

_log = logging.getLogger(__name__)
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x45584D47  # "EXMG"


@dataclass(frozen=True)
class Migration:
    """One numbered migration file."""

    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    """Every migration shipped with this code, in order."""
    found = []
    for entry in resources.files("exchange.storage.migrations").iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append(
                Migration(int(m.group(1)), m.group(2), entry.read_text("utf-8"))
            )
    found.sort(key=lambda mg: mg.version)
    for i, mg in enumerate(found, start=1):
        if mg.version != i:
            raise RuntimeError(f"migration numbering has a gap at {i:04d}")
    return found


async def current_version(conn: asyncpg.Connection) -> int:
    """The highest applied migration (0 on an empty database)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    return int(
        await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations")
    )


async def migrate(conn: asyncpg.Connection, *, target: int | None = None) -> list[int]:
    """Apply pending migrations up to ``target`` (all by default).

    Returns:
        The versions applied now.

    Raises:
        OperationalError: (``schema_too_new``) the database is newer than this code.
    """
    migrations = available_migrations()
    newest = migrations[-1].version if migrations else 0
    target = newest if target is None else target
    applied: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version int PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        have = await current_version(conn)
        if have > newest:
            raise OperationalError(
                f"the database is at schema version {have}, newer than this program "
                f"knows ({newest}); upgrade the program, never downgrade a database",
                code=ErrorCode.SCHEMA_TOO_NEW,
            )
        for mg in migrations:
            if mg.version <= have or mg.version > target:
                continue
            async with conn.transaction():
                await conn.execute(mg.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    mg.version,
                    mg.name,
                )
            _log.info("applied migration %04d_%s", mg.version, mg.name)
            applied.append(mg.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied
