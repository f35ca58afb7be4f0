"""The asyncpg pool(s) and the database's lifecycle.

:class:`Database` owns the write pool (and an optional read pool for a replica),
registers the JSON codecs, and exposes :meth:`Database.connect` for ad-hoc work. Store
classes take a ``Database`` and accept an optional ``conn`` so callers can compose
transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from exchange.errors import OperationalError
from schemas.errors import ErrorCode

from .embedded import EmbeddedPostgres
from .migrate import migrate

__all__ = ["Database", "ensure_database"]

_log = logging.getLogger(__name__)


async def _init_conn(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: orjson.dumps(v).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )
    await conn.set_type_codec(
        "json",
        encoder=lambda v: orjson.dumps(v).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )


async def ensure_database(url: str) -> None:
    """Create the database named in ``url`` if the server lacks it."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name or name == "postgres":
        return
    admin = urlunsplit(parts._replace(path="/postgres"))
    conn = await asyncpg.connect(admin)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname=$1", name)
        if not exists:
            quoted = '"' + name.replace('"', '""') + '"'
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f"CREATE DATABASE {quoted}")
    finally:
        await conn.close()


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool release without asyncpg's reset query (a round trip on every release).

    Pool connections never hold session state: settings are ``SET LOCAL``, advisory
    locks and ``LISTEN`` use dedicated connections, and an open transaction is still
    rolled back by the pool before this runs.
    """


class Database:
    """Connection pools for one node.

    Args:
        url: libpq URL of the primary.
        read_url: Optional URL of a read replica for read-heavy pulls.
        min_size: Pool minimum.
        max_size: Pool maximum.
    """

    def __init__(
        self, url: str, read_url: str = "", *, min_size: int = 2, max_size: int = 10
    ) -> None:
        self.url = url
        self.read_url = read_url
        self._min = min_size
        self._max = max_size
        self._pool: asyncpg.Pool | None = None
        self._read_pool: asyncpg.Pool | None = None
        self._relaxed_pool: asyncpg.Pool | None = None
        self.embedded: EmbeddedPostgres | None = None

    @classmethod
    def embedded_url(cls, data_dir: Path, port: int = 0) -> tuple[EmbeddedPostgres, str]:
        """Start (or reuse) the embedded server in ``data_dir/pg``; return it and its URL."""
        pg = EmbeddedPostgres(Path(data_dir) / "pg", port=port)
        pg.start()
        return pg, pg.url("exchange")

    async def open(self, *, run_migrations: bool = True) -> None:
        """Create the database if needed, migrate, and open the pools.

        Raises:
            OperationalError: the server cannot be reached, or the schema is too new.
        """
        try:
            await ensure_database(self.url)
            conn = await asyncpg.connect(self.url)
            try:
                if run_migrations:
                    await migrate(conn)
                else:
                    from .migrate import available_migrations, current_version

                    have = await current_version(conn)
                    newest = available_migrations()[-1].version
                    if have > newest:
                        raise OperationalError(
                            f"database schema {have} is newer than this program ({newest})",
                            code=ErrorCode.SCHEMA_TOO_NEW,
                        )
            finally:
                await conn.close()
            self._pool = await asyncpg.create_pool(
                self.url, min_size=self._min, max_size=self._max, init=_init_conn,
                reset=_keep_session,
            )
            self._relaxed_pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=4, init=_init_conn, reset=_keep_session,
                server_settings={"synchronous_commit": "off"},
            )
            if self.read_url:
                self._read_pool = await asyncpg.create_pool(
                    self.read_url, min_size=1, max_size=self._max, init=_init_conn,
                    reset=_keep_session,
                )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise OperationalError(
                f"cannot use the database: {exc}", code=ErrorCode.DATABASE_UNAVAILABLE
            ) from None

    async def close(self, *, grace: float = 10.0) -> None:
        """Close the pools: wait up to ``grace`` seconds for connections in use to come
        back, then close the rest (a stuck query must not keep the node from stopping)."""
        for pool in (self._pool, self._read_pool, self._relaxed_pool):
            if pool is not None:
                try:
                    await asyncio.wait_for(pool.close(), timeout=grace)
                except TimeoutError:
                    _log.warning("database connections still in use after %.0f s; "
                                 "closing them", grace)
                    pool.terminate()
        self._pool = self._read_pool = self._relaxed_pool = None

    @property
    def pool(self) -> asyncpg.Pool:
        """The primary pool (writes and consistent reads)."""
        if self._pool is None:
            raise OperationalError("database is not open", code=ErrorCode.DATABASE_UNAVAILABLE)
        return self._pool

    @property
    def relaxed_pool(self) -> asyncpg.Pool:
        """A small pool whose commits do not wait for the WAL flush.

        Only for writes whose loss in a crash is harmless (request nonces): one round
        trip and no fsync wait on the request path.
        """
        if self._relaxed_pool is None:
            raise OperationalError("database is not open", code=ErrorCode.DATABASE_UNAVAILABLE)
        return self._relaxed_pool

    @property
    def read_pool(self) -> asyncpg.Pool:
        """The replica pool if configured, else the primary."""
        return self._read_pool or self.pool

    @contextlib.asynccontextmanager
    async def connect(self, conn: asyncpg.Connection | None = None) -> AsyncIterator[Any]:
        """Yield ``conn`` if given, else a pooled connection."""
        if conn is not None:
            yield conn
            return
        async with self.pool.acquire() as c:
            yield c

    def pool_stats(self) -> dict[str, int]:
        """Size and idle connections of the primary pool."""
        if self._pool is None:
            return {"size": 0, "idle": 0, "max": self._max}
        return {
            "size": self._pool.get_size(),
            "idle": self._pool.get_idle_size(),
            "max": self._max,
        }
