"""The push sender survives its own database going away: no restart of the node needed.

Node A keeps its items in a PostgreSQL this test owns; its peer B stores everything it
gets through A's push sender (B does not pull). The test SIGKILLs A's postmaster while
the sender runs, starts PostgreSQL again, and pushes a new item to A: it must reach B,
from the same running node.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exchange.core.items import sign_item
from exchange.templates import template
from tests.support.federation import build, item_ids, wait_until
from tests.support.reliability import OwnedPostgres


@pytest.fixture
def owned_pg(tmp_path: Path) -> Iterator[OwnedPostgres]:
    """Set up before (so torn down after) the nodes that use it."""
    pg = OwnedPostgres(tmp_path / "a-pg")
    pg.start()
    try:
        yield pg
    finally:
        pg.destroy()


def _item(title: str) -> dict[str, Any]:
    it = template("lesson", "huaibei-duji")
    it["title"] = title
    return it


async def _push_when_up(rn: Any, signed: dict[str, Any], timeout: float = 30) -> str:
    """Push, retrying (bounded) while A's database comes back; returns the item id."""
    got: dict[str, Any] = {}

    async def attempt() -> bool:
        try:
            async with rn.client("huaibei-duji") as c:
                got.update(await c.push(signed))
            return True
        except Exception:  # 503 while the database restarts
            return False

    await wait_until(attempt, timeout, "A to accept a push again")
    return str(got["id"])


async def test_push_sender_resumes_after_its_database_was_killed(
    owned_pg: OwnedPostgres, node_factory: Any
) -> None:
    fed = await build(
        node_factory,
        regions=("huaihai", "yangtze-delta"),
        per_node={
            "huaihai": {
                "database": {"url": owned_pg.url(), "pool_min": 1, "pool_max": 5}
            },
            "yangtze-delta": {"federation": {"replicate": False}},
        },
    )
    a, b = fed.nodes["huaihai"], fed.nodes["yangtze-delta"]
    duji = a.keys["huaibei-duji"]
    async with a.client("huaibei-duji") as c:
        first = await c.push(sign_item(_item("数据库重启前"), duji))
    await wait_until(lambda: _has(b, first["id"]), 20, "the first item on B")

    owned_pg.kill_postmaster()
    # Let the sender's peer loop run into the dead database (it looks every 2 s at least).
    await asyncio.sleep(3)
    owned_pg.start()
    second = await _push_when_up(a, sign_item(_item("数据库重启后"), duji))
    await wait_until(
        lambda: _has(b, second), 30, "the item pushed after the restart on B"
    )


async def _has(rn: Any, item_id: str) -> bool:
    return item_id in await item_ids(rn)
