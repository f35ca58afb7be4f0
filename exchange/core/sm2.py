"""The ``sm2-sm3`` signature suite: SM2 signatures with SM3 (GB/T 32918, GM/T 0009).

Chinese government systems are assessed under the commercial-cryptography rules
(密评, GB/T 39786-2021), which expect SM2 with SM3 rather than Ed25519. This module
registers that suite beside ``ed25519``; everything above :mod:`exchange.core.signing`
(items, request signatures, site records, rosters, checkpoints) then works with it
unchanged, because callers only see :class:`~exchange.core.signing.PrivateKey`,
:class:`~exchange.core.signing.PublicKey` and the :class:`~exchange.core.signing.Signer`
protocol.

What is signed: the message bytes as given (context string ‖ payload), hashed by SM3
together with the signer's identity ``Z = SM3(ENTL ‖ ID ‖ a ‖ b ‖ xG ‖ yG ‖ xA ‖ yA)``
with the default signer ID ``1234567812345678`` (GM/T 0009-2012 §10; GB/T 35276), which
is what GmSSL, BouncyCastle, Tongsuo and vendor signing servers (签名验签服务器) use
unless told otherwise. The nonce comes from GmSSL's operating-system random source.

Encodings on the wire (normalised here, in one place):

* **signature**: 64 bytes, ``r ‖ s``, each a 32-byte big-endian integer in ``[1, n-1]``
  (the same fixed size as Ed25519, and what GM/T 0009 calls the raw form). Libraries
  and signing servers that speak DER (``SEQUENCE { INTEGER r, INTEGER s }``) convert
  with :func:`signature_to_der` / :func:`signature_from_der`.
* **public key**: 64 bytes, ``x ‖ y``. :func:`normalize_public_key` also accepts the
  65-byte uncompressed point ``04 ‖ x ‖ y`` and a DER ``SubjectPublicKeyInfo``
  (``id-ecPublicKey`` with the ``sm2p256v1`` curve, as in an SM2 certificate), and
  refuses any point not on the curve.
* **private key** (key files only): 96 bytes, ``d ‖ x ‖ y``. The public point is kept
  beside the scalar because the wheel cannot derive it; loading checks that the pair
  belongs together by signing and verifying a probe message.

Library: ``gmssl-pyx`` (a self-contained wheel around GmSSL 3). The PyPI ``gmssl``
package is deliberately not used: it draws the SM2 nonce from a non-cryptographic
generator. Tests cross-check against ``gmalg``, an independent pure-Python SM2.

Known limitation: GmSSL, as compiled into the wheel, writes two diagnostic lines
(``.../sm2_sign.c:NNN:sm2_do_verify():``) to the process's stderr for every signature
that does **not** verify. They hold no key material; refusals are still reported
through the normal error path. The request rate limit bounds how many a client causes.
"""

from __future__ import annotations

import gmssl_pyx

from .suites import Suite, register_suite

__all__ = [
    "ALG",
    "DEFAULT_SIGNER_ID",
    "PRIVATE_KEY_SIZE",
    "PUBLIC_KEY_SIZE",
    "SIGNATURE_SIZE",
    "digest",
    "generate_secret",
    "normalize_public_key",
    "public_key_to_der",
    "public_from_secret",
    "sign",
    "signature_from_der",
    "signature_to_der",
    "verify",
]

ALG = "sm2-sm3"
DEFAULT_SIGNER_ID = b"1234567812345678"
"""GM/T 0009 default signer ID (``ENTL`` = 128 bits)."""

PUBLIC_KEY_SIZE = 64
SIGNATURE_SIZE = 64
PRIVATE_KEY_SIZE = 96

# Curve order n of sm2p256v1 (GB/T 32918.5).
_N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
# DER of the AlgorithmIdentifier {id-ecPublicKey 1.2.840.10045.2.1, sm2p256v1
# 1.2.156.10197.1.301} that starts an SM2 SubjectPublicKeyInfo.
_SPKI_ALGORITHM = bytes.fromhex("301306072a8648ce3d020106082a811ccf5501822d")
_PROBE = b"congress-exchange/sm2-key-check/v1\n"
# ENTL ‖ ID ‖ a ‖ b ‖ xG ‖ yG: the key-independent prefix of Z (GB/T 32918.2 §5.5).
_Z_PREFIX = (
    (len(DEFAULT_SIGNER_ID) * 8).to_bytes(2, "big")
    + DEFAULT_SIGNER_ID
    + bytes.fromhex(
        "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC"
        "28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93"
        "32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7"
        "BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0"
    )
)


# ------------------------------------------------------------------------ DER


def _der_length(data: bytes, pos: int) -> tuple[int, int]:
    """Parse a DER length at ``pos``; return (length, position after it)."""
    if pos >= len(data):
        raise ValueError("DER: truncated length")
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    count = first & 0x7F
    if count == 0 or count > 2 or pos + 1 + count > len(data):
        raise ValueError("DER: unsupported or truncated length")
    value = int.from_bytes(data[pos + 1 : pos + 1 + count], "big")
    if value < 0x80 or (count == 2 and value < 0x100):
        raise ValueError("DER: length is not minimally encoded")
    return value, pos + 1 + count


def _der_tlv(data: bytes, pos: int, tag: int) -> tuple[bytes, int]:
    """Read one element with ``tag`` at ``pos``; return (contents, next position)."""
    if pos >= len(data) or data[pos] != tag:
        raise ValueError(f"DER: expected tag 0x{tag:02x}")
    length, start = _der_length(data, pos + 1)
    end = start + length
    if end > len(data):
        raise ValueError("DER: element runs past the end")
    return data[start:end], end


def _der_encode(tag: int, contents: bytes) -> bytes:
    n = len(contents)
    if n < 0x80:
        head = bytes([n])
    elif n < 0x100:
        head = bytes([0x81, n])
    else:
        head = bytes([0x82]) + n.to_bytes(2, "big")
    return bytes([tag]) + head + contents


def _der_positive_int(contents: bytes) -> int:
    if not contents:
        raise ValueError("DER: empty INTEGER")
    if contents[0] & 0x80:
        raise ValueError("DER: negative INTEGER")
    if len(contents) > 1 and contents[0] == 0 and not contents[1] & 0x80:
        raise ValueError("DER: INTEGER is not minimally encoded")
    return int.from_bytes(contents, "big")


def signature_from_der(der: bytes) -> bytes:
    """Convert a DER ``SEQUENCE { INTEGER r, INTEGER s }`` to the 64-byte ``r ‖ s``.

    Args:
        der: The DER signature (strict DER: minimal lengths and integers).

    Raises:
        ValueError: not such a signature, or r/s outside ``[1, n-1]``.
    """
    body, end = _der_tlv(bytes(der), 0, 0x30)
    if end != len(der):
        raise ValueError("DER: trailing bytes after the signature")
    r_bytes, pos = _der_tlv(body, 0, 0x02)
    s_bytes, pos = _der_tlv(body, pos, 0x02)
    if pos != len(body):
        raise ValueError("DER: extra fields in the signature")
    r, s = _der_positive_int(r_bytes), _der_positive_int(s_bytes)
    if not (0 < r < _N and 0 < s < _N):
        raise ValueError("SM2 signature r or s is out of range")
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def signature_to_der(raw: bytes) -> bytes:
    """Convert a 64-byte ``r ‖ s`` signature to DER.

    Raises:
        ValueError: not 64 bytes, or r/s outside ``[1, n-1]``.
    """
    if len(raw) != SIGNATURE_SIZE:
        raise ValueError(
            f"an SM2 signature is {SIGNATURE_SIZE} bytes (r ‖ s), got {len(raw)}"
        )
    parts = []
    for half in (raw[:32], raw[32:]):
        value = int.from_bytes(half, "big")
        if not 0 < value < _N:
            raise ValueError("SM2 signature r or s is out of range")
        body = value.to_bytes((value.bit_length() + 8) // 8, "big")
        parts.append(_der_encode(0x02, body))
    return _der_encode(0x30, b"".join(parts))


# ------------------------------------------------------------------------ keys


def _on_curve(raw: bytes) -> bytes:
    try:
        return bytes(gmssl_pyx.normalize_sm2_public_key(raw))
    except gmssl_pyx.GmsslInnerError:
        raise ValueError(
            "the SM2 public key is not a point on the sm2p256v1 curve"
        ) from None


def normalize_public_key(data: bytes) -> bytes:
    """Return the 64-byte ``x ‖ y`` form of an SM2 public key.

    Accepts 64 bytes ``x ‖ y``, 65 bytes ``04 ‖ x ‖ y``, or a DER SubjectPublicKeyInfo
    with ``id-ecPublicKey`` and the ``sm2p256v1`` curve and an uncompressed point.

    Raises:
        ValueError: another encoding, another curve, or a point not on the curve.
    """
    data = bytes(data)
    if len(data) == PUBLIC_KEY_SIZE:
        return _on_curve(data)
    if len(data) == PUBLIC_KEY_SIZE + 1:
        if data[0] != 0x04:
            raise ValueError(
                "a 65-byte SM2 public key must start with 0x04 (uncompressed)"
            )
        return _on_curve(data[1:])
    if data[:1] == b"\x30":
        body, end = _der_tlv(data, 0, 0x30)
        if end != len(data):
            raise ValueError("DER: trailing bytes after the public key")
        if not body.startswith(_SPKI_ALGORITHM):
            raise ValueError(
                "the SubjectPublicKeyInfo is not id-ecPublicKey on sm2p256v1 "
                "(1.2.156.10197.1.301)"
            )
        bits, pos = _der_tlv(body, len(_SPKI_ALGORITHM), 0x03)
        if pos != len(body):
            raise ValueError("DER: extra fields in the SubjectPublicKeyInfo")
        if len(bits) != 2 + PUBLIC_KEY_SIZE or bits[:2] != b"\x00\x04":
            raise ValueError(
                "the SubjectPublicKeyInfo does not hold an uncompressed point"
            )
        return _on_curve(bits[2:])
    raise ValueError(
        f"an SM2 public key is 64 bytes (x ‖ y), 65 bytes (04 ‖ x ‖ y) or DER "
        f"SubjectPublicKeyInfo; got {len(data)} bytes"
    )


def public_key_to_der(raw: bytes) -> bytes:
    """DER SubjectPublicKeyInfo of a 64-byte SM2 public key (for certificates, HSMs).

    Raises:
        ValueError: not a valid 64-byte public key.
    """
    point = normalize_public_key(raw)
    return _der_encode(0x30, _SPKI_ALGORITHM + _der_encode(0x03, b"\x00\x04" + point))


def generate_secret() -> bytes:
    """A new key pair as the 96-byte secret ``d ‖ x ‖ y``."""
    public, private = gmssl_pyx.sm2_key_generate()
    return bytes(private) + bytes(public)


def _split_secret(secret: bytes) -> tuple[bytes, bytes]:
    if len(secret) != PRIVATE_KEY_SIZE:
        raise ValueError(
            f"an sm2-sm3 private key is {PRIVATE_KEY_SIZE} bytes (d ‖ x ‖ y), "
            f"got {len(secret)}"
        )
    return secret[:32], secret[32:]


def public_from_secret(secret: bytes) -> bytes:
    """The 64-byte public key stored in a secret, after checking the pair.

    Raises:
        ValueError: wrong size, a point off the curve, a zero or out-of-range scalar,
            or a public point that does not belong to the scalar (the message never
            contains key material).
    """
    d, public = _split_secret(bytes(secret))
    public = _on_curve(public)
    scalar = int.from_bytes(d, "big")
    # GmSSL requires 1 <= d <= n-2 (d = n-1 has no inverse of 1 + d).
    if not 0 < scalar < _N - 1:
        raise ValueError("the sm2-sm3 private scalar is out of range")
    if not verify(public, _PROBE, sign(bytes(secret), _PROBE)):
        raise ValueError("the sm2-sm3 private key does not match its public key")
    return public


def digest(public: bytes, message: bytes) -> bytes:
    """``e = SM3(Z ‖ M)`` with ``Z = SM3(ENTL ‖ ID ‖ a ‖ b ‖ xG ‖ yG ‖ xA ‖ yA)``.

    Computed here rather than by the wheel's one-shot ``sm2_sign``, which costs about
    ten times more per call; the result is the same (tests cross-check with gmalg).
    """
    z = gmssl_pyx.sm3_hash(_Z_PREFIX + bytes(public))
    return bytes(gmssl_pyx.sm3_hash(z + bytes(message)))


def sign(secret: bytes, message: bytes) -> bytes:
    """Sign ``message`` (SM3 with Z of the default signer ID); return ``r ‖ s``.

    Raises:
        ValueError: a malformed secret.
    """
    d, public = _split_secret(bytes(secret))
    der = gmssl_pyx.sm2_sign_sm3_digest(d, digest(public, message))
    return signature_from_der(bytes(der))


def verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """True iff ``signature`` (64-byte ``r ‖ s``) is valid over ``message``.

    Never raises on bad input: a malformed key or signature is simply not valid.
    """
    if len(public) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        der = signature_to_der(bytes(signature))
        return bool(
            gmssl_pyx.sm2_verify_sm3_digest(bytes(public), digest(public, message), der)
        )
    except (ValueError, gmssl_pyx.GmsslInnerError):
        return False


register_suite(
    Suite(
        name=ALG,
        generate=generate_secret,
        public_from_private=public_from_secret,
        sign=sign,
        verify=verify,
        public_key_size=PUBLIC_KEY_SIZE,
        normalize_public=normalize_public_key,
    )
)
