"""Building blocks of the wire contract: the strict base model and constrained types.

Every constrained type here is an ``Annotated`` alias whose rule is visible twice: in
Python, as a validator with a message that says what was expected, and in the
generated JSON Schema, as ``pattern`` / ``minLength`` / ``maxLength`` / ``format``, so
that partners who do not run Python validate the same thing. The patterns avoid
look-around so that every common regex engine (ECMA-262, RE2, Rust) accepts them.

Values that are signed (timestamps, dates) stay ``str``: a model is a validated *view*
of the bytes a site signed, and the view must never re-serialise them differently.
Floats appear nowhere; every number is an ``int`` inside the I-JSON safe range.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

__all__ = [
    "MAX_SAFE_INT",
    "Alg",
    "Base64Url",
    "CircleId",
    "DateStr",
    "FederationId",
    "HashB64",
    "HttpUrl",
    "ItemId",
    "JsonObject",
    "KeyId",
    "Line",
    "MediaType",
    "MonitorId",
    "NodeId",
    "Paragraph",
    "SafeInt",
    "Sha256Hex",
    "SiteId",
    "StrictModel",
    "Summary",
    "Tag",
    "Tags",
    "Text",
    "Timestamp",
    "Title",
    "parse_timestamp",
]

MAX_SAFE_INT = 2**53 - 1
"""Largest integer every JSON implementation represents exactly (RFC 7493, I-JSON)."""


class StrictModel(BaseModel):
    """Base of every wire model: unknown fields refused, immutable, no coercion.

    ``strict=True`` means a number is never accepted where a string is expected (nor a
    string for a number, nor ``1.0`` or ``true`` for an integer).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# --------------------------------------------------------------------------- helpers
# Shared with the sibling modules but not re-exported by the package: they are how
# the types are built, not part of the contract.


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    """A pattern compiled once (``re``'s own cache is looked up on every call)."""
    return re.compile(pattern)


@dataclass(frozen=True)
class Matches:
    """Metadata: the string must fully match ``pattern``; optional semantic check.

    The pattern goes into the JSON Schema; Python validates with the same pattern (via
    ``re.fullmatch``, so a trailing newline never slips through ``$``) and then runs
    ``check``, which raises ``ValueError`` with a specific message.
    """

    pattern: str
    expected: str
    check: Callable[[str], None] | None = None
    format: str | None = None

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(
            self._validate, handler(source)
        )

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = self.pattern
        if self.format is not None:
            json_schema["format"] = self.format
        return json_schema

    def _validate(self, value: str) -> str:
        if _compiled(self.pattern).fullmatch(value) is None:
            raise PydanticCustomError(
                "string_pattern_mismatch",
                "must be {expected}",
                {"expected": self.expected, "pattern": self.pattern},
            )
        if self.check is not None:
            try:
                self.check(value)
            except ValueError as exc:
                raise PydanticCustomError(
                    "string_invalid_value",
                    "must be {expected}: {reason}",
                    {"expected": self.expected, "reason": str(exc)},
                ) from None
        return value


# C0 controls and DEL; long text additionally allows TAB and LF.
_FORBIDDEN_LINE = "\\x00-\\x1f\\x7f"
_FORBIDDEN_MULTILINE = "\\x00-\\x08\\x0b-\\x1f\\x7f"
_BAD_LINE = re.compile(f"[{_FORBIDDEN_LINE}\\ud800-\\udfff]")
_BAD_MULTILINE = re.compile(f"[{_FORBIDDEN_MULTILINE}\\ud800-\\udfff]")
_NOT_BLANK = re.compile(r"\S")


@dataclass(frozen=True)
class Chars:
    """Metadata: no control characters (TAB/LF allowed if multiline); maybe not blank.

    Also refuses lone surrogates, which cannot be encoded as UTF-8 and so could never
    be part of canonical bytes. The JSON Schema carries the equivalent pattern.
    """

    multiline: bool
    blank_ok: bool = False

    @property
    def pattern(self) -> str:
        bad = _FORBIDDEN_MULTILINE if self.multiline else _FORBIDDEN_LINE
        if self.blank_ok:
            return f"^[^{bad}]*$"
        return f"^[^{bad}]*[^\\s{bad}][^{bad}]*$"

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(
            self._validate, handler(source)
        )

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = self.pattern
        return json_schema

    def _validate(self, value: str) -> str:
        bad = _BAD_MULTILINE if self.multiline else _BAD_LINE
        found = bad.search(value)
        if found is not None:
            code = ord(found.group())
            if 0xD800 <= code <= 0xDFFF:
                raise PydanticCustomError(
                    "string_surrogate",
                    "must not contain a lone surrogate {char} "
                    "(found at position {position})",
                    {"char": f"U+{code:04X}", "position": found.start()},
                )
            raise PydanticCustomError(
                "string_control_character",
                "must not contain control character {char} "
                "(found at position {position}){hint}",
                {
                    "char": f"U+{code:04X}",
                    "position": found.start(),
                    "hint": "" if self.multiline else "; this is a one-line field",
                },
            )
        if not self.blank_ok and _NOT_BLANK.search(value) is None:
            raise PydanticCustomError(
                "string_blank", "must not be empty or only whitespace"
            )
        return value


@dataclass(frozen=True)
class Unique:
    """Metadata: a list of hashable values without repeats (``uniqueItems``)."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(
            self._validate, handler(source)
        )

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["uniqueItems"] = True
        return json_schema

    def _validate(self, value: list[Any]) -> list[Any]:
        seen: set[Any] = set()
        for entry in value:
            if entry in seen:
                raise PydanticCustomError(
                    "list_duplicate", "must not repeat {entry}", {"entry": repr(entry)}
                )
            seen.add(entry)
        return value


UNIQUE = Unique()


@dataclass(frozen=True)
class JsonTree:
    """Metadata: an opaque JSON object holding only I-JSON values (no floats).

    Used for documents the model does not interpret (signed payloads, error details):
    the no-float rule still holds there, and every integer must be exactly
    representable, or the RFC 8785 canonical form would be ambiguous.
    """

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(
            self._validate, handler(source)
        )

    def _validate(self, value: dict[str, Any]) -> dict[str, Any]:
        stack: list[tuple[str, Any]] = [("", value)]
        while stack:
            path, node = stack.pop()
            if isinstance(node, dict):
                for key, child in node.items():
                    if not isinstance(key, str):
                        raise PydanticCustomError(
                            "json_key_type",
                            "object keys must be strings (at {path})",
                            {"path": path or "/"},
                        )
                    stack.append((f"{path}/{key}", child))
            elif isinstance(node, list):
                stack.extend((f"{path}/{i}", child) for i, child in enumerate(node))
            elif isinstance(node, bool) or node is None or isinstance(node, str):
                continue
            elif isinstance(node, int):
                if not -MAX_SAFE_INT <= node <= MAX_SAFE_INT:
                    raise PydanticCustomError(
                        "json_int_range",
                        "integers must lie within +/-(2**53-1) (at {path})",
                        {"path": path},
                    )
            elif isinstance(node, float):
                raise PydanticCustomError(
                    "json_float",
                    "floats are not allowed; use an integer (at {path})",
                    {"path": path},
                )
            else:
                raise PydanticCustomError(
                    "json_type",
                    "{type} is not a JSON value (at {path})",
                    {"type": type(node).__name__, "path": path},
                )
        return value


def _refuse_non_int(value: Any) -> Any:
    # Literal[1] compares by equality, so True and 1.0 would pass even in strict mode.
    if type(value) is not int:
        raise PydanticCustomError(
            "int_type",
            "Input should be an integer, not {type}",
            {"type": type(value).__name__},
        )
    return value


IntOnly = BeforeValidator(_refuse_non_int)
"""Put on an integer ``Literal`` so that ``true`` and ``1.0`` are refused."""


# ------------------------------------------------------------------ identifiers

_SLUG = r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?"
_SLUG_HINT = (
    "a lowercase slug: a-z, 0-9 and inner '-', 1-64 characters, e.g. 'huaibei-duji'"
)

SiteId = Annotated[str, Matches(f"^{_SLUG}$", f"a site id, {_SLUG_HINT}")]
"""A site (one congress standing committee), e.g. ``huaibei-duji``."""

NodeId = Annotated[str, Matches(f"^{_SLUG}$", f"a node id, {_SLUG_HINT}")]
"""A regional node, e.g. ``huaihai-node``."""

CircleId = Annotated[str, Matches(f"^{_SLUG}$", f"a circle id, {_SLUG_HINT}")]
"""A collaboration circle, e.g. ``yangtze-delta`` or ``huaihai``."""

MonitorId = Annotated[str, Matches(f"^{_SLUG}$", f"a monitor id, {_SLUG_HINT}")]
"""A monitoring body (municipal committee) named in the roster."""

FederationId = Annotated[str, Matches(f"^{_SLUG}$", f"a federation id, {_SLUG_HINT}")]
"""The federation a roster governs."""

KeyId = Annotated[
    str,
    Matches(
        f"^{_SLUG}#k[1-9][0-9]{{0,5}}$",
        "a key id '<owner>#k<n>', e.g. 'huaibei-duji#k1'",
    ),
]
"""A key id: the owning site or node, ``#k`` and a positive number."""

Sha256Hex = Annotated[
    str, Matches("^[0-9a-f]{64}$", "a SHA-256 digest as 64 lowercase hex digits")
]
"""A SHA-256 digest in lowercase hex (attachments, blobs)."""

ItemId = Annotated[
    str,
    Matches(
        "^sha256:[0-9a-f]{64}$",
        "an item id 'sha256:' followed by 64 lowercase hex digits",
    ),
]
"""``sha256:`` + hex SHA-256 of the item's RFC 8785 canonical form."""

Alg = Annotated[
    str, Matches("^[a-z0-9-]{1,32}$", "an algorithm name such as 'ed25519'")
]
"""A signature algorithm name (``ed25519``; room for ``sm2-sm3``)."""

Base64Url = Annotated[
    str,
    Field(min_length=1, max_length=1024),
    Matches(
        "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$",
        "unpadded base64url (RFC 4648 section 5)",
    ),
]
"""Unpadded base64url, as used for signatures and public keys."""

HashB64 = Annotated[
    str,
    Matches(
        "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$",
        "a 32-byte hash in standard padded base64 (44 characters)",
    ),
]
"""A 32-byte Merkle hash in standard padded base64 (checkpoint and proof format)."""


MediaType = Annotated[
    str,
    Matches(
        "^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$",
        "a lowercase media type without parameters, e.g. 'application/pdf'",
    ),
]
"""An IANA media type in lowercase, without parameters, e.g. ``application/pdf``."""


# -------------------------------------------------------------------- time


def parse_timestamp(value: str) -> datetime:
    """Parse a :data:`Timestamp` string into an aware :class:`datetime`.

    Args:
        value: RFC 3339 text with an explicit offset.

    Returns:
        The instant, with its original UTC offset.

    Raises:
        ValueError: the text is not an RFC 3339 timestamp with an offset, or names a
            day or time that does not exist.
    """
    if re.fullmatch(_TIMESTAMP, value) is None:
        raise ValueError(f"not an RFC 3339 timestamp with an offset: {value[:64]!r}")
    _check_timestamp(value)
    return datetime.fromisoformat(value)


def _check_timestamp(value: str) -> None:
    if value.endswith("-00:00"):
        raise ValueError("offset -00:00 means 'unknown'; give the real offset")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("no such date or time") from None
    if moment.utcoffset() is None:  # pragma: no cover - the pattern requires one
        raise ValueError("an explicit offset is required")


def _check_date(value: str) -> None:
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ValueError("no such date") from None


_TIMESTAMP = (
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.][0-9]{1,6})?"
    "(?:Z|[+-][0-9]{2}:[0-9]{2})$"
)

Timestamp = Annotated[
    str,
    Matches(
        _TIMESTAMP,
        "an RFC 3339 timestamp with an explicit offset, "
        "e.g. '2026-11-20T09:30:00+08:00'",
        check=_check_timestamp,
        format="date-time",
    ),
]
"""RFC 3339 date-time with an explicit offset (``Z`` or ``±hh:mm``), kept as text."""

DateStr = Annotated[
    str,
    Matches(
        "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
        "a calendar date YYYY-MM-DD, e.g. '2026-11-20'",
        check=_check_date,
        format="date",
    ),
]
"""A calendar date ``YYYY-MM-DD`` that exists, kept as text."""


# -------------------------------------------------------------------- numbers

SafeInt = Annotated[int, Field(ge=0, le=MAX_SAFE_INT)]
"""A non-negative integer every JSON implementation represents exactly."""


# ---------------------------------------------------------------------- text

Title = Annotated[str, Field(min_length=1, max_length=200), Chars(multiline=False)]
"""A one-line title, 1-200 characters."""

Line = Annotated[str, Field(min_length=1, max_length=200), Chars(multiline=False)]
"""A one-line name or label (person, role, law, body), 1-200 characters."""

Tag = Annotated[str, Field(min_length=1, max_length=40), Chars(multiline=False)]
"""A one-line tag, 1-40 characters, e.g. ``安全生产法``."""

Tags = Annotated[list[Tag], Field(max_length=20), UNIQUE]
"""At most 20 distinct tags."""

Summary = Annotated[str, Field(max_length=2000), Chars(multiline=True, blank_ok=True)]
"""An optional summary (may be empty), up to 2,000 characters, TAB/LF allowed."""

Paragraph = Annotated[str, Field(min_length=1, max_length=2000), Chars(multiline=True)]
"""One entry of a list (an action, an objective, a duty), 1-2,000 characters."""

Text = Annotated[str, Field(min_length=1, max_length=20000), Chars(multiline=True)]
"""A long text field, 1-20,000 characters, TAB/LF allowed."""

JsonObject = Annotated[dict[str, Any], JsonTree()]
"""An uninterpreted JSON object: only I-JSON values, no floats anywhere."""


# ---------------------------------------------------------------------- URLs


def _check_http_url(value: str) -> None:
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError("the port is not a number in 0-65535") from None
    if not parts.hostname:
        raise ValueError("the host is missing")


HttpUrl = Annotated[
    str,
    Field(max_length=2048),
    Matches(
        "^https?://[^\\s/?#@]+(?:/[^\\s?#]*)?$",
        "an http(s) URL without credentials, query or fragment, "
        "e.g. 'https://huaihai.example.cn'",
        check=_check_http_url,
        format="uri",
    ),
]
"""An ``http``/``https`` base URL without user info, query or fragment."""
