"""Search indexing runs behind the log at a lower CPU priority than pushes: its
tokenizer process and its PostgreSQL server process (when that runs on this host) are
reniced, and what it indexes is the same."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

from exchange.core.items import sign_item
from exchange.service.search import Indexer
from exchange.templates import template
from tests.support import wait_until
from tests.support.nodes import RunningNode


async def test_indexing_yields_the_cpu_to_pushes(
    node_factory: Callable[..., Awaitable[RunningNode]],
) -> None:
    rn = await node_factory(search={"indexer": False})  # only ours competes
    node = rn.node
    key = await rn.add_site("huaibei-duji", circles=("huaihai",))
    indexer = Indexer(
        node.db, node.search.store, name="priority-test", nice=7, nice_backend=True
    )
    indexer.start()
    try:
        item = template("case_study", "huaibei-duji")
        item["title"] = "预算联网监督典型案例"
        item["summary"] = "区人大常委会预算联网监督工作案例。"
        async with rn.client("huaibei-duji") as c:
            await c.push(sign_item(item, key))

        async def indexed() -> bool:
            return await node.search.store.indexed_upto() >= 1

        await wait_until(indexed, 30, "the indexer to index the item")
        async with node.db.pool.acquire() as conn:
            backend = await conn.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE application_name LIKE $1",
                "priority-test-indexer-%",
            )
        assert backend is not None
        assert os.getpriority(os.PRIO_PROCESS, backend) >= 7
        assert indexer._pool is not None
        helpers = list(indexer._pool._processes)  # type: ignore[attr-defined]
        assert helpers
        assert all(os.getpriority(os.PRIO_PROCESS, p) >= 7 for p in helpers)
        assert os.getpriority(os.PRIO_PROCESS, os.getpid()) < 7  # the node's own
    finally:
        await indexer.stop()
