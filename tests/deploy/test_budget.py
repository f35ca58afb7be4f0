"""Connection budget: pools fit the server's max_connections, or the node refuses to start.

Every serving process holds its pool, a small relaxed pool and a few dedicated
connections; ``--workers N`` multiplies that. The node reads the server's
``max_connections`` (less the reserved ones and what others use) and shrinks its pools
to fit, or refuses to start with a message that says what to change, before any worker
is started. The embedded server's ``max_connections`` is raised to fit.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from exchange.errors import OperationalError
from exchange.storage.database import (
    connections_needed,
    embedded_max_connections,
    fit_pool,
)
from tests.support.processes import arun_cli, clean_env, free_port


async def _room(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SHOW max_connections"))
    finally:
        await conn.close()


async def test_pools_fit_the_server_or_the_start_is_refused(
    fresh_db: Callable[[], Awaitable[str]],
) -> None:
    url = await fresh_db()
    kw = {"pool_min": 1, "node_id": "huaihai"}
    assert await fit_pool(url, workers=2, pool_max=10, **kw) == 10  # fits as configured
    max_conn = await _room(url)
    workers = max_conn // 20  # 10 pooled + 10 others each would not fit
    fitted = await fit_pool(url, workers=workers, pool_max=10, **kw)
    assert 1 <= fitted < 10
    assert connections_needed(workers, fitted) <= max_conn
    with pytest.raises(OperationalError, match="max_connections") as err:
        await fit_pool(url, workers=max_conn, pool_max=10, **kw)
    assert "--workers" in err.value.message


async def test_embedded_server_is_sized_for_the_workers() -> None:
    assert embedded_max_connections(1, 10) == 200  # PostgreSQL's default is enough
    big = embedded_max_connections(16, 10)
    assert big >= connections_needed(16, 10) + 3


async def test_node_up_refuses_workers_the_server_cannot_hold(
    fresh_db: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    url = await fresh_db()
    pool_min = await _room(url) // 16  # 16 workers with such pools cannot fit
    started = time.monotonic()
    done = await arun_cli(
        "node",
        "up",
        "--workers",
        "16",
        "--data-dir",
        str(tmp_path / "data"),
        "--listen",
        f"127.0.0.1:{free_port()}",
        env=clean_env(
            EXCHANGE_DATABASE_URL=url,
            EXCHANGE_NODE_ID="huaihai",
            EXCHANGE_DATABASE_POOL_MIN=str(pool_min),
            EXCHANGE_DATABASE_POOL_MAX=str(pool_min),
        ),
        cwd=tmp_path,
        timeout=120,
    )
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "max_connections" in out and "Traceback" not in out, out
    assert "worker 1 started" not in out, out  # refused before any worker
    assert time.monotonic() - started < 60
