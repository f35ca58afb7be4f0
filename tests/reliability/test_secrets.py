"""Secrets: key files are 0600 and refused when looser; no private key, monitor token,
session cookie or request signature ever shows up in a log line, an error body or
``/metrics``; the token check does not depend on how much of a token is right.

The leak check runs a realistic workflow — pushes, pulls, a monitor reading activity, a
dashboard login and session, bad credentials, federation delivery through a recording
proxy — twice: in-process with every logger at DEBUG (pytest's caplog on the root
logger), and against a subprocess node started with ``-v`` whose whole stderr is kept.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from exchange.config import load_config
from exchange.core import httpsig
from exchange.core.items import sign_item
from exchange.core.signing import (
    PrivateKey,
    b64u_encode,
    generate_key,
    load_private_key,
    save_private_key,
)
from exchange.errors import ConfigError
from exchange.logs import JsonFormatter
from exchange.node import Node
from tests.support import wait_until
from tests.support.reliability import (
    NodeProcess,
    SwitchProxy,
    lesson,
    node_entry,
    roster,
    seed_directory,
    write_artifact,
)

pytestmark = pytest.mark.asyncio


# ------------------------------------------------------------------ key files
async def test_key_files_are_0600_and_looser_ones_are_refused(
    tmp_path: Path, fresh_db: Any
) -> None:
    key = generate_key(key_id="huaibei-duji#k1")
    secret = b64u_encode(key.secret_bytes())
    path = tmp_path / "site.key"
    save_private_key(key, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_private_key(path).public_key.raw == key.public_key.raw
    # The CLI writes 0600 too.
    cli = tmp_path / "cli.key"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "exchange",
            "keys",
            "new",
            "--key-id",
            "xuzhou-tongshan#k1",
            "--out",
            str(cli),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(cli.stat().st_mode) == 0o600
    assert (
        orjson.loads(cli.read_bytes())["private_key"] not in done.stdout + done.stderr
    )
    # Looser modes are refused with a message that says what to do and holds no key material.
    for mode in (0o640, 0o604, 0o660, 0o644, 0o606, 0o677):
        os.chmod(path, mode)
        with pytest.raises(ConfigError) as ei:
            load_private_key(path)
        assert "chmod 600" in ei.value.message and secret not in ei.value.message
    # The CLI refuses to sign with it (exit 1), without printing the key.
    item = tmp_path / "item.json"
    item.write_bytes(orjson.dumps(lesson("huaibei-duji", "权限测试")))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "exchange",
            "item",
            "sign",
            str(item),
            "--key",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (
        done.returncode == 1
        and "chmod 600" in done.stderr
        and secret not in done.stderr + done.stdout
    )
    # A node creates its key 0600 and will not start with a looser one.
    data = tmp_path / "node"
    cfg = load_config(
        None,
        overrides={
            "node": {"id": "huaihai", "data_dir": str(data)},
            "database": {"url": await fresh_db(), "pool_min": 1, "pool_max": 2},
            "federation": {"replicate": False},
        },
        environ={},
    )
    node = Node(cfg)
    await node.start()
    await node.stop()
    assert stat.S_IMODE(cfg.key_path.stat().st_mode) == 0o600
    os.chmod(cfg.key_path, 0o644)
    node = Node(cfg)
    with pytest.raises(ConfigError, match="chmod 600"):
        await node.start()
    await node.stop()


# ------------------------------------------------------------------ no leaks
class Recorder:
    """Sends requests as the workflow's callers and remembers every secret it used."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.secrets: dict[str, str] = {}
        self.bodies: list[bytes] = []
        self.session = aiohttp.ClientSession()

    def secret(self, what: str, value: str) -> None:
        self.secrets[f"{what} #{len(self.secrets)}"] = value

    async def call(
        self,
        method: str,
        path: str,
        *,
        key: PrivateKey | None = None,
        token: str | None = None,
        body: bytes | None = None,
        cookies: dict[str, str] | None = None,
        ctype: str = "application/json",
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        hdrs = {"Content-Type": ctype} if body is not None else {}
        if key is not None:
            hdrs.update(
                httpsig.sign_request(
                    key,
                    method,
                    path,
                    self.base.split("://", 1)[1],
                    hdrs,
                    body,
                    created=int(time.time()),
                    nonce=secrets.token_urlsafe(12),
                    scheme="http",
                )
            )
            self.secret("request signature", hdrs["Signature"].split(":")[1])
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        cookie_hdr = "; ".join(f"{k}={v}" for k, v in (cookies or {}).items())
        if cookie_hdr:
            hdrs["Cookie"] = cookie_hdr
        async with self.session.request(
            method, self.base + path, data=body, headers=hdrs
        ) as r:
            raw = await r.read()
            self.bodies.append(raw)
            doc = (
                orjson.loads(raw)
                if raw and r.content_type == "application/json"
                else raw
            )
            return r.status, doc, r

    async def close(self) -> None:
        await self.session.close()


async def _workflow(
    rec: Recorder, keys: dict[str, PrivateKey], token: str, *, peer_check: Any = None
) -> None:
    """Push, pull, monitor, dashboard, bad credentials, metrics."""
    duji = keys["huaibei-duji"]
    for k in keys.values():
        rec.secret("site private key", b64u_encode(k.secret_bytes()))
    rec.secret("monitor token", token)
    signed = sign_item(lesson("huaibei-duji", "保密测试"), duji)
    status, doc, _ = await rec.call(
        "POST", "/v1/items", key=duji, body=orjson.dumps(signed)
    )
    assert status == 201, doc
    status, doc, _ = await rec.call("GET", "/v1/items", key=keys["xuzhou-tongshan"])
    assert status == 200 and doc["items"]
    status, doc, _ = await rec.call("GET", "/v1/activity", token=token)
    assert status == 200
    status, doc, resp = await rec.call(
        "POST", "/dashboard/login", body=orjson.dumps({"token": token})
    )
    assert status == 200
    cookie = resp.cookies["exchange_session"].value
    rec.secret("session cookie", cookie)
    status, _, _ = await rec.call(
        "GET", "/v1/activity", cookies={"exchange_session": cookie}
    )
    assert status == 200
    # Failures: each must explain itself without echoing what was wrong.
    wrong = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    rec.secret("near-miss token", wrong)
    for bad in (wrong, token + "x", "short"):
        status, doc, _ = await rec.call("GET", "/v1/activity", token=bad)
        assert status == 401
    status, _, _ = await rec.call(
        "POST", "/dashboard/login", body=orjson.dumps({"token": wrong})
    )
    assert status == 401
    tampered = orjson.loads(orjson.dumps(signed))
    tampered["item"]["title"] = "篡改"
    status, doc, _ = await rec.call(
        "POST", "/v1/items", key=duji, body=orjson.dumps(tampered)
    )
    assert status == 422
    stranger = generate_key(key_id="huaibei-duji#k9")
    rec.secret("stranger private key", b64u_encode(stranger.secret_bytes()))
    status, doc, _ = await rec.call("GET", "/v1/items", key=stranger)
    assert status == 401
    status, _, _ = await rec.call(
        "POST", "/dashboard/logout", cookies={"exchange_session": cookie}
    )
    assert status == 200
    status, _, _ = await rec.call(
        "GET", "/v1/activity", cookies={"exchange_session": cookie}
    )
    assert status == 401
    status, text, _ = await rec.call("GET", "/metrics")
    assert status == 200 and b"exchange_" in text


def _leaks(secrets_: dict[str, str], texts: dict[str, str]) -> list[str]:
    found = []
    for what, value in secrets_.items():
        for probe in {value, value[:16]}:
            for where, text in texts.items():
                if probe and probe in text:
                    found.append(f"{what} ({probe[:6]}…) in {where}")
    return found


def _record_text(rec: logging.LogRecord) -> str:
    parts = [
        JsonFormatter().format(rec),
        rec.getMessage(),
        repr(rec.args),
        repr(getattr(rec, "fields", "")),
    ]
    if rec.exc_text:
        parts.append(rec.exc_text)
    return "\n".join(parts)


async def test_no_secret_in_logs_errors_or_metrics(
    node_factory: Any, caplog: pytest.LogCaptureFixture, fresh_db: Any, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    roster_key = generate_key(key_id="roster#k1")
    pinned = [f"roster#k1 ed25519 {roster_key.public_key.b64()}"]
    fed = {
        "roster_keys": pinned,
        "backoff_base_ms": 100,
        "backoff_max_s": 1.0,
        "pull_interval_ms": 300,
    }
    a = await node_factory(
        "huaihai", federation=fed, log={"checkpoint_interval_ms": 100}
    )
    b = await node_factory("yangtze-delta", federation={**fed, "replicate": False})
    keys = {
        "huaibei-duji": await a.add_site(
            "huaibei-duji", "淮北市杜集区人大常委会", ("huaihai",)
        ),
        "xuzhou-tongshan": await a.add_site(
            "xuzhou-tongshan", "徐州市铜山区人大常委会", ("huaihai",)
        ),
    }
    await b.add_site("suzhou-wuzhong", "苏州市吴中区人大常委会", ("yangtze-delta",))
    proxy = await SwitchProxy(b.url).start()
    rec = Recorder(a.url)
    try:
        await a.node.federation.install(
            roster(
                [
                    node_entry(
                        "huaihai",
                        a.url,
                        a.node.key,
                        ["huaibei-duji", "xuzhou-tongshan"],
                    ),
                    node_entry(
                        "yangtze-delta", proxy.url, b.node.key, ["suzhou-wuzhong"]
                    ),
                ],
                {
                    "huaihai": ["huaibei-duji", "xuzhou-tongshan"],
                    "yangtze-delta": ["suzhou-wuzhong"],
                },
                roster_key,
            )
        )
        await b.node.federation.install((await a.node.federation.store.roster())[1])
        token = await a.add_monitor("huaibei-municipal", circles=("huaihai",))
        for n in (a, b):
            rec.secret("node private key", b64u_encode(n.node.key.secret_bytes()))
        await _workflow(rec, keys, token)

        async def delivered() -> bool:
            return await b.node.items.size() >= 1

        await wait_until(delivered, 20, "federation delivery to the peer")
        for h in proxy.seen_headers:  # the node's own request signatures
            if "Signature" in h:
                rec.secret("node request signature", h["Signature"].split(":")[1])
        metrics = {}
        for name, n in (("a", a), ("b", b)):
            async with aiohttp.ClientSession() as s, s.get(n.url + "/metrics") as r:
                metrics[f"/metrics of {name}"] = await r.text()
        logs = "\n".join(_record_text(r) for r in caplog.records)
        texts = {
            "in-process logs": logs,
            **metrics,
            "response bodies": "\n".join(
                b.decode("utf-8", "replace") for b in rec.bodies
            ),
        }
        assert len(caplog.records) > 20 and logging.getLogger().level == logging.DEBUG
        assert any("Signature" in h for h in proxy.seen_headers)
        in_process = _leaks(rec.secrets, texts)
        assert not in_process, in_process
        n_in_process = len(rec.secrets)
    finally:
        await rec.close()
        await proxy.stop()

    # The same workflow against a subprocess node logging at DEBUG (-v) to stderr.
    url = await fresh_db()
    keys, tokens = await seed_directory(
        url,
        [
            ("huaibei-duji", "huaihai", ("huaihai",)),
            ("xuzhou-tongshan", "huaihai", ("huaihai",)),
        ],
        [("huaibei-municipal", ("huaihai",))],
    )
    node = NodeProcess(
        tmp_path / "sub", url, verbose=True, env={"EXCHANGE_WEBHOOKS_ENABLED": "false"}
    )
    node.start()
    rec = Recorder(node.url)
    try:
        await node.wait_ready()
        node_key = load_private_key(node.data_dir / "node.key")
        rec.secret("node private key", b64u_encode(node_key.secret_bytes()))
        await _workflow(rec, keys, tokens["huaibei-municipal"])
        status, metrics_text, _ = await rec.call("GET", "/metrics")
    finally:
        await rec.close()
        assert node.stop() == 0, node.log_tail()
    stderr = node.log_path.read_text(errors="replace")
    assert "POST /v1/items" in stderr and "GET /v1/activity" in stderr  # it did log
    sub = _leaks(
        rec.secrets,
        {
            "subprocess stderr": stderr,
            "subprocess /metrics": metrics_text.decode(),
            "response bodies": "\n".join(
                b.decode("utf-8", "replace") for b in rec.bodies
            ),
        },
    )
    assert not sub, sub
    write_artifact(
        "secrets",
        {
            "secrets_checked": n_in_process + len(rec.secrets),
            "log_records_checked": len(caplog.records),
            "subprocess_log_bytes": len(stderr.encode()),
            "leaks": 0,
        },
    )


# ------------------------------------------------------------------ token checks
async def test_token_check_does_not_depend_on_how_much_is_right(node: Any) -> None:
    token = await node.add_monitor("huaibei-municipal", circles=("huaihai",))
    near = token[:-1] + (
        "A" if token[-1] != "A" else "B"
    )  # right length, one character off
    bodies = set()
    async with aiohttp.ClientSession() as s:
        for bad in (near, token[:10], token + token, "x", near[:-1]):
            async with s.get(
                node.url + "/v1/activity", headers={"Authorization": f"Bearer {bad}"}
            ) as r:
                assert r.status == 401
                bodies.add(await r.read())
            async with s.post(node.url + "/dashboard/login", json={"token": bad}) as r:
                assert r.status == 401
                bodies.add(await r.read())
        async with s.get(
            node.url + "/v1/activity", headers={"Authorization": f"Bearer {token}"}
        ) as r:
            assert r.status == 200
    # One body for the API and one for the login form, whatever the guess was.
    assert len(bodies) == 2, bodies
    # Only a SHA-256 of the token is stored, and it is found by a unique-index lookup
    # (an equality probe on a uniformly random value: no prefix comparison to time).
    async with node.node.db.pool.acquire() as c:
        rows = [dict(r) for r in await c.fetch("SELECT * FROM monitors")]
        indexes = await c.fetch(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'monitors'"
        )
    assert rows[0]["token_hash"] == hashlib.sha256(token.encode()).digest()
    assert token not in repr(rows)
    assert any(
        "UNIQUE" in r["indexdef"] and "token_hash" in r["indexdef"] for r in indexes
    )
