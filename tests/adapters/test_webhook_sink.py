"""The ``webhook`` sink: the adapter POSTs received items to a receiver on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.base import AdapterContext, AdapterError
from adapters.webhook import WebhookSink, WebhookSinkConfig, WebhookSource
from exchange.core.items import item_id, sign_item, verify_item
from exchange.core.signing import generate_key
from exchange.templates import template

pytestmark = pytest.mark.asyncio

KEY = generate_key(key_id="suzhou-wuzhong#k1")
SECRET = "shared-hmac-9"


@dataclass
class Receiver:
    """The site's system: checks the HMAC, answers from ``script`` then 200."""

    script: list[int] = field(default_factory=list)
    got: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        want = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("X-Signature-256", ""), want):
            self.bad_signatures += 1
            return web.Response(status=401, text="bad signature")
        if self.script:
            return web.Response(status=self.script.pop(0), text="not now")
        self.got.append(json.loads(body))
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield rec, str(server.make_url("/hook"))
    finally:
        await server.close()


def _sink(url: str, tmp_path: Path, **over: Any) -> WebhookSink:
    raw = {"type": "webhook", "name": "oa-out", "url": url, "hmac_secret": SECRET}
    raw.update(over)
    ctx = AdapterContext("huaibei-duji", tmp_path / "out", logging.getLogger("t"))
    return WebhookSink(WebhookSinkConfig.model_validate(raw), ctx)


def _signed(n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    item = template("case_study", author="suzhou-wuzhong", partner="huaibei-duji")
    item["title"] = f"吴中区案例 {n}"
    env = {"index": n, "id": item_id(item), "received_at": "2026-11-20T01:30:00+00:00"}
    return sign_item(item, KEY), env


async def test_sink_retries_5xx_then_delivers_once(
    receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    rec, url = receiver
    rec.script = [500, 503]
    sink = _sink(url, tmp_path)
    signed, env = _signed(1)
    try:
        for attempt in range(3):
            try:
                await sink.deliver(signed, env)
                break
            except AdapterError as exc:
                assert exc.retryable and "HTTP 50" in exc.message and attempt < 2
        await sink.deliver(signed, env)  # already delivered: no second POST
    finally:
        await sink.close()
    assert len(rec.got) == 1 and rec.bad_signatures == 0
    assert rec.got[0]["id"] == env["id"]
    verify_item(rec.got[0]["signed"], KEY.public_key)
    again = _sink(url, tmp_path)  # a restarted sink remembers
    try:
        await again.deliver(signed, env)
    finally:
        await again.close()
    assert len(rec.got) == 1


async def test_sink_refusals_wrong_secret_and_outage(
    receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    rec, url = receiver
    signed, env = _signed(2)
    wrong = _sink(url, tmp_path, hmac_secret="not-the-secret")
    try:
        with pytest.raises(AdapterError) as err:
            await wrong.deliver(signed, env)
    finally:
        await wrong.close()
    assert not err.value.retryable and "401" in err.value.message
    assert rec.bad_signatures == 1 and rec.got == []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = _sink(f"http://127.0.0.1:{port}/hook", tmp_path)
    try:
        with pytest.raises(AdapterError) as err:
            await down.deliver(signed, env)
    finally:
        await down.close()
    assert err.value.retryable and "will retry" in err.value.message


async def test_source_reports_a_taken_port_and_still_reads_its_queue(
    tmp_path: Path,
) -> None:
    from adapters.webhook import WebhookSourceConfig

    ctx = AdapterContext("huaibei-duji", tmp_path / "in", logging.getLogger("t"))
    cfg = WebhookSourceConfig.model_validate(
        {"type": "webhook", "listen": "127.0.0.1:0", "token": "t"}
    )
    first = WebhookSource(cfg, ctx)
    await first.start()
    try:
        taken = cfg.model_copy(update={"listen": f"127.0.0.1:{first.port}"})
        second = WebhookSource(taken, ctx)
        res = await second.poll({})
        await second.close()
    finally:
        await first.close()
    assert res.drafts == []
    assert len(res.problems) == 1 and "cannot listen" in res.problems[0]
    assert not (tmp_path / "in").exists()  # a look creates no folder


async def test_the_example_site_toml_is_valid(tmp_path: Path) -> None:
    from adapters.config import load_site_config
    from adapters.registry import load_adapter

    repo = Path(__file__).resolve().parents[2]
    cfg = load_site_config(repo / "deploy" / "examples" / "site-webhook.toml")
    ctx = AdapterContext(
        "suzhou-wuzhong", tmp_path / "a", logging.getLogger("t"), cfg.base_dir
    )
    assert isinstance(load_adapter(cfg.source[0], ctx, role="source"), WebhookSource)
    assert not (tmp_path / "a").exists()
