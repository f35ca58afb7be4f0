"""Hostile input: property tests over the parsers, schemas and signature checks; an
OpenAPI-driven fuzz run (schemathesis) against a real node; traversal attempts in blob
paths and ids; SQL metacharacters wherever text goes in; hostile Unicode in titles.

What the schema does with hostile Unicode (``schemas/_base.py``, asserted below): a title
is 1–200 *code points* with no C0 control character, no DEL and no lone surrogate. Longer
titles and control characters are refused with ``422 schema_invalid`` naming the field;
zero-width characters, bidi controls, astral characters, C1 controls and U+2028 are
**stored verbatim** (they are signed content; the node does not rewrite what a congress
signed).
"""

from __future__ import annotations

import asyncio
import copy
import secrets
import time
from collections import Counter
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import orjson
import pytest
import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from exchange.core import httpsig
from exchange.core.canonical import canonical_json, parse_json
from exchange.core.items import parse_signed_item, sign_item, verify_item
from exchange.core.roster import (
    RosterView,
    sign_document,
    verify_roster,
    verify_site_record,
)
from exchange.core.signing import (
    CONTEXT_SITE_RECORD,
    PrivateKey,
    b64u_decode,
    b64u_encode,
    generate_key,
)
from exchange.errors import ExchangeError
from exchange.http.openapi import OPERATIONS
from exchange.templates import KIND_NAMES, template
from tests.support.reliability import (
    SOAK,
    free_port,
    lesson,
    merge_artifact,
    node_entry,
    roster,
)

KEY = generate_key(key_id="huaibei-duji#k1")
KINDS = sorted(KIND_NAMES)
PROPERTY_EXAMPLES = 2000 if SOAK else 250
FUZZ_POSITIVE = 500 if SOAK else 10  # per operation; the soak run sends >= 10,000 cases
FUZZ_NEGATIVE = 250 if SOAK else 6
FUZZ_SOAK_CASES = 10_000
_cases: Counter[str] = Counter()

SETTINGS = settings(
    max_examples=PROPERTY_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)

# ------------------------------------------------------------------ strategies
_scalar = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.text(max_size=30)
    | st.sampled_from(
        [
            "",
            "sha256:",
            "ed25519",
            "huaibei-duji#k1",
            "2026-11-20T09:30:00+08:00",
            "lesson",
        ]
    )
)
JSON = st.recursive(
    _scalar,
    lambda ch: (
        st.lists(ch, max_size=5) | st.dictionaries(st.text(max_size=12), ch, max_size=6)
    ),
    max_leaves=40,
)


def _slots(doc: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) inside ``doc``."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.append((doc, k))
            _slots(v, out)
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.append((doc, i))
            _slots(v, out)
    return out


@st.composite
def mutated_signed(draw: st.DrawFn) -> Any:
    """A valid signed item of some kind with 1–3 random edits (replace, delete, add)."""
    doc = copy.deepcopy(_SIGNED[draw(st.sampled_from(KINDS))])
    for _ in range(draw(st.integers(1, 3))):
        slots = _slots(doc, [])
        if not slots:
            break
        container, key = slots[draw(st.integers(0, len(slots) - 1))]
        op = draw(st.sampled_from(["replace", "delete", "add"]))
        if op == "replace":
            container[key] = draw(JSON)
        elif op == "delete":
            del container[key]
        elif isinstance(container, dict):
            container[draw(st.text(max_size=8))] = draw(JSON)
        else:
            container.append(draw(JSON))
    return doc


def _valid_items() -> dict[str, dict[str, Any]]:
    return {
        k: sign_item(template(k, "huaibei-duji", "suzhou-wuzhong"), KEY) for k in KINDS
    }


_SIGNED = _valid_items()


def _only_exchange_errors(fn: Any, *args: Any) -> Any:
    """Call ``fn``; any exception other than an ExchangeError fails the test."""
    try:
        return fn(*args)
    except ExchangeError as err:
        assert err.code.value and err.message
        return None


# ------------------------------------------------------------------ property tests
@SETTINGS
@given(obj=JSON | mutated_signed())
def test_parse_signed_item_raises_only_exchange_errors(obj: Any) -> None:
    _cases["property: parse_signed_item"] += 1
    parsed = _only_exchange_errors(parse_signed_item, obj)
    if parsed is not None:
        assert parsed.id.startswith("sha256:") and parsed.canonical == canonical_json(
            obj["item"]
        )


@SETTINGS
@given(
    data=st.binary(max_size=300) | JSON.map(orjson.dumps),
    flips=st.lists(st.integers(0, 10**6), max_size=3),
)
def test_strict_json_parser_raises_only_exchange_errors(
    data: bytes, flips: list[int]
) -> None:
    _cases["property: parse_json"] += 1
    buf = bytearray(data)
    for f in flips:
        if buf:
            buf[f % len(buf)] ^= 1 << (f % 8)
    _only_exchange_errors(parse_json, bytes(buf))


_ROSTER_KEY = generate_key(key_id="roster#k1")
_NODE_KEY = generate_key(key_id="huaihai#k1")
_ROSTER = roster(
    [node_entry("huaihai", "http://127.0.0.1:9", _NODE_KEY, ["huaibei-duji"])],
    {"huaihai": ["huaibei-duji"]},
    _ROSTER_KEY,
)
_VIEW = RosterView(verify_roster(_ROSTER, {"roster#k1": _ROSTER_KEY.public_key}, 0))
_RECORD = sign_document(
    {
        "id": "huaibei-duji",
        "name": "淮北市杜集区人大常委会",
        "home_node": "huaihai",
        "circles": ["huaihai"],
        "keys": [
            {
                "key_id": KEY.key_id,
                "alg": "ed25519",
                "public_key": KEY.public_key.b64(),
                "valid_from": "2026-01-01T00:00:00+00:00",
                "revoked_at": None,
            }
        ],
        "version": 1,
        "issued_at": "2026-11-20T09:30:00+08:00",
    },
    _NODE_KEY,
    CONTEXT_SITE_RECORD,
)


@st.composite
def mutated_doc(draw: st.DrawFn, base: dict[str, Any]) -> Any:
    doc = copy.deepcopy(base)
    slots = _slots(doc, [])
    container, key = slots[draw(st.integers(0, len(slots) - 1))]
    container[key] = draw(JSON)
    return doc


@SETTINGS
@given(doc=JSON | mutated_doc(_ROSTER))
def test_roster_verification_raises_only_exchange_errors(doc: Any) -> None:
    _cases["property: verify_roster"] += 1
    _only_exchange_errors(verify_roster, doc, {"roster#k1": _ROSTER_KEY.public_key}, 0)


@SETTINGS
@given(doc=JSON | mutated_doc(_RECORD))
def test_site_record_verification_raises_only_exchange_errors(doc: Any) -> None:
    _cases["property: verify_site_record"] += 1
    _only_exchange_errors(verify_site_record, doc, _VIEW)


_GOOD_HEADERS = {
    "Content-Type": "application/json",
    **httpsig.sign_request(
        KEY,
        "POST",
        "/v1/items",
        "127.0.0.1:8700",
        {"Content-Type": "application/json"},
        b"{}",
        created=int(time.time()),
        nonce="n-1",
        scheme="http",
    ),
}


@SETTINGS
@given(
    name=st.sampled_from(["Signature-Input", "Signature", "Content-Digest"]),
    value=st.text(max_size=200)
    | st.sampled_from(list(_GOOD_HEADERS.values())).map(lambda v: v[:-3]),
    body=st.sampled_from([b"{}", b"", None]),
)
def test_request_signature_checks_raise_only_exchange_errors(
    name: str, value: str, body: bytes | None
) -> None:
    _cases["property: verify_request"] += 1
    headers = {**_GOOD_HEADERS, name: value}

    def lookup(kid: str) -> Any:
        return KEY.public_key

    _only_exchange_errors(
        lambda: httpsig.verify_request(
            "POST",
            "/v1/items",
            "127.0.0.1:8700",
            headers,
            body,
            key_lookup=lookup,
            now=int(time.time()),
            max_age=300,
            max_skew=30,
            scheme="http",
        )
    )


@SETTINGS
@given(
    kind=st.sampled_from(KINDS),
    where=st.integers(0, 10**7),
    bit=st.integers(0, 7),
    in_signature=st.booleans(),
)
def test_a_flipped_bit_never_verifies(
    kind: str, where: int, bit: int, in_signature: bool
) -> None:
    _cases["property: signature bit flips"] += 1
    signed = _SIGNED[kind]
    if in_signature:
        sig = bytearray(b64u_decode(signed["sig"]["value"]))
        sig[where % len(sig)] ^= 1 << bit
        forged = {
            "item": signed["item"],
            "sig": {**signed["sig"], "value": b64u_encode(bytes(sig))},
        }
        with pytest.raises(ExchangeError):
            verify_item(forged, KEY.public_key)
        return
    canonical = bytearray(canonical_json(signed["item"]))
    canonical[where % len(canonical)] ^= 1 << bit
    try:
        item = parse_json(bytes(canonical), allow_floats=False)
    except ExchangeError:
        return  # no longer JSON: refused before any signature check
    if not isinstance(item, dict) or canonical_json(item) == canonical_json(
        signed["item"]
    ):
        return
    with pytest.raises(ExchangeError):
        verify_item({"item": item, "sig": signed["sig"]}, KEY.public_key)


# ------------------------------------------------------------------ a node to attack
class _Auth(requests.auth.AuthBase):
    """Signs a prepared request as a site or node, or sets a monitor token; strips
    whatever authentication headers the generator made up."""

    def __init__(self, key: PrivateKey | None = None, token: str | None = None) -> None:
        self.key = key
        self.token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        for h in (
            "Authorization",
            "Signature",
            "Signature-Input",
            "Content-Digest",
            "Cookie",
        ):
            r.headers.pop(h, None)
        if self.token:
            r.headers["Authorization"] = f"Bearer {self.token}"
        elif self.key is not None:
            body = r.body.encode() if isinstance(r.body, str) else r.body
            parts = urlsplit(r.url or "")
            r.headers.update(
                httpsig.sign_request(
                    self.key,
                    r.method or "GET",
                    r.path_url,
                    parts.netloc,
                    dict(r.headers),
                    body if body else (b"" if r.method in ("POST", "PUT") else None),
                    created=int(time.time()),
                    nonce=secrets.token_urlsafe(12),
                    scheme="http",
                )
            )
        return r


async def _target(node_factory: Any) -> dict[str, Any]:
    """A node with a roster (this node and a peer whose key the test holds), a site, a
    monitor, two items (one with an attachment) and a signed checkpoint."""
    roster_key = generate_key(key_id="roster#k1")
    a = await node_factory(
        "huaihai",
        federation={
            "roster_keys": [f"roster#k1 ed25519 {roster_key.public_key.b64()}"],
            "replicate": False,
        },
        limits={"site_requests_per_s": 0},
        log={"checkpoint_interval_ms": 50},
    )
    duji = await a.add_site("huaibei-duji", "淮北市杜集区人大常委会", ("huaihai",))
    peer = generate_key(key_id="yangtze-delta#k1")
    await a.node.federation.install(
        roster(
            [
                node_entry("huaihai", a.url, a.node.key, ["huaibei-duji"]),
                node_entry(
                    "yangtze-delta", f"http://127.0.0.1:{free_port()}", peer, []
                ),
            ],
            {"huaihai": ["huaibei-duji"]},
            roster_key,
        )
    )
    token = await a.add_monitor("huaibei-municipal", circles=("huaihai",))
    blob = b"%PDF-1.7 hostile input test" * 100
    async with a.client("huaibei-duji") as c:
        info = await c.put_blob(blob, "application/pdf")
        first = await c.push(sign_item(lesson("huaibei-duji", "第一条"), duji))
        second = await c.push(
            sign_item(
                lesson(
                    "huaibei-duji",
                    "附件条目",
                    attachments=[
                        {
                            "name": "方案.pdf",
                            "media_type": "application/pdf",
                            "size": len(blob),
                            "sha256": info["sha256"],
                        }
                    ],
                ),
                duji,
            )
        )
        await c.request("GET", f"/v1/items/{second['id']}/receipt", params={"wait": 10})
    return {
        "rn": a,
        "site": duji,
        "peer": peer,
        "token": token,
        "blob": info["sha256"],
        "items": [first["id"], second["id"]],
    }


def _auth_for(op_auth: tuple[str, ...], t: dict[str, Any]) -> _Auth:
    if "site" in op_auth:
        return _Auth(key=t["site"])
    if "monitor" in op_auth:
        return _Auth(token=t["token"])
    if "node" in op_auth:
        return _Auth(key=t["peer"])
    return _Auth()


def _run_schemathesis(
    base_url: str, doc: dict[str, Any], t: dict[str, Any]
) -> dict[str, Any]:
    """Fuzz every documented operation (positive and negative data), then the known-good
    cases; returns counts and every failure (no 5xx, documented status, content type and
    response schema)."""
    import schemathesis
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    schema = schemathesis.openapi.from_dict(doc)
    meta = {(op.method.upper(), op.path): op for op in OPERATIONS}
    counts: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    failures: list[str] = []
    seconds: dict[str, float] = {}
    skipped = 0

    def send(case: Any, auth: _Auth, label: str) -> None:
        nonlocal skipped
        session = requests.Session()
        session.auth = auth
        try:
            response = case.call(base_url=base_url, session=session, timeout=40)
        except (
            requests.exceptions.InvalidHeader,
            requests.exceptions.InvalidURL,
            UnicodeError,
            ValueError,
        ):
            skipped += 1  # the client refused to send it; nothing reached the node
            return
        finally:
            session.close()
        counts[label] += 1
        statuses[f"{response.status_code // 100}xx"] += 1
        case.validate_response(response, checks=checks)

    seen_ops = set()
    for result in schema.get_all_operations():
        api_op = result.ok()
        op = meta[(api_op.method.upper(), api_op.path)]
        seen_ops.add((op.method.upper(), op.path))
        auth = _auth_for(op.auth, t)
        label = f"{op.method.upper()} {op.path}"
        started = time.monotonic()
        # Negative data only where the schema can be violated: a JSON body (every
        # parameter is a free string, so "invalid" parameters cannot be generated).
        # Signed items are costly to generate (a deep schema) and are covered by the
        # property tests above: fewer examples there.
        scale = 3 if op.request == "SignedItem" else 1
        modes = [(GenerationMode.POSITIVE, FUZZ_POSITIVE // scale)]
        if op.request:
            modes.append((GenerationMode.NEGATIVE, FUZZ_NEGATIVE // scale))
        for mode, n in modes:

            @settings(
                max_examples=n,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate],
            )
            @given(case=api_op.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                send(case, auth, label)  # noqa: B023 - called at once, in this iteration

            try:
                run()
            except Unsatisfiable:
                assert (
                    mode is GenerationMode.NEGATIVE
                )  # nothing to make invalid (no inputs)
            except (
                Exception,
                BaseExceptionGroup,
            ) as exc:  # collect every failure, report all
                failures.append(f"{label} [{mode.value}]: {str(exc)[:1500]}")
        seconds[label] = round(time.monotonic() - started, 2)
    assert seen_ops == {(o.method.upper(), o.path) for o in OPERATIONS}, (
        "schema and OPERATIONS differ"
    )

    # Known-good requests: the success responses must match their documented schemas.
    item, attached = t["items"]
    good: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/v1/items", {"query": {"limit": "10"}}),
        ("GET", "/v1/items/{id}", {"path_parameters": {"id": item}}),
        (
            "GET",
            "/v1/items/{id}/receipt",
            {"path_parameters": {"id": attached}, "query": {"wait": "5"}},
        ),
        ("GET", "/v1/blobs/{sha256}", {"path_parameters": {"sha256": t["blob"]}}),
        ("GET", "/v1/sites/{id}", {"path_parameters": {"id": "huaibei-duji"}}),
        ("GET", "/v1/log/checkpoint", {}),
        ("GET", "/v1/log/checkpoint", {"query": {"format": "text"}}),
        ("GET", "/v1/log/proof/inclusion", {"query": {"index": "0"}}),
        ("GET", "/v1/log/proof/consistency", {"query": {"size1": "1", "size2": "2"}}),
        ("GET", "/v1/log/entries", {"query": {"start": "0"}}),
        ("GET", "/v1/federation/log", {"query": {"after": "-1"}}),
        ("GET", "/v1/federation/peers", {}),
        ("GET", "/v1/activity", {}),
        ("GET", "/v1/adapters/health", {}),
        (
            "POST",
            "/v1/items",
            {
                "body": sign_item(lesson("huaibei-duji", "已知良好"), t["site"]),
                "media_type": "application/json",
            },
        ),
        (  # the batch form of a push (the summary documents it)
            "POST",
            "/v1/items",
            {
                "body": {
                    "items": [
                        sign_item(lesson("huaibei-duji", f"批量{i}"), t["site"])
                        for i in range(2)
                    ]
                },
                "media_type": "application/json",
            },
        ),
        (
            "POST",
            "/v1/federation/batch",
            {"body": {"items": []}, "media_type": "application/json"},
        ),
        (
            "PUT",
            "/v1/blobs/{sha256}",
            {
                "path_parameters": {
                    "sha256": __import__("hashlib").sha256(b"known good").hexdigest()
                },
                "body": b"known good",
                "media_type": "application/octet-stream",
            },
        ),
    ]
    ops = {
        (r.ok().method.upper(), r.ok().path): r.ok()
        for r in schema.get_all_operations()
    }
    for method, path, kw in good:
        op = meta[(method, path)]
        case = ops[(method, path)].Case(**kw)
        try:
            send(case, _auth_for(op.auth, t), f"{method} {path}")
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(
                f"known-good {method} {path} {kw.get('query', '')}: {str(exc)[:1500]}"
            )
    return {
        "cases": dict(counts),
        "statuses": dict(statuses),
        "failures": failures,
        "skipped_by_client": skipped,
        "seconds": seconds,
    }


@pytest.mark.timeout(3600 if SOAK else 300)  # the soak run's 10,000 cases take minutes
async def test_openapi_fuzz_finds_no_5xx_and_no_schema_violations(
    node_factory: Any,
) -> None:
    t = await _target(node_factory)
    rn = t["rn"]
    async with aiohttp.ClientSession() as s, s.get(rn.url + "/openapi.json") as r:
        doc = await r.json()
    result = await asyncio.to_thread(_run_schemathesis, rn.url, doc, t)
    total = sum(result["cases"].values())
    merge_artifact(
        "hostile",
        fuzz={
            "operations": len(result["cases"]),
            "cases": total,
            "examples_per_operation": {
                "positive": FUZZ_POSITIVE,
                "negative": FUZZ_NEGATIVE,
            },
            "statuses": result["statuses"],
            "failures": len(result["failures"]),
            "skipped_by_client": result["skipped_by_client"],
            "slowest_operations_s": dict(
                sorted(result["seconds"].items(), key=lambda kv: -kv[1])[:5]
            ),
        },
    )
    assert not result["failures"], "\n\n".join(result["failures"])
    assert len(result["cases"]) == len(OPERATIONS)
    assert not SOAK or total >= FUZZ_SOAK_CASES, f"only {total} cases in the soak run"


# ------------------------------------------------------------------ raw requests
async def _raw(
    rn: Any,
    method: str,
    target: str,
    *,
    key: PrivateKey | None = None,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """Send ``target`` byte for byte (no client normalisation) on a new connection."""
    host = rn.url.split("://", 1)[1]
    port = int(host.rsplit(":", 1)[1])
    hdrs = {"Host": host, "Connection": "close", **(headers or {})}
    if key is not None:
        hdrs.update(
            httpsig.sign_request(
                key,
                method,
                target,
                host,
                hdrs,
                body if body or method in ("POST", "PUT") else None,
                created=int(time.time()),
                nonce=secrets.token_urlsafe(12),
                scheme="http",
            )
        )
    if body or method in ("POST", "PUT"):
        hdrs["Content-Length"] = str(len(body))
    head = (
        f"{method} {target} HTTP/1.1\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
        + "\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode("latin-1") + body)
        await writer.drain()
        data = b""
        for _ in range(1000):  # bounded: the server closes the connection
            chunk = await asyncio.wait_for(reader.read(65536), timeout=10)
            if not chunk:
                break
            data += chunk
    finally:
        writer.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.") else 0
    return status, data


TRAVERSAL = [
    "/v1/blobs/../../../../etc/passwd",
    "/v1/blobs/..%2F..%2F..%2Fetc%2Fpasswd",
    "/v1/blobs/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/v1/blobs/%252e%252e%252fetc%252fpasswd",
    "/v1/blobs/" + "0" * 63 + "%00",
    "/v1/blobs/" + "0" * 64 + "%00.txt",
    "/v1/blobs/" + "0" * 64 + "/../../etc/passwd",
    "/v1/items/sha256:..%2F..%2Fetc%2Fpasswd",
    "/v1/items/%2e%2e",
    "/v1/items/sha256:%00",
    "/v1/items/sha256:" + "a" * 64 + "%00",
    "/v1/items/sha256:" + "a" * 64 + "/../../../etc/passwd",
    "/v1/items/..%5c..%5cwindows%5cwin.ini",
    "/v1/sites/..%2F..%2Fetc%2Fpasswd",
    "/v1/sites/%00",
    "/v1/federation/witnessed/..%2f..%2fetc",
    "/dashboard/static/..%2F..%2F..%2Fetc%2Fpasswd",
    "/dashboard/static/%2e%2e%2f__init__.py",
    "/dashboard/static/../../http/auth.py",
    "/dashboard/static/app.js%00.html",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/v1/../../etc/passwd",
]


async def test_traversal_in_paths_and_ids_is_refused(node_factory: Any) -> None:
    t = await _target(node_factory)
    rn = t["rn"]
    blobs_before = await _count(rn, "blobs")
    results = {}
    for target in TRAVERSAL:
        for method, key in (("GET", None), ("GET", t["site"]), ("PUT", t["site"])):
            body = b"root:x:0:0" if method == "PUT" else b""
            status, data = await _raw(
                rn,
                method,
                target,
                key=key,
                body=body,
                headers={"Content-Type": "application/octet-stream"} if body else None,
            )
            results[f"{method} {target} {'signed' if key else 'anon'}"] = status
            assert 400 <= status < 500, (method, target, status, data[:500])
            assert b"root:x:0:0" not in data and b"import " not in data
    _cases["traversal requests"] += len(results)
    assert await _count(rn, "blobs") == blobs_before
    assert Counter(results.values()).keys() <= {400, 401, 403, 404, 405}


async def _count(rn: Any, table: str) -> int:
    async with rn.node.db.pool.acquire() as c:
        return int(await c.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608 - fixed names


SQL = [
    "'",
    "''",
    "';--",
    "' OR '1'='1",
    '" OR 1=1 --',
    "'; DROP TABLE items; --",
    "%",
    "_",
    "%' OR 'x' LIKE '%",
    "\\",
    "\\'",
    "$1",
    "$$;$$",
    "1; SELECT pg_sleep(5)",
    "E'\\x41'",
    "𠮷'); DELETE FROM items; --",
    "\x00",
    "a\x00b",
    "NULL",
    "-1 OR 1=1",
    "1e999",
    "9" * 40,
    "*/ SELECT 1 /*",
    "(SELECT 1)",
    '{"$ne": null}',
]


async def test_sql_metacharacters_everywhere_text_goes_in(node_factory: Any) -> None:
    t = await _target(node_factory)
    rn = t["rn"]
    site = t["site"]
    # Titles and tags: stored and read back verbatim; a tag filter matches literally.
    pushed: dict[str, str] = {}
    async with rn.client("huaibei-duji") as c:
        for s in (x for x in SQL if "\x00" not in x):
            res = await c.push(
                sign_item(
                    lesson(
                        "huaibei-duji", f"标题{s}", tags=[f"标签{s}"[:40]], summary=s
                    ),
                    site,
                )
            )
            pushed[res["id"]] = s
        for item_id, s in pushed.items():
            env = await c.get_item(item_id)
            assert (
                env["signed"]["item"]["title"] == f"标题{s}"
                and env["signed"]["item"]["summary"] == s
            )
            page = await c.list_items(tag=f"标签{s}"[:40])
            assert [e["id"] for e in page["items"]] == [item_id], s
    # A NUL cannot be a title: a clear schema error, nothing stored.
    status, data = await _raw(
        rn,
        "POST",
        "/v1/items",
        key=site,
        body=orjson.dumps(sign_item(lesson("huaibei-duji", "a\x00b"), site)),
        headers={"Content-Type": "application/json"},
    )
    assert status == 422 and b"schema_invalid" in data and b"title" in data, data[-400:]
    items_before = await _count(rn, "items")
    # Every query and path parameter of every GET operation, with every payload.
    tried = 0
    problems = []
    for op in OPERATIONS:
        if op.method != "get":
            continue
        principal = _auth_for(op.auth, t)
        for name, where, _ in op.params:
            for s in SQL:
                q = quote(s, safe="")
                path = op.path
                query = ""
                for pname, pwhere, _d in op.params:
                    if pwhere == "path":
                        path = path.replace(
                            "{" + pname + "}", q if pname == name else "x"
                        )
                if where == "query":
                    query = f"?{name}={q}"
                elif "{" + name + "}" not in op.path:
                    continue
                target = path + query
                if principal.token:
                    status, data = await _raw(
                        rn,
                        "GET",
                        target,
                        headers={"Authorization": f"Bearer {principal.token}"},
                    )
                else:
                    status, data = await _raw(rn, "GET", target, key=principal.key)
                tried += 1
                if not (200 <= status < 500) or b'"internal"' in data:
                    problems.append(f"GET {target} -> {status} {data[-300:]!r}")
    _cases["sql metacharacter requests"] += tried + len(pushed)
    assert not problems, "\n".join(problems)
    assert await _count(rn, "items") == items_before
    async with rn.client("huaibei-duji") as c:  # everything still answers
        assert len((await c.list_items(limit=1000))["items"]) == items_before


UNICODE_STORED = {
    "zero_width": "预算\u200b联网\u200c监督\u200d\ufeff",
    "bidi_controls": "\u202e监督法\u202c \u2066执法检查\u2069 \u200f",
    "only_zero_width": "\u200b\u200b\u200b",
    "astral_200": "𠮷" * 200,
    "cjk_200": "监" * 200,
    "c1_and_line_separator": "第一行\u2028第二行\u0085",
    "combining_marks": "a" + "\u0301" * 199,
}
UNICODE_REFUSED = {
    "cjk_201": "监" * 201,
    "astral_201": "𠮷" * 201,
    "newline": "两行\n标题",
    "nul": "\x00",
    "escape_char": "\x1b[31m红色",
    "del": "删除\x7f",
    "blank": " \u3000 ",
}


async def test_hostile_unicode_in_titles(node_factory: Any) -> None:
    t = await _target(node_factory)
    rn = t["rn"]
    site = t["site"]
    async with rn.client("huaibei-duji") as c:
        for name, title in UNICODE_STORED.items():
            signed = sign_item(lesson("huaibei-duji", title), site)
            res = await c.push(signed)
            env = await c.get_item(res["id"])
            assert env["signed"] == signed, name  # byte-for-byte the signed content
            assert env["signed"]["item"]["title"] == title
    before = await _count(rn, "items")
    for name, title in UNICODE_REFUSED.items():
        body = orjson.dumps(sign_item(lesson("huaibei-duji", title), site))
        status, data = await _raw(
            rn,
            "POST",
            "/v1/items",
            key=site,
            body=body,
            headers={"Content-Type": "application/json"},
        )
        doc = orjson.loads(data.split(b"\r\n\r\n", 1)[1])
        assert status == 422 and doc["error"]["code"] == "schema_invalid", (name, doc)
        assert "title" in doc["error"]["message"], (name, doc)
    # A lone surrogate escape, and a body far over the limit.
    raw = orjson.dumps(sign_item(lesson("huaibei-duji", "占位"), site)).replace(
        "占位".encode(), b"\\ud800"
    )
    status, data = await _raw(
        rn,
        "POST",
        "/v1/items",
        key=site,
        body=raw,
        headers={"Content-Type": "application/json"},
    )
    assert 400 <= status < 500, data[-300:]
    status, data = await _raw(
        rn,
        "POST",
        "/v1/items",
        key=site,
        body=("监" * (2 * 1024 * 1024)).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert status == 413
    assert await _count(rn, "items") == before
    _cases["unicode title cases"] += len(UNICODE_STORED) + len(UNICODE_REFUSED) + 2
    merge_artifact(
        "hostile",
        unicode={
            "stored_verbatim": sorted(UNICODE_STORED),
            "refused_422": sorted(UNICODE_REFUSED),
        },
    )


async def test_dashboard_login_refuses_bad_input_with_4xx(node_factory: Any) -> None:
    t = await _target(node_factory)
    rn = t["rn"]
    bodies = [
        b"{not json",
        b"\xff\xfe",
        b'{"token": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b"[]",
        b'"token"',
        b'{"token": null}',
        b'{"token": 1e999}',
        b"",
    ]
    for body in bodies:
        status, data = await _raw(
            rn,
            "POST",
            "/dashboard/login",
            body=body,
            headers={"Content-Type": "application/json"},
        )
        assert 400 <= status < 500, (body[:40], status, data[-300:])
    _cases["dashboard login bodies"] += len(bodies)


async def test_error_messages_escape_control_characters(node_factory: Any) -> None:
    """An id with control characters is echoed escaped (``\\x01``), never raw."""
    t = await _target(node_factory)
    for target in ("/v1/items/sha256:%01%1b[31mred", "/v1/sites/a%07b", "/no%0dsuch"):
        status, data = await _raw(t["rn"], "GET", target, key=t["site"])
        body = data.split(b"\r\n\r\n", 1)[1]
        message = orjson.loads(body)["error"]["message"]
        assert status in (404, 400) and "\\x" in message, (target, message)
        assert not any(ord(ch) < 0x20 for ch in message), (target, message)
    _cases["control-character ids"] += 3


def test_zz_record_property_counts() -> None:
    """Runs last in this module: writes the case counts of the tests above."""
    merge_artifact(
        "hostile",
        cases=dict(sorted(_cases.items())),
        property_examples_per_test=PROPERTY_EXAMPLES,
    )
