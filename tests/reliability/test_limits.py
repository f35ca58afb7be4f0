"""Resource limits: edges of the body, batch and rate limits; a slow-loris crowd does not
starve normal requests; memory stays bounded while a 64 MiB blob streams up and down,
and while a peer is down and the backlog grows.

Memory is measured on a real subprocess node with psutil (RSS sampled from a thread),
and the figures go to ``test-artifacts/reliability/limits.json``. The bounds asserted
are behaviour, not speed: a node that buffered a whole blob, or queued a backlog in
memory, would exceed them by far.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from exchange.client import ExchangeClient
from exchange.core import httpsig
from exchange.core.items import sign_item
from exchange.core.signing import generate_key, save_private_key
from tests.support import wait_until
from tests.support.reliability import (
    NodeProcess,
    RssSampler,
    free_port,
    lesson,
    merge_artifact,
    node_entry,
    roster,
    seed_directory,
)

pytestmark = pytest.mark.asyncio

MiB = 1024 * 1024
BLOB_BYTES = 64 * MiB
BLOB_RSS_BOUND = 32 * MiB
BACKLOG_ITEMS = 2000
BACKLOG_RSS_BOUND = 24 * MiB


async def _signed(
    rn: Any, site: str, method: str, path: str, body: bytes | None, **headers: str
) -> tuple[int, dict[str, str], Any]:
    authority = rn.url.split("://", 1)[1]
    hdrs = {"Content-Type": "application/json", **headers}
    hdrs.update(
        httpsig.sign_request(
            rn.keys[site],
            method,
            path,
            authority,
            hdrs,
            body,
            created=int(time.time()),
            nonce=secrets.token_urlsafe(12),
            scheme="http",
        )
    )
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, rn.url + path, data=body, headers=hdrs) as r,
    ):
        raw = await r.read()
        return r.status, dict(r.headers), orjson.loads(raw) if raw else None


async def _raw_http(port: int, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send bytes on a fresh connection; return the status and what came back (bounded)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + body)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(65536), timeout=10)
    finally:
        writer.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.") else 0
    return status, data


async def test_body_batch_and_rate_limit_edges(node_factory: Any) -> None:
    rn = await node_factory(
        http={"max_body_bytes": 64 * 1024, "max_batch": 3},
        limits={"site_requests_per_s": 1, "site_burst": 1},
    )
    key = await rn.add_site("huaibei-duji", "淮北市杜集区人大常委会", ("huaihai",))
    port = int(rn.url.rsplit(":", 1)[1])
    size = rn.node.items.size

    # Exactly max_batch items: accepted.
    batch = {
        "items": [sign_item(lesson("huaibei-duji", f"边界{i}"), key) for i in range(3)]
    }
    status, _, body = await _signed(
        rn, "huaibei-duji", "POST", "/v1/items", orjson.dumps(batch)
    )
    assert status == 200 and body["accepted"] == 3
    # Rate limit: the burst (1) is spent; 429 with Retry-After, nothing stored.
    status, headers, body = await _signed(
        rn,
        "huaibei-duji",
        "POST",
        "/v1/items",
        orjson.dumps(sign_item(lesson("huaibei-duji", "限流"), key)),
    )
    assert status == 429 and body["error"]["code"] == "rate_limited", body
    retry_after = int(headers["Retry-After"])
    assert retry_after >= 1 and body["error"]["message"]
    assert await size() == 3
    # Waiting as told is enough.
    await asyncio.sleep(retry_after)
    status, _, body = await _signed(
        rn, "huaibei-duji", "GET", "/v1/items?limit=1", None
    )
    assert status == 200, body
    # Another site has its own bucket.  An empty batch is refused with a schema error.
    await rn.add_site("xuzhou-tongshan", "徐州市铜山区人大常委会", ("huaihai",))
    status, _, body = await _signed(
        rn, "xuzhou-tongshan", "POST", "/v1/items", b'{"items":[]}'
    )
    assert (status, body["error"]["code"]) == (422, "schema_invalid")
    # A declared Content-Length over the limit is refused before the body is read.
    head = (
        f"POST /v1/items HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {10**9}\r\n\r\n"
    ).encode()
    status, data = await _raw_http(port, head)
    assert status == 413 and b'"too_large"' in data
    # A chunked body (no length declared) that runs past the limit.
    chunk = b"x" * 8192
    chunks = (
        b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(10))
        + b"0\r\n\r\n"
    )
    head = (
        f"POST /v1/items HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    status, data = await _raw_http(port, head, chunks)
    # Unsigned: refused from its headers, before any of the body is read (issue 15).
    assert status == 401 and b'"unauthenticated"' in data
    # A blob declared over max_blob_bytes: refused before authentication or any byte.
    sha = "0" * 64
    head = (
        f"PUT /v1/blobs/{sha} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Length: {rn.node.config.http.max_blob_bytes + 1}\r\n\r\n"
    ).encode()
    status, data = await _raw_http(port, head)
    assert status == 413 and b'"too_large"' in data
    assert await rn.node.blobs.meta(sha) is None
    # A header line over aiohttp's limit: a 4xx, never a 5xx.
    head = (
        f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Big: {'a' * 20000}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    status, _ = await _raw_http(port, head)
    assert 400 <= status < 500
    # A request line with an absurd URL: 4xx as well.
    head = f"GET /v1/sites/{'b' * 20000} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    status, _ = await _raw_http(port, head)
    assert 400 <= status < 500
    assert await size() == 3


async def test_slow_loris_crowd_does_not_starve_normal_requests(
    node_factory: Any,
) -> None:
    rn = await node_factory()
    key = await rn.add_site("huaibei-duji", "淮北市杜集区人大常委会", ("huaihai",))
    port = int(rn.url.rsplit(":", 1)[1])
    crowd = 200
    stop = asyncio.Event()
    opened: list[asyncio.StreamWriter] = []
    closed_by_server = 0

    async def loris(i: int) -> None:
        nonlocal closed_by_server
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        opened.append(writer)
        payload = (
            f"GET /v1/items HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Slow-{i}: "
            + "z" * 4000
        ).encode()
        for b in range(len(payload)):  # one byte at a time, never finishing the headers
            if stop.is_set():
                return
            try:
                writer.write(payload[b : b + 1])
                await writer.drain()
            except (ConnectionError, OSError):
                closed_by_server += 1
                return
            await asyncio.sleep(0.2)

    tasks = [asyncio.create_task(loris(i)) for i in range(crowd)]
    try:
        await wait_until(
            lambda: asyncio.sleep(0, len(opened) == crowd), 20, "the crowd to connect"
        )
        await asyncio.sleep(1.0)  # the crowd is mid-headers
        ok = 0
        async with ExchangeClient(rn.url, key=key, timeout=10) as client:
            for i in range(10):
                res = await client.push(
                    sign_item(lesson("huaibei-duji", f"慢速攻击期间{i}"), key)
                )
                assert res["status"] == "accepted"
                page = await client.list_items()
                assert len(page["items"]) == i + 1
                assert (await client.health())["status"] == "ok"
                ok += 3
        # Each normal request had to be served while all 200 slow connections stayed open.
        still_open = sum(1 for t in tasks if not t.done())
        assert still_open == crowd, f"{crowd - still_open} slow connections ended early"
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for w in opened:
            w.close()
    merge_artifact(
        "limits",
        slow_loris={
            "connections": crowd,
            "normal_requests_ok": ok,
            "slow_connections_closed_by_server": closed_by_server,
            "header_timeout": "in-process test server: aiohttp defaults; the node's "
            "listener deadlines are tested on a real node in test_hostile_clients.py",
        },
    )


async def test_blob_streaming_memory_is_bounded(fresh_db: Any, tmp_path: Path) -> None:
    url = await fresh_db()
    keys, _ = await seed_directory(url, [("huaibei-duji", "huaihai", ("huaihai",))])
    node = NodeProcess(
        tmp_path / "node", url, env={"EXCHANGE_WEBHOOKS_ENABLED": "false"}
    )
    node.start()
    try:
        await node.wait_ready()
        data = os.urandom(BLOB_BYTES)
        sha = hashlib.sha256(data).hexdigest()
        async with ExchangeClient(
            node.url, key=keys["huaibei-duji"], timeout=120
        ) as client:
            await client.put_blob(b"warm-up" * 1000)  # the code paths are loaded
            await client.get_blob(hashlib.sha256(b"warm-up" * 1000).hexdigest())
            with RssSampler(node.pid) as up:
                info = await client.put_blob(data)
            assert info["size"] == BLOB_BYTES and info["sha256"] == sha
            with RssSampler(node.pid) as down:
                back = await client.get_blob(sha)
            assert hashlib.sha256(back).hexdigest() == sha
        del data, back
        assert up.samples > 5 and down.samples > 5
        assert up.growth < BLOB_RSS_BOUND, (
            f"upload grew the node by {up.growth / MiB:.1f} MiB"
        )
        assert down.growth < BLOB_RSS_BOUND, (
            f"download grew the node by {down.growth / MiB:.1f} MiB"
        )
        merge_artifact(
            "limits",
            blob_stream={
                "blob_mib": BLOB_BYTES / MiB,
                "bound_mib": BLOB_RSS_BOUND / MiB,
                "upload_rss_growth_mib": round(up.growth / MiB, 1),
                "download_rss_growth_mib": round(down.growth / MiB, 1),
                "node_rss_before_mib": round(up.baseline / MiB, 1),
                "samples": up.samples + down.samples,
            },
        )
    finally:
        assert node.stop() == 0, node.log_tail()


async def test_backlog_for_a_down_peer_stays_out_of_memory(
    fresh_db: Any, tmp_path: Path
) -> None:
    url = await fresh_db()
    keys, tokens = await seed_directory(
        url,
        [("huaibei-duji", "huaihai", ("huaihai",))],
        [("huaibei-municipal", ("huaihai",))],
    )
    data = tmp_path / "node"
    data.mkdir()
    node_key = generate_key(key_id="huaihai#k1")
    save_private_key(node_key, data / "node.key")
    roster_key = generate_key(key_id="roster#k1")
    port = free_port()
    signed = roster(
        [
            node_entry(
                "huaihai", f"http://127.0.0.1:{port}", node_key, ["huaibei-duji"]
            ),
            node_entry(
                "zhejiang",
                f"http://127.0.0.1:{free_port()}",  # nobody there
                generate_key(key_id="zhejiang#k1"),
            ),
        ],
        {"huaihai": ["huaibei-duji"]},
        roster_key,
    )
    (tmp_path / "roster.json").write_bytes(orjson.dumps(signed))
    node = NodeProcess(
        data,
        url,
        port=port,
        env={
            "EXCHANGE_FEDERATION_ROSTER_KEYS": f"roster#k1 ed25519 {roster_key.public_key.b64()}",
            "EXCHANGE_FEDERATION_ROSTER_FILE": str(tmp_path / "roster.json"),
            "EXCHANGE_FEDERATION_BACKOFF_BASE_MS": "20",
            "EXCHANGE_FEDERATION_BACKOFF_MAX_S": "0.2",
            "EXCHANGE_FEDERATION_REQUEST_TIMEOUT_S": "0.5",
            "EXCHANGE_LIMITS_SITE_REQUESTS_PER_S": "0",
            "EXCHANGE_WEBHOOKS_ENABLED": "false",
        },
    )
    node.start()
    key = keys["huaibei-duji"]
    try:
        await node.wait_ready()

        async def push(n: int, tag: str) -> None:
            async with ExchangeClient(node.url, key=key, timeout=60) as client:
                for start in range(0, n, 500):
                    res = await client.push_batch(
                        [
                            sign_item(lesson("huaibei-duji", f"{tag}{i}"), key)
                            for i in range(start, min(n, start + 500))
                        ]
                    )
                    assert res["accepted"] == min(500, n - start)

        async def peer() -> dict[str, Any]:
            async with ExchangeClient(
                node.url, token=tokens["huaibei-municipal"]
            ) as client:
                peers = (await client.request("GET", "/v1/federation/peers"))["peers"]
            return next(p for p in peers if p["peer"] == "zhejiang")

        await push(500, "预热")  # the same code paths and batch sizes as below
        await asyncio.sleep(1.0)
        before = node.rss()
        await push(BACKLOG_ITEMS, "积压")

        async def retried() -> bool:
            return (await peer())["attempts"] >= 5

        await wait_until(retried, 20, "the sender to keep retrying the down peer")
        after = node.rss()
        status = await peer()
        assert status["backlog"] == 500 + BACKLOG_ITEMS and status["pushed_total"] == 0
        assert status["last_error"]
        growth = after - before
        assert growth < BACKLOG_RSS_BOUND, f"the sender grew by {growth / MiB:.1f} MiB"
        merge_artifact(
            "limits",
            backlog={
                "peer": "down (closed port)",
                "items_queued": status["backlog"],
                "rss_before_mib": round(before / MiB, 1),
                "rss_after_mib": round(after / MiB, 1),
                "rss_growth_mib": round(growth / MiB, 1),
                "bound_mib": BACKLOG_RSS_BOUND / MiB,
                "attempts": status["attempts"],
            },
        )
    finally:
        assert node.stop() == 0, node.log_tail()
