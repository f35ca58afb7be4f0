"""The exception tree, registered by wire code.

::

    ExchangeError                      (code, http_status, message)
    ├── InputError                     400  malformed JSON, schema, limits
    │   ├── JsonError                       bad_json, invalid_utf8, duplicate_key, too_deep,
    │   │                                   number_out_of_range, float_not_allowed
    │   ├── TooLarge                   413  too_large, batch_too_large
    │   └── SchemaError                422  schema_invalid, unknown_kind, timestamp_in_future,
    │                                       audience_invalid
    ├── VerificationError              422  bad_signature, unknown_key, revoked_key, ...
    │   └── ProofError                 422  proof_invalid, checkpoint_invalid
    ├── AuthError                      401  unauthenticated, bad_request_signature, ...
    ├── Forbidden                      403  forbidden, not_home_node
    ├── NotFound                       404  not_found, blob_missing
    ├── Conflict                       409  conflict, blob_hash_mismatch (400),
    │                                       invalid_transition (422)
    ├── RateLimited                    429
    ├── ConfigError                         config_invalid (names the key path)
    └── OperationalError               503  database_unavailable, node_unreachable, schema_too_new

Each concrete code maps to exactly one class via :func:`error_class_for`, so
``exchange.client`` can rebuild the same exception a server raised (the asyncpg SQLSTATE
registry pattern). :func:`diagnostics` renders an error for the CLI.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from schemas.errors import ErrorCode

__all__ = [
    "AuthError",
    "ConfigError",
    "Conflict",
    "ExchangeError",
    "Forbidden",
    "InputError",
    "JsonError",
    "NotFound",
    "OperationalError",
    "ProofError",
    "RateLimited",
    "RequestTimeout",
    "SchemaError",
    "TooLarge",
    "VerificationError",
    "diagnostics",
    "escape_controls",
    "error_class_for",
    "is_retryable",
    "make_error",
    "printable",
]

_REGISTRY: dict[ErrorCode, type[ExchangeError]] = {}


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


def escape_controls(text: str) -> str:
    """``text`` with C0 control characters (but tab and newline) and DEL escaped as
    ``\\xNN``: what came from a request, made fit for a log line or a database text."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def printable(message: str) -> str:
    """An error message as ``ErrorDetail`` allows it: control characters that came
    from the request (ids, field names, paths) escaped as ``\\xNN``, at most 20,000
    characters, never blank."""
    text = escape_controls(message)[:20000]
    return text if text.strip() else "request refused"


class ExchangeError(Exception):
    """Base of every error the project raises on purpose.

    Args:
        message: A sentence a person can act on: what is wrong, and what to do.
        code: The wire code; defaults to the class's first registered code.
        detail: Optional JSON-serialisable context (never secrets).
    """

    codes: ClassVar[tuple[ErrorCode, ...]] = (ErrorCode.INTERNAL,)
    http_status: ClassVar[int] = 500
    status_overrides: ClassVar[dict[ErrorCode, int]] = {}
    retryable: bool = False
    """Whether the same request may succeed later unchanged (the database was back, the
    rate limit passed); senders retry these and skip the others for good."""

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.codes[0]
        if self.code not in self.codes:
            raise ValueError(
                f"{type(self).__name__} cannot carry code {self.code.value}"
            )
        self.detail = detail or {}

    @property
    def status(self) -> int:
        """HTTP status for this error."""
        return self.status_overrides.get(self.code, self.http_status)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for code in cls.__dict__.get("codes", ()):
            _REGISTRY[code] = cls

    def to_body(self) -> dict[str, Any]:
        """The JSON error body for this error."""
        body: dict[str, Any] = {
            "code": self.code.value,
            "message": printable(self.message),
        }
        if self.detail:
            body["detail"] = self.detail
        return {"error": body}


class InputError(ExchangeError):
    """The request or document is malformed."""

    codes: ClassVar[tuple[ErrorCode, ...]] = (
        ErrorCode.BAD_REQUEST,
        ErrorCode.QUERY_INVALID,
    )
    http_status = 400


class JsonError(InputError):
    """JSON that the strict parser refuses."""

    codes: ClassVar[tuple[ErrorCode, ...]] = (
        ErrorCode.BAD_JSON,
        ErrorCode.INVALID_UTF8,
        ErrorCode.DUPLICATE_KEY,
        ErrorCode.TOO_DEEP,
        ErrorCode.NUMBER_OUT_OF_RANGE,
        ErrorCode.FLOAT_NOT_ALLOWED,
    )


class TooLarge(InputError):
    """A body, blob or batch over its limit."""

    codes: ClassVar[tuple[ErrorCode, ...]] = (
        ErrorCode.TOO_LARGE,
        ErrorCode.BATCH_TOO_LARGE,
    )
    http_status = 413


class SchemaError(InputError):
    """Well-formed JSON that does not match the schema."""

    codes: ClassVar[tuple[ErrorCode, ...]] = (
        ErrorCode.SCHEMA_INVALID,
        ErrorCode.UNKNOWN_KIND,
        ErrorCode.TIMESTAMP_IN_FUTURE,
        ErrorCode.AUDIENCE_INVALID,
    )
    http_status = 422


class VerificationError(ExchangeError):
    """A signature, key or trust check failed."""

    codes: ClassVar[tuple[ErrorCode, ...]] = (
        ErrorCode.BAD_SIGNATURE,
        ErrorCode.UNKNOWN_KEY,
        ErrorCode.REVOKED_KEY,
        ErrorCode.KEY_NOT_YET_VALID,
        ErrorCode.AUTHOR_MISMATCH,
        ErrorCode.UNSUPPORTED_ALGORITHM,
        ErrorCode.UNKNOWN_SITE,
        ErrorCode.ROSTER_INVALID,
        ErrorCode.ROSTER_STALE,
    )
    http_status = 422


class ProofError(VerificationError):
    """A Merkle proof or checkpoint does not verify."""

    codes: ClassVar[tuple[ErrorCode, ...]] = (
        ErrorCode.PROOF_INVALID,
        ErrorCode.CHECKPOINT_INVALID,
    )


class AuthError(ExchangeError):
    """The request is not (validly) authenticated."""

    codes: ClassVar[tuple[ErrorCode, ...]] = (
        ErrorCode.UNAUTHENTICATED,
        ErrorCode.BAD_REQUEST_SIGNATURE,
        ErrorCode.DIGEST_MISMATCH,
        ErrorCode.REPLAYED_REQUEST,
        ErrorCode.SIGNATURE_EXPIRED,
    )
    http_status = 401


class Forbidden(ExchangeError):
    """Authenticated, but not allowed to do this."""

    codes: ClassVar[tuple[ErrorCode, ...]] = (
        ErrorCode.FORBIDDEN,
        ErrorCode.NOT_HOME_NODE,
    )
    http_status = 403


class NotFound(ExchangeError):
    """No such resource (or not visible to this reader)."""

    codes: ClassVar[tuple[ErrorCode, ...]] = (
        ErrorCode.NOT_FOUND,
        ErrorCode.BLOB_MISSING,
        ErrorCode.NOT_YET_INTEGRATED,
    )
    http_status = 404


class Conflict(ExchangeError):
    """The request conflicts with stored state (``invalid_transition``: a plan step
    that the plan's current state does not allow, 422)."""

    codes: ClassVar[tuple[ErrorCode, ...]] = (
        ErrorCode.CONFLICT,
        ErrorCode.BLOB_HASH_MISMATCH,
        ErrorCode.INVALID_TRANSITION,
    )
    http_status = 409
    status_overrides = {
        ErrorCode.BLOB_HASH_MISMATCH: 400,
        ErrorCode.INVALID_TRANSITION: 422,
    }


class RequestTimeout(InputError):
    """The request's body came too slowly (or stopped), or it took too long."""

    codes: ClassVar[tuple[ErrorCode, ...]] = (ErrorCode.REQUEST_TIMEOUT,)
    http_status = 408


class RateLimited(ExchangeError):
    """Too many requests; retry after ``detail['retry_after']`` seconds."""

    codes: ClassVar[tuple[ErrorCode, ...]] = (ErrorCode.RATE_LIMITED,)
    http_status = 429
    retryable = True


class ConfigError(ExchangeError):
    """Configuration that cannot be used; the message names the key path."""

    codes: ClassVar[tuple[ErrorCode, ...]] = (ErrorCode.CONFIG_INVALID,)
    http_status = 500


class OperationalError(ExchangeError):
    """The node cannot serve right now (database, schema version)."""

    codes: ClassVar[tuple[ErrorCode, ...]] = (
        ErrorCode.DATABASE_UNAVAILABLE,
        ErrorCode.NODE_UNREACHABLE,
        ErrorCode.SCHEMA_TOO_NEW,
        ErrorCode.INTERNAL,
        ErrorCode.OVERLOADED,
    )
    http_status = 503
    status_overrides = {ErrorCode.INTERNAL: 500}
    retryable = True


def error_class_for(code: str) -> type[ExchangeError]:
    """Return the exception class registered for a wire code.

    Args:
        code: A wire error code, as found in an error body.

    Returns:
        The registered class, or :class:`ExchangeError` for an unknown code.
    """
    try:
        return _REGISTRY[ErrorCode(code)]
    except ValueError:
        return ExchangeError


def is_retryable(code: str) -> bool:
    """Whether an error with wire code ``code`` may clear up if the request is repeated
    (the class's :attr:`ExchangeError.retryable`; an unknown code is not)."""
    return error_class_for(code).retryable


def make_error(
    code: str, message: str, detail: dict[str, Any] | None = None
) -> ExchangeError:
    """Rebuild an exception from an error body's fields.

    Args:
        code: The wire code.
        message: The message.
        detail: Optional context.

    Returns:
        An instance of the registered class (``ExchangeError`` with ``internal`` if unknown).
    """
    cls = error_class_for(code)
    try:
        return cls(message, code=ErrorCode(code), detail=detail)
    except ValueError:
        return ExchangeError(message, detail={"code": code, **(detail or {})})


def diagnostics(err: BaseException) -> str:
    """One line for a terminal: the code and the message, no traceback.

    Args:
        err: Any exception.

    Returns:
        ``"error[code]: message"`` for project errors, a generic line otherwise.
    """
    if isinstance(err, ExchangeError):
        return f"error[{err.code.value}]: {err.message}"
    return f"error[internal]: {type(err).__name__}: {err}"
