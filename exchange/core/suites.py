"""The registry of signature suites (one per ``alg``), shared by every suite module.

Its own module so that suite implementations (:mod:`exchange.core.sm2`) register here
without importing :mod:`exchange.core.signing`, which imports them in turn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from exchange.errors import VerificationError
from schemas.errors import ErrorCode

__all__ = ["Suite", "register_suite", "suite", "suites"]


def _raw_public(data: bytes) -> bytes:
    return bytes(data)


@dataclass(frozen=True)
class Suite:
    """A signature suite: how to make, load and check keys of one algorithm.

    ``normalize_public`` turns other encodings of a public key that users may hold
    (e.g. DER, or an uncompressed point with its prefix) into the suite's wire form,
    and raises ``ValueError`` for anything that is not a valid key.
    """

    name: str
    generate: Callable[[], bytes]
    public_from_private: Callable[[bytes], bytes]
    sign: Callable[[bytes, bytes], bytes]
    verify: Callable[[bytes, bytes, bytes], bool]
    public_key_size: int
    normalize_public: Callable[[bytes], bytes] = _raw_public


_SUITES: dict[str, Suite] = {}


def register_suite(s: Suite) -> None:
    """Make a suite available by its ``alg`` name."""
    _SUITES[s.name] = s


def suite(alg: str) -> Suite:
    """Look a suite up by name.

    Raises:
        VerificationError: (``unsupported_algorithm``) no such suite here.
    """
    try:
        return _SUITES[alg]
    except KeyError:
        raise VerificationError(
            f"signature algorithm {alg!r} is not supported (known: {', '.join(sorted(_SUITES))})",
            code=ErrorCode.UNSUPPORTED_ALGORITHM,
        ) from None


def suites() -> list[str]:
    """Names of the registered suites."""
    return sorted(_SUITES)
