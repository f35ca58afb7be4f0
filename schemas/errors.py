"""Stable wire error codes.

Every error the node returns is ``{"error": {"code": ..., "message": ...}}`` where ``code``
is one of :class:`ErrorCode`. Codes never change meaning once published; clients branch on
them (``exchange.client`` rebuilds the matching exception class from the code).
"""

from __future__ import annotations

from enum import Enum

__all__ = ["ErrorCode"]


class ErrorCode(str, Enum):  # noqa: UP042 (str() and format() of members stay as they are)
    """Every error code the API can return."""

    # Malformed JSON and size limits
    BAD_JSON = "bad_json"
    INVALID_UTF8 = "invalid_utf8"
    DUPLICATE_KEY = "duplicate_key"
    TOO_DEEP = "too_deep"
    NUMBER_OUT_OF_RANGE = "number_out_of_range"
    FLOAT_NOT_ALLOWED = "float_not_allowed"
    TOO_LARGE = "too_large"
    BATCH_TOO_LARGE = "batch_too_large"
    # Schema
    SCHEMA_INVALID = "schema_invalid"
    UNKNOWN_KIND = "unknown_kind"
    TIMESTAMP_IN_FUTURE = "timestamp_in_future"
    AUDIENCE_INVALID = "audience_invalid"
    # Item signatures and trust
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_KEY = "unknown_key"
    REVOKED_KEY = "revoked_key"
    KEY_NOT_YET_VALID = "key_not_yet_valid"
    AUTHOR_MISMATCH = "author_mismatch"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    UNKNOWN_SITE = "unknown_site"
    # Request authentication
    UNAUTHENTICATED = "unauthenticated"
    BAD_REQUEST_SIGNATURE = "bad_request_signature"
    DIGEST_MISMATCH = "digest_mismatch"
    REPLAYED_REQUEST = "replayed_request"
    SIGNATURE_EXPIRED = "signature_expired"
    FORBIDDEN = "forbidden"
    # Resources
    NOT_FOUND = "not_found"
    BLOB_HASH_MISMATCH = "blob_hash_mismatch"
    BLOB_MISSING = "blob_missing"
    BAD_REQUEST = "bad_request"
    QUERY_INVALID = "query_invalid"
    CONFLICT = "conflict"
    RATE_LIMITED = "rate_limited"
    REQUEST_TIMEOUT = "request_timeout"
    # Log and proofs
    PROOF_INVALID = "proof_invalid"
    CHECKPOINT_INVALID = "checkpoint_invalid"
    NOT_YET_INTEGRATED = "not_yet_integrated"
    # Federation and roster
    ROSTER_INVALID = "roster_invalid"
    ROSTER_STALE = "roster_stale"
    NOT_HOME_NODE = "not_home_node"
    # Joint inspection plans
    INVALID_TRANSITION = "invalid_transition"
    # Configuration and operations
    ADAPTER_FAILED = "adapter_failed"
    CONFIG_INVALID = "config_invalid"
    DATABASE_UNAVAILABLE = "database_unavailable"
    NODE_UNREACHABLE = "node_unreachable"
    OVERLOADED = "overloaded"
    SCHEMA_TOO_NEW = "schema_too_new"
    INTERNAL = "internal"
