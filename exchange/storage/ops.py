"""Operator queries: who writes the log, what a database holds, whether it is in use.

Used by ``exchange doctor``, ``exchange backup``/``restore`` and the multi-worker tests.
Every function takes a plain connection, because these tools often run before (or
without) a node's pools: against a database that may be empty, older or newer than this
program.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import asyncpg

from .migrate import current_version

__all__ = [
    "DatabaseFacts",
    "LockHolder",
    "database_facts",
    "installed_roster",
    "other_sessions",
    "public_tables",
    "reset_public_schema",
    "writer_lock_holder",
]

_PID_SUFFIX = re.compile(r"-(\d+)$")


@dataclass(frozen=True)
class LockHolder:
    """The session holding an advisory lock."""

    backend_pid: int
    application_name: str

    @property
    def process_pid(self) -> int | None:
        """The OS process id, when the holder put it at the end of its application name.

        The log writer names its lock connection ``exchange-log-<node>-<pid>``.
        """
        m = _PID_SUFFIX.search(self.application_name)
        return int(m.group(1)) if m else None


@dataclass(frozen=True)
class DatabaseFacts:
    """What a node's database holds, read in one snapshot."""

    schema_version: int
    items: int
    log_size: int
    log_root: bytes | None
    checkpoint_size: int
    checkpoint_root: bytes | None
    checkpoint_note: str
    sites: int
    tables: int

    def as_json(self) -> dict[str, Any]:
        """A JSON-able view (hashes as hex)."""
        return {
            "schema_version": self.schema_version,
            "items": self.items,
            "log_size": self.log_size,
            "log_root": self.log_root.hex() if self.log_root else None,
            "checkpoint": {
                "size": self.checkpoint_size,
                "root": self.checkpoint_root.hex() if self.checkpoint_root else None,
                "note": self.checkpoint_note,
            },
            "sites": self.sites,
            "tables": self.tables,
        }


async def writer_lock_holder(conn: asyncpg.Connection, key: int) -> LockHolder | None:
    """The session of this database that holds the session advisory lock ``key``.

    Args:
        conn: Any connection to the database.
        key: The 64-bit lock key given to ``pg_advisory_lock``.
    """
    row = await conn.fetchrow(
        """SELECT l.pid, coalesce(a.application_name, '') AS app
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
              AND l.classid::bigint = $1 AND l.objid::bigint = $2
              AND l.database = (SELECT oid FROM pg_database
                                 WHERE datname = current_database())""",
        (key >> 32) & 0xFFFFFFFF,
        key & 0xFFFFFFFF,
    )
    return LockHolder(int(row["pid"]), str(row["app"])) if row else None


async def _exists(conn: asyncpg.Connection, table: str) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table))


async def public_tables(conn: asyncpg.Connection) -> int:
    """Number of tables in the ``public`` schema (0: an empty database)."""
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        )
    )


async def database_facts(conn: asyncpg.Connection) -> DatabaseFacts:
    """Schema version, item count, log state and latest checkpoint.

    Works on any schema version (tables a version lacks count as empty). Call it inside
    a ``REPEATABLE READ`` transaction to read one consistent snapshot.
    """
    version = await current_version(conn)
    items = sites = 0
    log_size, log_root = 0, None
    cp_size, cp_root, cp_note = 0, None, ""
    if await _exists(conn, "items"):
        items = int(await conn.fetchval("SELECT count(*) FROM items"))
    if await _exists(conn, "sites"):
        sites = int(await conn.fetchval("SELECT count(*) FROM sites"))
    if await _exists(conn, "log_state"):
        row = await conn.fetchrow("SELECT size, root FROM log_state WHERE id = 1")
        if row is not None:
            log_size, log_root = int(row["size"]), bytes(row["root"])
    if await _exists(conn, "log_checkpoints"):
        row = await conn.fetchrow(
            "SELECT size, root, note FROM log_checkpoints ORDER BY size DESC LIMIT 1"
        )
        if row is not None:
            cp_size, cp_root, cp_note = (
                int(row["size"]),
                bytes(row["root"]),
                row["note"],
            )
    return DatabaseFacts(
        schema_version=version,
        items=items,
        log_size=log_size,
        log_root=log_root,
        checkpoint_size=cp_size,
        checkpoint_root=cp_root,
        checkpoint_note=cp_note,
        sites=sites,
        tables=await public_tables(conn),
    )


async def installed_roster(
    conn: asyncpg.Connection,
) -> tuple[int, dict[str, Any]] | None:
    """The installed signed roster and its version, if any (on any schema version)."""
    if not await _exists(conn, "roster"):
        return None
    row = await conn.fetchrow(
        "SELECT version, signed::text AS signed FROM roster WHERE id = 1"
    )
    return (int(row["version"]), json.loads(row["signed"])) if row else None


async def other_sessions(conn: asyncpg.Connection) -> list[str]:
    """Application names of the other sessions connected to this database."""
    rows = await conn.fetch(
        """SELECT coalesce(application_name, '') AS app FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid()
              AND backend_type = 'client backend'"""
    )
    return [str(r["app"]) or "(unnamed)" for r in rows]


async def reset_public_schema(conn: asyncpg.Connection) -> None:
    """Drop everything in the ``public`` schema (restore over an existing database)."""
    async with conn.transaction():
        await conn.execute("DROP SCHEMA public CASCADE")
        await conn.execute("CREATE SCHEMA public")
