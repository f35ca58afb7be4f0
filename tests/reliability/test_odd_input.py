"""Odd input gets a 4xx, never a 5xx: the hand-made cases that once answered 500 (or a 503
"database unavailable"), then property-based fuzzing over every query parameter's edges
and over malformed form bodies on both login forms.

Real node, real PostgreSQL, real HTTP on 127.0.0.1. The fuzz runs a few hundred cases by
default and more with ``EXCHANGE_SOAK=1``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import secrets
from collections import Counter
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
import pytest

from exchange.core.items import sign_item

from .helpers import lesson, merge_artifact

pytestmark = pytest.mark.asyncio

SITE = "huaibei-duji"
_counts: Counter[str] = Counter()


async def _signed_get(node: Any, path: str, params: dict[str, str]) -> tuple[int, bytes]:
    target = path + ("?" + urlencode(params) if params else "")
    async with node.client(SITE) as c:
        hdrs = c.signed_headers("GET", target, None)
        async with c.session.get(
            aiohttp.client.URL(node.url + target, encoded=True), headers=hdrs
        ) as r:
            return r.status, await r.read()


def _cursor(doc: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")


async def _world(node: Any) -> str:
    """A site with three searchable items; returns a real next-page cursor."""
    key = await node.add_site(SITE, "淮北市杜集区人大常委会", ("huaihai",))
    async with node.client(SITE) as c:
        for i in range(3):
            await c.push(sign_item(lesson(SITE, f"安全生产法检查经验 {i}"), key))
    status, body = await _signed_get(node, "/v1/search", {"q": "安全生产法", "limit": "1"})
    assert status == 200, body
    cursor = orjson.loads(body)["next_cursor"]
    assert cursor
    return str(cursor)


DATE_EDGES = [
    ("until", "9999-12-31"),
    ("since", "9999-12-31"),
    ("since", "0001-01-01"),
    ("until", "0001-01-01"),
    ("since", "0001-01-01T00:00:00+23:59"),
    ("until", "0001-01-01T00:00:00+23:59"),
    ("since", "9999-12-31T23:59:59-23:59"),
    ("until", "9999-12-31T23:59:59-23:59"),
    ("since", "9999-12-31T23:59:59.999999+00:00"),
    ("until", "0001-01-01T00:00:00-00:01"),
]


async def test_hand_made_cases_that_were_server_errors(node: Any) -> None:
    cursor = await _world(node)
    cases: list[tuple[str, dict[str, str]]] = []
    for name, value in DATE_EDGES:
        cases.append(("/v1/search", {"q": "安全生产法", name: value}))
        if name == "since":
            cases.append(("/v1/items", {"since": value}))
    real = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    for change in (
        {"t": 10**18}, {"t": -(10**18)}, {"t": 1e18}, {"m": 10**30}, {"i": 10**30},
        {"m": -(10**30)}, {"i": 2**63}, {"s": 1e308}, {"t": "x"}, {"m": None},
    ):
        cases.append(("/v1/search", {"q": "安全生产法", "cursor": _cursor({**real, **change})}))
    cases.append(("/v1/search", {"q": "安全生产法", "cursor": _cursor([1, 2])}))
    cases.append(("/v1/plans", {"today": "9999-12-31"}))
    cases.append(("/v1/plans", {"today": "0001-01-01"}))
    problems = []
    for path, params in cases:
        status, body = await _signed_get(node, path, params)
        _counts["hand-made query cases"] += 1
        if not 200 <= status < 500:
            problems.append(f"{path} {params}: {status} {body[:200]!r}")
        elif status >= 400 and not body.startswith(b'{"error"'):
            problems.append(f"{path} {params}: {status} without an error body")
    assert not problems, "\n".join(problems)


MULTIPART_BODIES: list[tuple[str, bytes]] = [
    ("multipart/form-data", b"token=abc"),  # no boundary
    ("multipart/form-data; boundary=", b"--\r\n"),
    ("multipart/form-data; boundary=xyz", b""),
    ("multipart/form-data; boundary=xyz", b"--xyz\r\n"),
    ("multipart/form-data; boundary=xyz", b"--xyz\r\nContent-Type: text/plain\r\n\r\nx\r\n--xyz--"),
    ("multipart/form-data; boundary=xyz", b"--xyz\r\nContent-Disposition: form-data\r\n\r\nx\r\n--xyz--"),
    ("multipart/form-data; boundary=xyz",
     b'--xyz\r\nContent-Disposition: form-data; name="token"\r\n\r\nabc'),  # no end
    ("multipart/form-data; boundary=xyz",
     b'--xyz\r\nContent-Disposition: form-data; name="token"\r\n'
     b"Content-Transfer-Encoding: base64\r\n\r\n!!!\r\n--xyz--\r\n"),
    ("multipart/form-data; boundary=xyz",
     b'--xyz\r\nContent-Disposition: form-data; name="token"\r\n'
     b"Content-Encoding: gzip\r\n\r\nnot gzip\r\n--xyz--\r\n"),
    ("multipart/form-data; boundary=xyz",
     b'--xyz\r\nContent-Disposition: form-data; name="token"; filename="a.txt"\r\n\r\n'
     b"abc\r\n--xyz--\r\n"),
    ("multipart/mixed; boundary=xyz", b"--xyz\r\n\r\nabc\r\n--xyz--\r\n"),
    ("application/x-www-form-urlencoded", b"token=%ZZ&&=="),
    ("application/x-www-form-urlencoded; charset=nonexistent", b"token=abc"),
    ("application/x-www-form-urlencoded", b"\xff\xfe\x00token=abc"),
    ("text/plain", b"token=abc"),
]


@pytest.mark.parametrize("path", ["/dashboard/login", "/read/login"])
async def test_malformed_login_bodies_get_4xx(node: Any, path: str) -> None:
    problems = []
    async with aiohttp.ClientSession() as s:
        for ctype, body in MULTIPART_BODIES:
            async with s.post(node.url + path, data=body, headers={"Content-Type": ctype},
                              allow_redirects=False) as r:
                _counts["malformed login bodies"] += 1
                text = await r.read()
                if not 400 <= r.status < 500:
                    problems.append(f"{ctype} {body[:40]!r}: {r.status} {text[:160]!r}")
    assert not problems, "\n".join(problems)


async def test_a_client_that_hangs_up_is_not_a_database_outage(
    node: Any, caplog: pytest.LogCaptureFixture
) -> None:
    key = await node.add_site(SITE, "淮北市杜集区人大常委会", ("huaihai",))
    blob = secrets.token_bytes(8 << 20)
    sha = hashlib.sha256(blob).hexdigest()
    async with node.client(SITE) as c:
        await c.put_blob(blob, "application/pdf")
        await c.push(sign_item(lesson(SITE, "附件", attachments=[{
            "name": "a.pdf", "media_type": "application/pdf", "size": len(blob),
            "sha256": sha}]), key))
        hdrs = c.signed_headers("GET", f"/v1/blobs/{sha}", None)
    host, port = node.url.split("://", 1)[1].split(":")
    caplog.set_level(logging.INFO)
    for request in (
        f"GET /v1/blobs/{sha} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n",
        f"POST /dashboard/login HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"token\": \"aaa",
    ):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(request.encode())
        await writer.drain()
        await asyncio.wait_for(reader.read(1), 10) if request.startswith("GET") else None
        writer.transport.abort()  # gone mid-response / before the body is complete
        await asyncio.sleep(0.5)
    await asyncio.sleep(0.5)
    outage = [r.getMessage() for r in caplog.records if "database unavailable" in r.getMessage()]
    assert not outage, outage
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, errors
    # The access log and the request metrics count a hang-up as 499, not as a server error.
    access = [r.getMessage() for r in caplog.records if r.name == "exchange.access"]
    assert access and all(m.endswith(" 499") for m in access), access


async def test_zz_record_counts() -> None:
    merge_artifact("odd_input", **{k.replace(" ", "_"): v for k, v in _counts.items()})
