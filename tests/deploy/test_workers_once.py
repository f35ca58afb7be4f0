"""``exchange node up --workers 2``: each item reaches each peer and webhook exactly once.

Both worker processes serve the API and run the background loops; the push sender's and
the webhooks' per-key loops are taken by one worker each (an advisory lock per peer and
per subscriber). A recording peer and a recording webhook receiver on 127.0.0.1 count
every delivery of every item id.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
from aiohttp import web

from exchange.client import ExchangeClient
from exchange.core.items import parse_signed_item
from exchange.core.signing import generate_key
from exchange.storage.database import Database
from exchange.storage.webhooks import WebhookStore
from tests.support.processes import NodeProcess, clean_env, free_port, items
from tests.support.reliability import node_entry, roster, seed_directory

_SITE = "huaibei-duji"


class _Recorder:
    """A peer (``POST /v1/federation/batch``) and a webhook receiver that count ids."""

    def __init__(self) -> None:
        self.peer: collections.Counter[str] = collections.Counter()
        self.hook: collections.Counter[str] = collections.Counter()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _batch(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        await asyncio.sleep(
            0.2
        )  # slow enough for a second sender to overlap, if one ran
        results = []
        for env in body.get("items", []):
            item_id = parse_signed_item(env).id
            self.peer[item_id] += 1
            results.append({"id": item_id, "status": "accepted"})
        return web.json_response({"results": results})

    async def _hook(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        await asyncio.sleep(0.05)
        self.hook[body["id"]] += 1
        return web.json_response({})

    async def _other(self, request: web.Request) -> web.Response:
        await request.read()
        if request.path == "/v1/federation/log":
            return web.json_response(
                {"items": [], "next_cursor": 0, "site_records": []}
            )
        return web.json_response(
            {"error": {"code": "not_found", "message": "-"}}, status=404
        )

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/federation/batch", self._batch)
        app.router.add_post("/hook", self._hook)
        app.router.add_route("*", "/{tail:.*}", self._other)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def test_workers_deliver_each_item_once_to_each_peer_and_webhook(
    fresh_db: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    url = await fresh_db()
    rec = _Recorder()
    await rec.start()
    try:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        node_key = generate_key(key_id="huaihai#k1")
        from exchange.core.signing import save_private_key

        data = tmp_path / "data"
        data.mkdir()
        save_private_key(node_key, data / "node.key")
        keys, _ = await seed_directory(url, [(_SITE, "huaihai", ("c",))])
        roster_key = generate_key(key_id="roster#k1")
        peer_key = generate_key(key_id="recorder#k1")
        signed = roster(
            [
                node_entry("huaihai", base, node_key, [_SITE]),
                node_entry("recorder", rec.url, peer_key, ["far-site"]),
            ],
            {"c": [_SITE, "far-site"]},
            roster_key,
        )
        (tmp_path / "roster.signed.json").write_bytes(orjson.dumps(signed))
        db = Database(url, min_size=1, max_size=1)
        await db.open()
        try:
            await WebhookStore(db).add(_SITE, rec.url + "/hook", -1)
        finally:
            await db.close()
        (tmp_path / "node.toml").write_text(
            '[node]\nid = "huaihai"\n'
            f'data_dir = "{data}"\n'
            "[federation]\n"
            f'roster_keys = ["roster#k1 ed25519 {roster_key.public_key.b64()}"]\n'
            'roster_file = "roster.signed.json"\n'
            "backoff_base_ms = 100\nbackoff_max_s = 1.0\nbatch_size = 5\n"
            "[webhooks]\npoll_interval_ms = 100\n"
        )
        sup = NodeProcess(
            [
                "--workers",
                "2",
                "--config",
                str(tmp_path / "node.toml"),
                "--listen",
                f"127.0.0.1:{port}",
            ],
            clean_env(EXCHANGE_DATABASE_URL=url),
            tmp_path / "sup.log",
            tmp_path,
        )
        try:
            await asyncio.to_thread(sup.wait_ready, base)
            signed_items = items(keys[_SITE], 30, site=_SITE)
            ids = set()
            async with ExchangeClient(base, key=keys[_SITE]) as c:
                for it in signed_items:  # new connections, spread over both workers
                    ids.add((await c.push(it))["id"])
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (
                ids <= set(rec.peer) and ids <= set(rec.hook)
            ):
                await asyncio.sleep(0.1)
            assert ids <= set(rec.peer), (
                f"not all items reached the peer:\n{sup.output()[-3000:]}"
            )
            assert ids <= set(rec.hook), (
                f"not all items reached the webhook:\n{sup.output()[-3000:]}"
            )
            await asyncio.sleep(2.0)  # a second worker delivering too would show by now
            twice_peer = {i: n for i, n in rec.peer.items() if n != 1}
            twice_hook = {i: n for i, n in rec.hook.items() if n != 1}
            assert twice_peer == {}, (
                f"items delivered to the peer more than once: {twice_peer}"
            )
            assert twice_hook == {}, (
                f"items delivered to the webhook more than once: {twice_hook}"
            )
        finally:
            assert sup.stop() == 0, sup.output()[-3000:]
    finally:
        await rec.stop()
