"""Backups of a node's database, with a signed manifest, and their restore.

Design
------
A backup is one tar file holding ``database.dump`` (``pg_dump`` custom format) and
``manifest.json``: the node's id and public key, the schema version, the item count, the
log's size and root, the latest signed checkpoint (size, root and the signed note), the
largest size this node had signed by then, and the dump's size and SHA-256. The manifest
is signed with the node key (context ``congress-exchange/backup-manifest/v1``), and the
facts in it are read in the very snapshot that ``pg_dump`` dumps
(``pg_export_snapshot()``), so they describe exactly what the dump holds — while the node
keeps running.

A restore first checks the file: the manifest's signature must verify with *this*
node's key, the node id must be this node's, and the dump's SHA-256 must match. Any
mismatch (a damaged or altered file, another node's backup) is refused unless forced; a
backup from a newer schema than this program knows is refused always. It then refuses
a database that other sessions use (stop the node first) or that already holds data
(unless told to replace it), restores in one transaction, and compares the restored
facts with the manifest.

The log's own rollback guard stays in force after a restore: the dump contains the
checkpoints signed up to the backup, the data folder may remember a larger one, and the
witnesses tell a restarted node how far they saw it sign; the sequencer signs nothing
smaller than the largest of these.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import asyncpg

from exchange.config import NodeConfig
from exchange.core.roster import sign_document, verify_document
from exchange.core.signing import PrivateKey, load_private_key
from exchange.errors import ConfigError, OperationalError, VerificationError
from exchange.storage.database import ensure_database
from exchange.storage.dump import run_dump, run_restore
from exchange.storage.embedded import EmbeddedPostgres
from exchange.storage.migrate import available_migrations
from exchange.storage.ops import (
    DatabaseFacts,
    database_facts,
    other_sessions,
    public_tables,
    reset_public_schema,
)
from schemas.errors import ErrorCode

__all__ = [
    "CONTEXT_BACKUP",
    "FORMAT",
    "Progress",
    "RestoreReport",
    "create_backup",
    "describe",
    "read_backup",
    "restore_backup",
    "target_database",
]

CONTEXT_BACKUP = b"congress-exchange/backup-manifest/v1\n"
FORMAT = "congress-exchange-backup/1"
_MANIFEST, _DUMP = "manifest.json", "database.dump"
_HEAD_FILE = "log-head.json"  # the sequencer's record of the largest size it signed

Progress = Callable[[str, int, int | None], None]


def _no_progress(what: str, done: int, total: int | None) -> None:
    return None


def _program_version() -> str:
    try:
        return version("congress-exchange")
    except PackageNotFoundError:
        return "unknown"


def _signed_on_disk(cfg: NodeConfig) -> int:
    try:
        return int(json.loads((cfg.data_path / _HEAD_FILE).read_text())["size"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


@contextlib.asynccontextmanager
async def target_database(cfg: NodeConfig) -> AsyncIterator[str]:
    """Yield the URL of the node's database, starting the embedded server if needed.

    An embedded server that this started is stopped again on exit; one the running node
    started is left alone.
    """
    if cfg.database.url:
        yield cfg.database.url
        return
    import asyncio

    pg = EmbeddedPostgres(cfg.data_path / "pg", port=cfg.database.embedded_port)
    await asyncio.to_thread(pg.start)
    try:
        yield pg.url("exchange")
    finally:
        if pg.started_here:
            await asyncio.to_thread(pg.stop)


def _sha256(path: Path, progress: Progress) -> str:
    h = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            done += len(chunk)
            if done % (64 << 20) < len(chunk):
                progress("checksummed (bytes)", done, total)
    progress("checksummed (bytes)", total, total)
    return h.hexdigest()


def _manifest(
    cfg: NodeConfig,
    key: PrivateKey,
    facts: DatabaseFacts,
    server: str,
    tool: str,
    size: int,
    digest: str,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "node": {
            "id": cfg.node.id,
            "key_id": key.key_id,
            "alg": key.alg,
            "public_key": key.public_key.b64(),
        },
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "program_version": _program_version(),
        "schema_version": facts.schema_version,
        "items": facts.items,
        "sites": facts.sites,
        "tables": facts.tables,
        "log": {
            "size": facts.log_size,
            "root": facts.log_root.hex() if facts.log_root else None,
        },
        "checkpoint": {
            "size": facts.checkpoint_size,
            "root": facts.checkpoint_root.hex() if facts.checkpoint_root else None,
            "note": facts.checkpoint_note,
        },
        "signed_floor": max(facts.checkpoint_size, _signed_on_disk(cfg)),
        "postgres": {"server": server, "pg_dump": tool},
        "dump": {"name": _DUMP, "bytes": size, "sha256": digest},
    }


async def create_backup(
    cfg: NodeConfig, out: Path, progress: Progress = _no_progress
) -> dict[str, Any]:
    """Dump the node's database to ``out`` with a signed manifest; returns the manifest.

    Raises:
        ConfigError: the node key is missing or unusable, or ``out`` exists.
        OperationalError: the database or ``pg_dump`` failed.
    """
    out = Path(out).resolve()
    if out.exists():
        raise ConfigError(f"{out} already exists; choose a new file name")
    key = load_private_key(cfg.key_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    async with target_database(cfg) as url:
        conn = await asyncpg.connect(url)
        try:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
                facts = await database_facts(conn)
                if facts.schema_version == 0:
                    raise ConfigError("the database is empty: nothing to back up")
                server = str(await conn.fetchval("SHOW server_version"))
                major = int(await conn.fetchval("SHOW server_version_num")) // 10000
                with tempfile.TemporaryDirectory(
                    dir=out.parent, prefix=".backup-"
                ) as tmp:
                    dump = Path(tmp) / _DUMP
                    tool = await run_dump(
                        url,
                        dump,
                        server_major=major,
                        snapshot=snapshot,
                        tables=facts.tables,
                        progress=lambda d, t: progress("tables dumped", d, t),
                    )
                    size = dump.stat().st_size
                    digest = _sha256(dump, progress)
                    manifest = _manifest(cfg, key, facts, server, tool, size, digest)
                    signed = sign_document(manifest, key, CONTEXT_BACKUP)
                    part = out.with_name(out.name + ".part")
                    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                    with (
                        os.fdopen(fd, "wb") as raw,
                        tarfile.open(fileobj=raw, mode="w") as tar,
                    ):
                        body = json.dumps(signed, ensure_ascii=False, indent=2).encode()
                        info = tarfile.TarInfo(_MANIFEST)
                        info.size, info.mtime, info.mode = (
                            len(body),
                            int(time.time()),
                            0o600,
                        )
                        tar.addfile(info, io.BytesIO(body))
                        dinfo = tar.gettarinfo(str(dump), arcname=_DUMP)
                        dinfo.mode, dinfo.uid, dinfo.gid, dinfo.uname, dinfo.gname = (
                            0o600,
                            0,
                            0,
                            "",
                            "",
                        )
                        with open(dump, "rb") as src:
                            tar.addfile(dinfo, src)
                        tar.close()
                        raw.flush()
                        os.fsync(raw.fileno())
                    os.replace(part, out)
        finally:
            await conn.close()
    return manifest


@dataclass
class RestoreReport:
    """What a restore found and did."""

    manifest: dict[str, Any]
    problems: list[str]
    restored: bool = False
    facts: DatabaseFacts | None = None
    signed_on_disk: int = 0


def read_backup(
    path: Path,
    key: PrivateKey | None,
    node_id: str,
    work: Path,
    progress: Progress = _no_progress,
) -> tuple[dict[str, Any], list[str], Path]:
    """Open a backup, check it, and extract its dump into ``work``.

    Returns:
        The manifest, the problems found (empty: it is this node's, intact), and the
        extracted dump's path.

    Raises:
        VerificationError: not a backup file.
    """
    problems: list[str] = []
    try:
        tar = tarfile.open(path, mode="r:")
    except (tarfile.TarError, OSError) as exc:
        raise VerificationError(
            f"{path} is not a backup made by 'exchange backup': {exc}",
            code=ErrorCode.BAD_SIGNATURE,
        ) from None
    with tar:
        if _MANIFEST not in tar.getnames():
            raise VerificationError(
                f"{path} is not a backup made by 'exchange backup' (it "
                f"holds no {_MANIFEST})",
                code=ErrorCode.BAD_SIGNATURE,
            )
        try:
            signed = json.loads(tar.extractfile(_MANIFEST).read())  # type: ignore[union-attr]
            manifest = signed["document"]
            if manifest.get("format") != FORMAT:
                raise ValueError(f"format {manifest.get('format')!r}")
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise VerificationError(
                f"{path} has no readable manifest ({exc})", code=ErrorCode.BAD_SIGNATURE
            ) from None
        if key is None:
            problems.append("this node has no key to check the manifest's signature")
        else:
            try:
                verify_document(
                    signed,
                    {key.key_id: key.public_key},
                    CONTEXT_BACKUP,
                    "the backup manifest",
                )
            except VerificationError:
                problems.append(
                    f"the manifest is not signed by this node's key {key.key_id} "
                    f"(signed by {signed.get('sig', {}).get('key')!r}): altered, or made "
                    "by another node"
                )
        theirs = manifest.get("node", {}).get("id")
        if theirs != node_id:
            problems.append(
                f"the backup is of node {theirs!r}, this is node {node_id!r}"
            )
        dump = work / _DUMP
        h = hashlib.sha256()
        try:
            src = tar.extractfile(_DUMP)
        except KeyError:
            src = None
        if src is None:
            raise VerificationError(
                f"{path} holds no {_DUMP}", code=ErrorCode.BAD_SIGNATURE
            )
        total = int(manifest.get("dump", {}).get("bytes") or 0) or None
        done = 0
        with src, open(dump, "wb") as f:
            while chunk := src.read(1 << 20):
                h.update(chunk)
                f.write(chunk)
                done += len(chunk)
                if done % (64 << 20) < len(chunk):
                    progress("extracted (bytes)", done, total)
        if h.hexdigest() != manifest.get("dump", {}).get("sha256"):
            problems.append(
                "the dump's SHA-256 differs from the manifest: the file was "
                "damaged or altered"
            )
    return manifest, problems, dump


async def restore_backup(
    cfg: NodeConfig,
    path: Path,
    *,
    force: bool = False,
    replace: bool = False,
    check_only: bool = False,
    progress: Progress = _no_progress,
) -> RestoreReport:
    """Check a backup and restore it into this node's database.

    Args:
        cfg: This node's configuration (its database and key).
        path: The backup file.
        force: Restore even if the manifest does not match this node or the dump.
        replace: Overwrite a database that already holds data.
        check_only: Check the file only.
        progress: Progress callback ``(what, done, total)``.

    Raises:
        VerificationError: the file is not this node's intact backup (and not forced).
        OperationalError: ``schema_too_new``, the database is in use, or the restore
            failed (then nothing was written).
        ConfigError: the database already holds data and ``replace`` is not set.
    """
    key: PrivateKey | None
    try:
        key = load_private_key(cfg.key_path)
    except ConfigError:
        if not force:
            raise
        key = None
    with tempfile.TemporaryDirectory(prefix="exchange-restore-") as tmp:
        manifest, problems, dump = read_backup(
            Path(path), key, cfg.node.id, Path(tmp), progress
        )
        report = RestoreReport(manifest, problems, signed_on_disk=_signed_on_disk(cfg))
        newest = available_migrations()[-1].version
        schema = int(manifest.get("schema_version", 0))
        if schema > newest:
            raise OperationalError(
                f"the backup is at schema version {schema}, newer than this program knows "
                f"({newest}); restore it with the release that made it, or a newer one",
                code=ErrorCode.SCHEMA_TOO_NEW,
            )
        if problems and not force:
            raise VerificationError(
                "refusing to restore: "
                + "; ".join(problems)
                + " (pass --force to restore it anyway)",
                code=ErrorCode.BAD_SIGNATURE,
            )
        if check_only:
            return report
        async with target_database(cfg) as url:
            await ensure_database(url)
            conn = await asyncpg.connect(url)
            try:
                others = await other_sessions(conn)
                if others:
                    raise OperationalError(
                        f"the database is in use by {len(others)} other session(s) "
                        f"({', '.join(sorted(set(others))[:5])}): stop the node and all its "
                        "workers first",
                        code=ErrorCode.DATABASE_UNAVAILABLE,
                    )
                if await public_tables(conn):
                    held = await database_facts(conn)
                    if not replace:
                        raise ConfigError(
                            f"the database already holds a node's data (schema "
                            f"{held.schema_version}, {held.items} items); restore into an "
                            "empty database, or pass --replace to overwrite it (back it "
                            "up first)"
                        )
                    await reset_public_schema(conn)
                major = int(await conn.fetchval("SHOW server_version_num")) // 10000
            finally:
                await conn.close()
            await run_restore(
                url,
                dump,
                server_major=major,
                tables=int(manifest.get("tables") or 0),
                progress=lambda d, t: progress("tables restored", d, t),
            )
            conn = await asyncpg.connect(url)
            try:
                report.facts = await database_facts(conn)
            finally:
                await conn.close()
        report.restored = True
        f = report.facts
        expect = (
            manifest.get("items"),
            manifest.get("log", {}).get("size"),
            manifest.get("checkpoint", {}).get("size"),
            schema,
        )
        got = (f.items, f.log_size, f.checkpoint_size, f.schema_version)
        if expect != got and not force:
            raise VerificationError(
                f"the restored database does not match the manifest (items, log size, "
                f"checkpoint, schema: expected {expect}, found {got})",
                code=ErrorCode.BAD_SIGNATURE,
            )
        return report


def describe(manifest: dict[str, Any]) -> str:
    """One line about a backup, for people."""
    return (
        f"node {manifest.get('node', {}).get('id')}, made {manifest.get('created_at')}, "
        f"schema {manifest.get('schema_version')}, {manifest.get('items')} items, log "
        f"size {manifest.get('log', {}).get('size')}, checkpoint "
        f"{manifest.get('checkpoint', {}).get('size')}"
    )
