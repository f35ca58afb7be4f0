"""Strict JSON parsing, RFC 8785 (JCS) canonical bytes, and item ids.

Every pushed item passes through here, so both directions have a fast path and a
slow, obviously-correct path, and a cheap check decides which one may answer.

Parsing (:func:`parse_json`)
    *Fast path*: ``orjson.loads``, which is already strict RFC 8259 (it refuses
    invalid UTF-8, a BOM, lone surrogate escapes, NaN/Infinity, trailing commas,
    control characters in strings, leading zeros) and never recurses in Python.
    One iterative walk over the result then checks what orjson does not: nesting
    depth, integers within ±(2^53−1), floats (orjson turns integer literals beyond
    64 bits into floats, so any float of magnitude ≥ 2^53 is sent to the slow path
    to be classified), and, for the canonical form, keys whose order under UTF-16
    differs from orjson's code-point order. orjson keeps the last of duplicate keys
    silently, so duplicates are found by counting colons: in valid JSON every
    colon outside a string separates a member, orjson never escapes ``:``, and
    the raw text spells a colon inside a string either literally or as
    ``\\u003a``/``\\u003A``. If the text holds no such escape, the raw colon count
    equals the colon count of the re-serialised value exactly when no member was
    dropped; otherwise the slow path decides.

    *Slow path*: a small iterative (stack-based, never recursive) parser built on
    anchored regular expressions. It runs for every input the fast path refuses or
    cannot vouch for, and it alone produces the errors, so each error carries a
    precise code, the line, column and byte (or character) offset, and the first
    problem in document order. The tests check that both paths agree.

Canonicalization (:func:`canonical_json`)
    *Reference*: :func:`canonical_json_reference`, a direct, iterative reading of
    RFC 8785: keys sorted by UTF-16 code units, strings escaped as ECMAScript's
    ``JSON.stringify`` does, numbers as ``Number.prototype.toString``.
    *Fast path*: ``orjson.dumps(obj, option=OPT_SORT_KEYS)``, used only when a walk
    proves its bytes equal the reference's: only exact ``dict``/``list``/``str``/
    ``int``/``bool``/``None`` (no floats, whose formatting differs, e.g. ``1.0``),
    integers within ±(2^53−1), no key containing a character ≥ U+E000 (orjson sorts
    by code point, which differs from UTF-16 order only between U+E000–U+FFFF and
    the astral planes: ``"\\U00020BB7"`` sorts before ``"\\uFF01"`` in UTF-16), and
    nesting within orjson's limit. orjson escapes strings exactly as RFC 8785 does
    (checked for every code point: the two short escapes and ``\\u00xx`` lowercase
    for other controls, everything else literal, including U+007F, U+2028/U+2029
    and ``/``), and it refuses lone surrogates, which then fall to the reference,
    which refuses them too. Anything else goes to the reference.

Subclasses of ``str``, ``int``, ``float``, ``dict`` and ``list`` (an ``IntEnum``
member, an ``OrderedDict``) are serialised as their base-type value; ``bool`` is
never an integer. A raw lone surrogate in *text* given as ``str`` is refused as
``invalid_utf8``, like undecodable bytes; a lone ``\\udXXX`` *escape* is ``bad_json``.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any, Final

import orjson

from exchange.errors import JsonError
from schemas.errors import ErrorCode

__all__ = [
    "MAX_SAFE_INTEGER",
    "canonical_bytes_of",
    "canonical_json",
    "canonical_json_reference",
    "item_id",
    "parse_json",
]

MAX_SAFE_INTEGER: Final = 2**53 - 1
"""The largest integer an IEEE-754 double (and so every JSON peer) holds exactly."""

_TWO_53: Final = 2.0**53
_ORJSON_DUMPS_DEPTH: Final = 254  # deepest nesting orjson.dumps serialises
_BOM: Final = b"\xef\xbb\xbf"

# _survey flags
_FLOAT: Final = 1  # a float is present: orjson's number format is not RFC 8785's
_KEYS: Final = 2  # a key needs UTF-16 ordering
_SLOW: Final = 4  # anything else the fast paths cannot vouch for


# --------------------------------------------------------------------------- parse


def parse_json(
    data: bytes | str, *, max_depth: int = 32, allow_floats: bool = True
) -> Any:
    """Parse strict RFC 8259 JSON, refusing everything a peer could read differently.

    The result holds only ``dict``, ``list``, ``str``, ``int``, ``float``, ``bool``
    and ``None``.

    Args:
        data: UTF-8 bytes (no BOM) or text.
        max_depth: Most arrays/objects that may enclose one another; ``0`` allows
            only a scalar document.
        allow_floats: When false, any number written with a fraction or an exponent
            (``1.0``, ``1e3``) is refused.

    Returns:
        The parsed value. Objects keep their member order.

    Raises:
        JsonError: ``invalid_utf8`` for bytes that are not UTF-8 or start with a BOM
            (and for text with a lone surrogate character); ``bad_json`` for any
            syntax error, NaN/Infinity, or a lone surrogate escape;
            ``duplicate_key``; ``too_deep``; ``number_out_of_range`` for integers
            beyond ±(2^53−1) or numbers that overflow a double;
            ``float_not_allowed``. The message gives the position.
        TypeError: ``data`` is not bytes-like or ``str``.
    """
    fast = _parse_fast(data, max_depth, allow_floats, False)
    if fast is not None:
        obj = fast[0]
        expected = _colon_count(data)
        if expected >= 0:
            try:
                if orjson.dumps(obj).count(b":") == expected:
                    return obj
            except orjson.JSONEncodeError:
                pass
    return _parse_slow(data, max_depth, allow_floats)


def canonical_bytes_of(
    data: bytes, *, max_depth: int = 32, allow_floats: bool = True
) -> tuple[Any, bytes]:
    """Parse strictly, then canonicalize: the ingest path in one call.

    Args:
        data: UTF-8 JSON bytes as received.
        max_depth: As for :func:`parse_json`.
        allow_floats: As for :func:`parse_json`.

    Returns:
        ``(value, canonical_bytes)``.

    Raises:
        JsonError: As for :func:`parse_json`.
        TypeError: ``data`` is not bytes-like or ``str``.
    """
    fast = _parse_fast(data, max_depth, allow_floats, True)
    if fast is not None:
        obj, flags = fast
        canon = _canonical_flagged(obj, flags)
        expected = _colon_count(data)
        # The canonical form, like orjson's, spells every ':' in a string literally.
        if expected >= 0 and canon.count(b":") == expected:
            return obj, canon
    obj = _parse_slow(data, max_depth, allow_floats)
    return obj, canonical_json(obj)


def _parse_fast(
    data: bytes | str, max_depth: int, allow_floats: bool, keys: bool
) -> tuple[Any, int] | None:
    """orjson plus a survey; ``None`` when the slow path must decide."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    flags = _survey(obj, max_depth, keys)
    if flags & _SLOW or (flags & _FLOAT and not allow_floats):
        return None
    return obj, flags


_ESCAPED_COLON: Final = re.compile(rb"\\u003[aA]")
_ESCAPED_COLON_TEXT: Final = re.compile(r"\\u003[aA]")


def _colon_count(data: bytes | str) -> int:
    """Colons in the raw text, or -1 if one may be spelt as an escape."""
    if isinstance(data, str):
        if "\\" in data and _ESCAPED_COLON_TEXT.search(data) is not None:
            return -1
        return data.count(":")
    if b"\\" in data and _ESCAPED_COLON.search(data) is not None:
        return -1
    return data.count(b":")


def _survey(root: Any, limit: int, keys: bool = True) -> int:
    """Walk a value once, level by level, and return ``_FLOAT|_KEYS|_SLOW`` flags.

    With ``keys`` false, key order is not checked (parsing needs no ``_KEYS``).
    ``_SLOW`` is returned as soon as it is known: a type other than an exact
    JSON type, an integer beyond ±(2^53−1), a float that is not finite or has a
    magnitude ≥ 2^53, or nesting deeper than ``limit`` (which also ends cycles).
    """
    t = type(root)
    if t is not dict and t is not list:
        return _survey_scalar(root)
    flags = 0
    level: list[Any] = [root]
    depth = 1
    while level:
        if depth > limit:
            return flags | _SLOW
        below: list[Any] = []
        for node in level:
            if type(node) is dict:
                if keys:
                    try:
                        joined = "".join(node)
                    except TypeError:  # a key that is not a str
                        return flags | _SLOW
                    if not joined.isascii() and max(joined) >= "\ue000":
                        flags |= _KEYS
                values: Any = node.values()
            else:
                values = node
            for v in values:
                t = type(v)
                if t is str:
                    continue
                if t is int:
                    if v > MAX_SAFE_INTEGER or v < -MAX_SAFE_INTEGER:
                        return flags | _SLOW
                elif t is dict or t is list:
                    below.append(v)
                elif t is bool or v is None:
                    continue
                elif t is float:
                    flags |= _FLOAT
                    if not -_TWO_53 < v < _TWO_53:  # also catches NaN
                        return flags | _SLOW
                else:
                    return flags | _SLOW
        level = below
        depth += 1
    return flags


def _survey_scalar(v: Any) -> int:
    t = type(v)
    if t is str or t is bool or v is None:
        return 0
    if t is int:
        return 0 if -MAX_SAFE_INTEGER <= v <= MAX_SAFE_INTEGER else _SLOW
    if t is float:
        return _FLOAT if -_TWO_53 < v < _TWO_53 else _FLOAT | _SLOW
    return _SLOW


# ----------------------------------------------------------------- slow parser

_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*+)(\.[0-9]++)?+([eE][-+]?[0-9]++)?+")
_PLAIN_STRING = re.compile(r'"([^"\\\x00-\x1f]*+)"')
_STRING = re.compile(r'"((?:[^"\\\x00-\x1f]++|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*+)"')
_ESCAPE = re.compile(
    r"\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})"
    r"|\\u([0-9a-fA-F]{4})|\\(.)"
)
_SHORT_ESCAPES: Final = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
_NOT_NUMBERS: Final = ("NaN", "Infinity", "-Infinity", "+Infinity", "-NaN")


class _Text:
    """The document being parsed, for error messages that give a position."""

    __slots__ = ("is_bytes", "text")

    def __init__(self, text: str, is_bytes: bool) -> None:
        self.text = text
        self.is_bytes = is_bytes

    def error(self, code: ErrorCode, what: str, pos: int) -> JsonError:
        """Build a JsonError that says where ``what`` happened."""
        text = self.text
        line = text.count("\n", 0, pos) + 1
        column = pos - (text.rfind("\n", 0, pos) + 1) + 1
        detail: dict[str, Any] = {"line": line, "column": column}
        if self.is_bytes:
            offset = len(text[:pos].encode("utf-8"))
            detail["byte_offset"] = offset
            unit = "byte"
        else:
            offset = pos
            detail["char_offset"] = offset
            unit = "character"
        return JsonError(
            f"{what} at line {line}, column {column} ({unit} {offset})",
            code=code,
            detail=detail,
        )


def _describe(text: str, pos: int) -> str:
    if pos >= len(text):
        return "end of input"
    return f"{text[pos]!r}"


def _show(key: str) -> str:
    """A key for a message: JSON-quoted, shortened."""
    shown = orjson.dumps(key[:80]).decode()
    return shown if len(key) <= 80 else shown[:-1] + '…"'


def _parse_slow(data: bytes | str, max_depth: int, allow_floats: bool) -> Any:
    """Decode, then run the iterative parser; the source of every error."""
    if isinstance(data, str):
        text = data
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            doc = _Text(text, False)
            raise doc.error(
                ErrorCode.INVALID_UTF8,
                f"the text holds a lone surrogate U+{ord(text[exc.start]):04X}, "
                "which has no UTF-8 encoding",
                exc.start,
            ) from None
        doc = _Text(text, False)
        if text.startswith("\ufeff"):
            raise doc.error(
                ErrorCode.BAD_JSON,
                "the text starts with U+FEFF (a byte order mark); remove it",
                0,
            )
    elif isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        if raw.startswith(_BOM):
            raise JsonError(
                "the body starts with a UTF-8 byte order mark (EF BB BF); "
                "send UTF-8 without a BOM",
                code=ErrorCode.INVALID_UTF8,
                detail={"byte_offset": 0},
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = raw[exc.start : exc.end].hex(" ").upper()
            raise JsonError(
                f"the body is not valid UTF-8: {exc.reason} (bytes {bad}) at byte "
                f"{exc.start}; send UTF-8 text",
                code=ErrorCode.INVALID_UTF8,
                detail={"byte_offset": exc.start},
            ) from None
        doc = _Text(text, True)
    else:
        raise TypeError(f"parse_json() takes bytes or str, not {type(data).__name__}")
    return _parse_text(doc, max_depth, allow_floats)


def _skip_ws(text: str, pos: int) -> int:
    m = _WS.match(text, pos)
    return pos if m is None else m.end()


def _parse_text(doc: _Text, max_depth: int, allow_floats: bool) -> Any:
    text = doc.text
    n = len(text)
    ws = _skip_ws
    # Open containers, innermost last; for objects, the key awaiting its value.
    stack: list[Any] = []
    keys: list[str] = []
    pos = ws(text, 0)
    if pos == n:
        raise doc.error(
            ErrorCode.BAD_JSON, "empty document: expected a JSON value", pos
        )
    while True:
        # ---- a value starts at pos
        c = text[pos] if pos < n else ""
        value: Any
        if c == "{" or c == "[":
            if len(stack) >= max_depth:
                raise doc.error(
                    ErrorCode.TOO_DEEP,
                    f"nesting deeper than {max_depth} arrays/objects",
                    pos,
                )
            pos = ws(text, pos + 1)
            if c == "[":
                if text.startswith("]", pos):
                    value, pos = [], pos + 1
                else:
                    stack.append([])
                    continue
            elif text.startswith("}", pos):
                value, pos = {}, pos + 1
            else:
                obj: dict[str, Any] = {}
                stack.append(obj)
                pos = _parse_key(doc, pos, obj, keys)
                continue
        elif c == '"':
            value, pos = _parse_string(doc, pos)
        elif c == "-" or "0" <= c <= "9":
            value, pos = _parse_number(doc, pos, allow_floats)
        elif text.startswith("true", pos):
            value, pos = True, pos + 4
        elif text.startswith("false", pos):
            value, pos = False, pos + 5
        elif text.startswith("null", pos):
            value, pos = None, pos + 4
        elif text.startswith(_NOT_NUMBERS, pos):
            raise doc.error(
                ErrorCode.BAD_JSON,
                "NaN and Infinity are not JSON numbers; send a number or null",
                pos,
            )
        elif c == "":
            raise doc.error(
                ErrorCode.BAD_JSON, "unexpected end of input: expected a value", pos
            )
        else:
            raise doc.error(
                ErrorCode.BAD_JSON,
                f"expected a JSON value, found {_describe(text, pos)}",
                pos,
            )
        # ---- a complete value: attach it, then read separators and closers
        while True:
            if not stack:
                pos = ws(text, pos)
                if pos != n:
                    raise doc.error(
                        ErrorCode.BAD_JSON,
                        f"unexpected {_describe(text, pos)} after the JSON value",
                        pos,
                    )
                return value
            parent = stack[-1]
            is_list = type(parent) is list
            if is_list:
                parent.append(value)
            else:
                parent[keys[-1]] = value
            pos = ws(text, pos)
            c = text[pos] if pos < n else ""
            if c == ",":
                pos = ws(text, pos + 1)
                if not is_list:
                    keys.pop()
                    pos = _parse_key(doc, pos, parent, keys)
                break
            if c == ("]" if is_list else "}"):
                pos += 1
                value = stack.pop()
                if not is_list:
                    keys.pop()
                continue
            expected = "',' or ']'" if is_list else "',' or '}'"
            where = "an array" if is_list else "an object"
            raise doc.error(
                ErrorCode.BAD_JSON,
                f"expected {expected} in {where}, found {_describe(text, pos)}",
                pos,
            )


def _parse_key(doc: _Text, pos: int, obj: dict[str, Any], keys: list[str]) -> int:
    """Read ``"key" :`` at pos (whitespace already skipped); return the value pos."""
    text = doc.text
    if not text.startswith('"', pos):
        raise doc.error(
            ErrorCode.BAD_JSON,
            f"expected a string key in an object, found {_describe(text, pos)}",
            pos,
        )
    key, end = _parse_string(doc, pos)
    if key in obj:
        raise doc.error(
            ErrorCode.DUPLICATE_KEY,
            f"duplicate key {_show(key)} in an object; each key may appear once",
            pos,
        )
    end = _skip_ws(text, end)
    if not text.startswith(":", end):
        raise doc.error(
            ErrorCode.BAD_JSON,
            f"expected ':' after key {_show(key)}, found {_describe(text, end)}",
            end,
        )
    keys.append(key)
    return _skip_ws(text, end + 1)


def _parse_string(doc: _Text, pos: int) -> tuple[str, int]:
    """Read a string token starting at the quote at pos."""
    text = doc.text
    m = _PLAIN_STRING.match(text, pos)
    if m is not None:
        return m.group(1), m.end()
    m = _STRING.match(text, pos)
    if m is None:
        raise _string_error(doc, pos)
    body_start = pos + 1

    def unescape(e: re.Match[str]) -> str:
        hi, lo, single, short = e.groups()
        if hi is not None:
            cp = 0x10000 + ((int(hi, 16) - 0xD800) << 10) + (int(lo, 16) - 0xDC00)
            return chr(cp)
        if single is not None:
            cp = int(single, 16)
            if 0xD800 <= cp <= 0xDFFF:
                raise doc.error(
                    ErrorCode.BAD_JSON,
                    f"lone surrogate escape \\u{single} in a string (not a valid "
                    "Unicode character; surrogates must come in high-low pairs)",
                    body_start + e.start(),
                )
            return chr(cp)
        return _SHORT_ESCAPES[short]

    return _ESCAPE.sub(unescape, m.group(1)), m.end()


def _string_error(doc: _Text, pos: int) -> JsonError:
    """Find the first fault in the string token at pos (error path only)."""
    text = doc.text
    n = len(text)
    i = pos + 1
    while i < n:
        c = text[i]
        if c == '"':  # pragma: no cover - the regex would have matched
            break
        if c < " ":
            return doc.error(
                ErrorCode.BAD_JSON,
                f"unescaped control character U+{ord(c):04X} in a string; "
                "escape it (e.g. \\n, \\u0001)",
                i,
            )
        if c == "\\":
            nxt = text[i + 1 : i + 2]
            if nxt in _SHORT_ESCAPES:
                i += 2
                continue
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2 : i + 6]):
                i += 6
                continue
            return doc.error(
                ErrorCode.BAD_JSON,
                f"invalid escape {text[i : i + (6 if nxt == 'u' else 2)]!r} in a "
                'string; JSON allows \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX',
                i,
            )
        i += 1
    return doc.error(ErrorCode.BAD_JSON, "unterminated string", pos)


def _parse_number(doc: _Text, pos: int, allow_floats: bool) -> tuple[Any, int]:
    text = doc.text
    m = _NUMBER.match(text, pos)
    if m is None:
        if text.startswith(_NOT_NUMBERS, pos):
            raise doc.error(
                ErrorCode.BAD_JSON,
                "NaN and Infinity are not JSON numbers; send a number or null",
                pos,
            )
        raise doc.error(
            ErrorCode.BAD_JSON,
            f"malformed number: expected a digit, found {_describe(text, pos + 1)}",
            pos + 1,
        )
    token = m.group(0)
    end = m.end()
    if end < len(text) and text[end] in ".eE":
        raise doc.error(
            ErrorCode.BAD_JSON,
            f"malformed number {text[pos : end + 1]!r}: expected a digit after it",
            end + 1,
        )
    if m.group(1) is None and m.group(2) is None:
        # 2^53-1 has 16 digits: longer tokens are out of range without int().
        if len(token) - (token[0] == "-") <= 16:
            value = int(token)
            if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
                return value, end
        shown = token if len(token) <= 40 else token[:37] + "..."
        raise doc.error(
            ErrorCode.NUMBER_OUT_OF_RANGE,
            f"integer {shown} is outside ±(2^53-1), the range every JSON peer "
            "reads exactly; send it as a string",
            pos,
        )
    if not allow_floats:
        raise doc.error(
            ErrorCode.FLOAT_NOT_ALLOWED,
            f"number {token[:40]} has a fraction or exponent; only integers "
            "are allowed here",
            pos,
        )
    number = float(token)
    if math.isinf(number):
        raise doc.error(
            ErrorCode.NUMBER_OUT_OF_RANGE,
            f"number {token[:40]} is too large for a double",
            pos,
        )
    return number, end


# ------------------------------------------------------------------ canonical


def canonical_json(obj: Any) -> bytes:
    """RFC 8785 (JCS) canonical UTF-8 bytes of a JSON value.

    Uses orjson when a walk proves its output equal to
    :func:`canonical_json_reference`, and the reference otherwise.

    Args:
        obj: ``dict`` (``str`` keys), ``list``, ``str``, ``int``, ``float``,
            ``bool`` or ``None``, nested (subclasses count as their base type).

    Returns:
        The canonical bytes (no trailing newline).

    Raises:
        JsonError: ``number_out_of_range`` for an integer beyond ±(2^53−1);
            ``bad_json`` for NaN/Infinity, a non-``str`` key, a lone surrogate,
            a cycle, or a value of another type.
    """
    return _canonical_flagged(obj, _survey(obj, _ORJSON_DUMPS_DEPTH))


def _canonical_flagged(obj: Any, flags: int) -> bytes:
    if not flags:
        try:
            return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass  # lone surrogate or too deep: the reference decides
    return canonical_json_reference(obj)


_ESCAPES: Final = {chr(i): f"\\u{i:04x}" for i in range(0x20)} | {
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
    '"': '\\"',
    "\\": "\\\\",
}
_NEEDS_ESCAPE: Final = re.compile(r'[\x00-\x1f"\\]')


def _escape(match: re.Match[str]) -> str:
    return _ESCAPES[match.group()]


def _quote(text: str) -> str:
    """A JSON string token exactly as RFC 8785 (ECMAScript) writes it."""
    # re.sub visits only the matches; str.translate is slow on CJK text.
    return '"' + _NEEDS_ESCAPE.sub(_escape, text) + '"'


_LITERAL: Final = 0
_VALUE: Final = 1
_LEAVE: Final = 2


def _es_number(value: float) -> str:
    """ECMAScript ``Number.prototype.toString`` for a finite double."""
    if value == 0:
        return "0"  # also -0.0
    sign = "-" if value < 0 else ""
    # repr() gives the shortest digits that round-trip, as ECMAScript requires.
    mantissa, _, exp_text = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + (int(exp_text) if exp_text else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    k, n = len(digits), point  # value = 0.digits × 10^n
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    e = n - 1
    exponent = f"e+{e}" if e >= 0 else f"e-{-e}"
    if k == 1:
        return sign + digits + exponent
    return sign + digits[0] + "." + digits[1:] + exponent


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def canonical_json_reference(obj: Any) -> bytes:
    """RFC 8785 canonical bytes, written straight from the RFC (pure Python).

    Iterative, so nesting depth is limited only by memory; cycles are refused.

    Args:
        obj: As for :func:`canonical_json`.

    Returns:
        The canonical bytes.

    Raises:
        JsonError: As for :func:`canonical_json`.
    """
    parts: list[str] = []
    work: list[tuple[int, Any]] = [(_VALUE, obj)]
    active: set[int] = set()  # ids of the containers being written (cycle check)
    while work:
        kind, item = work.pop()
        if kind == _LITERAL:
            parts.append(item)
            continue
        if kind == _LEAVE:
            active.discard(item)
            continue
        if item is None:
            parts.append("null")
        elif item is True:
            parts.append("true")
        elif item is False:
            parts.append("false")
        elif isinstance(item, str):
            parts.append(_quote(item))
        elif isinstance(item, int):
            number = int.__int__(item)
            if not -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER:
                raise JsonError(
                    f"integer {number} is outside ±(2^53-1) and cannot be "
                    "canonicalized exactly; send it as a string",
                    code=ErrorCode.NUMBER_OUT_OF_RANGE,
                )
            parts.append(str(number))
        elif isinstance(item, float):
            value = float.__float__(item)
            if not math.isfinite(value):
                raise JsonError(
                    f"{value} is not a JSON number; use a finite number or null",
                    code=ErrorCode.BAD_JSON,
                )
            parts.append(_es_number(value))
        elif isinstance(item, (dict, list)):
            ident = id(item)
            if ident in active:
                raise JsonError(
                    "the value contains itself (a cycle) and has no JSON form",
                    code=ErrorCode.BAD_JSON,
                )
            active.add(ident)
            work.append((_LEAVE, ident))
            if isinstance(item, dict):
                work.append((_LITERAL, "}"))
                members = _sorted_members(item)
                for i in range(len(members) - 1, -1, -1):
                    key, value = members[i]
                    work.append((_VALUE, value))
                    prefix = "," if i else ""
                    work.append((_LITERAL, prefix + _quote(key) + ":"))
                parts.append("{")
            else:
                work.append((_LITERAL, "]"))
                elements = list.copy(item)
                for i in range(len(elements) - 1, -1, -1):
                    work.append((_VALUE, elements[i]))
                    if i:
                        work.append((_LITERAL, ","))
                parts.append("[")
        else:
            raise JsonError(
                f"{type(item).__name__} is not a JSON type; use dict, list, str, "
                "int, float, bool or None",
                code=ErrorCode.BAD_JSON,
            )
    text = "".join(parts)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise JsonError(
            f"a string holds a lone surrogate U+{ord(text[exc.start]):04X}, "
            "which is not a Unicode character",
            code=ErrorCode.BAD_JSON,
        ) from None


def _sorted_members(obj: dict[Any, Any]) -> list[tuple[str, Any]]:
    members = list(dict.items(obj))
    for key, _ in members:
        if not isinstance(key, str):
            raise JsonError(
                f"object key {key!r} is a {type(key).__name__}; JSON keys must be str",
                code=ErrorCode.BAD_JSON,
            )
    # surrogatepass: a lone surrogate still sorts here and is refused at encoding.
    members.sort(key=lambda member: _utf16_key(member[0]))
    return [(str.__str__(key), value) for key, value in members]


# --------------------------------------------------------------------- item id


def item_id(obj_or_canonical: Any) -> str:
    """The content id of an item: ``"sha256:" + hex(SHA-256(canonical bytes))``.

    Args:
        obj_or_canonical: A JSON value, or ``bytes`` that are already canonical
            (taken as they are, not re-canonicalized).

    Returns:
        ``"sha256:"`` followed by 64 lowercase hex digits.

    Raises:
        JsonError: As for :func:`canonical_json`, when given a value.
    """
    if isinstance(obj_or_canonical, (bytes, bytearray, memoryview)):
        canonical = bytes(obj_or_canonical)
    else:
        canonical = canonical_json(obj_or_canonical)
    return "sha256:" + hashlib.sha256(canonical).hexdigest()
