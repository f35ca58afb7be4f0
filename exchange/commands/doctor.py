"""``exchange doctor``: check a node's setup and say what to fix.

Design
------
Each check adds one row: ✓ (fine), ✗ (must be fixed; the exit code is then 1) or –
(does not apply yet, e.g. no federation configured, or the database does not exist before
the first start). Every ✗ row carries a fix, Chinese first, then English.

The checks run in dependency order: configuration → data folder and disk → node key →
database (the embedded server is started for the check and stopped again if the node is
not running) → schema version → log and site keys → roster → each peer (reachable, is who
the roster says, clock, roster version) → the node process itself (``/readyz``). A check
whose prerequisite failed is skipped rather than reported as a second failure.

Clock skew is measured against each peer's HTTP ``Date`` header: the peer's time is
taken as the middle of the second the header names, compared with the middle of our
request, so the estimate is good to about ±(0.5 s + half the round trip).
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import json
import os
import shutil
import stat
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from exchange.commands._common import EXIT_FAIL, EXIT_OK, common_node_args, node_config
from exchange.config import NodeConfig
from exchange.errors import ConfigError, ExchangeError

from ._table import clip, render

__all__ = ["Check", "Doctor", "register"]

OK, FAIL, SKIP = "ok", "fail", "skip"
_STUCK_ATTEMPTS = 5  # failed fetches of one attachment before the doctor reports it
_MARK = {OK: "✓", FAIL: "✗", SKIP: "–"}
# Where the sequencer remembers the largest checkpoint it signed (outside the database).
_HEAD_FILE = "log-head.json"


@dataclass
class Check:
    """One row of the report."""

    name: str
    status: str
    detail: str
    fix: str = ""


@dataclass
class _Context:
    conn: asyncpg.Connection | None = None
    db: Any = None
    schema_current: bool = False
    key: Any = None
    view: Any = None
    notes: list[str] = field(default_factory=list)


def _wildcard_to_local(host: str) -> str:
    return "127.0.0.1" if host in ("", "0.0.0.0", "::", "*") else host


class Doctor:
    """Runs every check for one node configuration.

    Args:
        cfg: The validated configuration.
        min_free_bytes: Free space the data folder's disk must have.
        timeout: Seconds allowed for each network request and database connection.
        max_clock_skew: Largest tolerated clock difference to a peer (default: half of
            ``http.signature_max_skew``, since signed requests beyond that are refused).
    """

    def __init__(
        self,
        cfg: NodeConfig,
        *,
        min_free_bytes: int = 1 << 30,
        timeout: float = 5.0,
        max_clock_skew: float | None = None,
    ) -> None:
        self.cfg = cfg
        self.min_free_bytes = min_free_bytes
        self.timeout = timeout
        self.max_clock_skew = (
            max_clock_skew
            if max_clock_skew is not None
            else max(1.0, cfg.http.signature_max_skew / 2)
        )
        self.checks: list[Check] = []

    def add(self, name: str, status: str, detail: str, fix: str = "") -> None:
        """Record one result."""
        self.checks.append(Check(name, status, detail, fix))

    async def run(self) -> list[Check]:
        """Run all checks; returns the rows (also kept in :attr:`checks`)."""
        ctx = _Context()
        self._data_dir()
        self._disk()
        self._fd_limit()
        self._node_key(ctx)
        embedded = await self._database(ctx)
        try:
            if ctx.conn is not None:
                await self._migrations(ctx)
                await self._read_replica()
            if ctx.schema_current:
                from exchange.storage.database import Database

                ctx.db = Database(self.cfg.database.url or "unused")
                await self._log(ctx)
                await self._site_keys(ctx)
                await self._roster(ctx)
                await self._attachments(ctx)
            else:
                self.add("联盟名册 roster", SKIP, "needs a current database schema")
            await self._peers(ctx)
            await self._process(ctx)
        finally:
            if ctx.conn is not None:
                await ctx.conn.close()
            if embedded is not None and embedded.started_here:
                await asyncio.to_thread(embedded.stop)
        return self.checks

    # -- local checks ------------------------------------------------------------------
    def _data_dir(self) -> None:
        d = self.cfg.data_path
        if not d.exists():
            self.add(
                "数据目录 data dir",
                FAIL,
                f"{d} does not exist",
                f"创建数据目录：mkdir -p {d} / create it: mkdir -p {d} "
                "(or run: exchange node init)",
            )
        elif not os.access(d, os.W_OK | os.X_OK):
            self.add(
                "数据目录 data dir",
                FAIL,
                f"{d} is not writable by this user",
                f"把目录交给运行节点的用户：chown -R <user> {d} / "
                f"give it to the node's user: chown -R <user> {d}",
            )
        else:
            self.add("数据目录 data dir", OK, str(d))

    def _disk(self) -> None:
        d = self.cfg.data_path
        probe = (
            d if d.exists() else next((p for p in d.parents if p.exists()), Path("/"))
        )
        usage = shutil.disk_usage(probe)
        gib = 1 << 30
        detail = (
            f"{usage.free / gib:.1f} GiB free of {usage.total / gib:.1f} GiB "
            f"({100 * usage.free / max(usage.total, 1):.0f}%) at {probe}"
        )
        if usage.free < self.min_free_bytes:
            self.add(
                "磁盘空间 disk space",
                FAIL,
                detail,
                f"磁盘剩余不足 {self.min_free_bytes / gib:.1f} GiB：清理或扩容 / "
                f"less than {self.min_free_bytes / gib:.1f} GiB free: free space or "
                "grow the volume (old backups, logs)",
            )
        else:
            self.add("磁盘空间 disk space", OK, detail)

    def _fd_limit(self) -> None:
        """The open-file limit the node will run with (it raises its soft limit to the
        hard one at start) and the connection cap that follows from it."""
        from exchange.http.guard import FD_RESERVE, fd_limits

        soft, hard = fd_limits()
        usable = hard - FD_RESERVE
        cap = min(self.cfg.http.max_connections, usable)
        detail = (
            f"soft {soft}, hard {hard}: the node raises soft to {hard} at start and "
            f"takes at most {max(16, cap)} connections "
            f"({self.cfg.http.max_connections_per_address or 'no cap'} per address)"
        )
        if usable < 256:
            self.add(
                "文件描述符 open files",
                FAIL,
                detail,
                f"打开文件上限过低 / raise the hard limit (LimitNOFILE={FD_RESERVE + 4096} "
                "in the systemd unit, or ulimit -Hn)",
            )
        else:
            self.add("文件描述符 open files", OK, detail)

    def _node_key(self, ctx: _Context) -> None:
        from exchange.core.signing import load_private_key, parse_key_id

        path = self.cfg.key_path
        name = "节点密钥 node key"
        if not path.exists():
            self.add(
                name,
                FAIL,
                f"{path} does not exist",
                "从密钥备份恢复节点密钥，或新建：exchange node init（新密钥须更新名册）/ "
                "restore the node key from your key backup, or make one with "
                "'exchange node init' (a new key means a new roster entry)",
            )
            return
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            self.add(
                name,
                FAIL,
                f"{path} has mode {mode:04o}: other users can read it",
                f"收紧权限：chmod 600 {path} / restrict it: chmod 600 {path}",
            )
            return
        if not os.access(path, os.R_OK):
            self.add(
                name,
                FAIL,
                f"{path} is not readable by this user",
                f"chown <node user> {path}（权限保持 0600 / keep mode 0600）",
            )
            return
        try:
            key = load_private_key(path, check_mode=False)
            owner, _ = parse_key_id(key.key_id)
        except (ConfigError, ValueError) as exc:
            self.add(
                name,
                FAIL,
                f"{path} is not a usable key file: {exc}",
                "从密钥备份恢复该文件 / restore the file from your key backup",
            )
            return
        if owner != self.cfg.node.id:
            self.add(
                name,
                FAIL,
                f"key id {key.key_id} belongs to {owner}, not to node "
                f"{self.cfg.node.id}",
                "确认 node.id 与 node.key_file 指向同一节点 / node.id and "
                "node.key_file must belong to the same node",
            )
            return
        ctx.key = key
        self.add(
            name,
            OK,
            f"{key.key_id} ({key.alg}), mode {mode:04o}, public key "
            f"{key.public_key.b64()}",
        )

    # -- database ----------------------------------------------------------------------
    async def _database(self, ctx: _Context) -> Any:
        from exchange.storage.embedded import EmbeddedPostgres

        name = "数据库 database"
        url = self.cfg.database.url
        embedded = None
        where = "external"
        if not url:
            embedded = EmbeddedPostgres(
                self.cfg.data_path / "pg", port=self.cfg.database.embedded_port
            )
            if not (embedded.pgdata / "PG_VERSION").exists():
                self.add(
                    name,
                    SKIP,
                    f"embedded PostgreSQL in {embedded.pgdata} is created "
                    "at the first start (exchange node up)",
                )
                return None
            if embedded.running_pid() is None:
                try:
                    await asyncio.to_thread(embedded.start)
                except ExchangeError as exc:
                    self.add(
                        name,
                        FAIL,
                        f"the embedded PostgreSQL does not start: "
                        f"{clip(exc.message, 300)}",
                        f"查看 {embedded.pgdata / 'server.log'} / read "
                        f"{embedded.pgdata / 'server.log'}",
                    )
                    return None
                where = "embedded (started for this check, stopped after)"
            else:
                where = "embedded (running)"
            url = embedded.url("exchange")
        try:
            ctx.conn = await asyncpg.connect(url, timeout=self.timeout)
        except asyncpg.InvalidCatalogNameError:
            self.add(
                name,
                SKIP,
                "the server answers; the database is created at the first start",
            )
            return embedded
        except (
            OSError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            TimeoutError,
        ) as exc:
            self.add(
                name,
                FAIL,
                f"cannot connect ({where}): {type(exc).__name__}: "
                f"{clip(str(exc), 200)}",
                "检查 EXCHANGE_DATABASE_URL / database.url、PostgreSQL 是否运行、用户与密码 / "
                "check EXCHANGE_DATABASE_URL (database.url), that PostgreSQL runs "
                "and accepts this user and password",
            )
            return embedded
        version = await ctx.conn.fetchval("SHOW server_version")
        self.add(name, OK, f"PostgreSQL {version}, {where}")
        return embedded

    async def _read_replica(self) -> None:
        url = self.cfg.database.read_url
        if not url:
            return
        name = "只读副本 read replica"
        try:
            conn = await asyncpg.connect(url, timeout=self.timeout)
        except (
            OSError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            TimeoutError,
        ) as exc:
            self.add(
                name,
                FAIL,
                f"cannot connect: {type(exc).__name__}: {clip(str(exc), 200)}",
                "检查 EXCHANGE_DATABASE_READ_URL，或删除它让拉取走主库 / check "
                "EXCHANGE_DATABASE_READ_URL, or unset it to serve pulls from the primary",
            )
            return
        try:
            standby = await conn.fetchval("SELECT pg_is_in_recovery()")
            lag = None
            if standby:
                lag = await conn.fetchval(
                    "SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp())"
                )
        finally:
            await conn.close()
        what = "a standby" if standby else "a primary (not a replica)"
        extra = f", replay lag {float(lag):.1f} s" if lag is not None else ""
        self.add(name, OK, f"reachable, {what}{extra}")

    async def _migrations(self, ctx: _Context) -> None:
        from exchange.storage.migrate import available_migrations, current_version

        assert ctx.conn is not None
        name = "数据库结构 migrations"
        known = available_migrations()
        newest = known[-1].version
        have = await current_version(ctx.conn)
        if have == 0:
            self.add(
                name,
                SKIP,
                f"empty database; the node creates schema {newest} at the first start",
            )
        elif have > newest:
            self.add(
                name,
                FAIL,
                f"the database is at schema {have}, newer than this "
                f"program ({newest}): schema_too_new",
                "升级本程序到支持该结构的版本；切勿降级数据库 / upgrade this program to "
                "the release that made the database; never downgrade a database",
            )
        elif have < newest:
            pending = ", ".join(
                f"{m.version:04d}_{m.name}" for m in known if m.version > have
            )
            self.add(
                name,
                FAIL,
                f"schema {have}; pending: {pending}",
                "先备份，再执行一次迁移：exchange backup --out FILE; exchange migrate "
                "（多进程时只运行一次）/ back up, then migrate once: exchange backup "
                "--out FILE; exchange migrate (once, not per worker)",
            )
        else:
            ctx.schema_current = True
            self.add(name, OK, f"schema {have} (up to date)")

    async def _log(self, ctx: _Context) -> None:
        from exchange.service.sequencer import LOCK_KEY
        from exchange.storage.ops import database_facts, writer_lock_holder

        assert ctx.conn is not None
        name = "日志 log"
        facts = await database_facts(ctx.conn)
        holder = await writer_lock_holder(ctx.conn, LOCK_KEY)
        writer = (
            f"writer: {holder.application_name or 'pid ' + str(holder.backend_pid)}"
            if holder
            else "no process holds the writer lock"
        )
        detail = (
            f"{facts.items} items, {facts.log_size} integrated, latest checkpoint "
            f"{facts.checkpoint_size}; {writer}"
        )
        head = self.cfg.data_path / _HEAD_FILE
        signed = 0
        try:
            signed = int(json.loads(head.read_text())["size"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        if signed > facts.checkpoint_size:
            self.add(
                name,
                FAIL,
                f"{detail}; but this node already signed size {signed} "
                f"({head}): the database is behind what was published",
                "数据库来自旧备份：恢复更新的备份（见 deploy/README.md 灾难恢复）/ the "
                "database came from an older backup: restore a newer one (see "
                "deploy/README.md, disaster recovery)",
            )
        else:
            self.add(name, OK, detail)

    async def _site_keys(self, ctx: _Context) -> None:
        from exchange.storage.directory import SiteStore

        name = "站点密钥 site keys"
        sites = [
            s
            for s in await SiteStore(ctx.db).list_sites(conn=ctx.conn)
            if s.home_node == self.cfg.node.id
        ]
        if not sites:
            self.add(name, SKIP, "no sites registered yet (exchange site add)")
            return
        now = datetime.now(UTC)
        valid = revoked = future = 0
        keyless = []
        for s in sites:
            usable = 0
            for k in s.keys:
                if k.revoked_at is not None and k.revoked_at <= now:
                    revoked += 1
                elif k.valid_from > now:
                    future += 1
                else:
                    valid += 1
                    usable += 1
            if not usable:
                keyless.append(s.id)
        detail = (
            f"{len(sites)} sites; keys: {valid} valid, {revoked} revoked, "
            f"{future} not yet valid"
        )
        if keyless:
            first = keyless[0]
            self.add(
                name,
                FAIL,
                f"{detail}; no valid key: {', '.join(keyless)}",
                f"为站点添加新公钥：exchange site key add {first} --key-id {first}#kN "
                f"--public-key=<B64> / add a key: exchange site key add {first} "
                f"--key-id {first}#kN --public-key=<B64>",
            )
        else:
            self.add(name, OK, detail)

    # -- federation ----------------------------------------------------------------------
    async def _roster(self, ctx: _Context) -> None:
        from exchange.core.roster import RosterView, verify_roster
        from exchange.federation.service import parse_pinned_keys
        from exchange.storage.ops import installed_roster

        name = "联盟名册 roster"
        try:
            pinned = parse_pinned_keys(self.cfg.federation.roster_keys)
        except ConfigError as exc:
            self.add(
                name,
                FAIL,
                exc.message,
                "修正 node.toml 的 [federation] roster_keys / "
                "fix [federation] roster_keys in node.toml",
            )
            return
        assert ctx.conn is not None
        row = await installed_roster(ctx.conn)
        if row is None:
            if pinned:
                self.add(
                    name,
                    FAIL,
                    "roster keys are pinned but no roster is installed",
                    "安装名册：exchange roster publish roster.signed.json / install "
                    "it: exchange roster publish roster.signed.json",
                )
            else:
                self.add(
                    name, SKIP, "standalone node (no roster keys pinned, no roster)"
                )
            return
        if not pinned:
            self.add(
                name,
                FAIL,
                f"roster version {row[0]} is installed but no roster key is pinned",
                "在 [federation] roster_keys 固定名册公钥 / pin "
                "the roster key in [federation] roster_keys",
            )
            return
        try:
            view = RosterView(verify_roster(row[1], pinned, 0))
        except ExchangeError as exc:
            self.add(
                name,
                FAIL,
                f"the installed roster does not verify: {exc.message}",
                "核对固定的名册公钥，重新发布签名名册 / check the pinned key and publish "
                "the signed roster again",
            )
            return
        ctx.view = view
        me = view.node(self.cfg.node.id)
        issued = view.roster.issued_at
        detail = (
            f"version {view.version}, issued {issued}, {len(view.roster.nodes)} nodes"
        )
        if me is None:
            self.add(
                name,
                FAIL,
                f"{detail}; this node ({self.cfg.node.id}) is not in it",
                "请名册管理员加入本节点：exchange roster add-node / ask the roster "
                "operator to add this node (exchange roster add-node)",
            )
            return
        mine = {k.key_id: k for k in me.keys}
        entry = mine.get(ctx.key.key_id) if ctx.key is not None else None
        if ctx.key is not None and (
            entry is None or entry.public_key != ctx.key.public_key.b64()
        ):
            self.add(
                name,
                FAIL,
                f"{detail}; the roster lists keys {', '.join(mine)} for "
                f"this node, not the local key {ctx.key.key_id}",
                "名册与本地节点密钥不一致：更新名册或恢复原密钥 / the roster and the local "
                "node key differ: update the roster or restore the old key",
            )
            return
        if entry is not None and entry.revoked_at is not None:
            self.add(
                name,
                FAIL,
                f"{detail}; the local node key is revoked in the roster",
                "轮换节点密钥（见 deploy/README.md）/ rotate the node key (deploy/README.md)",
            )
            return
        base = self.cfg.node.base_url.rstrip("/")
        if base and base != str(me.base_url).rstrip("/"):
            self.add(
                name,
                FAIL,
                f"{detail}; the roster says peers reach this node at "
                f"{me.base_url}, node.base_url is {base}",
                "使 node.base_url 与名册一致 / make node.base_url match the roster",
            )
            return
        self.add(name, OK, detail)

    async def _attachments(self, ctx: _Context) -> None:
        """Attachments of replicated items still to fetch from their home nodes."""
        assert ctx.conn is not None
        name = "附件同步 attachments"
        rows = await ctx.conn.fetch(
            "SELECT sha256, author, attempts, last_error FROM blob_fetches "
            "ORDER BY attempts DESC, sha256"
        )
        stuck = [r for r in rows if r["attempts"] >= _STUCK_ATTEMPTS]
        if not stuck:
            waiting = f"{len(rows)} waiting for their first tries" if rows else "none"
            self.add(name, OK, f"attachments of replicated items to fetch: {waiting}")
            return
        first = stuck[0]
        self.add(
            name,
            FAIL,
            f"{len(stuck)} of {len(rows)} attachments of replicated items failed "
            f"{_STUCK_ATTEMPTS} or more times, e.g. {first['sha256'][:16]}… of "
            f"{first['author']}: {first['last_error']}",
            "检查发布单位所在节点是否可达、附件是否超过 http.max_blob_bytes；仍在重试 / "
            "check that the author's home node is reachable and that the file fits "
            "http.max_blob_bytes; fetches keep being retried",
        )

    async def _peers(self, ctx: _Context) -> None:
        if ctx.view is None:
            return
        peers = ctx.view.peers(self.cfg.node.id)
        if not peers:
            self.add("对等节点 peers", SKIP, "the roster names no other node")
            return
        newer: list[str] = []
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for peer in peers:
                version = await self._peer(session, ctx, peer)
                if version is not None and version > ctx.view.version:
                    newer.append(f"{peer.id} has version {version}")
        name = "名册新旧 roster freshness"
        if newer:
            self.add(
                name,
                FAIL,
                f"installed version {ctx.view.version}; " + "; ".join(newer),
                "向名册管理员索取最新签名名册并发布：exchange roster publish FILE / get "
                "the newest signed roster and install it: exchange roster publish FILE",
            )
        else:
            self.add(
                name,
                OK,
                f"no reachable peer has a newer roster than version {ctx.view.version}",
            )

    async def _peer(
        self, session: aiohttp.ClientSession, ctx: _Context, peer: Any
    ) -> int | None:
        base = str(peer.base_url).rstrip("/")
        name = f"对等节点 peer {peer.id}"
        try:
            t0 = time.time()
            async with session.get(base + "/healthz") as r:
                t1 = time.time()
                date = r.headers.get("Date")
                status = r.status
            async with session.get(base + "/v1/node") as r:
                info = await r.json() if r.status == 200 else {}
            async with session.get(base + "/v1/roster") as r:
                roster = await r.json() if r.status == 200 else {}
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self.add(
                name,
                FAIL,
                f"{base} unreachable: {type(exc).__name__} {clip(str(exc), 120)}",
                "检查对方节点是否运行、防火墙与名册中的地址 / check that the peer runs, "
                "the firewall, and its URL in the roster",
            )
            return None
        rtt = t1 - t0
        want = {k.public_key for k in peer.keys if k.revoked_at is None}
        got = {k.get("public_key") for k in info.get("keys", []) if isinstance(k, dict)}
        if status != 200:
            self.add(
                name,
                FAIL,
                f"{base}/healthz answered {status}",
                "请对方运维检查节点 / ask the peer's operator to check the node",
            )
        elif info.get("id") != peer.id or not (want & got):
            self.add(
                name,
                FAIL,
                f"{base} answers as node {info.get('id')!r} with other keys "
                "than the roster lists",
                "名册中的地址或密钥过期：通知名册管理员 / the roster's URL or key for this "
                "peer is out of date: tell the roster operator",
            )
        else:
            self.add(
                name, OK, f"{base} reachable in {rtt * 1000:.0f} ms, key matches roster"
            )
        self._clock(peer.id, date, t0, t1)
        doc = roster.get("document") if isinstance(roster, dict) else None
        version = doc.get("version") if isinstance(doc, dict) else None
        return int(version) if isinstance(version, int) else None

    def _clock(self, peer: str, date: str | None, t0: float, t1: float) -> None:
        name = f"时钟偏差 clock vs {peer}"
        if not date:
            self.add(name, SKIP, "the peer sent no Date header")
            return
        try:
            theirs = email.utils.parsedate_to_datetime(date).timestamp() + 0.5
        except (TypeError, ValueError):
            self.add(name, SKIP, f"unreadable Date header {date!r}")
            return
        skew = theirs - (t0 + t1) / 2
        margin = 0.5 + (t1 - t0) / 2
        detail = f"peer is {skew:+.1f} s (±{margin:.1f} s) from this host"
        if abs(skew) - margin > self.max_clock_skew:
            self.add(
                name,
                FAIL,
                f"{detail}; more than {self.max_clock_skew:.0f} s",
                "校准时钟（chrony/NTP），双方都要检查；签名请求超出时差会被拒绝 / sync the "
                "clocks with NTP (chrony) on both hosts: signed requests beyond the "
                "skew are refused",
            )
        else:
            self.add(name, OK, detail)

    def _is_this_node(self, info: Any, ctx: _Context) -> bool:
        """``GET /v1/node`` names this node's id and (when its key is readable) key."""
        if not isinstance(info, dict) or info.get("id") != self.cfg.node.id:
            return False
        if ctx.key is None:
            return True
        return ctx.key.public_key.b64() in _keys_of(info)

    async def _process(self, ctx: _Context) -> None:
        host, port = self.cfg.listen_host_port
        base = f"http://{_wildcard_to_local(host)}:{port}"
        url = f"{base}/readyz"
        name = "节点进程 node process"
        try:
            timeout = aiohttp.ClientTimeout(total=self.timeout)
            async with aiohttp.ClientSession(timeout=timeout) as s:
                async with s.get(url) as r:
                    body = await r.json(content_type=None)
                    status = r.status
                async with s.get(f"{base}/v1/node") as r:
                    info = await r.json(content_type=None) if r.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError):
            self.add(name, SKIP, f"nothing answers at {url} (start: exchange node up)")
            return
        checks = body.get("checks", {}) if isinstance(body, dict) else {}
        if not self._is_this_node(info, ctx):
            who = info.get("id") if isinstance(info, dict) else None
            self.add(
                name,
                FAIL,
                f"{base} is not this node: it answers as "
                f"{repr(who) if who else 'something else'}, not node {self.cfg.node.id!r} "
                "with this node's key",
                "另一个程序占用了本节点的端口：停止它，或更改 [http] listen / another "
                "program holds this node's port: stop it, or change [http] listen",
            )
            return
        if status == 200:
            self.add(name, OK, f"ready at {url}; log {checks.get('log', '?')}")
        else:
            self.add(
                name,
                FAIL,
                f"{url} answered {status}: {json.dumps(checks, ensure_ascii=False)}",
                "按上面的检查项修复后重启 / fix the checks above, then restart the node",
            )


def _keys_of(info: dict[str, Any]) -> set[str]:
    return {
        str(k.get("public_key")) for k in info.get("keys", []) if isinstance(k, dict)
    }


def _print(checks: list[Check]) -> None:
    rows = [[_MARK[c.status], c.name, clip(c.detail, 100)] for c in checks]
    print(render(["", "检查 check", "结果 result"], rows))
    fails = [c for c in checks if c.status == FAIL]
    if fails:
        print("\n如何修复 / how to fix:")
        for c in fails:
            print(f"  ✗ {c.name}: {c.detail}")
            print(f"    → {c.fix}")
    else:
        print("\n没有需要修复的项 / nothing to fix")


def _doctor(args: argparse.Namespace) -> int:
    try:
        cfg = node_config(args)
    except ConfigError as exc:
        checks = [
            Check(
                "配置 config",
                FAIL,
                exc.message,
                "按提示修改 node.toml 中的该项（或对应的 EXCHANGE_* 变量）/ edit the named "
                "key in node.toml (or its EXCHANGE_* variable)",
            )
        ]
    else:
        doctor = Doctor(
            cfg,
            min_free_bytes=int(args.min_free_gb * (1 << 30)),
            timeout=args.timeout,
            max_clock_skew=args.max_clock_skew,
        )
        doctor.add("配置 config", OK, f"node {cfg.node.id}, listen {cfg.http.listen}")
        checks = asyncio.run(doctor.run())
    if args.json:
        print(json.dumps([asdict(c) for c in checks], ensure_ascii=False, indent=2))
    else:
        _print(checks)
    return EXIT_FAIL if any(c.status == FAIL for c in checks) else EXIT_OK


def register(sub: Any) -> None:
    """Add ``doctor``."""
    p = sub.add_parser(
        "doctor",
        help="check config, database, keys, clocks, peers and roster; say what to fix",
        description="Prints a ✓/✗ table and, for each ✗, what to do (Chinese, then English). "
        "Exit code 1 if anything must be fixed.",
    )
    common_node_args(p)
    p.add_argument(
        "--min-free-gb",
        type=float,
        default=1.0,
        metavar="GIB",
        help="free disk space required in the data folder (default 1)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds per network request or connection (default 5)",
    )
    p.add_argument(
        "--max-clock-skew",
        type=float,
        metavar="S",
        help="largest tolerated clock difference to a peer "
        "(default: half of http.signature_max_skew)",
    )
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.set_defaults(func=_doctor)
