"""The ``sql`` adapter against real databases: the embedded PostgreSQL and MariaDB.

Each test creates its own uniquely named database on the server and drops it at the
end. MariaDB is expected at 127.0.0.1:3306 (root, empty password), as ``.ci/run``
starts it; without it the MariaDB cases fail in CI and skip locally.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiomysql
import asyncpg
import pytest

from adapters.base import AdapterContext, AdapterError, Draft, Poll
from adapters.sql_table import SqlSink, SqlSinkConfig, SqlSource, SqlSourceConfig
from exchange.core.items import item_id, sign_item

pytestmark = pytest.mark.asyncio

CST = timezone(timedelta(hours=8))
MARIADB = ("127.0.0.1", 3306)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@dataclass
class SiteDb:
    """A scratch database on one server, and SQL run as 'the site's system'."""

    dialect: str
    url: str
    execute: Callable[..., Awaitable[Any]]
    fetch: Callable[..., Awaitable[list[tuple[Any, ...]]]]

    def sql(self, text: str) -> str:
        """``$1`` markers for PostgreSQL, ``%s`` for MySQL."""
        if self.dialect == "postgresql":
            n = 0
            out = []
            for ch in text:
                if ch == "?":
                    n += 1
                    out.append(f"${n}")
                else:
                    out.append(ch)
            return "".join(out)
        return text.replace("?", "%s")


async def _pg_db(pg_url: str) -> AsyncGenerator[SiteDb, None]:
    name = f"site_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    # Keep the query (the embedded server's URL names its passfile there).
    url = urlsplit(pg_url)._replace(path=f"/{name}").geturl()
    conn = await asyncpg.connect(url)

    async def execute(sql: str, *args: Any) -> Any:
        return await conn.execute(sql, *args)

    async def fetch(sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return [tuple(r.values()) for r in await conn.fetch(sql, *args)]

    try:
        yield SiteDb("postgresql", url, execute, fetch)
    finally:
        await conn.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _maria_db() -> AsyncGenerator[SiteDb, None]:
    try:
        admin = await aiomysql.connect(
            host=MARIADB[0],
            port=MARIADB[1],
            user="root",
            password="",
            autocommit=True,
            charset="utf8mb4",
            connect_timeout=5,
        )
    except Exception as exc:
        msg = (
            f"MariaDB is not reachable at {MARIADB[0]}:{MARIADB[1]} as root without a "
            f"password ({exc}); start it with 'start-stop-daemon --start --oknodo "
            "--background --exec /usr/sbin/mariadbd' (.ci/run does this in CI)"
        )
        if _in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    name = f"site_{uuid.uuid4().hex[:12]}"
    async with admin.cursor() as cur:
        await cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    conn = await aiomysql.connect(
        host=MARIADB[0],
        port=MARIADB[1],
        user="root",
        password="",
        db=name,
        autocommit=True,
        charset="utf8mb4",
    )

    async def execute(sql: str, *args: Any) -> Any:
        async with conn.cursor() as cur:
            await cur.execute(sql, args or None)

    async def fetch(sql: str, *args: Any) -> list[tuple[Any, ...]]:
        async with conn.cursor() as cur:
            await cur.execute(sql, args or None)
            return [tuple(r) for r in await cur.fetchall()]

    try:
        yield SiteDb(
            "mysql", f"mysql://root@{MARIADB[0]}:{MARIADB[1]}/{name}", execute, fetch
        )
    finally:
        conn.close()
        async with admin.cursor() as cur:
            await cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture(params=["postgresql", "mariadb"])
async def site_db(request: pytest.FixtureRequest, pg_url: str) -> AsyncIterator[SiteDb]:
    """A fresh database on each real server."""
    gen = _pg_db(pg_url) if request.param == "postgresql" else _maria_db()
    db = await gen.__anext__()
    try:
        yield db
    finally:
        await gen.aclose()


def _ctx(tmp_path: Path) -> AdapterContext:
    return AdapterContext(
        "huaibei-duji", tmp_path / "adapter", logging.getLogger("test.sql")
    )


LESSON_TEXT = (
    "一、基本情况\n区人大常委会建成预算联网监督系统。\n"
    "二、主要做法\n与财政国库支付系统实时对接，代表分组调研。\n"
    "三、取得成效\n预算执行进度同比提高12个百分点。\n"
    "四、可推广的经验\n适用于财政数据已集中的县区。\n适用于有信息化基础的人大。"
)


async def _make_table(db: SiteDb) -> None:
    ts = "timestamptz" if db.dialect == "postgresql" else "DATETIME(6)"
    text = "text" if db.dialect == "postgresql" else "TEXT"
    await db.execute(
        f"CREATE TABLE articles (id integer PRIMARY KEY, title {text}, content {text}, "
        f"tags {text}, category {text}, updated_at {ts})"
    )


async def _insert(
    db: SiteDb,
    rid: int,
    when: datetime,
    *,
    title: str | None = None,
    content: str = LESSON_TEXT,
    category: str = "经验做法",
) -> None:
    value = when if db.dialect == "postgresql" else when.replace(tzinfo=None)
    await db.execute(
        db.sql("INSERT INTO articles VALUES (?, ?, ?, ?, ?, ?)"),
        rid,
        title if title is not None else f"杜集区预算联网监督经验之{rid}",
        content,
        "预算监督、联网监督",
        category,
        value,
    )


def _source_config(db: SiteDb, **over: Any) -> SqlSourceConfig:
    raw: dict[str, Any] = {
        "type": "sql",
        "name": "oa",
        "url": db.url,
        "table": "articles",
        "watermark": "updated_at",
        "columns": {
            "id": "id",
            "title": "title",
            "text": "content",
            "tags": "tags",
            "kind": "category",
        },
        "kind_values": {"经验做法": "lesson", "典型案例": "case_study"},
        "circles": ["huaihai"],
    }
    raw.update(over)
    return SqlSourceConfig.model_validate(raw)


async def _drain(
    src: SqlSource, state: dict[str, Any], limit: int = 20
) -> tuple[list[Draft], dict[str, Any], list[str]]:
    """Poll until nothing new (bounded)."""
    drafts: list[Draft] = []
    problems: list[str] = []
    for _ in range(limit):
        res: Poll = await src.poll(state)
        state = res.state
        problems += res.problems
        if not res.drafts and not res.problems:
            return drafts, state, problems
        drafts += res.drafts
    raise AssertionError("source kept returning rows")


async def test_rows_become_valid_deterministic_items(
    site_db: SiteDb, tmp_path: Path
) -> None:
    await _make_table(site_db)
    base = datetime(2021, 10, 28, 9, 30, tzinfo=CST)
    for i in range(1, 4):
        await _insert(site_db, i, base + timedelta(minutes=i))
    src = SqlSource(_source_config(site_db), _ctx(tmp_path))
    try:
        drafts, state, problems = await _drain(src, {})
        assert problems == []
        assert [d.ref for d in drafts] == [f"articles id={i}" for i in (1, 2, 3)]
        first = drafts[0].item
        assert first["kind"] == "lesson"
        assert first["author"] == "huaibei-duji"
        assert first["created_at"] == "2021-10-28T09:31:00+08:00"
        assert first["tags"] == ["预算监督", "联网监督"]
        assert first["audience"] == {"circles": ["huaihai"], "sites": []}
        assert first["body"]["practice"] == "与财政国库支付系统实时对接，代表分组调研。"
        assert first["body"]["applicability"] == [
            "适用于财政数据已集中的县区。",
            "适用于有信息化基础的人大。",
        ]
        # Reading again from scratch gives byte-identical items (same ids).
        again, _, _ = await _drain(src, {})
        assert [item_id(d.item) for d in again] == [item_id(d.item) for d in drafts]
        # Nothing new: the state stays put.
        assert (await src.poll(state)).drafts == []
    finally:
        await src.close()


async def test_watermark_ties_are_neither_lost_nor_repeated(
    site_db: SiteDb, tmp_path: Path
) -> None:
    await _make_table(site_db)
    same = datetime(2022, 3, 1, 10, 0, tzinfo=CST)
    for i in (5, 3, 1, 4, 2):  # five rows with one timestamp, inserted out of order
        await _insert(site_db, i, same)
    await _insert(site_db, 9, same + timedelta(seconds=1))
    src = SqlSource(_source_config(site_db, batch=2), _ctx(tmp_path))
    try:
        first = await src.poll({})
        assert [d.ref for d in first.drafts] == ["articles id=1", "articles id=2"]
        assert first.state["seen"] == [1, 2]
        drafts, state, _ = await _drain(src, first.state)
        refs = [d.ref for d in first.drafts + drafts]
        assert refs == [f"articles id={i}" for i in (1, 2, 3, 4, 5, 9)]
        # A row committed late with the newest timestamp and a smaller id is still read.
        await _insert(site_db, 7, same + timedelta(seconds=1))
        late, state, _ = await _drain(src, state)
        assert [d.ref for d in late] == ["articles id=7"]
        assert state["seen"] == [9, 7]
        assert (await src.poll(state)).drafts == []
    finally:
        await src.close()


async def test_integer_watermark_on_a_view_and_body_columns(
    site_db: SiteDb, tmp_path: Path
) -> None:
    text = "text" if site_db.dialect == "postgresql" else "TEXT"
    await site_db.execute(
        f"CREATE TABLE cases (seq integer PRIMARY KEY, name {text}, bg {text}, "
        f"steps {text}, effect {text}, published {text}, status {text})"
    )
    await site_db.execute(
        "CREATE VIEW published_cases AS SELECT * FROM cases WHERE status = 'published'"
    )
    rows = [
        (
            1,
            "企业安全生产联合执法检查",
            "危化企业多。",
            "联合检查。\n跟踪整改。",
            "整改13项。",
            "2021年10月28日",
            "published",
        ),
        (2, "草稿", "x", "y", "z", "2021-10-29", "draft"),
        (3, "无日期的案例", "b", "s", "e", "不详", "published"),
    ]
    for r in rows:
        await site_db.execute(
            site_db.sql("INSERT INTO cases VALUES (?, ?, ?, ?, ?, ?, ?)"), *r
        )
    cfg = SqlSourceConfig.model_validate(
        {
            "type": "sql",
            "url": site_db.url,
            "table": "published_cases",
            "watermark": "seq",
            "kind": "case_study",
            "columns": {"id": "seq", "title": "name", "created_at": "published"},
            "body": {"background": "bg", "actions": "steps", "results": "effect"},
        }
    )
    src = SqlSource(cfg, _ctx(tmp_path))
    try:
        res = await src.poll({})
        assert [d.ref for d in res.drafts] == ["published_cases seq=1"]
        body = res.drafts[0].item["body"]
        assert body["actions"] == ["联合检查。", "跟踪整改。"]
        assert body["period"] == {"start": "2021-10-28"}
        assert res.drafts[0].item["created_at"] == "2021-10-28T00:00:00+08:00"
        assert len(res.problems) == 1 and "seq=3" in res.problems[0]
        assert "不详" in res.problems[0]
        assert res.state == {"watermark": {"type": "int", "value": 3}, "seen": [3]}
    finally:
        await src.close()


async def test_row_without_usable_text_is_a_problem_not_an_item(
    site_db: SiteDb, tmp_path: Path
) -> None:
    await _make_table(site_db)
    when = datetime(2023, 5, 5, 8, 0, tzinfo=CST)
    await _insert(site_db, 1, when, content="只有一段话，没有小标题。")
    await _insert(site_db, 2, when, title="")
    await _insert(site_db, 3, when, category="会议通知")
    await _insert(site_db, 4, when)
    src = SqlSource(_source_config(site_db), _ctx(tmp_path))
    try:
        res = await src.poll({})
        assert [d.ref for d in res.drafts] == ["articles id=4"]
        assert len(res.problems) == 3
        assert "id=1" in res.problems[0] and "conditions" in res.problems[0]
        assert "id=2" in res.problems[1] and "no title" in res.problems[1]
        assert "会议通知" in res.problems[2] and "kind_values" in res.problems[2]
        assert res.state["seen"] == [1, 2, 3, 4]
    finally:
        await src.close()


async def _wait_blocked(db: SiteDb, src: SqlSource) -> int:
    """Wait (bounded) until the adapter's query waits on the lock; its session id."""
    for _ in range(200):
        if db.dialect == "postgresql":
            pid = await src.conn.backend_pid()  # type: ignore[attr-defined]
            rows = await db.fetch(
                "SELECT pid FROM pg_stat_activity WHERE pid = $1 "
                "AND wait_event_type = 'Lock'",
                pid,
            )
        else:
            tid = src.conn.thread_id  # type: ignore[attr-defined]
            rows = await db.fetch(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE ID = %s "
                "AND STATE LIKE %s",
                tid,
                "%lock%",
            )
        if rows:
            return int(rows[0][0])
        await asyncio.sleep(0.05)
    raise AssertionError("the adapter's query never blocked on the lock")


async def test_database_gone_mid_poll_is_retryable_and_loses_nothing(
    site_db: SiteDb, pg_url: str, tmp_path: Path
) -> None:
    await _make_table(site_db)
    base = datetime(2024, 1, 1, 9, 0, tzinfo=CST)
    await _insert(site_db, 1, base)
    src = SqlSource(_source_config(site_db), _ctx(tmp_path))
    try:
        first = await src.poll({})
        state = first.state
        for i in (2, 3):
            await _insert(site_db, i, base + timedelta(minutes=i))
        # Hold the table from another session so the next poll blocks mid-query,
        # then kill the adapter's connection from the server side.
        if site_db.dialect == "postgresql":
            locker = await asyncpg.connect(site_db.url)
            tx = locker.transaction()
            await tx.start()
            await locker.execute("LOCK TABLE articles IN ACCESS EXCLUSIVE MODE")
        else:
            locker = await aiomysql.connect(
                host=MARIADB[0],
                port=MARIADB[1],
                user="root",
                password="",
                db=site_db.url.rsplit("/", 1)[1],
                autocommit=True,
            )
            async with locker.cursor() as cur:
                await cur.execute("LOCK TABLES articles WRITE")
        task = asyncio.create_task(src.poll(state))
        try:
            victim = await _wait_blocked(site_db, src)
            if site_db.dialect == "postgresql":
                await site_db.execute("SELECT pg_terminate_backend($1)", victim)
            else:
                await site_db.execute(f"KILL {victim}")
            with pytest.raises(AdapterError) as err:
                await asyncio.wait_for(task, 30)
            assert err.value.retryable
            assert "will retry" in err.value.message
        finally:
            if site_db.dialect == "postgresql":
                await tx.rollback()
                await locker.close()
            else:
                async with locker.cursor() as cur:
                    await cur.execute("UNLOCK TABLES")
                locker.close()
        # The caller kept the old state; the next poll reconnects, reads both rows once.
        drafts, state, _ = await _drain(src, state)
        assert [d.ref for d in drafts] == ["articles id=2", "articles id=3"]
        assert (await src.poll(state)).drafts == []
    finally:
        await src.close()


async def test_unreachable_database_and_bad_column_are_clear(
    site_db: SiteDb, tmp_path: Path
) -> None:
    await _make_table(site_db)
    bad = _source_config(site_db, columns={"id": "id", "title": "headline"})
    src = SqlSource(bad, _ctx(tmp_path))
    try:
        with pytest.raises(AdapterError) as err:
            await src.poll({})
        assert not err.value.retryable
        assert "headline" in err.value.message
    finally:
        await src.close()
    scheme = "postgresql" if site_db.dialect == "postgresql" else "mysql"
    down = _source_config(site_db, url=f"{scheme}://u:secret-pw@127.0.0.1:9/none")
    src = SqlSource(down, _ctx(tmp_path))
    try:
        with pytest.raises(AdapterError) as err:
            await src.poll({})
        assert err.value.retryable
        assert "127.0.0.1:9" in err.value.message
        assert "secret-pw" not in err.value.message
    finally:
        await src.close()
    with pytest.raises(AdapterError, match="plain table"):
        SqlSource(
            _source_config(site_db, table="articles; DROP TABLE x"), _ctx(tmp_path)
        )


def _signed(n: int = 1) -> tuple[dict[str, Any], dict[str, Any]]:
    from exchange.core.signing import generate_key
    from exchange.templates import template

    key = generate_key(key_id="suzhou-wuzhong#k1")
    item = template("case_study", author="suzhou-wuzhong", partner="huaibei-duji")
    item["title"] = f"吴中区“15分钟”法律服务圈建设案例 {n}"
    item["tags"] = ["法治建设", "公共法律服务"]
    signed = sign_item(item, key)
    env = {
        "index": 40 + n,
        "id": item_id(item),
        "received_at": "2026-11-20T01:30:00.123456+00:00",
    }
    return signed, env


async def test_sink_creates_table_and_is_idempotent(
    site_db: SiteDb, tmp_path: Path
) -> None:
    cfg = SqlSinkConfig.model_validate(
        {
            "type": "sql",
            "url": site_db.url,
            "table": "partner_items",
            "create_table": True,
        }
    )
    sink = SqlSink(cfg, _ctx(tmp_path))
    try:
        s1, e1 = _signed(1)
        s2, e2 = _signed(2)
        await sink.deliver(s1, e1)
        await sink.deliver(s1, e1)
        await sink.deliver(s2, e2)
        rows = await site_db.fetch(
            "SELECT item_id, log_index, kind, author, title, tags, created_at, body, "
            "signed "
            "FROM partner_items ORDER BY log_index"
        )
        assert [r[0] for r in rows] == [e1["id"], e2["id"]]
        r = rows[0]
        assert r[1:5] == (41, "case_study", "suzhou-wuzhong", s1["item"]["title"])
        assert r[5] == "法治建设、公共法律服务"
        created = r[6] if site_db.dialect == "postgresql" else r[6].replace(tzinfo=CST)
        assert created == datetime.fromisoformat(s1["item"]["created_at"])
        import json

        body = r[7] if isinstance(r[7], dict) else json.loads(r[7])
        assert body == s1["item"]["body"]
        signed_back = r[8] if isinstance(r[8], dict) else json.loads(r[8])
        assert signed_back == s1
    finally:
        await sink.close()


async def test_sink_upsert_into_existing_table_with_its_own_types(
    site_db: SiteDb, tmp_path: Path
) -> None:
    if site_db.dialect == "postgresql":
        await site_db.execute(
            "CREATE TABLE inbox (id text PRIMARY KEY, headline text NOT NULL, "
            "labels text[], written timestamp, payload jsonb)"
        )
    else:
        await site_db.execute(
            "CREATE TABLE inbox (id VARCHAR(80) PRIMARY KEY, "
            "headline VARCHAR(255) NOT NULL, "
            "labels TEXT, written DATETIME, payload JSON) DEFAULT CHARSET=utf8mb4"
        )
    cols = {
        "item_id": "id",
        "title": "headline",
        "tags": "labels",
        "created_at": "written",
        "signed": "payload",
        "log_index": "",
        "kind": "",
        "author": "",
        "summary": "",
        "received_at": "",
        "body": "",
    }
    cfg = SqlSinkConfig.model_validate(
        {
            "type": "sql",
            "url": site_db.url,
            "table": "inbox",
            "mode": "upsert",
            "columns": cols,
        }
    )
    sink = SqlSink(cfg, _ctx(tmp_path))
    try:
        s1, e1 = _signed(1)
        await site_db.execute(
            site_db.sql("INSERT INTO inbox (id, headline) VALUES (?, ?)"),
            e1["id"],
            "旧标题",
        )
        await sink.deliver(s1, e1)
        await sink.deliver(s1, e1)
        rows = await site_db.fetch("SELECT id, headline, labels, written FROM inbox")
        assert len(rows) == 1
        assert rows[0][1] == s1["item"]["title"]
        want_tags: Any = ["法治建设", "公共法律服务"]
        if site_db.dialect == "mysql":
            want_tags = "法治建设、公共法律服务"
        assert rows[0][2] == want_tags
        # Naive columns hold the configured local time (+08:00).
        local = datetime.fromisoformat(s1["item"]["created_at"]).astimezone(CST)
        assert rows[0][3] == local.replace(tzinfo=None)
    finally:
        await sink.close()


async def test_sink_recovers_after_its_connection_is_killed(
    site_db: SiteDb, tmp_path: Path
) -> None:
    cfg = SqlSinkConfig.model_validate(
        {
            "type": "sql",
            "url": site_db.url,
            "table": "partner_items",
            "create_table": True,
        }
    )
    sink = SqlSink(cfg, _ctx(tmp_path))
    try:
        s1, e1 = _signed(1)
        await sink.deliver(s1, e1)
        if site_db.dialect == "postgresql":
            pid = await sink.conn.backend_pid()  # type: ignore[attr-defined]
            await site_db.execute("SELECT pg_terminate_backend($1)", pid)
        else:
            await site_db.execute(f"KILL {sink.conn.thread_id}")  # type: ignore[attr-defined]
        s2, e2 = _signed(2)
        for attempt in range(2):  # a dead link is reported once, then reconnected
            try:
                await sink.deliver(s2, e2)
                break
            except AdapterError as exc:
                assert exc.retryable and attempt == 0
        rows = await site_db.fetch(
            "SELECT item_id FROM partner_items ORDER BY log_index"
        )
        assert [r[0] for r in rows] == [e1["id"], e2["id"]]
    finally:
        await sink.close()


async def test_sql_items_are_accepted_by_a_real_node(
    node_factory: Any, pg_url: str, tmp_path: Path
) -> None:
    """Drafts from a row, signed at the site, are accepted by a node as they are."""
    gen = _pg_db(pg_url)
    db = await gen.__anext__()
    try:
        await _make_table(db)
        await _insert(db, 1, datetime(2021, 10, 28, 9, 30, tzinfo=CST))
        node = await node_factory()
        key = await node.add_site(
            "huaibei-duji", "淮北市杜集区人大常委会", ("huaihai",)
        )
        src = SqlSource(_source_config(db), _ctx(tmp_path))
        try:
            res = await src.poll({})
        finally:
            await src.close()
        async with node.client("huaibei-duji") as client:
            out = await client.push(sign_item(res.drafts[0].item, key))
        assert out["status"] == "accepted"
        assert out["id"] == item_id(res.drafts[0].item)
    finally:
        await gen.aclose()


async def test_the_example_site_toml_is_valid(tmp_path: Path) -> None:
    from adapters.config import load_site_config
    from adapters.registry import load_adapter
    from exchange.errors import ConfigError

    repo = Path(__file__).resolve().parents[2]
    cfg = load_site_config(repo / "deploy" / "examples" / "site-sql.toml")
    ctx = AdapterContext(
        "huaibei-duji", tmp_path / "a", logging.getLogger("t"), cfg.base_dir
    )
    source = load_adapter(cfg.source[0], ctx, role="source")
    sink = load_adapter(cfg.sink[0], ctx, role="sink", index=0)
    assert isinstance(source, SqlSource) and isinstance(sink, SqlSink)
    assert not (tmp_path / "a").exists()  # constructing does no I/O
    with pytest.raises(ConfigError, match=r"source\[0\]\.columns\.titel"):
        load_adapter({**cfg.source[0], "columns": {"titel": "x"}}, ctx, role="source")


async def test_runner_moves_rows_from_one_sites_database_into_anothers(
    node_factory: Any, pg_url: str, tmp_path: Path
) -> None:
    """Through the real runner and node: rows of one site's OA table arrive, signed
    and verified, as rows of a partner's OA table — once, however often it runs."""
    import tomli_w

    from adapters.config import load_site_config
    from adapters.runner import Runner
    from exchange.core.signing import save_private_key

    node = await node_factory()
    keys = {
        s: await node.add_site(s, s, ("huaihai",))
        for s in ("huaibei-duji", "xuzhou-tongshan")
    }
    gen_a, gen_b = _pg_db(pg_url), _pg_db(pg_url)
    oa_a, oa_b = await gen_a.__anext__(), await gen_b.__anext__()
    try:
        await _make_table(oa_a)
        base = datetime(2021, 10, 28, 9, 30, tzinfo=CST)
        for i in (1, 2, 3):
            await _insert(oa_a, i, base + timedelta(minutes=i))

        def site_toml(site: str, table: dict[str, Any], role: str) -> Path:
            folder = tmp_path / site
            folder.mkdir()
            save_private_key(keys[site], folder / "site.key")
            doc = {
                "site": {"id": site, "key_file": "site.key", "node": node.url},
                role: [table],
            }
            path = folder / "site.toml"
            path.write_text(tomli_w.dumps(doc), encoding="utf-8")
            return path

        src_table = _source_config(oa_a).model_dump(exclude_defaults=True)
        a = site_toml("huaibei-duji", {**src_table, "type": "sql"}, "source")
        b = site_toml(
            "xuzhou-tongshan",
            {
                "type": "sql",
                "name": "oa-inbox",
                "url": oa_b.url,
                "table": "exchange_items",
                "create_table": True,
            },
            "sink",
        )
        async with Runner(load_site_config(a)) as ra:
            first = await ra.run_once()
            again = await ra.run_once()
        assert (first.spooled, first.pushed, first.errors) == (3, 3, [])
        assert (again.spooled, again.pushed) == (0, 0)
        for _ in range(2):
            async with Runner(load_site_config(b)) as rb:
                summary = await rb.run_once()
            assert summary.errors == []
        rows = await oa_b.fetch(
            "SELECT title, author FROM exchange_items ORDER BY log_index"
        )
        assert rows == [
            (f"杜集区预算联网监督经验之{i}", "huaibei-duji") for i in (1, 2, 3)
        ]
    finally:
        await gen_a.aclose()
        await gen_b.aclose()


async def test_json_columns_are_read_with_the_strict_parser() -> None:
    from adapters.sql_table import _json_value

    assert _json_value('{"practice": "做法"}') == {"practice": "做法"}
    # Duplicate keys, floats: kept as text, which the item schema then refuses.
    for loose in ('{"practice": "甲", "practice": "乙"}', '{"n": 1.5}'):
        assert _json_value(loose) == loose
