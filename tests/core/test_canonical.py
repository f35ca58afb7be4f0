"""Strict JSON parsing and RFC 8785 canonical bytes (``exchange.core.canonical``).

Golden vectors are the RFC author's (``shared/vectors/cyberphone-json-canonicalization``
next to the repository); the independent ``rfc8785`` package cross-checks random values.
"""

from __future__ import annotations

import collections
import enum
import hashlib
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.core import canonical
from exchange.core.canonical import (
    MAX_SAFE_INTEGER,
    canonical_bytes_of,
    canonical_json,
    canonical_json_reference,
    item_id,
    parse_json,
)
from exchange.errors import JsonError
from schemas.errors import ErrorCode
from tests.support import vectors_dir

CASES = ["arrays", "french", "structures", "unicode", "values", "weird"]
IMPLS: list[Callable[[Any], bytes]] = [canonical_json, canonical_json_reference]
FAST = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Generating nested values costs more than checking them: fewer, richer examples.
NESTED = settings(FAST, max_examples=150)


def jcs_dir() -> Path:
    return vectors_dir("cyberphone-json-canonicalization", "testdata")


def code_of(data: bytes | str, **kwargs: Any) -> ErrorCode:
    with pytest.raises(JsonError) as info:
        parse_json(data, **kwargs)
    return info.value.code


def realistic_item() -> dict[str, Any]:
    """About 2 KB of UTF-8, mostly Chinese, shaped like a pushed item."""
    text = vectors_dir("samples", "portal-article-duji-2021-10-28.txt")
    article = text.read_text(encoding="utf-8")
    return {
        "v": 1,
        "kind": "lesson",
        "author": "huaibei-duji",
        "created_at": "2026-11-20T09:30:00+08:00",
        "audience": {"circles": ["huaihai"], "sites": []},
        "refs": [{"rel": "follows", "id": "sha256:" + "ab" * 32}],
        "title": article[150:180],
        "summary": article[200:330],
        "tags": ["全过程人民民主", "人大监督"],
        "lang": "zh-CN",
        "body": {
            "text": article[330:650],
            "phases": [{"name": "调研", "start": "2026-01-05", "seq": 1}],
            "contacts": 3,
        },
        "attachments": [
            {"name": "方案.docx", "size": 48211, "sha256": "cd" * 32},
        ],
    }


# ---------------------------------------------------------------- RFC 8785 vectors


def test_vector_folder_holds_the_expected_cases() -> None:
    folder = jcs_dir()
    for sub, ext in (("input", ".json"), ("output", ".json"), ("outhex", ".txt")):
        names = sorted(p.stem for p in (folder / sub).iterdir() if p.suffix == ext)
        assert names == CASES, f"{folder / sub} holds {names}"


@pytest.mark.parametrize("impl", IMPLS, ids=["fast", "reference"])
@pytest.mark.parametrize("case", CASES)
def test_rfc8785_vectors(case: str, impl: Callable[[Any], bytes]) -> None:
    folder = jcs_dir()
    expected = (folder / "output" / f"{case}.json").read_bytes()
    hex_text = (folder / "outhex" / f"{case}.txt").read_text(encoding="ascii")
    assert bytes.fromhex(hex_text) == expected
    value = parse_json((folder / "input" / f"{case}.json").read_bytes())
    assert impl(value) == expected
    assert rfc8785.dumps(value) == expected


@pytest.mark.parametrize("case", CASES)
def test_rfc8785_vectors_through_canonical_bytes_of(case: str) -> None:
    folder = jcs_dir()
    raw = (folder / "input" / f"{case}.json").read_bytes()
    value, canon = canonical_bytes_of(raw)
    assert canon == (folder / "output" / f"{case}.json").read_bytes()
    assert value == parse_json(raw)


# --------------------------------------------------------- PERFORMANCE.md pitfalls


@pytest.mark.parametrize("impl", IMPLS, ids=["fast", "reference"])
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, b"1"),
        (1e-6, b"0.000001"),
        (1e-7, b"1e-7"),
        (1e16, b"10000000000000000"),
        (1e21, b"1e+21"),
        (1e20, b"100000000000000000000"),
        (-0.0, b"0"),
        (0.0, b"0"),
        (2.0**53, b"9007199254740992"),
        (-1.5, b"-1.5"),
        (123.456, b"123.456"),
        (5e-324, b"5e-324"),
        (1.7976931348623157e308, b"1.7976931348623157e+308"),
        (0.1 + 0.2, b"0.30000000000000004"),
        ([1.0, 2.5, -0.0], b"[1,2.5,0]"),
        (MAX_SAFE_INTEGER, b"9007199254740991"),
        (-MAX_SAFE_INTEGER, b"-9007199254740991"),
        ({"！": 1, "\U00020bb7": 2}, '{"\U00020bb7":2,"！":1}'.encode()),
        ({"\ue000": 1, "\U0001f600": 2, "z": 3}, '{"z":3,"😀":2,"\ue000":1}'.encode()),
    ],
)
def test_pitfalls(value: Any, expected: bytes, impl: Callable[[Any], bytes]) -> None:
    assert impl(value) == expected
    assert rfc8785.dumps(value) == expected


@pytest.mark.parametrize(
    ("ieee_hex", "expected"),
    # Sample lines of the upstream ES6 number file (testdata/README.md).
    [
        ("4340000000000001", "9007199254740994"),
        ("4340000000000002", "9007199254740996"),
        ("444b1ae4d6e2ef50", "1e+21"),
        ("3eb0c6f7a0b5ed8d", "0.000001"),
        ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
        ("8000000000000000", "0"),
        ("0", "0"),
    ],
)
def test_es6_number_samples(ieee_hex: str, expected: str) -> None:
    (value,) = struct.unpack(">d", bytes.fromhex(ieee_hex.zfill(16)))
    assert canonical_json(value) == expected.encode()
    assert canonical_json_reference(value) == expected.encode()


@pytest.mark.parametrize("impl", IMPLS, ids=["fast", "reference"])
@pytest.mark.parametrize("number", [2**53, -(2**53), 2**63, 2**64, -(2**70)])
def test_integers_beyond_2_53_are_refused(
    number: int, impl: Callable[[Any], bytes]
) -> None:
    for value in (number, [number], {"n": number}):
        with pytest.raises(JsonError) as info:
            impl(value)
        assert info.value.code is ErrorCode.NUMBER_OUT_OF_RANGE


@pytest.mark.parametrize("text", ["9007199254740992", "-9007199254740992"])
def test_parse_refuses_2_53(text: str) -> None:
    assert code_of(text) is ErrorCode.NUMBER_OUT_OF_RANGE
    assert parse_json(text[:-1] + "1") in (MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER)


def test_every_ascii_and_special_character_escapes_as_rfc8785() -> None:
    chars = [chr(i) for i in range(0x80)]
    chars += ["\u2028", "\u2029", "\ufeff", "\ue000", "\uffff", "\U0010ffff", "中"]
    for ch in chars:
        expected = rfc8785.dumps(ch)
        assert canonical_json(ch) == expected, repr(ch)
        assert canonical_json_reference(ch) == expected, repr(ch)
        assert canonical_json({ch: ch}) == rfc8785.dumps({ch: ch}), repr(ch)
    assert canonical_json("\x00\x1f\x7f") == b'"\\u0000\\u001f\x7f"'
    assert canonical_json('\b\t\n\f\r"\\/') == b'"\\b\\t\\n\\f\\r\\"\\\\/"'


# ------------------------------------------------------- types canonical_json takes


class Kind(enum.IntEnum):
    ONE = 1


class Tag(enum.StrEnum):
    LAW = "law"


class Name(str):
    pass


@pytest.mark.parametrize("impl", IMPLS, ids=["fast", "reference"])
def test_bool_is_not_an_integer(impl: Callable[[Any], bytes]) -> None:
    assert impl([True, False, 1, 0, None]) == b"[true,false,1,0,null]"


@pytest.mark.parametrize("impl", IMPLS, ids=["fast", "reference"])
def test_subclasses_serialise_as_their_base_type(impl: Callable[[Any], bytes]) -> None:
    value = collections.OrderedDict([("b", Kind.ONE), ("a", [Tag.LAW, Name("x")])])
    assert impl(value) == b'{"a":["law","x"],"b":1}'
    assert impl({Name("k"): 1}) == b'{"k":1}'


@pytest.mark.parametrize("impl", IMPLS, ids=["fast", "reference"])
@pytest.mark.parametrize(
    "value",
    [
        (1, 2),
        b"bytes",
        {1: "a"},
        {("a",): 1},
        object(),
        {1.5},
        float("nan"),
        float("inf"),
        [float("-inf")],
        "\ud800",
        {"\udc00": 1},
        ["ok", "x\ud83d"],
    ],
    ids=repr,
)
def test_refused_values(value: Any, impl: Callable[[Any], bytes]) -> None:
    with pytest.raises(JsonError) as info:
        impl(value)
    assert info.value.code is ErrorCode.BAD_JSON
    assert info.value.message


@pytest.mark.parametrize("impl", IMPLS, ids=["fast", "reference"])
def test_cycles_are_refused(impl: Callable[[Any], bytes]) -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(JsonError) as info:
        impl({"a": loop})
    assert info.value.code is ErrorCode.BAD_JSON
    shared = [1]
    assert impl([shared, shared]) == b"[[1],[1]]"  # shared, not cyclic


def test_deep_values_canonicalize_without_recursion() -> None:
    value: Any = 0
    for _ in range(20_000):
        value = [value]
    out = canonical_json(value)
    assert out == b"[" * 20_000 + b"0" + b"]" * 20_000


def test_realistic_item_takes_the_fast_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    item = realistic_item()
    raw = orjson.dumps(item)
    expected = rfc8785.dumps(item)

    def boom(*args: Any) -> Any:
        raise AssertionError("slow path used")

    monkeypatch.setattr(canonical, "canonical_json_reference", boom)
    monkeypatch.setattr(canonical, "_parse_slow", boom)
    assert 1800 < len(raw) < 2600
    assert canonical_json(item) == expected
    assert parse_json(raw, allow_floats=False) == item
    assert canonical_bytes_of(raw, allow_floats=False) == (item, expected)


def test_item_id() -> None:
    item = realistic_item()
    canon = canonical_json(item)
    digest = "sha256:" + hashlib.sha256(canon).hexdigest()
    assert item_id(item) == digest
    assert item_id(canon) == digest
    # bytes are taken as already canonical, not re-canonicalized
    raw = b'{"b": 1, "a": 2}'
    assert item_id(raw) == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert item_id({}) == "sha256:" + hashlib.sha256(b"{}").hexdigest()


def test_canonical_bytes_of_escaped_colons_and_reordering() -> None:
    raw = b'{"b": "x\\u003a", "\xef\xbc\x81": 1, "\xf0\xa0\xae\xb7": [1.50, 2]}'
    value, canon = canonical_bytes_of(raw)
    assert value == {"b": "x:", "！": 1, "\U00020bb7": [1.5, 2]}
    assert canon == '{"b":"x:","\U00020bb7":[1.5,2],"！":1}'.encode()
    with pytest.raises(JsonError) as info:
        canonical_bytes_of(b'{"a\\u003A": 1, "a:": 2}')
    assert info.value.code is ErrorCode.DUPLICATE_KEY


# --------------------------------------------------------------- bad parse inputs

BAD: list[tuple[bytes | str, ErrorCode, dict[str, Any]]] = [
    (b"\xef\xbb\xbf{}", ErrorCode.INVALID_UTF8, {}),
    (b'"\xff"', ErrorCode.INVALID_UTF8, {}),
    (b'"\xc0\x80"', ErrorCode.INVALID_UTF8, {}),  # overlong NUL
    (b'"\xed\xa0\x80"', ErrorCode.INVALID_UTF8, {}),  # UTF-8-encoded surrogate
    (b'{"a": "\xe4\xb8"}', ErrorCode.INVALID_UTF8, {}),  # truncated sequence
    (b'"\xf4\x90\x80\x80"', ErrorCode.INVALID_UTF8, {}),  # beyond U+10FFFF
    ("\ud800", ErrorCode.INVALID_UTF8, {}),  # text that has no UTF-8 form
    (b"", ErrorCode.BAD_JSON, {}),
    (b" \n", ErrorCode.BAD_JSON, {}),
    ("\ufeff{}", ErrorCode.BAD_JSON, {}),
    (b"{", ErrorCode.BAD_JSON, {}),
    (b"[1,]", ErrorCode.BAD_JSON, {}),
    (b'{"a":1,}', ErrorCode.BAD_JSON, {}),
    (b"[1 2]", ErrorCode.BAD_JSON, {}),
    (b'{"a" 1}', ErrorCode.BAD_JSON, {}),
    (b"{a:1}", ErrorCode.BAD_JSON, {}),
    (b"{'a':1}", ErrorCode.BAD_JSON, {}),
    (b"[1] [2]", ErrorCode.BAD_JSON, {}),
    (b"01", ErrorCode.BAD_JSON, {}),
    (b"-", ErrorCode.BAD_JSON, {}),
    (b"1.", ErrorCode.BAD_JSON, {}),
    (b".5", ErrorCode.BAD_JSON, {}),
    (b"1e", ErrorCode.BAD_JSON, {}),
    (b"+1", ErrorCode.BAD_JSON, {}),
    (b"0x10", ErrorCode.BAD_JSON, {}),
    (b"tru", ErrorCode.BAD_JSON, {}),
    (b"True", ErrorCode.BAD_JSON, {}),
    (b"NaN", ErrorCode.BAD_JSON, {}),
    (b"Infinity", ErrorCode.BAD_JSON, {}),
    (b"-Infinity", ErrorCode.BAD_JSON, {}),
    (b"[NaN]", ErrorCode.BAD_JSON, {"allow_floats": False}),
    (b'"\x01"', ErrorCode.BAD_JSON, {}),
    (b'"a\nb"', ErrorCode.BAD_JSON, {}),
    (b'"\\x"', ErrorCode.BAD_JSON, {}),
    (b'"\\u12"', ErrorCode.BAD_JSON, {}),
    (b'"abc', ErrorCode.BAD_JSON, {}),
    (b"\x0c1", ErrorCode.BAD_JSON, {}),  # form feed is not JSON whitespace
    ("\u00a01", ErrorCode.BAD_JSON, {}),
    (b"\x00", ErrorCode.BAD_JSON, {}),
    (b"//c\n1", ErrorCode.BAD_JSON, {}),
    (b'"\\ud800"', ErrorCode.BAD_JSON, {}),
    (b'"\\udc00"', ErrorCode.BAD_JSON, {}),
    (b'"\\ud800\\u0041"', ErrorCode.BAD_JSON, {}),
    (b'"\\udc00\\ud800"', ErrorCode.BAD_JSON, {}),
    (b'{"\\ud83d": 1}', ErrorCode.BAD_JSON, {}),
    (b'{"a":1,"a":2}', ErrorCode.DUPLICATE_KEY, {}),
    (b'{"a":1,"\\u0061":2}', ErrorCode.DUPLICATE_KEY, {}),
    (b'[{"x":{"y":[1,{"z":1,"z":1}]}}]', ErrorCode.DUPLICATE_KEY, {}),
    (b'{"k\\u003a":1,"k:":2}', ErrorCode.DUPLICATE_KEY, {}),
    ('{"中":1,"中":{}}', ErrorCode.DUPLICATE_KEY, {}),
    (b"[[[]]]", ErrorCode.TOO_DEEP, {"max_depth": 2}),
    (b"[]", ErrorCode.TOO_DEEP, {"max_depth": 0}),
    (b'{"a":{"b":{}}}', ErrorCode.TOO_DEEP, {"max_depth": 2}),
    (b"[" * 33 + b"]" * 33, ErrorCode.TOO_DEEP, {}),
    (b"9007199254740992", ErrorCode.NUMBER_OUT_OF_RANGE, {}),
    (b"[-9007199254740992]", ErrorCode.NUMBER_OUT_OF_RANGE, {}),
    (b"18446744073709551616", ErrorCode.NUMBER_OUT_OF_RANGE, {}),
    (b'{"n":[18446744073709551616]}', ErrorCode.NUMBER_OUT_OF_RANGE, {}),
    (b"[-123456789012345678901234567890]", ErrorCode.NUMBER_OUT_OF_RANGE, {}),
    (b"[1e400]", ErrorCode.NUMBER_OUT_OF_RANGE, {}),
    (b"1" * 5000, ErrorCode.NUMBER_OUT_OF_RANGE, {}),
    (b"1e400", ErrorCode.NUMBER_OUT_OF_RANGE, {}),
    (b"[1.0]", ErrorCode.FLOAT_NOT_ALLOWED, {"allow_floats": False}),
    (b"1e3", ErrorCode.FLOAT_NOT_ALLOWED, {"allow_floats": False}),
    (b'{"a":-0.0}', ErrorCode.FLOAT_NOT_ALLOWED, {"allow_floats": False}),
    (b"1E-2", ErrorCode.FLOAT_NOT_ALLOWED, {"allow_floats": False}),
]


@pytest.mark.parametrize(("data", "code", "kwargs"), BAD, ids=lambda v: repr(v)[:40])
def test_bad_input_codes(data: bytes | str, code: ErrorCode, kwargs: Any) -> None:
    assert code_of(data, **kwargs) is code
    if isinstance(data, bytes) and not data.startswith(b"\xef\xbb\xbf"):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return
        assert code_of(text, **kwargs) is code  # same verdict for str input


def test_deep_input_is_too_deep_not_recursion_error() -> None:
    for data in (b"[" * 100_000, b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000):
        assert code_of(data) is ErrorCode.TOO_DEEP
        assert code_of(data, max_depth=5000) is ErrorCode.TOO_DEEP
        assert code_of(data.decode(), max_depth=2000) is ErrorCode.TOO_DEEP


def test_depth_beyond_orjson_limit_when_allowed() -> None:
    depth = 3000  # orjson stops at 1024; the slow path takes over
    value = parse_json(b"[" * depth + b"]" * depth, max_depth=depth)
    seen = 1
    while value:
        (value,) = value
        seen += 1
    assert seen == depth
    assert parse_json(b"[[]]", max_depth=2) == [[]]
    assert parse_json(b"7", max_depth=0) == 7


def test_errors_say_where() -> None:
    with pytest.raises(JsonError) as info:
        parse_json('{\n  "名": 1,\n  "名": 2}'.encode())
    err = info.value
    assert err.code is ErrorCode.DUPLICATE_KEY
    assert '"名"' in err.message
    assert err.detail == {"line": 3, "column": 3, "byte_offset": 16}
    assert "line 3, column 3 (byte 16)" in err.message
    with pytest.raises(JsonError) as info:
        parse_json('["中", 1.5]', allow_floats=False)
    assert info.value.detail == {"line": 1, "column": 7, "char_offset": 6}
    with pytest.raises(JsonError) as info:
        parse_json(b'["ok", "\xe4\xb8\xad\xff"]')
    assert info.value.code is ErrorCode.INVALID_UTF8
    assert info.value.detail == {"byte_offset": 11}
    with pytest.raises(JsonError) as info:
        parse_json(b'["\\ud800"]')
    assert "surrogate" in info.value.message and "(byte 2)" in info.value.message


def test_parse_accepts_strict_json() -> None:
    assert parse_json(
        b' \t\r\n{"a" : [ 1 , -0 , 0.5e1 , "\\u00e9\\ud83d\\ude00" ] } '
    ) == {"a": [1, 0, 5.0, "é😀"]}
    assert parse_json("[]") == []
    assert parse_json(b'"\\/\\b\\f\\n\\r\\t\\"\\\\"') == '/\b\f\n\r\t"\\'
    assert parse_json(b"[true,false,null]") == [True, False, None]
    assert parse_json(b"9007199254740991") == MAX_SAFE_INTEGER
    assert parse_json(b"1e-400") == 0.0
    assert parse_json(b"[1e300, -1e20, 1E+16]") == [1e300, -1e20, 1e16]
    assert parse_json(b'{"b":1,"a":2}') == {"b": 1, "a": 2}
    assert list(parse_json(b'{"b":1,"a":2}')) == ["b", "a"]  # member order kept


def test_parse_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        parse_json(12)  # type: ignore[arg-type]


# ------------------------------------------------------------------ properties

SPECIAL = ["\uff01", "\U00020bb7", "\ue000", "\uffff", "\U0001f600", "\ud7ff"]
SPECIAL += ["\x00", "\x1f", "\x7f", "\u2028", '"', "\\", "/", ":", "中"]
TEXT = st.text(
    st.one_of(st.characters(exclude_categories=["Cs"]), st.sampled_from(SPECIAL)),
    max_size=8,
)
INTS = st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)


def json_values(
    floats: st.SearchStrategy[float], leaves: int = 15
) -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | INTS | floats | TEXT
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=5)
        ),
        max_leaves=leaves,
    )


@NESTED
@given(json_values(FLOATS))
def test_fast_reference_and_rfc8785_agree(value: Any) -> None:
    expected = rfc8785.dumps(value)
    assert canonical_json(value) == expected
    assert canonical_json_reference(value) == expected


# Integral floats of magnitude >= 2^53 print as integer literals (1e16 ->
# 10000000000000000), which the strict parser then refuses; keep them out here.
SAFE_FLOATS = FLOATS.filter(lambda f: abs(f) < 2.0**53 or not f.is_integer())
SMALL_VALUES = json_values(SAFE_FLOATS, 4)


@NESTED
@given(json_values(SAFE_FLOATS))
def test_canonical_bytes_parse_back(value: Any) -> None:
    canon = canonical_json(value)
    back = parse_json(canon, max_depth=64)
    assert back == value
    assert canonical_json(back) == canon
    assert canonical_bytes_of(canon, max_depth=64) == (back, canon)


def same(a: Any, b: Any) -> bool:
    """Equal, including int-vs-float and the sign of zero."""
    return repr(a) == repr(b)


def verdict(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", repr(fn())
    except JsonError as err:
        return "error", err.code


@NESTED
@given(
    st.lists(st.tuples(TEXT, SMALL_VALUES), min_size=1, max_size=4),
    st.data(),
)
def test_duplicate_keys_are_always_found(
    members: list[tuple[str, Any]], data: st.DataObject
) -> None:
    """However the colons fall, a repeated key is found (orjson keeps the last)."""
    key = data.draw(st.sampled_from(members))[0]
    again = data.draw(SMALL_VALUES)
    members.insert(data.draw(st.integers(0, len(members))), (key, again))
    body = "{" + ",".join(f"{dumps(k)}:{dumps(v)}" for k, v in members) + "}"
    outer = data.draw(
        st.sampled_from(["@", "[@]", '{"x":[1,@]}', '["a:b",@,{"c":":"}]'])
    )
    text = outer.replace("@", body)
    assert code_of(text.encode(), max_depth=64) is ErrorCode.DUPLICATE_KEY
    assert code_of(text, max_depth=64) is ErrorCode.DUPLICATE_KEY


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


@FAST
@given(st.binary(max_size=64))
def test_arbitrary_bytes_only_raise_json_error(data: bytes) -> None:
    for floats, depth in ((True, 32), (False, 2)):
        try:
            parse_json(data, max_depth=depth, allow_floats=floats)
        except JsonError:
            pass
        try:
            canonical_bytes_of(data, max_depth=depth, allow_floats=floats)
        except JsonError:
            pass


@FAST
@given(st.text(max_size=40))
def test_arbitrary_text_only_raises_json_error(data: str) -> None:
    try:
        parse_json(data)
    except JsonError:
        pass


JSONISH = st.lists(
    st.sampled_from(
        [
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            " ",
            '"',
            '"a"',
            '"b"',
            "\\",
            "\\u003a",
            "\\ud800",
            "\\udc00",
            "1",
            "0",
            "-",
            ".",
            "e",
            "9007199254740992",
            "18446744073709551616",
            "1e400",
            "true",
            "null",
            "NaN",
            "中",
            "\x01",
            "\n",
        ]
    ),
    max_size=25,
).map("".join)


@FAST
@given(JSONISH, st.booleans(), st.integers(0, 4))
def test_fast_and_slow_parsers_agree(text: str, floats: bool, depth: int) -> None:
    """The orjson path may only answer where the strict parser gives the same."""
    data = text.encode("utf-8")

    def slow() -> Any:
        return canonical._parse_slow(data, depth, floats)

    def fast() -> Any:
        return parse_json(data, max_depth=depth, allow_floats=floats)

    assert verdict(fast) == verdict(slow)


@NESTED
@given(json_values(FLOATS), st.booleans())
def test_fast_and_slow_parsers_agree_on_valid_json(value: Any, floats: bool) -> None:
    data = orjson.dumps(value, option=orjson.OPT_INDENT_2)
    fast = verdict(lambda: parse_json(data, allow_floats=floats))
    slow = verdict(lambda: canonical._parse_slow(data, 32, floats))
    assert fast == slow
    if fast[0] == "ok":
        assert same(parse_json(data, allow_floats=floats), value)


def test_public_surface() -> None:
    assert sorted(canonical.__all__) == [
        "MAX_SAFE_INTEGER",
        "canonical_bytes_of",
        "canonical_json",
        "canonical_json_reference",
        "item_id",
        "parse_json",
    ]
