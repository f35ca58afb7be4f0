"""One connection to a site's own database, PostgreSQL or MySQL/MariaDB, same surface.

The SQL adapter (:mod:`adapters.sql_table`) writes its queries once against
:class:`SqlConnection`; the two dialects differ only in identifier quoting, parameter
markers, ``ANY``/``IN``, and upsert syntax, which each subclass supplies.

Drivers: ``asyncpg`` for PostgreSQL (already the node's driver) and ``aiomysql`` for
MySQL/MariaDB. aiomysql was chosen over asyncmy because it is pure Python on top of
PyMySQL (installs on any Python without a compiler or a matching wheel), is maintained
by aio-libs like aiohttp, and speaks the MariaDB protocol that PyMySQL has long been
tested against; polling a table every few seconds needs no Cython speed-up.

Failure model: the connection is opened lazily and kept. Any error that means the
server or the link went away (PostgreSQL SQLSTATE classes 08 and 57, MySQL client
errors 2002-2013 and ``KILL``) closes it and raises
``AdapterError(retryable=True)``; the next call reconnects. Errors in the SQL itself
(unknown table or column) raise ``AdapterError(retryable=False)`` naming the problem,
since retrying cannot fix a config. Messages never include the password.
"""

from __future__ import annotations

import abc
import asyncio
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from adapters.base import AdapterError

__all__ = [
    "MySqlConnection",
    "PgConnection",
    "SqlConnection",
    "open_connection",
    "safe_url",
]

_IDENT = re.compile(
    r"^[A-Za-z_][A-Za-z0-9_$]{0,62}(?:\.[A-Za-z_][A-Za-z0-9_$]{0,62})?$"
)


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    p = urlsplit(url)
    host = p.hostname or ""
    port = f":{p.port}" if p.port else ""
    user = f"{p.username}@" if p.username else ""
    return f"{p.scheme}://{user}{host}{port}{p.path}"


class SqlConnection(abc.ABC):
    """A lazily opened connection with dialect helpers.

    Args:
        url: ``postgresql://…`` or ``mysql://…`` / ``mariadb://…``.
        password: Overrides the URL's password (read from ``password_file``).
        label: Shown to the database as the client name, where supported.
    """

    dialect = ""

    def __init__(
        self, url: str, *, password: str | None = None, label: str = ""
    ) -> None:
        self.url = url
        self.password = password
        self.label = label
        self.where = safe_url(url)

    def quote(self, name: str) -> str:
        """Quote a (possibly schema-qualified) identifier; refuse anything odd.

        Raises:
            AdapterError: the name is not a plain identifier.
        """
        if not _IDENT.match(name):
            raise AdapterError(
                f"{name!r} is not a plain table or column name "
                "(letters, digits, _ and one optional schema prefix)"
            )
        q = self._quote_char
        return ".".join(f"{q}{part}{q}" for part in name.split("."))

    _quote_char = '"'

    @abc.abstractmethod
    def param(self, n: int) -> str:
        """Marker of the ``n``-th (1-based) parameter."""

    @abc.abstractmethod
    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a query and return its rows as tuples.

        Raises:
            AdapterError: retryable when the server or link failed.
        """

    @abc.abstractmethod
    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        """Run a statement (autocommit).

        Raises:
            AdapterError: retryable when the server or link failed.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the connection if open."""


class PgConnection(SqlConnection):
    """PostgreSQL through asyncpg."""

    dialect = "postgresql"

    def __init__(
        self, url: str, *, password: str | None = None, label: str = ""
    ) -> None:
        super().__init__(url, password=password, label=label)
        self._conn: Any = None

    def param(self, n: int) -> str:
        return f"${n}"

    async def _connect(self) -> Any:
        import asyncpg

        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        self._conn = None
        try:
            self._conn = await asyncpg.connect(
                self.url.replace("postgres+asyncpg://", "postgresql://"),
                password=self.password,
                timeout=15,
                server_settings={
                    "application_name": self.label[:63] or "congress-exchange"
                },
            )
        except Exception as exc:
            raise self._error(exc, "connect to") from None
        return self._conn

    def _error(self, exc: BaseException, doing: str) -> AdapterError:
        import asyncpg

        state = str(getattr(exc, "sqlstate", "") or "")
        closed = self._conn is None or self._conn.is_closed()
        gone = (
            (closed and state[:2] not in ("28", "42"))  # not a bad password or query
            # A termination message racing a query can leave asyncpg's protocol in
            # an impossible state; the connection is useless either way.
            or isinstance(
                exc,
                (
                    OSError,
                    asyncio.TimeoutError,
                    asyncpg.InterfaceError,
                    asyncpg.InternalClientError,
                ),
            )
            or state[:2] in ("08", "57", "53", "40")
            or state == "3D000"  # database does not exist (yet): may be created later
        )
        if gone:
            self._drop()
            return AdapterError(
                f"cannot {doing} the database at {self.where}: "
                f"{type(exc).__name__}: {exc}; will retry",
                retryable=True,
            )
        return AdapterError(
            f"the database at {self.where} refused the query: {exc} "
            "(check the table and column names in the adapter's config)",
            retryable=False,
        )

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        conn = await self._connect()
        try:
            rows = await conn.fetch(sql, *args)
        except Exception as exc:
            raise self._error(exc, "read from") from None
        return [tuple(r.values()) for r in rows]

    async def param_types(self, sql: str) -> list[str]:
        """PostgreSQL type names of a statement's parameters (``timestamptz``).

        Raises:
            AdapterError: as :meth:`fetch`.
        """
        conn = await self._connect()
        try:
            stmt = await conn.prepare(sql)
        except Exception as exc:
            raise self._error(exc, "prepare a statement on") from None
        # Arrays are reported as "_<element>" whatever asyncpg calls them.
        return [
            "_" + t.name.lstrip("_").removesuffix("[]") if t.kind == "array" else t.name
            for t in stmt.get_parameters()
        ]

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        conn = await self._connect()
        try:
            await conn.execute(sql, *args)
        except Exception as exc:
            raise self._error(exc, "write to") from None

    async def backend_pid(self) -> int | None:
        """The server process id of the open connection (for operators and tests)."""
        return int(self._conn.get_server_pid()) if self._conn is not None else None

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 5)
            except Exception:  # a dead link cannot be closed politely
                conn.terminate()


# MySQL client/server errors that mean "the link or the server went away; try later".
_MYSQL_RETRYABLE = {
    1040,  # too many connections
    1053,  # server shutdown in progress
    1205,  # lock wait timeout
    1213,  # deadlock
    1317,  # query interrupted
    1927,  # connection was killed (MariaDB)
    2002,
    2003,
    2005,
    2006,
    2013,
    2055,  # cannot connect / gone away / lost
}


class MySqlConnection(SqlConnection):
    """MySQL / MariaDB through aiomysql."""

    dialect = "mysql"
    _quote_char = "`"

    def __init__(
        self, url: str, *, password: str | None = None, label: str = ""
    ) -> None:
        super().__init__(url, password=password, label=label)
        self._conn: Any = None
        self.thread_id: int | None = None

    def param(self, n: int) -> str:
        return "%s"

    async def _connect(self) -> Any:
        try:
            import aiomysql
        except ImportError:
            raise AdapterError(
                "MySQL/MariaDB needs the aiomysql package: "
                "pip install 'congress-exchange[sql]'"
            ) from None
        if self._conn is not None and not self._conn.closed:
            return self._conn
        self._conn = None
        p = urlsplit(self.url)
        password = (
            self.password if self.password is not None else unquote(p.password or "")
        )
        try:
            self._conn = await aiomysql.connect(
                host=p.hostname or "127.0.0.1",
                port=p.port or 3306,
                user=unquote(p.username or "root"),
                password=password,
                db=p.path.lstrip("/") or None,
                charset="utf8mb4",
                autocommit=True,
                connect_timeout=15,
                program_name=self.label[:32] or "congress-exchange",
            )
        except Exception as exc:
            raise self._error(exc, "connect to") from None
        self.thread_id = self._conn.thread_id()
        return self._conn

    def _error(self, exc: BaseException, doing: str) -> AdapterError:
        import pymysql

        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        gone = (
            isinstance(exc, (OSError, asyncio.TimeoutError, pymysql.err.InterfaceError))
            or code in _MYSQL_RETRYABLE
            or (isinstance(exc, pymysql.err.OperationalError) and code is None)
        )
        if gone:
            self._drop()
            return AdapterError(
                f"cannot {doing} the database at {self.where}: "
                f"{type(exc).__name__}: {exc}; will retry",
                retryable=True,
            )
        return AdapterError(
            f"the database at {self.where} refused the query: {exc} "
            "(check the table and column names in the adapter's config)",
            retryable=False,
        )

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        conn = await self._connect()
        try:
            async with conn.cursor() as cur:
                await cur.execute(sql, tuple(args) or None)
                rows = await cur.fetchall()
        except Exception as exc:
            raise self._error(exc, "read from") from None
        return [tuple(r) for r in rows]

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        conn = await self._connect()
        try:
            async with conn.cursor() as cur:
                await cur.execute(sql, tuple(args) or None)
        except Exception as exc:
            raise self._error(exc, "write to") from None

    async def close(self) -> None:
        self._drop()


def open_connection(
    url: str, *, password: str | None = None, label: str = ""
) -> SqlConnection:
    """The connection class for ``url``'s scheme (not yet connected).

    Raises:
        AdapterError: an unsupported scheme.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("postgresql", "postgres", "postgres+asyncpg"):
        return PgConnection(url, password=password, label=label)
    if scheme in ("mysql", "mariadb", "mysql+aiomysql"):
        return MySqlConnection(url, password=password, label=label)
    raise AdapterError(
        f"unsupported database URL scheme {scheme!r}: use postgresql://… or mysql://… "
        "(MariaDB too)"
    )
