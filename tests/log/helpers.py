"""Shared helpers of the log tests: a site, signed items, waiting for checkpoints."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

from exchange.core.logleaf import leaf_hash_for
from tests.support.processes import items as items  # the log tests' signed lessons

# Checkpoints every 50 ms and small integration batches, so a few hundred items span
# many integration transactions.
FAST_LOG: dict[str, Any] = {"log": {"checkpoint_interval_ms": 50, "batch_size": 64}}


async def add_site(node: Any) -> Any:
    return await node.add_site("huaibei-duji", "淮北市杜集区人大常委会", ("huaihai",))


async def leaves_over_http(client: Any, size: int) -> list[bytes]:
    """Leaf hashes of entries 0..size-1, rebuilt from GET /v1/log/entries pages."""
    out: list[bytes] = []
    start = 0
    for _ in range(size // 1000 + 2):
        if start >= size:
            break
        page = await client.request(
            "GET", "/v1/log/entries", params={"start": start, "end": size}
        )
        for e in page["entries"]:
            out.append(leaf_hash_for(e["item_id"], e["index"], e["accepted_at"]))
        start += len(page["entries"])
    assert len(out) == size
    return out


async def run_cli(
    node: Any, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m exchange ARGS`` against the node's database and data folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
    env["EXCHANGE_DATABASE_URL"] = node.node.db.url
    env["EXCHANGE_NODE_ID"] = node.node.id
    cmd = [sys.executable, "-m", "exchange", *args]
    if args[0] != "verify":
        cmd += ["--data-dir", str(node.node.config.data_path)]

    def run() -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(cmd, env=env, capture_output=True, timeout=timeout)

    return await asyncio.to_thread(run)
