"""Signature suites, keys and key files.

Signatures are made over **bytes**, never over models: every signing site builds its
message with :func:`signing_message` (a fixed context string, then the payload), so the
same key can never be tricked into signing an item where a request was meant, or the
reverse. The context strings are part of the wire contract and documented in docs/api.md.

Suites are registered by their ``alg`` name. ``ed25519`` is built in; a second suite
(``sm2-sm3``) registers itself the same way, and callers only ever see :class:`PrivateKey`
and :class:`PublicKey`, so a vendor signing server can stand behind ``PrivateKey.sign``
without touching them.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import nacl.exceptions
import nacl.signing

from exchange.errors import ConfigError, VerificationError
from schemas.errors import ErrorCode

from .suites import Suite, register_suite, suite, suites

__all__ = [
    "CONTEXT_CHECKPOINT",
    "CONTEXT_ITEM",
    "CONTEXT_ROSTER",
    "CONTEXT_SITE_RECORD",
    "KEY_ID_RE",
    "PrivateKey",
    "PublicKey",
    "Signer",
    "Suite",
    "b64u_decode",
    "b64u_encode",
    "generate_key",
    "load_private_key",
    "normalize_public_key",
    "parse_key_id",
    "register_suite",
    "save_private_key",
    "signing_message",
    "suite",
    "suites",
]

CONTEXT_ITEM = b"congress-exchange/item/v1\n"
CONTEXT_SITE_RECORD = b"congress-exchange/site-record/v1\n"
CONTEXT_ROSTER = b"congress-exchange/roster/v1\n"
CONTEXT_CHECKPOINT = b"congress-exchange/checkpoint/v1\n"

KEY_ID_RE = re.compile(r"^([a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?)#k([1-9][0-9]{0,5})$")
_KEY_FILE_KIND = "congress-exchange-private-key"


def signing_message(context: bytes, payload: bytes) -> bytes:
    """Return the exact bytes a signature covers: ``context || payload``.

    Args:
        context: One of the ``CONTEXT_*`` constants.
        payload: The canonical bytes being signed.
    """
    return context + payload


def b64u_encode(data: bytes) -> str:
    """Base64url without padding (RFC 4648 §5)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_decode(text: object) -> bytes:
    """Strict base64url decode; accepts missing padding, refuses anything else.

    Raises:
        ValueError: ``text`` is not base64url.
    """
    if not isinstance(text, str) or not re.fullmatch(r"[A-Za-z0-9_-]*={0,2}", text):
        raise ValueError("not base64url")
    padded = text.rstrip("=")
    padded += "=" * (-len(padded) % 4)
    try:
        return base64.urlsafe_b64decode(padded)
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


def parse_key_id(key_id: object) -> tuple[str, int]:
    """Split ``"huaibei-duji#k1"`` into ``("huaibei-duji", 1)``.

    Raises:
        VerificationError: (``unknown_key``) the id is not of the form ``owner#kN``.
    """
    m = KEY_ID_RE.match(key_id) if isinstance(key_id, str) else None
    if m is None:
        raise VerificationError(
            f"key id {key_id!r} is not of the form 'site-id#kN'",
            code=ErrorCode.UNKNOWN_KEY,
        )
    return m.group(1), int(m.group(2))


class Signer(Protocol):
    """Anything that can sign bytes under a key id (a key file, an HSM, a signing server).

    Every signing site takes a ``Signer``: items (:func:`exchange.core.items.sign_item`),
    requests (:func:`exchange.core.httpsig.sign_request`), signed documents
    (:func:`exchange.core.roster.sign_document`) and notes and checkpoints
    (:class:`exchange.core.note.NoteSigner`). A vendor signing server (签名验签服务器)
    plugs in as a small class with these four members; nothing else changes.
    """

    @property
    def key_id(self) -> str:
        """The key id signatures are made under."""
        ...

    @property
    def alg(self) -> str:
        """The suite name, e.g. ``ed25519``."""
        ...

    @property
    def public_key(self) -> PublicKey:
        """The matching public key (notes derive their key ID from it)."""
        ...

    def sign(self, message: bytes) -> bytes:
        """Sign ``message`` (already including its context string)."""
        ...


def normalize_public_key(alg: str, data: bytes) -> bytes:
    """A public key in the suite's wire form (e.g. 64-byte ``x ‖ y`` for ``sm2-sm3``).

    Raises:
        VerificationError: (``unsupported_algorithm``) unknown suite.
        ValueError: not a valid public key of that suite (wrong size or encoding).
    """
    s = suite(alg)
    raw = s.normalize_public(bytes(data))
    if len(raw) != s.public_key_size:
        raise ValueError(
            f"an {alg} public key has {s.public_key_size} bytes, got {len(raw)}"
        )
    return raw


def _ed_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    if len(public) != 32 or len(signature) != 64:
        return False
    try:
        nacl.signing.VerifyKey(public).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, TypeError):
        return False
    return True


register_suite(
    Suite(
        name="ed25519",
        generate=lambda: bytes(nacl.signing.SigningKey.generate()),
        public_from_private=lambda seed: bytes(
            nacl.signing.SigningKey(seed).verify_key
        ),
        sign=lambda seed, msg: nacl.signing.SigningKey(seed).sign(msg).signature,
        verify=_ed_verify,
        public_key_size=32,
    )
)


@dataclass(frozen=True)
class PublicKey:
    """A public key of some suite, with an optional key id."""

    alg: str
    raw: bytes
    key_id: str = ""

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True iff ``signature`` is valid over ``message`` for this key."""
        return suite(self.alg).verify(self.raw, message, signature)

    def b64(self) -> str:
        """The raw public key, base64url."""
        return b64u_encode(self.raw)


class PrivateKey:
    """A private key held in this process; implements :class:`Signer`.

    ``repr`` never shows key material.
    """

    __slots__ = ("_alg", "_key_id", "_public", "_secret", "_signer")

    def __init__(self, alg: str, secret: bytes, key_id: str = "") -> None:
        s = suite(alg)
        self._alg = alg
        self._secret = secret
        self._key_id = key_id
        self._public = s.public_from_private(secret)
        self._signer = s.sign
        if alg == "ed25519":
            sk = nacl.signing.SigningKey(secret)
            self._signer = lambda _seed, msg: sk.sign(msg).signature

    @property
    def alg(self) -> str:
        """Suite name."""
        return self._alg

    @property
    def key_id(self) -> str:
        """Key id (``owner#kN``), or ``""`` if not yet assigned."""
        return self._key_id

    def with_key_id(self, key_id: str) -> PrivateKey:
        """The same key under another key id."""
        parse_key_id(key_id)
        return PrivateKey(self._alg, self._secret, key_id)

    @property
    def public_key(self) -> PublicKey:
        """The matching public key."""
        return PublicKey(self._alg, self._public, self._key_id)

    def sign(self, message: bytes) -> bytes:
        """Sign ``message`` as given (callers add the context string)."""
        return self._signer(self._secret, message)

    def secret_bytes(self) -> bytes:
        """The raw secret, for writing a key file; never log it."""
        return self._secret

    def __repr__(self) -> str:
        return f"PrivateKey(alg={self._alg!r}, key_id={self._key_id!r}, public={b64u_encode(self._public)})"


def generate_key(alg: str = "ed25519", key_id: str = "") -> PrivateKey:
    """Generate a new private key.

    Args:
        alg: Suite name (``ed25519`` by default).
        key_id: Optional key id ``owner#kN``.
    """
    if key_id:
        parse_key_id(key_id)
    return PrivateKey(alg, suite(alg).generate(), key_id)


def save_private_key(key: PrivateKey, path: Path) -> None:
    """Write a key file with mode 0600, atomically; refuses to overwrite.

    Raises:
        ConfigError: the file already exists.
    """
    path = Path(path)
    if path.exists():
        raise ConfigError(f"{path} already exists; refusing to overwrite a key file")
    body = {
        "kind": _KEY_FILE_KIND,
        "key_id": key.key_id,
        "alg": key.alg,
        "private_key": b64u_encode(key.secret_bytes()),
        "public_key": key.public_key.b64(),
    }
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(body, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_private_key(path: Path, *, check_mode: bool = True) -> PrivateKey:
    """Read a key file written by :func:`save_private_key`.

    Args:
        path: The key file.
        check_mode: Refuse files readable or writable by group or others (default).

    Raises:
        ConfigError: missing, too permissive, or not a key file. The message never
            contains key material.
    """
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"key file {path} does not exist") from None
    if check_mode and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"key file {path} is accessible by other users (mode {stat.S_IMODE(st.st_mode):o}); "
            f"run: chmod 600 {path}"
        )
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        if body.get("kind") != _KEY_FILE_KIND:
            raise ValueError("kind")
        alg = str(body["alg"])
        key_id = str(body.get("key_id", ""))
        secret = b64u_decode(body["private_key"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise ConfigError(f"{path} is not a Congress Exchange key file") from None
    key = PrivateKey(alg, secret, key_id)
    return key


# The national suite registers itself (GB/T 32918 SM2 with SM3); imported last because
# it builds on the names above.
from exchange.core import sm2 as _sm2  # noqa: E402,F401  (registers "sm2-sm3")
