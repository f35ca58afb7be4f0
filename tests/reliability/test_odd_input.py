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
import time
from collections import Counter
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.core import httpsig
from exchange.core.items import sign_item
from exchange.http.openapi import OPERATIONS
from tests.support.reliability import SOAK, lesson, merge_artifact

pytestmark = pytest.mark.asyncio

SITE = "huaibei-duji"
_counts: Counter[str] = Counter()
_statuses: Counter[int] = Counter()


async def _signed_get(
    node: Any, path: str, params: dict[str, str]
) -> tuple[int, bytes]:
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
    status, body = await _signed_get(
        node, "/v1/search", {"q": "安全生产法", "limit": "1"}
    )
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
        {"t": 10**18},
        {"t": -(10**18)},
        {"t": 1e18},
        {"m": 10**30},
        {"i": 10**30},
        {"m": -(10**30)},
        {"i": 2**63},
        {"s": 1e308},
        {"t": "x"},
        {"m": None},
    ):
        cases.append(
            ("/v1/search", {"q": "安全生产法", "cursor": _cursor({**real, **change})})
        )
    cases.append(("/v1/search", {"q": "安全生产法", "cursor": _cursor([1, 2])}))
    for digits in ("³", "²⁵", "١٢", "①"):  # Unicode digits: isdigit() but not int()
        cases.append(("/v1/search", {"q": "安全生产法", "limit": digits}))
        cases.append(("/v1/log/entries", {"start": digits}))
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
    token = await node.add_monitor("odd-monitor", circles=("huaihai",))
    async with aiohttp.ClientSession() as s:
        for name in ("days", "inactive_days"):
            async with s.get(
                node.url + "/v1/activity",
                params={name: "³"},
                headers={"Authorization": f"Bearer {token}"},
            ) as r:
                _counts["hand-made query cases"] += 1
                if r.status != 400:
                    problems.append(f"/v1/activity {name}=³: {r.status}")
    assert not problems, "\n".join(problems)


MULTIPART_BODIES: list[tuple[str, bytes]] = [
    ("multipart/form-data", b"token=abc"),  # no boundary
    ("multipart/form-data; boundary=", b"--\r\n"),
    ("multipart/form-data; boundary=xyz", b""),
    ("multipart/form-data; boundary=xyz", b"--xyz\r\n"),
    (
        "multipart/form-data; boundary=xyz",
        b"--xyz\r\nContent-Type: text/plain\r\n\r\nx\r\n--xyz--",
    ),
    (
        "multipart/form-data; boundary=xyz",
        b"--xyz\r\nContent-Disposition: form-data\r\n\r\nx\r\n--xyz--",
    ),
    (
        "multipart/form-data; boundary=xyz",
        b'--xyz\r\nContent-Disposition: form-data; name="token"\r\n\r\nabc',
    ),  # no end
    (
        "multipart/form-data; boundary=xyz",
        b'--xyz\r\nContent-Disposition: form-data; name="token"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!\r\n--xyz--\r\n",
    ),
    (
        "multipart/form-data; boundary=xyz",
        b'--xyz\r\nContent-Disposition: form-data; name="token"\r\n'
        b"Content-Encoding: gzip\r\n\r\nnot gzip\r\n--xyz--\r\n",
    ),
    (
        "multipart/form-data; boundary=xyz",
        b'--xyz\r\nContent-Disposition: form-data; name="token"; filename="a.txt"\r\n\r\n'
        b"abc\r\n--xyz--\r\n",
    ),
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
            async with s.post(
                node.url + path,
                data=body,
                headers={"Content-Type": ctype},
                allow_redirects=False,
            ) as r:
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
        await c.push(
            sign_item(
                lesson(
                    SITE,
                    "附件",
                    attachments=[
                        {
                            "name": "a.pdf",
                            "media_type": "application/pdf",
                            "size": len(blob),
                            "sha256": sha,
                        }
                    ],
                ),
                key,
            )
        )
        hdrs = c.signed_headers("GET", f"/v1/blobs/{sha}", None)
    host, port = node.url.split("://", 1)[1].split(":")
    caplog.set_level(logging.INFO)
    for request in (
        f"GET /v1/blobs/{sha} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
        + "\r\n",
        f"POST /dashboard/login HTTP/1.1\r\nHost: {host}:{port}\r\n"
        'Content-Type: application/json\r\nContent-Length: 120\r\n\r\n{"token": "aaa',
    ):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(request.encode())
        await writer.drain()
        await asyncio.wait_for(reader.read(1), 10) if request.startswith(
            "GET"
        ) else None
        writer.transport.abort()  # gone mid-response / before the body is complete
        await asyncio.sleep(0.5)
    await asyncio.sleep(0.5)
    outage = [
        r.getMessage()
        for r in caplog.records
        if "database unavailable" in r.getMessage()
    ]
    assert not outage, outage
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, errors
    # The access log and the request metrics count a hang-up as 499, not as a server error.
    access = [r.getMessage() for r in caplog.records if r.name == "exchange.access"]
    assert access and all(m.endswith(" 499") for m in access), access


async def test_nul_characters_in_bodies_never_poison_storage(node: Any) -> None:
    """Found by the schemathesis soak run: a NUL in a refused push's field name reached
    the activity log (PostgreSQL refuses NUL in text), so every later /v1/activity
    answered 500; a NUL in a subscription's query answered 500."""
    key = await node.add_site(SITE, "淮北市杜集区人大常委会", ("huaihai",))
    token = await node.add_monitor("nul-monitor", circles=("huaihai",))
    signed = sign_item(lesson(SITE, "控制字符"), key)
    async with node.client(SITE) as c:
        res = await c.request(
            "POST",
            "/v1/items",
            body=orjson.dumps({"items": [{**signed, "x\u0000y": 1}]}),
        )
        assert res["refused"] == 1
        with pytest.raises(Exception) as caught:
            await c.request("POST", "/v1/subscriptions", body=b'{"q": "a\\u0000b"}')
        assert getattr(caught.value, "http_status", 0) == 400, caught.value
    async with node.client(token=token) as c:
        act = await c.request("GET", "/v1/activity")
    assert any(r["code"] == "schema_invalid" for r in act["refusals"]), act["refusals"]


# ------------------------------------------------------------------ property-based
QUERY_EXAMPLES = 3000 if SOAK else 300
FORM_EXAMPLES = 1000 if SOAK else 120
_YEARS = st.sampled_from([1, 2, 1969, 1970, 2026, 9998, 9999])
_OFFSETS = st.sampled_from(
    [
        "Z",
        "+00:00",
        "-00:00",
        "+23:59",
        "-23:59",
        "+08:00",
        "+14:00",
        "-12:00",
        "+24:00",
        "+99:99",
        "",
    ]
)


_EDGE_DAYS = st.sampled_from(
    [
        "0001-01-01",
        "0001-01-02",
        "9999-12-31",
        "9999-12-30",
        "1970-01-01",
        "2026-02-29",
        "2024-02-29",
    ]
)


@st.composite
def _times(draw: st.DrawFn) -> str:
    if draw(st.booleans()):  # the extremes, most of the time
        day = draw(_EDGE_DAYS)
    else:
        y, m, d = (
            draw(_YEARS),
            draw(st.integers(1, 12)),
            draw(st.sampled_from([1, 28, 31])),
        )
        day = f"{y:04d}-{m:02d}-{d:02d}"
    if draw(st.booleans()):
        return day
    clock = draw(
        st.sampled_from(["00:00:00", "23:59:59", "23:59:59.999999", "24:00:00"])
    )
    return f"{day}T{clock}{draw(_OFFSETS)}"


_INTS = st.one_of(
    st.sampled_from(
        [
            -(2**63) - 1,
            -(2**63),
            -(2**62),
            -2,
            -1,
            0,
            1,
            2**31,
            2**53 + 1,
            2**62,
            2**63 - 1,
            2**63,
            2**64,
            10**18,
            10**30,
        ]
    ),
    st.integers(-(10**20), 10**20),
)
_INT_TEXT = st.one_of(
    _INTS.map(str),
    st.sampled_from(
        [
            "",
            " 1",
            "1 ",
            "+1",
            "-0",
            "1e3",
            "1.0",
            "0x10",
            "1_000",
            "١٢",
            "NaN",
            "inf",
            "%00",
            "99999999999999999999999999999999999999",
            "³",
            "-²",
            "①",
        ]
    ),
)


@st.composite
def _cursors(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return draw(_INT_TEXT)
    doc = {
        "f": draw(st.sampled_from(["", "0" * 16, "x"])),
        "t": draw(
            st.one_of(
                st.sampled_from([10**18, 1e18, -1e18, 2**63, 1.5, "1", None]), _INTS
            )
        ),
        "m": draw(st.one_of(_INTS, st.none())),
        "s": draw(st.one_of(st.floats(allow_nan=False), _INTS, st.text(max_size=3))),
        "i": draw(st.one_of(_INTS, st.booleans())),
    }
    return _cursor(
        draw(st.sampled_from([doc, [doc], "x", {k: doc[k] for k in list(doc)[:2]}]))
    )


_TEXT = st.text(max_size=60)
_BY_NAME: dict[str, st.SearchStrategy[str]] = {
    "since": st.one_of(_times(), _TEXT),
    "until": st.one_of(_times(), _TEXT),
    "today": st.one_of(_times(), _TEXT),
    "cursor": _cursors(),
    "kind": st.one_of(
        st.sampled_from(["lesson", "inspection_plan", "LESSON", ""]), _TEXT
    ),
    "author": st.one_of(st.sampled_from([SITE, "a" * 200, "-x-"]), _TEXT),
    "circle": st.one_of(st.sampled_from(["huaihai", "Huaihai"]), _TEXT),
    "q": st.one_of(
        st.sampled_from(["安全生产法", '"', "a OR b", "*", "\\", "&|!"]),
        st.text(max_size=300),
    ),
}


def _param(name: str) -> st.SearchStrategy[str]:
    return _BY_NAME.get(name, st.one_of(_INT_TEXT, _TEXT))


def _query_ops() -> list[tuple[str, tuple[str, ...]]]:
    return [
        (o.path, tuple(n for n, where, _ in o.params if where == "query"))
        for o in OPERATIONS
        if o.method == "get" and any(w == "query" for _, w, _ in o.params)
    ]


def _fuzz_queries(url: str, key: Any, token: str, subst: dict[str, str]) -> list[str]:
    problems: list[str] = []
    authority = url.split("://", 1)[1]
    session = requests.Session()

    @settings(
        max_examples=QUERY_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(op=st.sampled_from(_query_ops()), data=st.data())
    def run(op: tuple[str, tuple[str, ...]], data: st.DataObject) -> None:
        path, names = op
        for k, v in subst.items():
            path = path.replace(k, v)
        chosen = [n for n in names if data.draw(st.booleans(), label=f"with {n}")]
        params = {n: data.draw(_param(n), label=n) for n in chosen or names[:1]}
        if "q" in names and data.draw(st.booleans(), label="a real query"):
            params["q"] = "安全生产法"  # past the query check, into the filters
        target = path + "?" + urlencode(params)
        if path == "/v1/activity":
            headers = {"Authorization": f"Bearer {token}"}
        else:
            headers = httpsig.sign_request(
                key,
                "GET",
                target,
                authority,
                {},
                None,
                created=int(time.time()),
                nonce=secrets.token_urlsafe(12),
                scheme="http",
            )
        r = session.get(url + target, headers=headers, timeout=30)
        _counts["property: query parameters"] += 1
        _statuses[r.status_code // 100 * 100] += 1
        if r.status_code >= 500:
            problems.append(f"GET {target}: {r.status_code} {r.content[:200]!r}")

    run()
    return problems


async def test_every_query_parameter_at_its_edges(node: Any) -> None:
    await _world(node)
    async with node.client(SITE) as c:
        blob = b"fuzz attachment"
        await c.put_blob(blob, "application/pdf")
        item = await c.push(sign_item(lesson(SITE, "模糊测试"), node.keys[SITE]))
    token = await node.add_monitor("fuzz-monitor", circles=("huaihai",))
    subst = {
        "{id}": item["id"],
        "{sha256}": hashlib.sha256(blob).hexdigest(),
        "{node_id}": "yangtze-delta",
        "{lang}": "en",
        "{name}": "app.js",
    }
    problems = await asyncio.to_thread(
        _fuzz_queries, node.url, node.keys[SITE], token, subst
    )
    assert not problems, "\n".join(problems[:20])


@st.composite
def _form_bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    boundary = draw(st.sampled_from(["xyz", "", "a" * 80, "x y", '"q"', "--"]))
    ctype = draw(
        st.sampled_from(
            [
                f"multipart/form-data; boundary={boundary}",
                "multipart/form-data",
                "application/x-www-form-urlencoded",
                "application/x-www-form-urlencoded; charset=x",
                "application/json",
                "text/plain",
                "",
                "multipart/mixed; boundary=xyz",
            ]
        )
    )
    header = draw(
        st.sampled_from(
            [
                'Content-Disposition: form-data; name="token"',
                'Content-Disposition: form-data; name="token"; filename="t"',
                "Content-Disposition: form-data",
                "Content-Type: text/plain",
                'Content-Disposition: form-data; name="token"\r\nContent-Transfer-Encoding: base64',
                'Content-Disposition: form-data; name="token"\r\nContent-Encoding: deflate',
                'Content-Disposition: form-data; name="token"\r\nContent-Type: text/plain; charset=x',
            ]
        )
    )
    value = draw(st.binary(max_size=80))
    end = draw(st.sampled_from([f"\r\n--{boundary}--\r\n", "", f"\r\n--{boundary}"]))
    raw = draw(
        st.one_of(
            st.just(
                f"--{boundary}\r\n{header}\r\n\r\n".encode() + value + end.encode()
            ),
            st.binary(max_size=200),
            st.just(b"token=" + value),
        )
    )
    return ctype, raw


def _fuzz_forms(url: str) -> list[str]:
    problems: list[str] = []
    session = requests.Session()

    @settings(
        max_examples=FORM_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        path=st.sampled_from(["/dashboard/login", "/read/login"]), body=_form_bodies()
    )
    def run(path: str, body: tuple[str, bytes]) -> None:
        ctype, raw = body
        r = session.post(
            url + path,
            data=raw,
            headers={"Content-Type": ctype},
            allow_redirects=False,
            timeout=30,
        )
        _counts["property: login form bodies"] += 1
        _statuses[r.status_code // 100 * 100] += 1
        if r.status_code >= 500:
            problems.append(f"POST {path} {ctype!r} {raw[:80]!r}: {r.status_code}")

    run()
    return problems


async def test_malformed_form_bodies_property(node: Any) -> None:
    problems = await asyncio.to_thread(_fuzz_forms, node.url)
    assert not problems, "\n".join(problems[:20])


async def test_zz_record_counts() -> None:
    merge_artifact(
        "odd_input",
        cases=dict(_counts),
        statuses={str(k): v for k, v in _statuses.items()},
    )
