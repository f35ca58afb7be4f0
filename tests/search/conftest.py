"""Fixtures for the discovery tests: a node filled with the generated Chinese corpus."""

from __future__ import annotations

import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from exchange.core.items import sign_item
from tests.support.federation import CIRCLE_NAMES

from .corpus import SITES, CorpusItem, generate


@dataclass
class Corpus:
    """A running node holding the corpus."""

    node: Any
    items: list[CorpusItem]
    index: dict[str, int]  # item id -> log index


async def fill(node: Any, items: list[CorpusItem]) -> dict[str, int]:
    """Register the corpus sites and push every item over HTTP, in batches of 100."""
    for site, (name, circles) in SITES.items():
        if site not in node.keys:
            await node.add_site(site, name, circles)
    index: dict[str, int] = {}
    # Plans and everything else first, then endorsements (they need their plan stored).
    for phase in (False, True):
        by_author: dict[str, list[dict[str, Any]]] = {}
        for c in items:
            if (c.item["kind"] == "endorsement") == phase:
                key = node.keys[c.item["author"]]
                by_author.setdefault(c.item["author"], []).append(
                    sign_item(c.item, key)
                )
        for author, signed in by_author.items():
            async with node.client(author) as client:
                for start in range(0, len(signed), 100):
                    res = await client.push_batch(signed[start : start + 100])
                    for r in res["results"]:
                        assert r["status"] in ("accepted", "duplicate"), r
                        index[r["id"]] = r["index"]
    return index


@pytest.fixture
async def corpus(node_factory: Callable[..., Awaitable[Any]]) -> Corpus:
    """A node with the 400-item corpus pushed (its circles named in its config, as a
    node without a roster names them)."""
    node = await node_factory(node={"circle_names": CIRCLE_NAMES})
    items = generate(400)
    return Corpus(node, items, await fill(node, items))


@pytest.fixture(scope="session")
async def shared(
    pg_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """One corpus node for the session, for tests that only read (faster than ``corpus``).

    Built like ``node_factory`` (its own database cloned from the migrated template,
    HTTP on 127.0.0.1:0) and stopped at the end of the session. Tests using it may add
    monitors or read tokens, never items.
    """
    import asyncpg
    from aiohttp.test_utils import TestServer

    from exchange.config import load_config
    from exchange.http.app import make_app
    from exchange.node import Node
    from tests.support.nodes import RunningNode, with_db

    name = f"exchange_shared_{os.getpid()}_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    finally:
        await conn.close()
    cfg = load_config(
        None,
        overrides={
            "node": {
                "id": "huaihai",
                "data_dir": str(tmp_path_factory.mktemp("shared")),
            },
            "database": {"url": with_db(pg_url, name), "pool_min": 1, "pool_max": 5},
        },
        environ={},
    )
    node = Node(cfg)
    await node.start()
    server = TestServer(make_app(node), host="127.0.0.1", port=0)
    await server.start_server()
    rn = RunningNode(node, server)
    items = generate(400)
    try:
        yield Corpus(rn, items, await fill(rn, items))
    finally:
        await server.close()
        await node.stop()
        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
