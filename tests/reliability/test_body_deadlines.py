"""Body deadlines, the per-site blob quota and event retention, on an in-process node.

The attacks at scale run against a real node in ``test_hostile_clients.py``; these pin
the edges: a body that trickles (never stalling long enough for the stall deadline) is
cut off by the minimum rate; a site over its blob quota is refused before it sends a
byte; events older than the retention are purged and newer ones kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from typing import Any

import asyncpg
import pytest

from exchange.client import ExchangeClient
from exchange.core.items import sign_item
from exchange.errors import OperationalError, TooLarge
from tests.support.reliability import lesson

from .test_hostile_clients import Conn, _signed_put

pytestmark = pytest.mark.asyncio


async def test_a_trickling_body_is_cut_off_by_the_minimum_rate(
    node_factory: Any,
) -> None:
    rn = await node_factory(http={"body_stall_s": 0.5, "body_min_rate": 20_000})
    key = await rn.add_site("huaibei-duji", "淮北市杜集区人大常委会", ("huaihai",))
    port = int(rn.url.rsplit(":", 1)[1])
    data = os.urandom(64 * 1024)
    sha, head = _signed_put(key, port, data)
    conn = await Conn.open(port, "127.0.0.1")
    try:
        await conn.send(head)
        t0 = time.monotonic()
        sent = 0
        # 1 KiB every 0.2 s: never silent for the stall deadline, far under the rate.
        while not conn.status and sent < len(data) and time.monotonic() - t0 < 10:
            await conn.send(data[sent : sent + 1024], timeout=1)
            sent += 1024
            await asyncio.sleep(0.2)
        for _ in range(50):
            if conn.status:
                break
            await asyncio.sleep(0.1)
        assert conn.status == 408, conn.head
        assert b'"request_timeout"' in conn.head
        assert sent < len(data)
    finally:
        await conn.close()
    assert await rn.node.blobs.meta(sha) is None


async def test_a_site_over_its_blob_quota_is_refused(node_factory: Any) -> None:
    rn = await node_factory(limits={"blob_quota_bytes": 3000})
    key = await rn.add_site("huaibei-duji", "淮北市杜集区人大常委会", ("huaihai",))
    async with ExchangeClient(rn.url, key=key) as client:
        first = await client.put_blob(os.urandom(2000))
        assert first["size"] == 2000
        blob = os.urandom(2000)
        with pytest.raises(TooLarge) as err:
            await client.put_blob(blob)
        assert "quota" in err.value.message
    assert await rn.node.blobs.meta(hashlib.sha256(blob).hexdigest()) is None


async def test_events_older_than_the_retention_are_purged(node_factory: Any) -> None:
    rn = await node_factory(limits={"event_retention_days": 30})
    activity = rn.node.activity
    await activity.event(
        "security", "", "unknown_key", "GET /v1/items refused", source="127.0.0.9"
    )
    await activity.event(
        "security", "", "unknown_key", "GET /v1/items refused", source="127.0.0.9"
    )
    await activity.flush()
    conn = await asyncpg.connect(rn.node.config.database.url)
    try:
        # One row with a count for the two events of the same source and minute.
        assert await conn.fetchval("SELECT count FROM activity_events") == 2
        await conn.execute(
            "INSERT INTO activity_events (kind, site, code, message, at) "
            "VALUES ('security', '', 'unknown_key', 'old', now() - interval '31 days')"
        )
        assert await activity.purge_events(30) == 1
        assert await conn.fetchval("SELECT count(*) FROM activity_events") == 1
    finally:
        await conn.close()


async def test_a_request_over_the_handler_deadline_is_stopped(
    node_factory: Any,
) -> None:
    # No log writer here: a receipt asked to wait for integration waits its full time.
    rn = await node_factory(http={"handler_timeout_s": 1}, log={"writer": False})
    key = await rn.add_site("huaibei-duji", "淮北市杜集区人大常委会", ("huaihai",))
    async with ExchangeClient(rn.url, key=key, timeout=30) as client:
        pushed = await client.push(sign_item(lesson("huaibei-duji", "等待入账"), key))
        t0 = time.monotonic()
        with pytest.raises(OperationalError) as err:
            await client.request("GET", f"/v1/items/{pushed['id']}/receipt?wait=20")
        took = time.monotonic() - t0
    assert err.value.code.value == "overloaded"
    assert took < 10, f"stopped after {took:.1f} s"
