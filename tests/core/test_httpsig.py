"""Tests for exchange.core.httpsig: RFC 9421 request signatures, RFC 9530 digests."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from exchange.core.httpsig import (
    InnerList,
    Item,
    Token,
    VerifiedRequest,
    check_content_digest,
    content_digest,
    parse_dictionary,
    serialize_dictionary,
    serialize_inner_list,
    sign_request,
    signature_base,
    verify_request,
)
from exchange.core.signing import PrivateKey, PublicKey, generate_key
from exchange.errors import AuthError, VerificationError
from schemas.errors import ErrorCode
from tests.support import VECTORS, vectors_dir

B26 = VECTORS / "transcribed" / "rfc9421-b26-ed25519.json"

NOW = 1_700_000_000
KEY = generate_key("ed25519", "huaibei-duji#k1")
OTHER = generate_key("ed25519", "suxian-renda#k1")
BODY = b'{"kind": "case-study", "title": "river chief inspection"}'
TARGET = "/v1/items?dry_run=1&lang=zh"
AUTHORITY = "node.example"


def lookup(key_id: str) -> PublicKey:
    keys = {KEY.key_id: KEY.public_key, OTHER.key_id: OTHER.public_key}
    try:
        return keys[key_id]
    except KeyError:
        raise VerificationError(
            f"no key {key_id!r} in the roster", code=ErrorCode.UNKNOWN_KEY
        ) from None


def signed(
    *,
    method: str = "POST",
    target: str = TARGET,
    body: bytes | None = BODY,
    signer: PrivateKey = KEY,
    created: int = NOW,
    content_type: str | None = "application/json",
    **kwargs: Any,
) -> dict[str, str]:
    """Headers of a signed request (Content-Type, Content-Digest, Signature...)."""
    headers = {"Content-Type": content_type} if content_type is not None else {}
    added = sign_request(
        signer,
        method,
        target,
        AUTHORITY,
        headers,
        body,
        created=created,
        nonce="n-0123456789abcdef",
        **kwargs,
    )
    return {**headers, **added}


def verify(
    headers: Mapping[str, str],
    *,
    method: str = "POST",
    target: str = TARGET,
    authority: str = AUTHORITY,
    body: bytes | None = BODY,
    key_lookup: Callable[[str], PublicKey] = lookup,
    **kwargs: Any,
) -> VerifiedRequest:
    return verify_request(
        method,
        target,
        authority,
        headers,
        body,
        key_lookup=key_lookup,
        now=kwargs.pop("now", NOW),
        **kwargs,
    )


def refused(code: ErrorCode, headers: Mapping[str, str], **kwargs: Any) -> AuthError:
    with pytest.raises(AuthError) as info:
        verify(headers, **kwargs)
    assert info.value.code is code, info.value.message
    return info.value


# --------------------------------------------------------------------------------------
# RFC 9421 Appendix B.2.6 (ed25519)
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def b26() -> dict[str, Any]:
    vectors_dir("transcribed", B26.name)
    data: dict[str, Any] = json.loads(B26.read_text(encoding="utf-8"))
    return data


def _b26_request(v: dict[str, Any]) -> tuple[str, str, str, dict[str, str], bytes]:
    req = v["request"]
    headers = dict(req["headers"])
    return req["method"], req["target"], headers["Host"], headers, req["body"].encode()


def _b26_private(v: dict[str, Any]) -> PrivateKey:
    der = base64.b64decode(v["key"]["privatePkcs8DerB64"])
    sk = serialization.load_der_private_key(der, password=None)
    assert isinstance(sk, Ed25519PrivateKey)
    seed = sk.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return PrivateKey("ed25519", seed, v["key"]["keyid"])


def _b26_public(v: dict[str, Any]) -> PublicKey:
    der = base64.b64decode(v["key"]["publicSpkiDerB64"])
    pk = serialization.load_der_public_key(der)
    assert isinstance(pk, Ed25519PublicKey)
    raw = pk.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PublicKey("ed25519", raw, v["key"]["keyid"])


def test_b26_signature_base_is_rebuilt_byte_for_byte(b26: dict[str, Any]) -> None:
    method, target, authority, headers, _ = _b26_request(b26)
    base = signature_base(
        method,
        target,
        authority,
        headers,
        b26["coveredComponents"],
        b26["signatureParams"],
    )
    assert base == b26["signatureBase"].encode()

    # The @signature-params line is the canonical re-serialisation of the header.
    inputs = parse_dictionary(b26["signatureInputHeader"])
    member = inputs[b26["label"]]
    assert isinstance(member, InnerList)
    assert serialize_inner_list(member) == b26["signatureParams"]
    assert [i.value for i in member.items] == b26["coveredComponents"]
    assert serialize_dictionary(inputs) == b26["signatureInputHeader"]


def test_b26_resigning_gives_the_exact_signature(b26: dict[str, Any]) -> None:
    key = _b26_private(b26)
    assert key.public_key.raw == _b26_public(b26).raw
    signature = key.sign(b26["signatureBase"].encode())
    assert base64.b64encode(signature).decode() == b26["signatureB64"]
    assert (
        serialize_dictionary({b26["label"]: Item(signature)})
        == (b26["signatureHeader"])
    )


def test_b26_given_signature_header_verifies(b26: dict[str, Any]) -> None:
    method, target, authority, headers, body = _b26_request(b26)
    headers["Signature-Input"] = b26["signatureInputHeader"]
    headers["Signature"] = b26["signatureHeader"]
    public = _b26_public(b26)

    # Cryptographic verification with the module's own parser and signature base.
    inputs = parse_dictionary(headers["Signature-Input"])
    sigs = parse_dictionary(headers["Signature"])
    member, sig = inputs[b26["label"]], sigs[b26["label"]]
    assert isinstance(member, InnerList) and isinstance(sig, Item)
    assert isinstance(sig.value, bytes)
    assert member.params["keyid"] == public.key_id
    created = member.params["created"]
    assert created == 1618884473
    base = signature_base(
        method,
        target,
        authority,
        headers,
        [str(i.value) for i in member.items],
        serialize_inner_list(member),
    )
    assert public.verify(base, sig.value)
    assert not public.verify(base + b" ", sig.value)

    # verify_request applies our protocol on top of RFC 9421: B.2.6 covers neither
    # content-digest (its body is non-empty) nor carries a nonce, so it is refused
    # for policy, not cryptography.
    def b26_lookup(key_id: str) -> PublicKey:
        assert key_id == public.key_id
        return public

    common: dict[str, Any] = {
        "key_lookup": b26_lookup,
        "now": created,
        "max_age": 10**10,
        "required": (),
    }
    with pytest.raises(AuthError) as info:
        verify_request(method, target, authority, headers, body, **common)
    assert info.value.code is ErrorCode.BAD_REQUEST_SIGNATURE
    assert "content-digest" in info.value.message
    with pytest.raises(AuthError) as info:
        verify_request(method, target, authority, headers, None, **common)
    assert info.value.code is ErrorCode.BAD_REQUEST_SIGNATURE
    assert "nonce" in info.value.message


def test_b26_content_digest_recomputes(b26: dict[str, Any]) -> None:
    _, _, _, headers, body = _b26_request(b26)
    header = headers["Content-Digest"]
    assert header.startswith("sha-512=")
    expected = base64.b64encode(hashlib.sha512(body).digest()).decode()
    assert header == f"sha-512=:{expected}:"
    check_content_digest(header, body)
    with pytest.raises(AuthError) as info:
        check_content_digest(header, body + b"\n")
    assert info.value.code is ErrorCode.DIGEST_MISMATCH


# --------------------------------------------------------------------------------------
# Content-Digest
# --------------------------------------------------------------------------------------


def test_content_digest_rfc9530_example() -> None:
    assert content_digest(b'{"hello": "world"}') == (
        "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
    )


def test_check_content_digest_accepts_both_and_ignores_unknown() -> None:
    body = b"abc"
    s256 = base64.b64encode(hashlib.sha256(body).digest()).decode()
    s512 = base64.b64encode(hashlib.sha512(body).digest()).decode()
    check_content_digest(f"sha-256=:{s256}:", body)
    check_content_digest(f"sha-512=:{s512}:", body)
    check_content_digest(f"md5=:AAAA:, sha-512=:{s512}:,sha-256=:{s256}:", body)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "md5=:AAAA:",
        "sha-256=:AAAA:",
        "sha-256=abc",
        "sha-256=:@@:",
        "not a dictionary",
        f"sha-256={content_digest(b'abc')[8:]}, sha-512=:AAAA:",
    ],
)
def test_check_content_digest_refusals(header: str | None) -> None:
    with pytest.raises(AuthError) as info:
        check_content_digest(header, b"abc")
    assert info.value.code is ErrorCode.DIGEST_MISMATCH


# --------------------------------------------------------------------------------------
# Structured fields
# --------------------------------------------------------------------------------------


def test_structured_fields_round_trip() -> None:
    text = (
        'sig1=("@method" "a\\"b\\\\c");created=1;keyid="k";flag;off=?0;t=tok/x:1;'
        "d=-1.5, sig2=:AAE=:;n=-7, bare;p=1"
    )
    parsed = parse_dictionary(text)
    assert list(parsed) == ["sig1", "sig2", "bare"]
    sig1 = parsed["sig1"]
    assert isinstance(sig1, InnerList)
    assert [i.value for i in sig1.items] == ["@method", 'a"b\\c']
    assert sig1.params == {
        "created": 1,
        "keyid": "k",
        "flag": True,
        "off": False,
        "t": "tok/x:1",
        "d": -1.5,
    }
    assert isinstance(sig1.params["t"], Token)
    assert not isinstance(sig1.params["keyid"], Token)
    assert parsed["sig2"] == Item(b"\x00\x01", {"n": -7})
    assert parsed["bare"] == Item(True, {"p": 1})
    assert serialize_dictionary(parsed) == text


def test_structured_fields_whitespace_is_canonicalised() -> None:
    parsed = parse_dictionary('  a=(  "x"   "y" );  k=1 ,\tb=?1  ')
    assert serialize_dictionary(parsed) == 'a=("x" "y");k=1, b'


@pytest.mark.parametrize(
    "text",
    [
        "a=",
        "a=1,",
        "A=1",
        "1a=1",
        'a="unterminated',
        'a="bad \\n escape"',
        'a=("x" "y"',
        'a=("x""y")',
        "a=1.2345",
        "a=1.",
        "a=1234567890123456",
        "a=-",
        "a=:QQ==QQ==:",
        "a=:Q:",
        "a=:not base64:",
        "a=?2",
        "a=1 b=2",
        "a=(1)(2)",
        "a=\u00e9",
        'a="\u00e9"',
        "a=1;",
        "a=1;K=2",
        "a=@",
    ],
)
def test_structured_fields_malformed(text: str) -> None:
    with pytest.raises(AuthError) as info:
        parse_dictionary(text)
    assert info.value.code is ErrorCode.BAD_REQUEST_SIGNATURE


def test_serialize_refuses_unrepresentable_values() -> None:
    with pytest.raises(ValueError):
        serialize_dictionary({"a": Item("line\nbreak")})
    with pytest.raises(ValueError):
        serialize_dictionary({"A": Item(1)})
    with pytest.raises(ValueError):
        serialize_dictionary({"a": Item(10**15)})
    with pytest.raises(ValueError):
        serialize_dictionary({})


# --------------------------------------------------------------------------------------
# Signature base
# --------------------------------------------------------------------------------------


def test_signature_base_derived_components() -> None:
    headers = {"X-Thing": "  v  ", "Content-Type": "text/plain"}
    base = signature_base(
        "GET",
        "/a%20b/c?x=1&y=%2F",
        "Node.Example:443",
        headers,
        ["@method", "@path", "@query", "@authority", "@target-uri", "x-thing"],
        '("@method");created=1',
    )
    assert base == (
        b'"@method": GET\n'
        b'"@path": /a%20b/c\n'
        b'"@query": ?x=1&y=%2F\n'
        b'"@authority": node.example\n'
        b'"@target-uri": https://node.example/a%20b/c?x=1&y=%2F\n'
        b'"x-thing": v\n'
        b'"@signature-params": ("@method");created=1'
    )


@pytest.mark.parametrize("target", ["/p", "/p?"])
def test_signature_base_empty_query_is_question_mark(target: str) -> None:
    base = signature_base("GET", target, "h", {}, ["@query"], "()")
    assert base == b'"@query": ?\n"@signature-params": ()'


def test_signature_base_http_default_port_and_repeated_header_lines() -> None:
    class Multi(dict[str, str]):
        """A mapping whose items() yields a repeated field line, like a multidict."""

        def items(self) -> Any:
            return [("Accept", "a/b"), ("accept", "c/d")]

    base = signature_base(
        "GET", "/", "h:80", Multi(), ["@authority", "accept"], "()", scheme="http"
    )
    assert base == b'"@authority": h\n"accept": a/b, c/d\n"@signature-params": ()'


@pytest.mark.parametrize(
    ("components", "headers", "target"),
    [
        (["content-type"], {}, "/"),
        (["@method", "@method"], {}, "/"),
        (["@status"], {}, "/"),
        (["@signature-params"], {}, "/"),
        (["Content-Type"], {"content-type": "x"}, "/"),
        (["x-a"], {"X-A": "v\r\nx: y"}, "/"),
        (["@path"], {}, "https://h/p"),
    ],
)
def test_signature_base_refusals(
    components: list[str], headers: dict[str, str], target: str
) -> None:
    with pytest.raises(AuthError) as info:
        signature_base("GET", target, "h", headers, components, "()")
    assert info.value.code is ErrorCode.BAD_REQUEST_SIGNATURE


# --------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------


def test_round_trip_with_body() -> None:
    headers = signed()
    assert headers["Content-Digest"] == content_digest(BODY)
    assert headers["Signature-Input"] == (
        'sig1=("@method" "@path" "@query" "@authority" "content-digest" '
        '"content-type");created=1700000000;keyid="huaibei-duji#k1";'
        'alg="ed25519";nonce="n-0123456789abcdef"'
    )
    result = verify(headers)
    assert result == VerifiedRequest(
        key_id="huaibei-duji#k1",
        alg="ed25519",
        created=NOW,
        nonce="n-0123456789abcdef",
        label="sig1",
        covered=(
            "@method",
            "@path",
            "@query",
            "@authority",
            "content-digest",
            "content-type",
        ),
    )


def test_round_trip_without_body_or_query() -> None:
    headers = signed(method="GET", target="/v1/items", body=None, content_type=None)
    assert set(headers) == {"Signature-Input", "Signature"}
    result = verify(headers, method="GET", target="/v1/items", body=None)
    assert result.covered == ("@method", "@path", "@query", "@authority")
    assert verify(headers, method="GET", target="/v1/items", body=b"").label == "sig1"


def test_round_trip_header_names_are_case_insensitive_and_params_optional() -> None:
    headers = signed(label="node-a", expires=NOW + 60)
    lowered = {k.lower(): v for k, v in headers.items()}
    result = verify(lowered, now=NOW + 59)
    assert (result.label, result.expires) == ("node-a", NOW + 60)
    assert ";expires=1700000060;keyid=" in headers["Signature-Input"]
    upper = {k.upper(): v for k, v in headers.items()}
    assert verify(upper).key_id == KEY.key_id


def test_round_trip_within_age_and_skew_limits() -> None:
    headers = signed()
    assert verify(headers, now=NOW + 300).created == NOW
    assert verify(headers, now=NOW - 30).created == NOW


def test_round_trip_authority_default_port_and_case() -> None:
    headers = signed()
    assert verify(headers, authority="NODE.example:443").key_id == KEY.key_id


def test_first_label_with_keyid_is_verified() -> None:
    headers = signed(label="sig2")
    headers["Signature-Input"] = (
        'proxy=("@method");created=1, ' + headers["Signature-Input"]
    )
    headers["Signature"] = "proxy=:AAAA:, " + headers["Signature"]
    assert verify(headers).label == "sig2"
    # A later extra signature is ignored, an earlier bad one with a keyid is not.
    other = signed(signer=OTHER, label="sig0")
    bad = dict(headers)
    bad["Signature-Input"] = (
        headers["Signature-Input"] + ", " + (other["Signature-Input"])
    )
    bad["Signature"] = headers["Signature"] + ", sig0=:AAAA:"
    assert verify(bad).label == "sig2"
    worse = dict(headers)
    worse["Signature-Input"] = (
        other["Signature-Input"] + ", " + headers["Signature-Input"]
    )
    worse["Signature"] = "sig0=:AAAA:, " + headers["Signature"]
    refused(ErrorCode.BAD_REQUEST_SIGNATURE, worse)


def test_sign_request_refuses_bad_inputs() -> None:
    with pytest.raises(ValueError):
        sign_request(generate_key(), "GET", "/", "h", {}, None, created=NOW, nonce="n")
    with pytest.raises(ValueError):
        sign_request(KEY, "GET", "/", "h", {}, None, created=NOW, nonce="")
    with pytest.raises(ValueError):
        sign_request(KEY, "GET", "/", "h", {}, None, created=NOW, nonce="n\u00e9")
    with pytest.raises(ValueError):
        sign_request(KEY, "GET", "/", "h", {}, None, created=NOW, nonce="n", label="X")


# --------------------------------------------------------------------------------------
# Refusals, each with its exact code
# --------------------------------------------------------------------------------------


def test_refuses_tampered_body() -> None:
    refused(ErrorCode.DIGEST_MISMATCH, signed(), body=BODY + b" ")


def test_refuses_tampered_path() -> None:
    refused(
        ErrorCode.BAD_REQUEST_SIGNATURE, signed(), target="/v1/items2?dry_run=1&lang=zh"
    )


def test_refuses_tampered_query() -> None:
    refused(ErrorCode.BAD_REQUEST_SIGNATURE, signed(), target="/v1/items?dry_run=0")
    refused(ErrorCode.BAD_REQUEST_SIGNATURE, signed(), target="/v1/items")


def test_refuses_tampered_authority_and_content_type() -> None:
    refused(ErrorCode.BAD_REQUEST_SIGNATURE, signed(), authority="evil.example")
    headers = signed()
    headers["Content-Type"] = "text/plain"
    refused(ErrorCode.BAD_REQUEST_SIGNATURE, headers)


def test_refuses_wrong_method() -> None:
    refused(ErrorCode.BAD_REQUEST_SIGNATURE, signed(), method="PUT")
    refused(ErrorCode.BAD_REQUEST_SIGNATURE, signed(), method="post")


@pytest.mark.parametrize(
    "drop", [("Signature",), ("Signature-Input",), ("Signature", "Signature-Input")]
)
def test_refuses_missing_signature_headers(drop: tuple[str, ...]) -> None:
    headers = {k: v for k, v in signed().items() if k not in drop}
    refused(ErrorCode.UNAUTHENTICATED, headers)


def test_refuses_empty_signature_header() -> None:
    headers = signed()
    headers["Signature"] = ""
    refused(ErrorCode.UNAUTHENTICATED, headers)


def test_refuses_missing_covered_content_type() -> None:
    headers = signed()
    del headers["Content-Type"]
    refused(ErrorCode.BAD_REQUEST_SIGNATURE, headers)


def test_refuses_expired() -> None:
    refused(ErrorCode.SIGNATURE_EXPIRED, signed(), now=NOW + 301)
    refused(ErrorCode.SIGNATURE_EXPIRED, signed(), now=NOW + 61, max_age=60)
    refused(ErrorCode.SIGNATURE_EXPIRED, signed(expires=NOW + 10), now=NOW + 11)


def test_refuses_future_dated() -> None:
    refused(ErrorCode.SIGNATURE_EXPIRED, signed(), now=NOW - 31)
    refused(ErrorCode.SIGNATURE_EXPIRED, signed(created=NOW + 3600))


def test_refuses_unknown_key_keeping_the_reason() -> None:
    stranger = generate_key("ed25519", "stranger-renda#k9")
    err = refused(ErrorCode.BAD_REQUEST_SIGNATURE, signed(signer=stranger))
    assert "unknown_key" in err.message
    assert "no key 'stranger-renda#k9' in the roster" in err.message
    assert err.detail == {"reason": "unknown_key"}
    for secret in (stranger.secret_bytes(), stranger.public_key.raw):
        for encoded in (
            base64.b64encode(secret).decode(),
            base64.urlsafe_b64encode(secret).decode().rstrip("="),
            secret.hex(),
        ):
            assert encoded not in err.message


def test_refuses_revoked_key() -> None:
    def revoked(key_id: str) -> PublicKey:
        raise VerificationError("key revoked on 2024-01-01", code=ErrorCode.REVOKED_KEY)

    err = refused(ErrorCode.BAD_REQUEST_SIGNATURE, signed(), key_lookup=revoked)
    assert "revoked_key" in err.message and "2024-01-01" in err.message


def test_refuses_wrong_alg_param() -> None:
    class Liar:
        key_id = KEY.key_id
        alg = "sm2-sm3"

        def sign(self, message: bytes) -> bytes:
            return KEY.sign(message)

    headers = {"Content-Type": "application/json"}
    headers |= sign_request(
        Liar(), "POST", TARGET, AUTHORITY, headers, BODY, created=NOW, nonce="n1"
    )
    err = refused(ErrorCode.BAD_REQUEST_SIGNATURE, headers)
    assert "alg" in err.message


def test_refuses_body_without_covered_digest() -> None:
    # Signed as if there were no body, then a body is sent.
    headers = signed(body=None)
    assert "Content-Digest" not in headers
    err = refused(ErrorCode.BAD_REQUEST_SIGNATURE, headers)
    assert "content-digest" in err.message


def test_refuses_digest_header_stripped() -> None:
    headers = signed()
    del headers["Content-Digest"]
    refused(ErrorCode.DIGEST_MISMATCH, headers)


def test_refuses_digest_mismatch() -> None:
    # A signer that covered a Content-Digest which does not match the body.
    headers = signed(body=b"what was signed")
    refused(ErrorCode.DIGEST_MISMATCH, headers, body=b"what was sent")
    # Digest rewritten to match a tampered body: the signature then fails.
    tampered = signed()
    tampered["Content-Digest"] = content_digest(b"other")
    refused(ErrorCode.BAD_REQUEST_SIGNATURE, tampered, body=b"other")


@pytest.mark.parametrize(
    "value",
    [
        "sig1",
        "sig1=(",
        "sig1=(@method)",
        'sig1=("@method");keyid=huaibei',
        'sig1=("@method");keyid="a",',
        'sig1="@method";keyid="a"',
        'sig1=("@method";sf "@path" "@query");created=1;keyid="a";nonce="n"',
        'sig1=("@method" "@path" "@query");keyid="k";nonce="n"',
        'sig1=("@method" "@path" "@query");created="1";keyid="k";nonce="n"',
        'sig1=("@method" "@path" "@query");created=1;keyid="k"',
        'sig1=("@method" "@path" "@query");created=1;keyid="k";nonce=n',
        'sig1=("@method" "@path" "@query");created=1;keyid="";nonce="n"',
        'sig1=("@method" "@path");created=1;keyid="k";nonce="n"',
        'sig1=("@method" "@path" "@query");created=1;keyid="k";nonce="n";alg=1',
        'sig1=("@method" "@path" "@query");created=1;keyid="k";nonce="n";expires=?1',
        'other=("@method" "@path" "@query");created=1;keyid="k";nonce="n"',
    ],
)
def test_refuses_malformed_signature_input(value: str) -> None:
    headers = signed(body=None, content_type=None)
    headers["Signature-Input"] = value.replace("created=1;", f"created={NOW};")
    refused(ErrorCode.BAD_REQUEST_SIGNATURE, headers, body=None)


@pytest.mark.parametrize("value", ["sig1=:AAAA", "sig1=AAAA", "sig1=(:AAAA:)", "*"])
def test_refuses_malformed_signature(value: str) -> None:
    headers = signed()
    headers["Signature"] = value
    refused(ErrorCode.BAD_REQUEST_SIGNATURE, headers)


def test_refuses_signature_made_by_another_key() -> None:
    theirs = signed(signer=OTHER)
    ours = signed()
    # OTHER's signature bytes presented under KEY's Signature-Input.
    forged = dict(ours, Signature=theirs["Signature"])
    refused(ErrorCode.BAD_REQUEST_SIGNATURE, forged)
    # OTHER signs but claims to be KEY.
    impostor = signed(signer=OTHER)
    impostor["Signature-Input"] = impostor["Signature-Input"].replace(
        OTHER.key_id, KEY.key_id
    )
    refused(ErrorCode.BAD_REQUEST_SIGNATURE, impostor)
    # And truly signed by OTHER verifies as OTHER.
    assert verify(theirs).key_id == OTHER.key_id


# --------------------------------------------------------------------------------------
# Property: mutations after signing never verify
# --------------------------------------------------------------------------------------

_PRINTABLE = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
_ANY_TEXT = st.text(st.characters(codec="utf-8"), max_size=40)


def _mutate_text(data: st.DataObject, text: str) -> str:
    """Delete, replace or insert one non-whitespace character, or replace it all."""
    how = data.draw(st.sampled_from(["delete", "replace", "insert", "swap", "all"]))
    if how == "all" or not text:
        return data.draw(_ANY_TEXT)
    i = data.draw(st.integers(0, len(text) - 1))
    if how == "delete":
        return text[:i] + text[i + 1 :]
    if how == "insert":
        return text[:i] + data.draw(_PRINTABLE) + text[i:]
    if how == "swap":
        return text[:i] + data.draw(st.characters(codec="utf-8")) + text[i + 1 :]
    return text[:i] + data.draw(_PRINTABLE) + text[i + 1 :]


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _same_structure(a: str, b: str) -> bool:
    """True if both parse to the same structured dictionary (e.g. ``01`` vs ``1``)."""
    try:
        return serialize_dictionary(parse_dictionary(a)) == serialize_dictionary(
            parse_dictionary(b)
        )
    except (AuthError, ValueError):
        return False


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutations_after_signing_never_verify(data: st.DataObject) -> None:
    has_body = data.draw(st.booleans())
    body = data.draw(st.binary(max_size=64)) if has_body else None
    target = data.draw(st.sampled_from(["/v1/items", "/v1/items?x=1", "/a/b?"]))
    headers = {"Content-Type": "application/json"}
    headers |= sign_request(
        KEY, "POST", target, AUTHORITY, headers, body, created=NOW, nonce="abc"
    )
    request: dict[str, Any] = {
        "method": "POST",
        "target": target,
        "authority": AUTHORITY,
        "body": body,
        "headers": dict(headers),
    }
    verify(
        request["headers"],
        method="POST",
        target=target,
        authority=AUTHORITY,
        body=body,
    )

    what = data.draw(
        st.sampled_from(
            ["method", "target", "authority", "body", "delete", "header", "sigbytes"]
        )
    )
    mutated = dict(request, headers=dict(headers))
    if what == "method":
        mutated["method"] = _mutate_text(data, "POST")
        assume(mutated["method"] != "POST")
    elif what == "target":
        new = _mutate_text(data, target)
        # "/a/b?" and "/a/b" have the same @query by definition (RFC 9421 §2.2.7).
        assume(new.rstrip("?") != target.rstrip("?"))
        mutated["target"] = new
    elif what == "authority":
        new = _mutate_text(data, AUTHORITY)
        folded = new.strip(" \t").translate(_ASCII_LOWER).removesuffix(":443")
        assume(folded != AUTHORITY)
        mutated["authority"] = new
    elif what == "body":
        new_body = data.draw(st.binary(max_size=64))
        assume(new_body != (body or b""))
        mutated["body"] = new_body
    elif what == "delete":
        name = data.draw(st.sampled_from(sorted(headers)))
        del mutated["headers"][name]
    elif what == "header":
        name = data.draw(st.sampled_from(sorted(headers)))
        new = _mutate_text(data, headers[name])
        # Leading/trailing whitespace is not part of a field value, and the
        # Signature fields are compared as parsed structures (RFC 9421 §3.2).
        assume(new.strip(" \t") != headers[name])
        if name in ("Signature", "Signature-Input"):
            assume(not _same_structure(new, headers[name]))
        mutated["headers"][name] = new
    else:
        parsed = parse_dictionary(headers["Signature"])["sig1"]
        assert isinstance(parsed, Item) and isinstance(parsed.value, bytes)
        sig = bytearray(parsed.value)
        i = data.draw(st.integers(0, len(sig) - 1))
        sig[i] ^= data.draw(st.integers(1, 255))
        mutated["headers"]["Signature"] = serialize_dictionary(
            {"sig1": Item(bytes(sig))}
        )

    with pytest.raises(AuthError):
        verify(
            mutated["headers"],
            method=mutated["method"],
            target=mutated["target"],
            authority=mutated["authority"],
            body=mutated["body"],
        )


_SF_PIECES = st.sampled_from(
    [
        "sig1",
        "a",
        "=",
        "(",
        ")",
        '"@method"',
        '"content-digest"',
        '"x\\"y"',
        '"é"',
        " ",
        "  ",
        ";",
        "; ",
        "created=",
        "keyid=",
        "alg=",
        '"ed25519"',
        "ed25519",
        "1796421356",
        "0123",
        "-5",
        "1234567890123456",
        "1.5",
        '""',
        "?1",
        ":AAEC:",
        ",",
        ", b=1",
        'nonce="abc"',
        ";sf",
        "\t",
    ]
)


_NEAR_SIGNATURE_INPUT = st.builds(
    lambda label, comps, sep, params, tail: (
        f"{label}=({sep.join(comps)}){''.join(params)}{tail}"
    ),
    st.sampled_from(["sig1", "a", "Sig", "*x"]),
    st.lists(
        st.sampled_from(
            ['"@method"', '"a b"', '"x\\"y"', '"é"', '"content-type";sf', "tok", '""']
        ),
        max_size=5,
    ),
    st.sampled_from([" ", "  "]),
    st.lists(
        st.builds(
            str.__add__,
            st.sampled_from([";created", ";keyid", "; alg", ";a*b", ";Bad"]),
            st.sampled_from(
                [
                    '="v"',
                    '=""',
                    "=0123",
                    "=-5",
                    "=1234567890123456",
                    "=1.5",
                    "=tok",
                    "",
                    "=?1",
                    "=:AAEC:",
                    '="q\\"q"',
                ]
            ),
        ),
        max_size=5,
    ),
    st.sampled_from(["", "", ", b=1", " ", ",", "\t"]),
)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.lists(_SF_PIECES, max_size=14).map("".join), _NEAR_SIGNATURE_INPUT))
def test_dictionary_shortcut_parses_as_the_full_parser(text: str) -> None:
    """Every text is parsed by parse_dictionary (with its one-Inner-List shortcut)
    exactly as the step-by-step RFC 8941 parser does: same members, same types, same
    refusals."""
    from exchange.core.httpsig import _parse_dictionary

    try:
        want: object = _parse_dictionary(text.strip(" ")) if text.isascii() else None
    except AuthError:
        want = AuthError
    try:
        got: object = parse_dictionary(text) if text.isascii() else None
    except AuthError:
        got = AuthError
    assert got == want
    if isinstance(got, dict):
        assert [type(v) for m in got.values() for v in _values(m)] == [
            type(v)
            for m in want.values()
            for v in _values(m)  # type: ignore[union-attr]
        ]


def _values(member: Item | InnerList) -> list[object]:
    if isinstance(member, InnerList):
        return [i.value for i in member.items] + list(member.params.values())
    return [member.value, *member.params.values()]


@pytest.mark.parametrize(
    "text",
    [
        'sig1=("@method" "@path" "@query" "@authority" "content-digest");created=1796421356;keyid="huaibei-duji#k1";alg="ed25519";nonce="BSWkNxNeHTEv6HFz"',
        "sig1=();created=1",
        'sig1=("@method");created=0123;keyid="";alg="ed25519"',
        'sig1=("@method");created=1;created=2;keyid="k"',
    ],
)
def test_dictionary_shortcut_on_signature_inputs(text: str) -> None:
    """Signature-Input values of the usual shape take the shortcut and give what the
    full parser gives."""
    from exchange.core.httpsig import _ONE_INNER_LIST_RE, _parse_dictionary

    assert _ONE_INNER_LIST_RE.fullmatch(text) is not None
    assert parse_dictionary(text) == _parse_dictionary(text)


@settings(max_examples=2000, deadline=None)
@given(_NEAR_SIGNATURE_INPUT)
def test_signature_params_are_the_canonical_serialisation(text: str) -> None:
    """``@signature-params`` taken from the field's own text (when it is canonical
    already) is exactly the RFC 8941 serialisation of the parsed member."""
    from exchange.core.httpsig import _signature_params

    try:
        members = parse_dictionary(text)
    except AuthError:
        return
    for label, member in members.items():
        if isinstance(member, InnerList):
            try:
                want = serialize_inner_list(member)
            except ValueError:
                continue
            assert _signature_params(text, label, member) == want
