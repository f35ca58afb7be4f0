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

__all__ = [
    "FIXED_CONNECTIONS",
    "RELAXED_POOL",
    "UNAVAILABLE_ERRORS",
    "Database",
    "connections_needed",
    "embedded_max_connections",
    "ensure_database",
    "fit_pool",
]

_log = logging.getLogger(__name__)

UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.OperatorInterventionError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
    # A connection that died mid-protocol ("cannot switch to state ..."): the server went
    # away under it, not a bug of ours.
    asyncpg.InternalClientError,
)
"""Exceptions meaning "the database is down or restarting": answered 503, retried."""


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


RELAXED_POOL = 4
"""Connections of the small ``synchronous_commit = off`` pool (request nonces)."""
FIXED_CONNECTIONS = 7
"""Dedicated connections of a serving process besides its pools: the notifier, the log
writer's, the indexer's and the catch-up puller's leader locks, the push and webhook key
locks, one spare."""
_HEADROOM = 3  # operator commands (exchange site add ...) and psql


def connections_needed(workers: int, pool_max: int) -> int:
    """Connections that ``workers`` serving processes with pools of ``pool_max`` may hold."""
    return workers * (pool_max + RELAXED_POOL + FIXED_CONNECTIONS)


def embedded_max_connections(workers: int, pool_max: int) -> int:
    """``max_connections`` for an embedded server of a node with ``workers`` processes:
    PostgreSQL's default 200, raised to fit the pools and operator commands."""
    return max(200, connections_needed(workers, pool_max) + 3 + 2 * _HEADROOM)


async def fit_pool(
    url: str, *, workers: int, pool_min: int, pool_max: int, node_id: str
) -> int:
    """The pool size that lets ``workers`` processes of this node fit the server.

    Reads ``max_connections`` and ``superuser_reserved_connections`` and counts the
    connections others hold now (other nodes, other programs; not this node's own).
    Returns ``pool_max`` when it fits, else the largest pool that does (logged).

    Raises:
        OperationalError: not even a pool of ``pool_min`` fits; the message says what
            to change.
    """
    try:
        conn = await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return pool_max  # Database.open says what is wrong with the server
    try:
        max_conn = int(await conn.fetchval("SHOW max_connections"))
        reserved = int(await conn.fetchval("SHOW superuser_reserved_connections"))
        others = int(
            await conn.fetchval(
                """SELECT count(*) FROM pg_stat_activity
               WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
                 AND application_name NOT LIKE $1""",
                f"%-{node_id}-%",
            )
        )
    finally:
        await conn.close()
    room = max_conn - reserved - others - _HEADROOM
    if connections_needed(workers, pool_max) <= room:
        return pool_max
    fitted = room // max(workers, 1) - RELAXED_POOL - FIXED_CONNECTIONS
    if fitted < max(pool_min, 1):
        raise OperationalError(
            f"数据库连接不够 / not enough database connections: PostgreSQL allows "
            f"max_connections={max_conn} ({reserved} reserved, {others} in use by others), "
            f"room for {room}; {workers} worker(s) need at least "
            f"{connections_needed(workers, max(pool_min, 1))} "
            f"({max(pool_min, 1)} pooled + {RELAXED_POOL + FIXED_CONNECTIONS} others each). "
            "Raise max_connections on the server, or lower --workers or [database] pool_min",
            code=ErrorCode.DATABASE_UNAVAILABLE,
        )
    _log.warning(
        "database pools reduced to %d connections per worker (pool_max %d): max_connections="
        "%d, %d in use by others, %d worker(s)",
        fitted,
        pool_max,
        max_conn,
        others,
        workers,
    )
    return fitted


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
        self,
        url: str,
        read_url: str = "",
        *,
        min_size: int = 2,
        max_size: int = 10,
        app_name: str = "",
    ) -> None:
        self.url = url
        self.read_url = read_url
        self._min = min_size
        self._max = max_size
        # Named in pg_stat_activity, so connection budgets tell a node's own from others'.
        self._settings = {"application_name": app_name} if app_name else {}
        self._pool: asyncpg.Pool | None = None
        self._read_pool: asyncpg.Pool | None = None
        self._relaxed_pool: asyncpg.Pool | None = None
        self.embedded: EmbeddedPostgres | None = None

    @classmethod
    def embedded_url(
        cls, data_dir: Path, port: int = 0
    ) -> tuple[EmbeddedPostgres, str]:
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
                self.url,
                min_size=self._min,
                max_size=self._max,
                init=_init_conn,
                reset=_keep_session,
                server_settings=self._settings,
            )
            self._relaxed_pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=RELAXED_POOL,
                init=_init_conn,
                reset=_keep_session,
                server_settings={**self._settings, "synchronous_commit": "off"},
            )
            if self.read_url:
                self._read_pool = await asyncpg.create_pool(
                    self.read_url,
                    min_size=1,
                    max_size=self._max,
                    init=_init_conn,
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
                    _log.warning(
                        "database connections still in use after %.0f s; closing them",
                        grace,
                    )
                    pool.terminate()
        self._pool = self._read_pool = self._relaxed_pool = None

    @property
    def pool(self) -> asyncpg.Pool:
        """The primary pool (writes and consistent reads)."""
        if self._pool is None:
            raise OperationalError(
                "database is not open", code=ErrorCode.DATABASE_UNAVAILABLE
            )
        return self._pool

    @property
    def relaxed_pool(self) -> asyncpg.Pool:
        """A small pool whose commits do not wait for the WAL flush.

        Only for writes whose loss in a crash is harmless (request nonces): one round
        trip and no fsync wait on the request path.
        """
        if self._relaxed_pool is None:
            raise OperationalError(
                "database is not open", code=ErrorCode.DATABASE_UNAVAILABLE
            )
        return self._relaxed_pool

    @property
    def read_pool(self) -> asyncpg.Pool:
        """The replica pool if configured, else the primary."""
        return self._read_pool or self.pool

    @contextlib.asynccontextmanager
    async def connect(
        self, conn: asyncpg.Connection | None = None
    ) -> AsyncIterator[Any]:
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
