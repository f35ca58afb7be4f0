"""C2SP signed notes, tlog checkpoints and tlog cosignatures (Ed25519, and SM2).

A log's tree head travels as a *checkpoint* (c2sp.org/tlog-checkpoint): a
three-line text (origin, decimal tree size, base64 root hash, then optional
extension lines) wrapped in a *signed note* (c2sp.org/signed-note)::

    example.com/behind-the-sofa
    20852163
    CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

    — example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurm...

Each signature line is an em dash (U+2014), a space, the key name, a space, and
``base64(key ID || signature)``. The 4-byte key ID is
``SHA-256(name || 0x0A || type || public key)[:4]``, so one Ed25519 key under one
name has distinct IDs for distinct signature types: ``0x01`` for plain note
signatures (:class:`NoteSigner`, :class:`NoteVerifier`) and ``0x04`` for witness
cosignatures (c2sp.org/tlog-cosignature v1). A cosignature signs
``"cosignature/v1\\ntime <t>\\n" || checkpoint body`` and its signature bytes are
``uint64 BE timestamp || Ed25519 signature``. Because the key IDs differ, a
log's verifiers simply ignore cosignature lines as unknown keys, and the reverse.

Rules, following the specifications and the Go reference (golang.org/x/mod
sumdb/note):

* Opening is liberal where the spec is: the text is separated from the
  signatures by the **last** blank line, so a text may contain blank lines;
  signatures from unknown (name, key ID) pairs are ignored; at least one
  signature from a known key must verify, and any known-key signature that does
  not verify rejects the whole note.
* Signing is strict: the text must end in a newline and contain no blank line
  and no control character other than newline, so every note this module
  produces is unambiguous for any reader.
* Checkpoint sizes are ASCII decimal without leading zeros and at most
  ``2**63 - 1`` (a signed 64-bit integer, as stored); root hashes are canonical
  standard base64 of exactly 32 bytes.

SM2 (private signature types). C2SP assigns type bytes only to Ed25519 (``0x01``), ECDSA
(``0x02``), cosignatures (``0x04``) and RFC 6962 (``0x05``), and reserves ``0xff`` for
"signature types without an identifier byte assigned by this specification", to be
followed by a longer identifier. A node whose key is ``sm2-sm3`` (federations under
密评) therefore signs with the type ``0xff || "congress-exchange/sm2-sm3"``
(:data:`SIG_TYPE_SM2`), and cosigns with ``0xff || "congress-exchange/sm2-sm3-cosignature/v1"``
(:data:`SIG_TYPE_SM2_COSIGNATURE`): the key ID is computed exactly as for Ed25519 with
that whole type string in place of the type byte and the 64-byte ``x || y`` public key;
the vkey is ``name+hex8+base64(type || x || y)``; the signature is the 64-byte SM2
``r || s`` (SM3, default signer ID), and a cosignature is ``uint64 BE timestamp || r || s``
over the same cosignature/v1 message. Tools that only know C2SP see these lines as
signatures from unknown keys and ignore them, as the spec requires. A reused unassigned
single byte (``0x06``...) could later be given to another algorithm; ``0xff`` cannot.

Errors: everything that judges data from elsewhere (:func:`open_note`,
:func:`verify_checkpoint`, :func:`parse_checkpoint_body`,
:func:`verify_cosignature`, :meth:`NoteVerifier.from_vkey`, and the note handed to
:func:`cosign_checkpoint`) raises :class:`~exchange.errors.ProofError` with code
``checkpoint_invalid`` and a reason. Producing with impossible arguments (a bad
key name, text or timestamp of our own) raises :class:`ValueError`: that is a bug
in the caller.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from exchange.core.signing import PrivateKey, PublicKey, Signer
from exchange.errors import ProofError
from schemas.errors import ErrorCode

__all__ = [
    "MAX_SIGNATURES",
    "MAX_TIMESTAMP",
    "MAX_TREE_SIZE",
    "SIG_TYPE_COSIGNATURE_V1",
    "SIG_TYPE_ED25519",
    "SIG_TYPE_SM2",
    "SIG_TYPE_SM2_COSIGNATURE",
    "Checkpoint",
    "Note",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "cosign_checkpoint",
    "cosignature_key_id",
    "cosignature_message",
    "note_key_id",
    "open_note",
    "parse_checkpoint_body",
    "sign_checkpoint",
    "sign_note",
    "verify_checkpoint",
    "verify_cosignature",
    "vkey_for",
]

SIG_TYPE_ED25519 = 0x01
"""Signature type byte of Ed25519 note signatures (c2sp.org/signed-note)."""

SIG_TYPE_COSIGNATURE_V1 = 0x04
"""Signature type byte of Ed25519 timestamped cosignatures (tlog-cosignature)."""

SIG_TYPE_SM2 = b"\xff" + b"congress-exchange/sm2-sm3"
"""Private signature type of SM2/SM3 note signatures (``0xff`` + identifier)."""

SIG_TYPE_SM2_COSIGNATURE = b"\xff" + b"congress-exchange/sm2-sm3-cosignature/v1"
"""Private signature type of SM2/SM3 timestamped cosignatures."""

MAX_SIGNATURES = 100
"""Most signature lines a note may carry (the spec requires accepting 16)."""

MAX_TREE_SIZE = 2**63 - 1
"""Largest checkpoint tree size accepted."""

MAX_TIMESTAMP = 2**63 - 1
"""Largest cosignature timestamp (tlog-cosignature: MUST NOT exceed 2^63 - 1)."""

_SIG_PREFIX = "\u2014 "
_COSIGNATURE_HEADER = "cosignature/v1\n"
_ED25519 = "ed25519"
_SM2 = "sm2-sm3"
_SM2_KEY_SIZE = 64
_NOTE_TYPES: dict[str, tuple[int | bytes, int | bytes]] = {
    _ED25519: (SIG_TYPE_ED25519, SIG_TYPE_COSIGNATURE_V1),
    _SM2: (SIG_TYPE_SM2, SIG_TYPE_SM2_COSIGNATURE),
}
_ED25519_KEY_SIZE = 32
_ED25519_SIG_SIZE = 64
_COSIG_SIZE = 8 + _ED25519_SIG_SIZE
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
_ROOT_SIZE = 32


def _invalid(reason: str) -> ProofError:
    return ProofError(reason, code=ErrorCode.CHECKPOINT_INVALID)


# ------------------------------------------------------------------------------ keys


def _name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid key name, or ``None`` if it is."""
    if not isinstance(name, str) or not name:
        return "key name must be a non-empty string"
    if "+" in name:
        return f"key name {name!r} must not contain '+'"
    if any(c.isspace() or c < "\x20" for c in name):
        return f"key name {name!r} must not contain spaces or control characters"
    return None


def _note_key(public_key: PublicKey | bytes) -> PublicKey:
    """The key as a PublicKey of a note suite; raw bytes: 32 = Ed25519, 64 = SM2."""
    if isinstance(public_key, PublicKey):
        alg, raw = public_key.alg, public_key.raw
        if alg not in _NOTE_TYPES:
            raise ValueError(f"note keys must be Ed25519 or SM2, not {alg}")
    else:
        raw = bytes(public_key)
        alg = _SM2 if len(raw) == _SM2_KEY_SIZE else _ED25519
    size = _SM2_KEY_SIZE if alg == _SM2 else _ED25519_KEY_SIZE
    if len(raw) != size:
        name = "SM2" if alg == _SM2 else "Ed25519"
        raise ValueError(f"{name} public key must be {size} bytes, got {len(raw)}")
    return PublicKey(alg, raw)


def _type_bytes(sig_type: int | bytes) -> bytes:
    return bytes([sig_type]) if isinstance(sig_type, int) else bytes(sig_type)


def note_key_id(name: str, sig_type: int | bytes, public_key: bytes) -> int:
    """The recommended key ID: ``SHA-256(name || 0x0A || type || key)[:4]``.

    Args:
        name: The key name.
        sig_type: Signature type byte (``0x01`` note, ``0x04`` cosignature), or a
            private type string (``0xff`` + identifier, e.g. :data:`SIG_TYPE_SM2`).
        public_key: The encoded public key (32 raw bytes for Ed25519, 64 for SM2).

    Returns:
        The key ID as an unsigned 32-bit integer (big-endian).
    """
    digest = hashlib.sha256(
        name.encode("utf-8") + b"\n" + _type_bytes(sig_type) + public_key
    ).digest()
    return int.from_bytes(digest[:4], "big")


def vkey_for(name: str, public_key: PublicKey | bytes) -> str:
    """The verifier key string ``name+hex8+base64(0x01 || pub)`` of a note key.

    Args:
        name: The key name (no spaces, no ``+``).
        public_key: The Ed25519 public key.

    Returns:
        The vkey, as published for verifiers.

    Raises:
        ValueError: bad name or not a 32-byte Ed25519 key.
    """
    return NoteVerifier.for_key(name, public_key).vkey


@dataclass(frozen=True)
class NoteVerifier:
    """A note verifier key: ``(name, key ID, public key)``; Ed25519 or SM2.

    Args:
        name: The key name.
        key_id: The key ID; must equal :func:`note_key_id` of name and key.
        public: The Ed25519 public key.

    Raises:
        ValueError: bad name, not an Ed25519 key, or a key ID that does not match.
    """

    name: str
    key_id: int
    public: PublicKey

    def __post_init__(self) -> None:
        problem = _name_problem(self.name)
        if problem:
            raise ValueError(problem)
        key = _note_key(self.public)
        want = note_key_id(self.name, _NOTE_TYPES[key.alg][0], key.raw)
        if self.key_id != want:
            raise ValueError(
                f"key ID {self.key_id:08x} does not match key {self.name}+{want:08x}"
            )

    @classmethod
    def for_key(cls, name: str, public_key: PublicKey | bytes) -> NoteVerifier:
        """The verifier of ``public_key`` under ``name``, key ID computed.

        Args:
            name: The key name.
            public_key: The Ed25519 public key (a :class:`PublicKey` or raw bytes).

        Raises:
            ValueError: bad name or key.
        """
        key = _note_key(public_key)
        key_id = note_key_id(name, _NOTE_TYPES[key.alg][0], key.raw)
        return cls(name, key_id, key)

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse a verifier key ``name+hex8+base64(0x01 || 32-byte key)``.

        Only the first two ``+`` separate fields: the base64 may contain ``+``.

        Args:
            vkey: The verifier key string.

        Raises:
            ProofError: (``checkpoint_invalid``) malformed, not Ed25519, or the
                key ID does not match the name and key.
        """
        if not isinstance(vkey, str):
            raise _invalid("verifier key must be a string")
        name, _, rest = vkey.partition("+")
        hex_id, _, key64 = rest.partition("+")
        problem = _name_problem(name)
        if problem:
            raise _invalid(f"verifier key is malformed: {problem}")
        if not _HEX8.fullmatch(hex_id):
            raise _invalid(f"verifier key for {name!r} lacks an 8-digit hex key ID")
        key = _b64decode(key64)
        if not key:
            raise _invalid(f"verifier key for {name!r} has no valid base64 key")
        if key.startswith(SIG_TYPE_SM2):
            alg, raw = _SM2, key[len(SIG_TYPE_SM2) :]
            if len(raw) != _SM2_KEY_SIZE:
                raise _invalid(f"verifier key for {name!r} is not a 64-byte SM2 key")
        elif key[0] != SIG_TYPE_ED25519:
            raise _invalid(
                f"verifier key for {name!r} has signature type 0x{key[0]:02x}; "
                "only Ed25519 (0x01) and SM2 (0xff congress-exchange/sm2-sm3) note "
                "keys are supported here"
            )
        elif len(key) != 1 + _ED25519_KEY_SIZE:
            raise _invalid(f"verifier key for {name!r} is not a 32-byte Ed25519 key")
        else:
            alg, raw = _ED25519, key[1:]
        key_id = int(hex_id, 16)
        want = note_key_id(name, _NOTE_TYPES[alg][0], raw)
        if key_id != want:
            raise _invalid(
                f"verifier key {name}+{hex_id} has the wrong key ID "
                f"(the key hashes to {want:08x})"
            )
        return cls(name, key_id, PublicKey(alg, raw))

    @property
    def vkey(self) -> str:
        """This key as a vkey string."""
        sig_type = _type_bytes(_NOTE_TYPES[self.public.alg][0])
        encoded = base64.b64encode(sig_type + self.public.raw)
        return f"{self.name}+{self.key_id:08x}+{encoded.decode('ascii')}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True iff ``signature`` is this key's signature of ``message``.

        Args:
            message: The signed bytes (the note text, UTF-8).
            signature: The raw 64-byte signature (without the key ID); Ed25519, or
                SM2 ``r || s``.
        """
        return self.public.verify(message, signature)


class NoteSigner:
    """Signs notes as ``name`` with any Ed25519 or SM2 :class:`~exchange.core.signing.Signer`.

    Args:
        name: The key name (for a log, its origin line).
        private_key: A :class:`PrivateKey`, or any signer (a signing server's client)
            of suite ``ed25519`` or ``sm2-sm3``; its signing-layer key id is unused.

    Raises:
        ValueError: bad name or a key of another suite.
    """

    __slots__ = ("_key", "_verifier")

    def __init__(self, name: str, private_key: Signer) -> None:
        if private_key.alg not in _NOTE_TYPES:
            raise ValueError(f"note keys must be Ed25519 or SM2, not {private_key.alg}")
        self._key = private_key
        self._verifier = NoteVerifier.for_key(name, private_key.public_key)

    @classmethod
    def from_skey(cls, skey: str) -> NoteSigner:
        """Parse a Go-style signer key ``PRIVATE+KEY+name+hex8+base64(0x01||seed)``.

        Only the first four ``+`` separate fields.

        Args:
            skey: The secret key string (never log it).

        Raises:
            ValueError: malformed, not Ed25519, or a key ID that does not match
                (the message never contains key material).
        """
        parts = skey.split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise ValueError("signer key must start with PRIVATE+KEY+")
        name, hex_id, key64 = parts[2:]
        key = _b64decode(key64)
        if not _HEX8.fullmatch(hex_id) or key is None:
            raise ValueError(f"signer key for {name!r} is malformed")
        if len(key) != 1 + _ED25519_KEY_SIZE or key[0] != SIG_TYPE_ED25519:
            raise ValueError(f"signer key for {name!r} is not an Ed25519 note key")
        signer = cls(name, PrivateKey(_ED25519, key[1:]))
        if signer.key_id != int(hex_id, 16):
            raise ValueError(f"signer key for {name!r} has the wrong key ID")
        return signer

    @property
    def name(self) -> str:
        """The key name."""
        return self._verifier.name

    @property
    def key_id(self) -> int:
        """The 32-bit key ID."""
        return self._verifier.key_id

    @property
    def verifier(self) -> NoteVerifier:
        """The matching verifier."""
        return self._verifier

    @property
    def vkey(self) -> str:
        """The matching verifier key string, to publish."""
        return self._verifier.vkey

    def sign(self, message: bytes) -> bytes:
        """Raw 64-byte signature of ``message`` (Ed25519, or SM2 ``r || s``).

        Args:
            message: The note text, UTF-8.
        """
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"NoteSigner({self.vkey!r})"


# ----------------------------------------------------------------------------- notes


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a note.

    Attributes:
        name: Key name.
        key_id: 32-bit key ID from the first four signature bytes.
        signature: The signature bytes after the key ID.
        b64: The line's base64 value as written (key ID included).
    """

    name: str
    key_id: int
    signature: bytes
    b64: str

    @property
    def line(self) -> str:
        """The signature line, with its final newline."""
        return f"{_SIG_PREFIX}{self.name} {self.b64}\n"


@dataclass(frozen=True)
class Note:
    """An opened note.

    Attributes:
        text: The note text, final newline included.
        signatures: Verified signatures from known keys (at least one).
        unverified: Signatures from unknown keys, kept but not trusted.
    """

    text: str
    signatures: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...] = ()


def _b64decode(value: str) -> bytes | None:
    """Strict standard base64 (alphabet and padding checked), or ``None``."""
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None


def _text_problem(text: object) -> str | None:
    """Why ``text`` cannot be signed, or ``None`` if it can."""
    if not isinstance(text, str) or not text.endswith("\n"):
        return "note text must be a string ending in a newline"
    if text.startswith("\n") or "\n\n" in text:
        return "note text must not contain a blank line"
    m = _CONTROL.search(text)
    if m:
        return f"note text contains control character U+{ord(m.group()):04X}"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "note text is not valid Unicode (lone surrogate)"
    return None


def sign_note(text: str, signers: NoteSigner | Sequence[NoteSigner]) -> str:
    """Sign ``text`` with one or more keys.

    Args:
        text: The note text: ends in a newline, no blank line, no control
            character other than newline.
        signers: One signer or several (distinct keys); lines follow their order.

    Returns:
        The signed note: text, blank line, one signature line per signer.

    Raises:
        ValueError: the text is not signable, no signer, or a repeated key.
    """
    problem = _text_problem(text)
    if problem:
        raise ValueError(problem)
    signer_list = [signers] if isinstance(signers, NoteSigner) else list(signers)
    if not signer_list:
        raise ValueError("at least one signer is required")
    message = text.encode("utf-8")
    seen: set[tuple[str, int]] = set()
    lines = []
    for signer in signer_list:
        key = (signer.name, signer.key_id)
        if key in seen:
            raise ValueError(f"key {signer.name}+{signer.key_id:08x} signs twice")
        seen.add(key)
        value = signer.key_id.to_bytes(4, "big") + signer.sign(message)
        lines.append(
            f"{_SIG_PREFIX}{signer.name} {base64.b64encode(value).decode('ascii')}\n"
        )
    return text + "\n" + "".join(lines)


def _as_text(note: str | bytes) -> str:
    """``note`` as a str that is valid UTF-8, or ProofError."""
    if isinstance(note, bytes | bytearray):
        try:
            return bytes(note).decode("utf-8")
        except UnicodeDecodeError:
            raise _invalid("note is not valid UTF-8") from None
    if not isinstance(note, str):
        raise _invalid(f"note must be text, not {type(note).__name__}")
    try:
        note.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid("note is not valid UTF-8 (lone surrogate)") from None
    return note


def _split_note(note: str | bytes) -> tuple[str, list[NoteSignature]]:
    """Check a note's structure; return its text and parsed signature lines.

    Raises:
        ProofError: (``checkpoint_invalid``) the note is malformed.
    """
    note = _as_text(note)
    m = _CONTROL.search(note)
    if m:
        raise _invalid(
            f"note contains control character U+{ord(m.group()):04X} "
            f"at offset {m.start()}"
        )
    split = note.rfind("\n\n")
    if split < 0:
        raise _invalid("note has no blank line between the text and the signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block:
        raise _invalid("note has no signature lines")
    if not block.endswith("\n"):
        raise _invalid("note does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise _invalid(f"note has {len(lines)} signatures, more than {MAX_SIGNATURES}")
    sigs = []
    for n, line in enumerate(lines, 1):
        if not line.startswith(_SIG_PREFIX):
            raise _invalid(
                f"signature line {n} does not start with an em dash (U+2014) "
                "and a space"
            )
        name, _, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        problem = _name_problem(name)
        if problem:
            raise _invalid(f"signature line {n}: {problem}")
        if not b64:
            raise _invalid(f"signature line {n} ({name}) has no signature")
        raw = _b64decode(b64)
        if raw is None:
            raise _invalid(f"signature line {n} ({name}) is not valid base64")
        if len(raw) < 5:
            raise _invalid(f"signature line {n} ({name}) is too short")
        sigs.append(NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:], b64))
    return text, sigs


def _known_verifiers(
    verifiers: NoteVerifier | str | Sequence[NoteVerifier | str],
) -> dict[tuple[str, int], NoteVerifier]:
    items = [verifiers] if isinstance(verifiers, NoteVerifier | str) else verifiers
    known: dict[tuple[str, int], NoteVerifier] = {}
    for item in items:
        v = item if isinstance(item, NoteVerifier) else NoteVerifier.from_vkey(item)
        key = (v.name, v.key_id)
        if key in known and known[key] != v:
            raise _invalid(f"two different verifier keys share {v.name}+{v.key_id:08x}")
        known[key] = v
    return known


def open_note(
    note: str | bytes, verifiers: NoteVerifier | str | Sequence[NoteVerifier | str]
) -> Note:
    """Parse a signed note and verify it against known keys.

    Args:
        note: The signed note (text or UTF-8 bytes).
        verifiers: Known keys, as :class:`NoteVerifier` objects or vkey strings.

    Returns:
        The note: text, verified signatures, ignored unknown-key signatures.

    Raises:
        ProofError: (``checkpoint_invalid``) malformed note or verifier key, a
            known key's signature fails, or no known key signed the note.
    """
    known = _known_verifiers(verifiers)
    text, sigs = _split_note(note)
    message = text.encode("utf-8")
    verified: list[NoteSignature] = []
    unverified: list[NoteSignature] = []
    seen: set[tuple[str, int]] = set()
    for sig in sigs:
        key = (sig.name, sig.key_id)
        verifier = known.get(key)
        if verifier is None:
            if sig not in unverified:
                unverified.append(sig)
            continue
        if key in seen:
            continue
        seen.add(key)
        if not verifier.verify(message, sig.signature):
            raise _invalid(f"signature by known key {sig.name}+{sig.key_id:08x} is bad")
        verified.append(sig)
    if not verified:
        signed_by = ", ".join(f"{s.name}+{s.key_id:08x}" for s in unverified)
        raise _invalid(
            f"note has no signature from a known key (signed by {signed_by}; "
            f"known keys: {', '.join(f'{n}+{i:08x}' for n, i in known) or 'none'})"
        )
    return Note(text, tuple(verified), tuple(unverified))


# ------------------------------------------------------------------------ checkpoints


@dataclass(frozen=True)
class Checkpoint:
    """A tlog-checkpoint body: the tree head of a log.

    Args:
        origin: The log's unique identity (first line; non-empty).
        size: Number of leaves, ``0 <= size <= MAX_TREE_SIZE``.
        root_hash: The 32-byte RFC 9162 root at ``size``.
        extensions: Optional extra lines (each non-empty); not recommended.

    Raises:
        ValueError: a field cannot be written as a checkpoint line.
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "extensions", tuple(self.extensions))
        object.__setattr__(self, "root_hash", bytes(self.root_hash))
        lines: list[tuple[str, object]] = [("origin", self.origin)]
        lines += [("extension line", e) for e in self.extensions]
        for what, line in lines:
            if not isinstance(line, str) or not line:
                raise ValueError(f"checkpoint {what} must be a non-empty string")
            if "\n" in line or _CONTROL.search(line):
                raise ValueError(f"checkpoint {what} {line!r} has a control character")
        if type(self.size) is not int or not 0 <= self.size <= MAX_TREE_SIZE:
            raise ValueError(f"checkpoint size {self.size!r} is not in 0..2^63-1")
        if len(self.root_hash) != _ROOT_SIZE:
            raise ValueError(
                f"checkpoint root hash must be 32 bytes, got {len(self.root_hash)}"
            )

    def to_body(self) -> str:
        """The note text: origin, size, base64 root, extensions, each + newline."""
        root = base64.b64encode(self.root_hash).decode("ascii")
        lines = [self.origin, str(self.size), root, *self.extensions]
        return "".join(line + "\n" for line in lines)


def parse_checkpoint_body(text: str) -> Checkpoint:
    """Parse a checkpoint note text (without signatures).

    Args:
        text: ``origin\\nsize\\nbase64-root\\n`` plus optional extension lines.

    Returns:
        The checkpoint.

    Raises:
        ProofError: (``checkpoint_invalid``) the text is not a checkpoint body.
    """
    if not text.endswith("\n"):
        raise _invalid("checkpoint body must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise _invalid(f"checkpoint body has {len(lines)} lines, at least 3 needed")
    for n, line in enumerate(lines, 1):
        if not line:
            raise _invalid(f"checkpoint line {n} is empty")
        if _CONTROL.search(line):
            raise _invalid(f"checkpoint line {n} contains a control character")
    origin, size_text, root_text, *extensions = lines
    if not _DECIMAL.fullmatch(size_text):
        raise _invalid(
            f"checkpoint size {size_text!r} is not a decimal without leading zeros"
        )
    size = int(size_text)
    if size > MAX_TREE_SIZE:
        raise _invalid(f"checkpoint size {size} exceeds 2^63-1")
    root = _b64decode(root_text)
    if root is None or base64.b64encode(root).decode("ascii") != root_text:
        raise _invalid(f"checkpoint root hash {root_text!r} is not canonical base64")
    if len(root) != _ROOT_SIZE:
        raise _invalid(f"checkpoint root hash must be 32 bytes, got {len(root)}")
    try:
        return Checkpoint(origin, size, root, tuple(extensions))
    except ValueError as exc:
        raise _invalid(str(exc)) from None


def sign_checkpoint(cp: Checkpoint, signer: NoteSigner) -> str:
    """Sign a checkpoint as a note.

    Args:
        cp: The checkpoint.
        signer: The log's key (its name SHOULD equal the origin).

    Returns:
        The signed checkpoint note.
    """
    return sign_note(cp.to_body(), signer)


def verify_checkpoint(
    text: str | bytes,
    public_keys: NoteVerifier | str | Sequence[NoteVerifier | str],
    *,
    origin: str | None = None,
) -> Checkpoint:
    """Open a signed checkpoint and parse its body.

    Args:
        text: The signed checkpoint note.
        public_keys: The log's trusted keys (:class:`NoteVerifier` or vkeys).
        origin: If given, the checkpoint's origin line must equal it.

    Returns:
        The verified checkpoint.

    Raises:
        ProofError: (``checkpoint_invalid``) malformed, no known key, a bad
            signature, a malformed body, or another origin.
    """
    cp = parse_checkpoint_body(open_note(text, public_keys).text)
    if origin is not None and cp.origin != origin:
        raise _invalid(f"checkpoint origin is {cp.origin!r}, expected {origin!r}")
    return cp


# ---------------------------------------------------------------------- cosignatures


def cosignature_key_id(name: str, public_key: PublicKey | bytes) -> int:
    """Key ID of a cosigner: ``SHA-256(name || 0x0A || 0x04 || key)[:4]`` for Ed25519.

    SM2 cosigners use :data:`SIG_TYPE_SM2_COSIGNATURE` in place of ``0x04``.

    Args:
        name: The witness (cosigner) name.
        public_key: Its public key (raw bytes: 32 = Ed25519, 64 = SM2).

    Raises:
        ValueError: not a 32-byte Ed25519 or 64-byte SM2 key.
    """
    key = _note_key(public_key)
    return note_key_id(name, _NOTE_TYPES[key.alg][1], key.raw)


def cosignature_message(body: str, timestamp: int) -> bytes:
    """The bytes a cosignature/v1 signs.

    Args:
        body: The checkpoint note text (final newline included, no signatures).
        timestamp: POSIX seconds.

    Returns:
        ``"cosignature/v1\\ntime <timestamp>\\n" + body``, UTF-8.
    """
    return f"{_COSIGNATURE_HEADER}time {timestamp}\n{body}".encode()


def _checkpoint_text(note_text: str | bytes) -> tuple[str, list[NoteSignature]]:
    """The checkpoint body of a signed note (or of a bare body) and its sigs."""
    text = _as_text(note_text)
    body, sigs = (text, []) if "\n\n" not in text else _split_note(text)
    parse_checkpoint_body(body)
    return body, sigs


def cosign_checkpoint(
    note_text: str | bytes, witness_name: str, private_key: Signer, timestamp: int
) -> str:
    """Make a witness cosignature (tlog-cosignature/v1; Ed25519, or SM2 privately) line.

    The caller has already verified the log's signature and consistency; this
    only signs.

    Args:
        note_text: The signed checkpoint (or just its body).
        witness_name: The cosigner's key name.
        private_key: The cosigner's Ed25519 or SM2 key (any signer).
        timestamp: POSIX seconds, ``0 <= timestamp <= 2^63 - 1``.

    Returns:
        The signature line, final newline included: append it to the note.

    Raises:
        ProofError: (``checkpoint_invalid``) ``note_text`` is not a checkpoint.
        ValueError: bad witness name, key or timestamp.
    """
    problem = _name_problem(witness_name)
    if problem:
        raise ValueError(problem)
    if private_key.alg not in _NOTE_TYPES:
        raise ValueError(f"cosigner keys must be Ed25519 or SM2, not {private_key.alg}")
    if type(timestamp) is not int or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise ValueError(f"timestamp {timestamp!r} is not in 0..2^63-1")
    body, _ = _checkpoint_text(note_text)
    key_id = cosignature_key_id(witness_name, private_key.public_key)
    sig = private_key.sign(cosignature_message(body, timestamp))
    value = key_id.to_bytes(4, "big") + timestamp.to_bytes(8, "big") + sig
    return f"{_SIG_PREFIX}{witness_name} {base64.b64encode(value).decode('ascii')}\n"


def verify_cosignature(
    note_text: str | bytes, witness_name: str, public_key: PublicKey | bytes
) -> int:
    """Verify a witness's cosignature on a checkpoint note.

    Lines from other keys are ignored (the log's own signature is checked by
    :func:`verify_checkpoint`). If the witness signed more than once, the first
    line counts, as in the Go note package.

    Args:
        note_text: The checkpoint note with its signature lines.
        witness_name: The cosigner's key name.
        public_key: The cosigner's public key (raw: 32 = Ed25519, 64 = SM2).

    Returns:
        The cosignature's timestamp (POSIX seconds).

    Raises:
        ProofError: (``checkpoint_invalid``) malformed note or checkpoint, no
            cosignature from this witness, or a bad one.
        ValueError: not a 32-byte Ed25519 or 64-byte SM2 public key.
    """
    key = _note_key(public_key)
    key_id = cosignature_key_id(witness_name, key)
    body, sigs = _checkpoint_text(note_text)
    who = f"{witness_name}+{key_id:08x}"
    match = next(
        (s for s in sigs if (s.name, s.key_id) == (witness_name, key_id)), None
    )
    if match is None:
        raise _invalid(f"checkpoint has no cosignature from witness {who}")
    if len(match.signature) != _COSIG_SIZE:
        raise _invalid(
            f"cosignature from {who} has {len(match.signature)} bytes after the key "
            f"ID, expected {_COSIG_SIZE} (timestamp and signature)"
        )
    timestamp = int.from_bytes(match.signature[:8], "big")
    if timestamp > MAX_TIMESTAMP:
        raise _invalid(f"cosignature from {who} has timestamp above 2^63-1")
    message = cosignature_message(body, timestamp)
    if not key.verify(message, match.signature[8:]):
        raise _invalid(f"cosignature from {who} does not verify")
    return timestamp
