"""HTTP Message Signatures (RFC 9421) and Content-Digest (RFC 9530) for requests.

Every site-to-node and node-to-node request is signed. This module is pure code (no
I/O, no web framework): the server, the client and adapters all call it with plain
strings and bytes. Partners implementing the protocol in other languages need only
this docstring and RFC 9421.

What a request carries
----------------------

``Content-Digest`` (RFC 9530)
    Present whenever the request has a body (even an empty one, if the sender passes
    one): ``sha-256=:<base64 of SHA-256(body)>:``. Receivers accept ``sha-256`` and
    ``sha-512`` members; every supported member present must match, unknown
    algorithms are ignored, and at least one supported member is required.

``Signature-Input`` / ``Signature`` (RFC 9421, label ``sig1`` by default)
    The covered components, **in this order**::

        "@method" "@path" "@query" "@authority"   always
        "content-digest"                          when the request has a body
        "content-type"                            when the request has a Content-Type

    and the signature parameters, **in this order**::

        created=<unix seconds>    integer, always
        expires=<unix seconds>    integer, only if the sender sets one
        keyid="<site-id>#k<N>"    string, always
        alg="<suite>"             string, always (``ed25519``; later ``sm2-sm3``)
        nonce="<random>"          string, always; printable ASCII, unique per key

    Example: ``POST /v1/items?dry_run=1`` to ``node.example``, ``Content-Type:
    application/json``, body ``{"hello": "world"}`` (18 bytes)::

        Content-Digest: sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:
        Signature-Input: sig1=("@method" "@path" "@query" "@authority" \\
          "content-digest" "content-type");created=1700000000;\\
          keyid="huaibei-duji#k1";alg="ed25519";nonce="q9Xn2f0b"
        Signature: sig1=:<base64 of the 64-byte Ed25519 signature>:

    whose signature base (below) is::

        "@method": POST
        "@path": /v1/items
        "@query": ?dry_run=1
        "@authority": node.example
        "content-digest": sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:
        "content-type": application/json
        "@signature-params": ("@method" "@path" "@query" "@authority" \\
          "content-digest" "content-type");created=1700000000;\\
          keyid="huaibei-duji#k1";alg="ed25519";nonce="q9Xn2f0b"

    (lines ending in ``\\`` are wrapped here for width, RFC 8792 style; on the wire
    each header, and in the base each line, is a single line).

The signature base (RFC 9421 §2.5)
----------------------------------

One line per covered component, ``"<name>": <value>`` joined by ``\\n``, then the
line ``"@signature-params": <the Signature-Input member value>`` with **no** trailing
newline. The signature is the suite's signature over these UTF-8 bytes, with no
context prefix (RFC 9421 interoperability). This stays domain-separated from the
``exchange.core.signing`` context strings: a signature base always starts with
``"`` (0x22), every other signed message with ``congress-exchange/``. Component
values:

* ``@method``: the method exactly as sent (not case-normalised).
* ``@path``: the request target up to the first ``?``, raw (not percent-decoded).
* ``@query``: ``?`` plus everything after the first ``?``, raw; ``?`` alone when the
  target has no query (RFC 9421 §2.2.7).
* ``@authority``: the Host / URL authority, lowercased, default port for the scheme
  (``:443`` for https, ``:80`` for http) removed.
* ``@target-uri`` (accepted from partners, not emitted by us):
  ``<scheme>://<authority><target>``.
* Header fields: the lowercased field name; the value with leading and trailing
  spaces and tabs removed. Repeated field lines are joined with ``", "``.

Component parameters (``;sf``, ``;key``, ``;bs``, ``;req``, ``;name``...) and other
derived components are refused. The ``@signature-params`` value is the canonical
RFC 8941 serialisation of the parsed Signature-Input member, so a verifier re-creates
it byte for byte whatever optional whitespace the sender used.

Verification
------------

When several signatures are present, the verifier uses the **first** Signature-Input
member (in field order) whose parameters carry a ``keyid``; the others are ignored.
It refuses (all :class:`~exchange.errors.AuthError`):

* ``unauthenticated``: no Signature or no Signature-Input field;
* ``bad_request_signature``: malformed fields; a required component not covered
  (``@method @path @query @authority`` by default); ``content-digest`` not covered
  while the body is non-empty; ``created``, ``keyid``, ``alg`` or ``nonce`` missing;
  ``alg`` differing from the key's suite; unknown or revoked key; signature invalid;
* ``signature_expired``: ``created`` older than ``max_age`` seconds, more than
  ``max_skew`` seconds in the future, or ``expires`` in the past;
* ``digest_mismatch``: Content-Digest missing, without a supported algorithm, or
  not matching the body (checked before the signature).

Binding to the receiver is the caller's job as well: it passes the authority the
request arrived with and must refuse one that is not its own (its public base URL or
listen address), so a request signed for another node is not accepted here.

Replay detection is the caller's job: remember ``(key_id, nonce)`` from the
returned :class:`VerifiedRequest` for at least ``max_age + max_skew`` seconds.

Callers must pass the request target exactly as it travels on the wire (on the
server ``request.raw_path``; on the client the already-encoded path and query,
e.g. ``yarl.URL(..., encoded=True).raw_path_qs``), never a decoded form.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias, TypeGuard

from exchange.core.signing import PublicKey, Signer
from exchange.errors import AuthError, VerificationError
from schemas.errors import ErrorCode

__all__ = [
    "DEFAULT_LABEL",
    "BareItem",
    "Dictionary",
    "InnerList",
    "Item",
    "Params",
    "Token",
    "VerifiedRequest",
    "check_content_digest",
    "content_digest",
    "parse_dictionary",
    "serialize_dictionary",
    "serialize_inner_list",
    "sign_request",
    "signature_base",
    "verify_request",
]

DEFAULT_LABEL = "sig1"

# --------------------------------------------------------------------------------------
# RFC 8941 structured fields: the Dictionary subset used by RFC 9421 and RFC 9530.
# --------------------------------------------------------------------------------------


class Token(str):
    """An RFC 8941 Token (serialised unquoted), as opposed to a String (quoted)."""

    __slots__ = ()


BareItem: TypeAlias = int | float | str | bytes | bool
"""An RFC 8941 bare item: Integer, Decimal (``float``), String, :class:`Token`
(a ``str`` subclass), Byte Sequence or Boolean."""

Params: TypeAlias = dict[str, BareItem]


@dataclass(frozen=True, slots=True)
class Item:
    """An RFC 8941 Item: a bare item with parameters."""

    value: BareItem
    params: Params = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InnerList:
    """An RFC 8941 Inner List: items with parameters on the list itself."""

    items: tuple[Item, ...]
    params: Params = field(default_factory=dict)


Dictionary: TypeAlias = dict[str, Item | InnerList]

_KEY_RE = re.compile(r"[a-z*][a-z0-9_.*-]*")
_NUMBER_RE = re.compile(r"-?([0-9]*)(\.[0-9]*)?")
_STRING_RE = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')
_UNESCAPE_RE = re.compile(r"\\([\"\\])")
_TOKEN_RE = re.compile(r"[A-Za-z*][!#$%&'*+.^_`|~0-9A-Za-z:/-]*")
_BYTES_RE = re.compile(r":([A-Za-z0-9+/=]*):")
_B64_RE = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_STRING_OK_RE = re.compile(r"[\x20-\x7e]*")
_STRING_PLAIN_RE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
_MAX_INT = 999_999_999_999_999
# A Dictionary of one Inner List of plain Strings (no escapes, no item parameters) with
# parameters that are plain Strings or non-negative Integers: what a Signature-Input
# usually is. It is parsed by these three expressions alone, to the same result as the
# full parser below (tested against it); anything else takes the full parser.
_KEY = r"[a-z*][a-z0-9_.*-]*"
_PLAIN_STRING = r'"[\x20\x21\x23-\x5b\x5d-\x7e]*"'
_PLAIN_PARAM = rf'(?:;({_KEY})=(?:"([\x20\x21\x23-\x5b\x5d-\x7e]*)"|([0-9]{{1,15}})))'
_ONE_INNER_LIST_RE = re.compile(
    rf"({_KEY})=\(((?:{_PLAIN_STRING}(?: {_PLAIN_STRING})*)?)\)((?:{_PLAIN_PARAM})*)"
)
_PLAIN_PARAM_RE = re.compile(_PLAIN_PARAM)
_LEADING_ZERO_RE = re.compile(r"=0[0-9]")  # an integer parameter written 0123
_PLAIN_STRING_ITEM_RE = re.compile(r'"([\x20\x21\x23-\x5b\x5d-\x7e]*)"')


def _malformed(what: str) -> AuthError:
    return AuthError(
        f"malformed structured field: {what}", code=ErrorCode.BAD_REQUEST_SIGNATURE
    )


# The parser below follows RFC 8941 §4.2 step by step; it is written as functions over
# (text, position) pairs because it runs on every request.


def _parse_key(text: str, pos: int) -> tuple[str, int]:
    m = _KEY_RE.match(text, pos)
    if m is None:
        raise _malformed(f"expected a key at offset {pos}")
    return m.group(), m.end()


def _parse_bare_item(text: str, pos: int) -> tuple[BareItem, int]:
    c = text[pos : pos + 1]
    if c == '"':
        m = _STRING_RE.match(text, pos)
        if m is None:
            raise _malformed(f"bad string at offset {pos}")
        value = m.group(1)
        if "\\" in value:
            value = _UNESCAPE_RE.sub(r"\1", value)
        return value, m.end()
    if c == "-" or "0" <= c <= "9":
        return _parse_number(text, pos)
    if c == "*" or "a" <= c <= "z" or "A" <= c <= "Z":
        m = _TOKEN_RE.match(text, pos)
        if m is None:  # pragma: no cover - the first character always matches
            raise _malformed(f"bad token at offset {pos}")
        return Token(m.group()), m.end()
    if c == ":":
        m = _BYTES_RE.match(text, pos)
        if m is None or not _B64_RE.fullmatch(m.group(1)):
            raise _malformed(f"bad byte sequence at offset {pos}")
        b64 = m.group(1).rstrip("=")
        try:
            raw = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
        except binascii.Error:
            raise _malformed("bad base64 in byte sequence") from None
        return raw, m.end()
    if c == "?":
        flag = text[pos + 1 : pos + 2]
        if flag not in ("0", "1"):
            raise _malformed(f"bad boolean at offset {pos}")
        return flag == "1", pos + 2
    raise _malformed(f"unexpected character at offset {pos}")


def _parse_number(text: str, pos: int) -> tuple[int | float, int]:
    m = _NUMBER_RE.match(text, pos)
    if m is None or not m.group(1):
        raise _malformed(f"bad number at offset {pos}")
    whole, frac = m.group(1), m.group(2)
    if frac is None:
        if len(whole) > 15:
            raise _malformed("integer out of range")
        return int(m.group()), m.end()
    if len(whole) > 12 or not 2 <= len(frac) <= 4:
        raise _malformed("decimal out of range")
    return float(m.group()), m.end()


def _parse_params(text: str, pos: int) -> tuple[Params, int]:
    params: Params = {}
    while text.startswith(";", pos):
        pos += 1
        while text.startswith(" ", pos):
            pos += 1
        key, pos = _parse_key(text, pos)
        value: BareItem = True
        if text.startswith("=", pos):
            value, pos = _parse_bare_item(text, pos + 1)
        params[key] = value
    return params, pos


def _parse_item(text: str, pos: int) -> tuple[Item, int]:
    value, pos = _parse_bare_item(text, pos)
    if text.startswith(";", pos):
        params, pos = _parse_params(text, pos)
        return Item(value, params), pos
    return Item(value), pos


def _parse_inner_list(text: str, pos: int) -> tuple[InnerList, int]:
    pos += 1  # "("
    items: list[Item] = []
    n = len(text)
    while pos < n:
        while text.startswith(" ", pos):
            pos += 1
        if text.startswith(")", pos):
            params, pos = _parse_params(text, pos + 1)
            return InnerList(tuple(items), params), pos
        item, pos = _parse_item(text, pos)
        items.append(item)
        if not (text.startswith(" ", pos) or text.startswith(")", pos)):
            raise _malformed(f"expected ' ' or ')' at offset {pos}")
    raise _malformed("unterminated inner list")


def _parse_dictionary(text: str) -> Dictionary:
    out: Dictionary = {}
    pos, n = 0, len(text)
    while pos < n:
        key, pos = _parse_key(text, pos)
        member: Item | InnerList
        if not text.startswith("=", pos):
            params, pos = _parse_params(text, pos)
            member = Item(True, params)
        elif text.startswith("(", pos + 1):
            member, pos = _parse_inner_list(text, pos + 1)
        else:
            member, pos = _parse_item(text, pos + 1)
        out[key] = member
        while pos < n and text[pos] in " \t":
            pos += 1
        if pos >= n:
            break
        if text[pos] != ",":
            raise _malformed(f"expected ',' at offset {pos}")
        pos += 1
        while pos < n and text[pos] in " \t":
            pos += 1
        if pos >= n:
            raise _malformed("trailing ','")
    return out


def parse_dictionary(value: str) -> Dictionary:
    """Parse an RFC 8941 Dictionary field value (RFC 8941 §4.2.2).

    Members may be Items or Inner Lists; bare items may be Integers, Decimals,
    Strings, Tokens, Byte Sequences or Booleans. A repeated key keeps its first
    position and its last value, as RFC 8941 requires.

    Args:
        value: The field value (several field lines already joined with ``", "``).

    Returns:
        The members in field order.

    Raises:
        AuthError: (``bad_request_signature``) the value is not a valid Dictionary.
    """
    if not value.isascii():
        raise _malformed("non-ASCII character")
    value = value.strip(" ")
    m = _ONE_INNER_LIST_RE.fullmatch(value)
    if m is not None:  # the shape every Signature-Input of ours has: one plain member
        params: Params = {}
        for key, text, number in _PLAIN_PARAM_RE.findall(m.group(3)):
            params[key] = int(number) if number else text
        items = tuple(Item(c) for c in _PLAIN_STRING_ITEM_RE.findall(m.group(2)))
        return {m.group(1): InnerList(items, params)}
    return _parse_dictionary(value)


def _ser_key(key: str) -> str:
    if not _KEY_RE.fullmatch(key):
        raise ValueError(f"{key!r} is not a structured-field key")
    return key


def _ser_bare(value: BareItem) -> str:
    if type(value) is str and _STRING_PLAIN_RE.fullmatch(value):
        return f'"{value}"'
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, int):
        if not -_MAX_INT <= value <= _MAX_INT:
            raise ValueError("integer out of structured-field range")
        return str(value)
    if isinstance(value, float):
        text = f"{round(value, 3):.3f}".rstrip("0")
        if len(text.lstrip("-").split(".")[0]) > 12:
            raise ValueError("decimal out of structured-field range")
        return text + "0" if text.endswith(".") else text
    if isinstance(value, Token):
        if not _TOKEN_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not a structured-field token")
        return str(value)
    if isinstance(value, str):
        if not _STRING_OK_RE.fullmatch(value):
            raise ValueError("structured-field strings must be printable ASCII")
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return ":" + base64.b64encode(value).decode("ascii") + ":"


def _ser_params(params: Params) -> str:
    out = []
    for key, value in params.items():
        if value is True:
            out.append(";" + _ser_key(key))
        else:
            out.append(f";{_ser_key(key)}={_ser_bare(value)}")
    return "".join(out)


def _ser_item(item: Item) -> str:
    return _ser_bare(item.value) + _ser_params(item.params)


def serialize_inner_list(inner: InnerList) -> str:
    """Serialise an Inner List (RFC 8941 §4.1.1.1), e.g. a Signature-Input member.

    Args:
        inner: The inner list.

    Returns:
        The canonical serialisation, such as ``("@method");created=1``.

    Raises:
        ValueError: an item or parameter cannot be serialised.
    """
    body = " ".join(_ser_item(item) for item in inner.items)
    return f"({body}){_ser_params(inner.params)}"


def _signature_params(field: str, label: str, inner: InnerList) -> str:
    """``@signature-params``: the serialisation of the Signature-Input member. When the
    field is that one member written canonically already (no integer with a leading
    zero, no repeated parameter: what the shortcut of :func:`parse_dictionary` reads),
    it is the field's own text; otherwise it is serialised."""
    text = field.strip(" ")
    if (
        text.startswith(label + "=(")
        and _ONE_INNER_LIST_RE.fullmatch(text) is not None
        and _LEADING_ZERO_RE.search(text) is None
        and text.count(";") == len(inner.params)
    ):
        return text[len(label) + 1 :]
    return serialize_inner_list(inner)


def serialize_dictionary(members: Mapping[str, Item | InnerList]) -> str:
    """Serialise an RFC 8941 Dictionary (RFC 8941 §4.1.2).

    Args:
        members: Keys to Items or Inner Lists, in the order to emit.

    Returns:
        The canonical field value.

    Raises:
        ValueError: a key, item or parameter cannot be serialised, or the dictionary
            is empty.
    """
    if not members:
        raise ValueError("an empty dictionary is not serialised")
    out = []
    for key, member in members.items():
        if isinstance(member, InnerList):
            out.append(f"{_ser_key(key)}={serialize_inner_list(member)}")
        elif member.value is True:
            out.append(_ser_key(key) + _ser_params(member.params))
        else:
            out.append(f"{_ser_key(key)}={_ser_item(member)}")
    return ", ".join(out)


# --------------------------------------------------------------------------------------
# Content-Digest (RFC 9530)
# --------------------------------------------------------------------------------------

_DIGESTS: dict[str, Callable[[bytes], bytes]] = {
    "sha-256": lambda b: hashlib.sha256(b).digest(),
    "sha-512": lambda b: hashlib.sha512(b).digest(),
}


def content_digest(body: bytes) -> str:
    """The ``Content-Digest`` value we send for ``body``.

    Args:
        body: The exact body bytes.

    Returns:
        ``sha-256=:<base64>:``.
    """
    return serialize_dictionary({"sha-256": Item(hashlib.sha256(body).digest())})


def _digest_error(message: str) -> AuthError:
    return AuthError(message, code=ErrorCode.DIGEST_MISMATCH)


def check_content_digest(header: str | None, body: bytes) -> None:
    """Check a ``Content-Digest`` field against the body.

    Every ``sha-256`` and ``sha-512`` member present must match; other algorithms
    are ignored; at least one supported member is required.

    Args:
        header: The Content-Digest field value, or ``None`` when absent.
        body: The exact body bytes received.

    Raises:
        AuthError: (``digest_mismatch``) the field is missing or malformed, has no
            supported algorithm, or a digest does not match.
    """
    if header is None or not header.strip():
        raise _digest_error("the request has no Content-Digest field")
    try:
        members = parse_dictionary(header)
    except AuthError:
        raise _digest_error("the Content-Digest field is malformed") from None
    checked = False
    for alg, fn in _DIGESTS.items():
        member = members.get(alg)
        if member is None:
            continue
        if not isinstance(member, Item) or not isinstance(member.value, bytes):
            raise _digest_error(
                f"the Content-Digest {alg} member is not a byte sequence"
            )
        if not hmac.compare_digest(member.value, fn(body)):
            raise _digest_error(f"the body does not match its Content-Digest ({alg})")
        checked = True
    if not checked:
        raise _digest_error(
            "the Content-Digest field has no supported algorithm (sha-256, sha-512)"
        )


# --------------------------------------------------------------------------------------
# Signature base (RFC 9421 §2.5)
# --------------------------------------------------------------------------------------

_FIELD_NAME_RE = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
_DEFAULT_PORTS = {"https": ":443", "http": ":80"}
# ASCII-only case folding: str.lower() maps some non-ASCII letters to ASCII ones.
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _bad_sig(message: str) -> AuthError:
    return AuthError(message, code=ErrorCode.BAD_REQUEST_SIGNATURE)


def _fold_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Lowercase the names; join repeated lines (multidicts, case variants)."""
    folded: dict[str, str] = {}
    for name, value in headers.items():
        key = name.translate(_ASCII_LOWER)
        value = value.strip(" \t")
        folded[key] = f"{folded[key]}, {value}" if key in folded else value
    return folded


def _split_target(target: str) -> tuple[str, str]:
    if not target.startswith("/"):
        raise _bad_sig("the request target must be a path starting with '/'")
    path, sep, query = target.partition("?")
    return path, "?" + query


def _base(
    method: str,
    target: str,
    authority: str,
    folded: Mapping[str, str],
    components: Sequence[str],
    params: str,
    scheme: str,
) -> bytes:
    path, query = _split_target(target)
    lines: list[str] = []
    seen: set[str] = set()
    for name in components:
        if name in seen:
            raise _bad_sig(f"component {name!r} is covered twice")
        seen.add(name)
        if name == "@method":
            value = method
        elif name == "@path":
            value = path
        elif name == "@query":
            value = query
        elif name == "@authority":
            value = _normalize_authority(authority, scheme)
        elif name == "@target-uri":
            value = f"{scheme}://{_normalize_authority(authority, scheme)}{target}"
        elif name.startswith("@"):
            raise _bad_sig(f"derived component {name[:40]!r} is not supported")
        elif not _FIELD_NAME_RE.fullmatch(name):
            raise _bad_sig(f"component {name[:40]!r} is not a lowercase field name")
        else:
            header = folded.get(name)
            if header is None:
                raise _bad_sig(f"covered header field {name!r} is missing")
            value = header
        if "\n" in value or "\r" in value:
            raise _bad_sig(f"component {name!r} contains a line break")
        lines.append(f'"{name}": {value}')
    if "\n" in params or "\r" in params:
        raise _bad_sig("signature parameters contain a line break")
    lines.append(f'"@signature-params": {params}')
    return "\n".join(lines).encode("utf-8")


def _normalize_authority(authority: str, scheme: str) -> str:
    value = authority.strip(" \t").translate(_ASCII_LOWER)
    port = _DEFAULT_PORTS.get(scheme.translate(_ASCII_LOWER))
    if port is not None and value.endswith(port):
        value = value[: -len(port)]
    return value


def signature_base(
    method: str,
    target: str,
    authority: str,
    headers: Mapping[str, str],
    components: Sequence[str],
    params: str,
    *,
    scheme: str = "https",
) -> bytes:
    """Build the RFC 9421 §2.5 signature base for a request.

    Args:
        method: The request method, as sent.
        target: The raw request target: path plus optional ``?query``.
        authority: The Host / URL authority.
        headers: Request headers; names are matched case-insensitively.
        components: Covered component names (derived ``@method``, ``@path``,
            ``@query``, ``@authority``, ``@target-uri``, or lowercase field names).
        params: The serialised ``@signature-params`` value (the Signature-Input
            member, e.g. ``("@method");created=1;keyid="a#k1"``).
        scheme: ``https`` or ``http``; used for ``@target-uri`` and to drop the
            default port from ``@authority``.

    Returns:
        The UTF-8 bytes to sign or verify.

    Raises:
        AuthError: (``bad_request_signature``) a covered header is missing, a
            component is unsupported or repeated, or a value contains a line break.
    """
    return _base(
        method, target, authority, _fold_headers(headers), components, params, scheme
    )


# --------------------------------------------------------------------------------------
# Signing and verifying requests
# --------------------------------------------------------------------------------------

_BASE_COMPONENTS = ("@method", "@path", "@query", "@authority")


def sign_request(
    signer: Signer,
    method: str,
    target: str,
    authority: str,
    headers: Mapping[str, str],
    body: bytes | None,
    *,
    created: int,
    nonce: str,
    label: str = DEFAULT_LABEL,
    expires: int | None = None,
    scheme: str = "https",
) -> dict[str, str]:
    """Sign a request; return the headers to add to it.

    Covers ``@method @path @query @authority``, then ``content-digest`` when
    ``body`` is not ``None``, then ``content-type`` when ``headers`` has one; the
    parameters are ``created``, ``expires`` (if given), ``keyid``, ``alg``, ``nonce``.

    Args:
        signer: The key to sign with (its ``key_id`` and ``alg`` are used).
        method: The request method.
        target: The raw request target: path plus optional ``?query``.
        authority: The Host / URL authority.
        headers: The request headers already set (only ``Content-Type`` is read).
        body: The exact body bytes, or ``None`` for a request without a body.
        created: Signing time, Unix seconds.
        nonce: A fresh random printable-ASCII string, unique per key.
        label: The signature label.
        expires: Optional expiry time, Unix seconds.
        scheme: ``https`` or ``http`` (default-port handling of ``@authority``).

    Returns:
        ``Content-Digest`` (when there is a body), ``Signature-Input`` and
        ``Signature``.

    Raises:
        ValueError: the signer has no key id, or the label, nonce or times cannot be
            serialised.
        AuthError: (``bad_request_signature``) the target does not start with ``/``
            or a value contains a line break.
    """
    if not signer.key_id:
        raise ValueError("the signer has no key id")
    if not nonce:
        raise ValueError("the nonce must not be empty")
    _ser_key(label)
    out: dict[str, str] = {}
    folded = _fold_headers(headers)
    components = list(_BASE_COMPONENTS)
    if body is not None:
        out["Content-Digest"] = folded["content-digest"] = content_digest(body)
        components.append("content-digest")
    if "content-type" in folded:
        components.append("content-type")
    params: Params = {"created": int(created)}
    if expires is not None:
        params["expires"] = int(expires)
    params.update(keyid=signer.key_id, alg=signer.alg, nonce=nonce)
    inner = InnerList(tuple(Item(c) for c in components), params)
    serialized = serialize_inner_list(inner)
    base = _base(method, target, authority, folded, components, serialized, scheme)
    out["Signature-Input"] = f"{label}={serialized}"
    out["Signature"] = serialize_dictionary({label: Item(signer.sign(base))})
    return out


@dataclass(frozen=True, slots=True)
class VerifiedRequest:
    """What a valid request signature established.

    Attributes:
        key_id: The ``keyid`` parameter (the key that was looked up).
        alg: The verifying key's suite.
        created: The ``created`` parameter, Unix seconds.
        nonce: The ``nonce`` parameter; check ``(key_id, nonce)`` for replays.
        label: The signature label that was verified.
        covered: The covered components, in signed order.
        expires: The ``expires`` parameter, if any.
    """

    key_id: str
    alg: str
    created: int
    nonce: str
    label: str
    covered: tuple[str, ...]
    expires: int | None = None


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_string(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and not isinstance(value, Token)


def _short(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:80] + "...")


def verify_request(
    method: str,
    target: str,
    authority: str,
    headers: Mapping[str, str],
    body: bytes | None,
    *,
    key_lookup: Callable[[str], PublicKey],
    now: int,
    max_age: int = 300,
    max_skew: int = 30,
    required: Sequence[str] = _BASE_COMPONENTS,
    scheme: str = "https",
    digest_deferred: bool = False,
) -> VerifiedRequest:
    """Verify a request's RFC 9421 signature and its Content-Digest.

    Uses the first Signature-Input member that carries a ``keyid``. Does **not**
    detect replays: the caller checks ``(key_id, nonce)`` from the result.

    Args:
        method: The request method, as received.
        target: The raw request target: path plus optional ``?query``.
        authority: The Host / URL authority, as received.
        headers: Request headers; names are matched case-insensitively.
        body: The exact body bytes received (``None`` or ``b""`` when none).
        key_lookup: Returns the public key for a key id; may raise
            :class:`~exchange.errors.VerificationError` (unknown or revoked key).
        now: Current time, Unix seconds.
        max_age: Oldest acceptable ``created``, in seconds before ``now``.
        max_skew: Furthest acceptable ``created``, in seconds after ``now``.
        required: Components that must be covered (by default ``@method @path
            @query @authority``). The caller checks that the authority is its own.
        scheme: ``https`` or ``http`` (``@target-uri``, default port).
        digest_deferred: For streamed bodies (blob uploads): ``content-digest`` must
            be covered and present, but comparing it with the bytes is left to the
            caller, who hashes them while streaming.

    Returns:
        The verified key id, suite, created time, nonce, label and components.

    Raises:
        AuthError: ``unauthenticated`` (no signature), ``bad_request_signature``,
            ``signature_expired`` or ``digest_mismatch``; see the module docstring.
    """
    folded = _fold_headers(headers)
    sig_input_field = folded.get("signature-input", "")
    sig_field = folded.get("signature", "")
    if not sig_input_field or not sig_field:
        raise AuthError(
            "the request is not signed (Signature and Signature-Input are required)",
            code=ErrorCode.UNAUTHENTICATED,
        )
    inputs = parse_dictionary(sig_input_field)
    signatures = parse_dictionary(sig_field)

    label = ""
    inner: InnerList | None = None
    for name, member in inputs.items():
        if not isinstance(member, InnerList):
            raise _bad_sig(f"Signature-Input member {name!r} is not an inner list")
        if "keyid" in member.params:
            label, inner = name, member
            break
    if inner is None:
        raise _bad_sig("no Signature-Input member carries a keyid")
    sig_member = signatures.get(label)
    if not isinstance(sig_member, Item) or not isinstance(sig_member.value, bytes):
        raise _bad_sig(f"no Signature byte sequence for label {label!r}")
    signature = sig_member.value

    covered: list[str] = []
    for item in inner.items:
        if not _is_string(item.value) or item.params:
            raise _bad_sig("covered components must be plain strings")
        covered.append(item.value)
    missing = [c for c in required if c not in covered]
    if missing:
        raise _bad_sig(f"the signature does not cover {', '.join(missing)}")
    if body and "content-digest" not in covered:
        raise _bad_sig("the request has a body but content-digest is not covered")

    params = inner.params
    created, nonce = params.get("created"), params.get("nonce")
    key_id, alg, expires = params.get("keyid"), params.get("alg"), params.get("expires")
    if not _is_int(created):
        raise _bad_sig("the signature has no integer 'created' parameter")
    if not _is_string(nonce) or not nonce:
        raise _bad_sig("the signature has no 'nonce' parameter")
    if not _is_string(key_id) or not key_id:
        raise _bad_sig("the signature's 'keyid' parameter is not a non-empty string")
    if expires is not None and not _is_int(expires):
        raise _bad_sig("the 'expires' parameter is not an integer")
    if not _is_string(alg) or not alg:
        raise _bad_sig("the signature has no 'alg' parameter")

    if created < now - max_age:
        raise AuthError(
            f"the request signature is too old (created {now - created}s ago, "
            f"limit {max_age}s)",
            code=ErrorCode.SIGNATURE_EXPIRED,
        )
    if created > now + max_skew:
        raise AuthError(
            f"the request signature is dated {created - now}s in the future "
            f"(limit {max_skew}s); check the sender's clock",
            code=ErrorCode.SIGNATURE_EXPIRED,
        )
    if expires is not None and expires < now:
        raise AuthError(
            "the request signature has expired", code=ErrorCode.SIGNATURE_EXPIRED
        )

    try:
        key = key_lookup(key_id)
    except VerificationError as exc:
        raise AuthError(
            f"request signing key {_short(key_id)} rejected: "
            f"[{exc.code.value}] {exc.message}",
            code=ErrorCode.BAD_REQUEST_SIGNATURE,
            detail={"reason": exc.code.value},
        ) from None
    if alg != key.alg:
        raise _bad_sig(
            f"the signature claims alg {_short(alg)} but key {_short(key_id)} "
            f"is {key.alg}"
        )

    if digest_deferred:
        if "content-digest" not in covered or not folded.get("content-digest"):
            raise _bad_sig("a streamed body needs a covered Content-Digest")
    elif "content-digest" in covered:
        check_content_digest(folded.get("content-digest"), body or b"")

    base = _base(
        method,
        target,
        authority,
        folded,
        covered,
        _signature_params(sig_input_field, label, inner),
        scheme,
    )
    try:
        valid = key.verify(base, signature)
    except VerificationError as exc:
        raise _bad_sig(
            f"cannot verify with key {_short(key_id)}: {exc.message}"
        ) from None
    if not valid:
        raise _bad_sig(f"the request signature does not verify (key {_short(key_id)})")
    return VerifiedRequest(
        key_id=key_id,
        alg=key.alg,
        created=created,
        nonce=nonce,
        label=label,
        covered=tuple(covered),
        expires=expires,
    )
