"""The sm2-sm3 suite: cross-checked against gmalg (an independent pure-Python SM2),
encodings normalised, and every signing site working with it unchanged."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

import gmalg
import pytest

from exchange.core import httpsig, sm2
from exchange.core.items import sign_item, signing_input, verify_item
from exchange.core.note import (
    SIG_TYPE_SM2,
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    cosign_checkpoint,
    note_key_id,
    open_note,
    sign_checkpoint,
    sign_note,
    verify_checkpoint,
    verify_cosignature,
)
from exchange.core.roster import sign_document, verify_document
from exchange.core.signing import (
    CONTEXT_ITEM,
    CONTEXT_SITE_RECORD,
    PrivateKey,
    PublicKey,
    generate_key,
    load_private_key,
    normalize_public_key,
    save_private_key,
    signing_message,
    suite,
    suites,
)
from exchange.errors import AuthError, ConfigError, ProofError, VerificationError
from exchange.templates import template

UID = b"1234567812345678"
MESSAGES = [
    b"",
    b"abc",
    "淮北市杜集区人大常委会 安全生产法联合执法检查方案".encode(),
    bytes(range(256)) * 20,
]


def _gmalg_keypair() -> tuple[bytes, bytes]:
    """(32-byte d, 64-byte x||y) made by gmalg."""
    sk, pk = gmalg.SM2().generate_keypair()
    assert pk[0] == 4 and len(pk) == 65
    return sk.rjust(32, b"\0"), pk[1:]


def _gmalg_sign(d: bytes, pub: bytes, message: bytes) -> bytes:
    r, s = gmalg.SM2(sk=d, uid=UID, pk=b"\x04" + pub).sign(message)
    return r.rjust(32, b"\0") + s.rjust(32, b"\0")


def _gmalg_verify(pub: bytes, message: bytes, sig: bytes) -> bool:
    return bool(
        gmalg.SM2(uid=UID, pk=b"\x04" + pub).verify(message, sig[:32], sig[32:])
    )


# ------------------------------------------------------------ cross-implementation


def test_suite_is_registered() -> None:
    assert "sm2-sm3" in suites()
    assert suite("sm2-sm3").public_key_size == 64
    key = generate_key(alg="sm2-sm3", key_id="huaibei-duji#k1")
    assert key.alg == "sm2-sm3" and len(key.public_key.raw) == 64
    assert "private" not in repr(key).lower() or "secret" not in repr(key).lower()
    assert key.secret_bytes().hex() not in repr(key)


@pytest.mark.parametrize("n", range(3))
def test_ours_verified_by_gmalg(n: int) -> None:
    key = generate_key("sm2-sm3")
    for message in MESSAGES:
        sig = key.sign(message)
        assert len(sig) == 64
        assert _gmalg_verify(key.public_key.raw, message, sig)
        assert not _gmalg_verify(key.public_key.raw, message + b"x", sig)


@pytest.mark.parametrize("n", range(3))
def test_gmalg_verified_by_ours(n: int) -> None:
    d, pub = _gmalg_keypair()
    public = PublicKey("sm2-sm3", pub)
    for message in MESSAGES:
        sig = _gmalg_sign(d, pub, message)
        assert public.verify(message, sig)
        assert not public.verify(message + b"x", sig)
    # A gmalg key pair loads as our private key (d || x || y) and signs for gmalg.
    ours = PrivateKey("sm2-sm3", d + pub)
    assert ours.public_key.raw == pub
    assert _gmalg_verify(pub, b"abc", ours.sign(b"abc"))


def test_tampering_and_wrong_keys_fail() -> None:
    key, other = generate_key("sm2-sm3"), generate_key("sm2-sm3")
    sig = key.sign(b"message")
    assert key.public_key.verify(b"message", sig)
    assert not key.public_key.verify(b"messagf", sig)
    assert not other.public_key.verify(b"message", sig)
    flipped = bytes([sig[0] ^ 1]) + sig[1:]
    assert not key.public_key.verify(b"message", flipped)
    # Malformed input is "not valid", never an exception.
    for bad in (b"", sig[:63], sig + b"\0", b"\0" * 64, b"\xff" * 64):
        assert not key.public_key.verify(b"message", bad)
    assert not PublicKey("sm2-sm3", b"\x01" * 64).verify(b"message", sig)
    assert not PublicKey("sm2-sm3", key.public_key.raw[:32]).verify(b"message", sig)


def test_signer_id_is_the_default_one() -> None:
    # A signature made with another signer ID does not verify: Z binds the ID.
    d, pub = _gmalg_keypair()
    r, s = gmalg.SM2(sk=d, uid=b"another-id", pk=b"\x04" + pub).sign(b"m")
    assert not PublicKey("sm2-sm3", pub).verify(
        b"m", r.rjust(32, b"\0") + s.rjust(32, b"\0")
    )


# ------------------------------------------------------------------- encodings


def test_signature_der_round_trip() -> None:
    key = generate_key("sm2-sm3")
    for message in MESSAGES:
        raw = key.sign(message)
        der = sm2.signature_to_der(raw)
        assert der[0] == 0x30
        assert sm2.signature_from_der(der) == raw
    # Small r/s need no padding in DER but are padded to 32 bytes in raw form.
    raw = (5).to_bytes(32, "big") + (0x80).to_bytes(32, "big")
    der = sm2.signature_to_der(raw)
    assert der == bytes.fromhex("3007020105020200 80".replace(" ", ""))
    assert sm2.signature_from_der(der) == raw


@pytest.mark.parametrize(
    "der",
    [
        "3006020105020105ff",  # trailing byte
        "300602010502018",  # truncated
        "3007020200050201 05",  # non-minimal integer
        "30060201ff020105",  # negative
        "3006020100020105",  # r = 0
        "3003020105",  # s missing
        "310602010502 0105",  # not a SEQUENCE
        "30810602010502 0105",  # non-minimal length
    ],
)
def test_bad_der_signatures_are_refused(der: str) -> None:
    with pytest.raises(ValueError):
        sm2.signature_from_der(bytes.fromhex(der.replace(" ", "")))


def test_public_key_encodings() -> None:
    key = generate_key("sm2-sm3")
    raw = key.public_key.raw
    spki = sm2.public_key_to_der(raw)
    assert spki.startswith(
        bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d034200")
    )
    for form in (raw, b"\x04" + raw, spki):
        assert sm2.normalize_public_key(form) == raw
        assert normalize_public_key("sm2-sm3", form) == raw
    assert normalize_public_key("ed25519", generate_key().public_key.raw) != raw
    off_curve = raw[:63] + bytes([raw[63] ^ 1])
    for bad in (
        off_curve,
        b"\x02" + raw,
        raw[:33],
        spki[:-1],
        spki + b"\0",
        spki.replace(
            bytes.fromhex("2a811ccf5501822d"), bytes.fromhex("2a8648ce3d030107")
        ),
    ):
        with pytest.raises(ValueError):
            normalize_public_key("sm2-sm3", bad)
    with pytest.raises(ValueError):
        normalize_public_key("ed25519", raw)
    with pytest.raises(VerificationError) as exc:
        normalize_public_key("rsa", raw)
    assert exc.value.code.value == "unsupported_algorithm"


def test_key_files_round_trip_and_mismatched_pairs_are_refused(tmp_path: Path) -> None:
    key = generate_key("sm2-sm3", "huaibei-duji#k2")
    save_private_key(key, tmp_path / "k.key")
    loaded = load_private_key(tmp_path / "k.key")
    assert loaded.alg == "sm2-sm3" and loaded.public_key == key.public_key
    assert loaded.public_key.verify(b"x", key.sign(b"x"))
    other = generate_key("sm2-sm3")
    with pytest.raises(ValueError, match="does not match"):
        PrivateKey("sm2-sm3", key.secret_bytes()[:32] + other.public_key.raw)
    with pytest.raises(ValueError, match="96 bytes"):
        PrivateKey("sm2-sm3", key.secret_bytes()[:32])
    with pytest.raises(ValueError, match="out of range"):
        PrivateKey("sm2-sm3", b"\0" * 32 + key.public_key.raw)
    with pytest.raises(ConfigError):
        save_private_key(key, tmp_path / "k.key")


# ------------------------------------------------------------ every signing site


def test_items_sign_and_verify_with_both_suites() -> None:
    item = template("lesson", "huaibei-duji")
    for alg in ("ed25519", "sm2-sm3"):
        key = generate_key(alg, "huaibei-duji#k1")
        signed = sign_item(item, key)
        assert signed["sig"]["alg"] == alg
        verify_item(signed, key.public_key)
        # The same bytes are signed whichever the suite.
        assert signing_input(item) == signing_message(
            CONTEXT_ITEM, signing_input(item)[len(CONTEXT_ITEM) :]
        )
        tampered = {**signed, "item": {**signed["item"], "title": "篡改"}}
        with pytest.raises(VerificationError):
            verify_item(tampered, key.public_key)
    ed, sm = (
        generate_key("ed25519", "huaibei-duji#k1"),
        generate_key("sm2-sm3", "huaibei-duji#k1"),
    )
    with pytest.raises(VerificationError, match="does not match key alg"):
        verify_item(sign_item(item, sm), ed.public_key)


def test_signed_documents_with_sm2() -> None:
    node = generate_key("sm2-sm3", "huaihai#k1")
    signed = sign_document(
        {"id": "huaibei-duji", "version": 1}, node, CONTEXT_SITE_RECORD
    )
    assert signed["sig"]["alg"] == "sm2-sm3"
    doc = verify_document(
        signed, {"huaihai#k1": node.public_key}, CONTEXT_SITE_RECORD, "record"
    )
    assert doc["id"] == "huaibei-duji"


def test_request_signatures_with_sm2() -> None:
    key = generate_key("sm2-sm3", "huaibei-duji#k1")
    body = b'{"x":1}'
    headers = {"Content-Type": "application/json"}
    headers.update(
        httpsig.sign_request(
            key,
            "POST",
            "/v1/items",
            "127.0.0.1:8700",
            headers,
            body,
            created=1_800_000_000,
            nonce="n-1",
            scheme="http",
        )
    )
    assert 'alg="sm2-sm3"' in headers["Signature-Input"]
    verified = httpsig.verify_request(
        "POST",
        "/v1/items",
        "127.0.0.1:8700",
        headers,
        body,
        key_lookup=lambda kid: key.public_key,
        now=1_800_000_000,
        scheme="http",
    )
    assert verified.alg == "sm2-sm3"
    with pytest.raises(AuthError):
        httpsig.verify_request(
            "POST",
            "/v1/items",
            "127.0.0.1:8700",
            headers,
            b'{"x":2}',
            key_lookup=lambda kid: key.public_key,
            now=1_800_000_000,
            scheme="http",
        )
    # A key of the other suite under the same id: the claimed alg does not match.
    with pytest.raises(AuthError, match="claims alg"):
        httpsig.verify_request(
            "POST",
            "/v1/items",
            "127.0.0.1:8700",
            headers,
            body,
            key_lookup=lambda kid: generate_key().public_key,
            now=1_800_000_000,
            scheme="http",
        )


def test_checkpoints_and_cosignatures_with_sm2() -> None:
    log_key = generate_key("sm2-sm3")
    signer = NoteSigner("huaihai.example/log", log_key)
    raw = log_key.public_key.raw
    assert signer.key_id == note_key_id("huaihai.example/log", SIG_TYPE_SM2, raw)
    assert NoteVerifier.for_key("huaihai.example/log", raw) == signer.verifier
    vkey = signer.vkey
    assert NoteVerifier.from_vkey(vkey) == signer.verifier
    assert base64.b64decode(vkey.split("+", 2)[2]).startswith(SIG_TYPE_SM2)
    cp = Checkpoint("huaihai.example/log", 7, b"\x11" * 32)
    note = sign_checkpoint(cp, signer)
    assert verify_checkpoint(note, [vkey]) == cp
    tampered = note.replace("\n7\n", "\n8\n")
    with pytest.raises(ProofError):
        verify_checkpoint(tampered, [vkey])
    # An Ed25519 log key under the same name is a different key: the SM2 line is ignored.
    ed = NoteSigner("huaihai.example/log", generate_key())
    with pytest.raises(ProofError, match="no signature from a known key"):
        open_note(note, [ed.verifier])
    # Signed by both suites during a migration: each verifier finds its own line.
    both = sign_note(cp.to_body(), [ed, signer])
    assert [s.name for s in open_note(both, [ed.verifier]).unverified] == [
        "huaihai.example/log"
    ]
    assert verify_checkpoint(both, [vkey]) == verify_checkpoint(both, [ed.vkey]) == cp
    # Witness cosignatures by an SM2 witness.
    witness = generate_key("sm2-sm3")
    line = cosign_checkpoint(note, "yangtze.example/log", witness, 1_800_000_000)
    assert (
        verify_cosignature(note + line, "yangtze.example/log", witness.public_key)
        == 1_800_000_000
    )
    assert verify_checkpoint(note + line, [vkey]) == cp  # the log's verifiers ignore it
    with pytest.raises(ProofError):
        verify_cosignature(
            note + line, "yangtze.example/log", generate_key("sm2-sm3").public_key
        )
    # A truncated vkey is refused.
    name, kid, b64 = vkey.split("+", 2)
    short = base64.b64encode(base64.b64decode(b64)[:-1]).decode()
    with pytest.raises(ProofError, match="64-byte SM2"):
        NoteVerifier.from_vkey(f"{name}+{kid}+{short}")


class CountingSigner:
    """A signer that delegates to a key and counts calls: the shape of a vendor
    signing-server (签名验签服务器) client."""

    def __init__(self, key: PrivateKey) -> None:
        self._key = key
        self.calls = 0

    @property
    def key_id(self) -> str:
        return self._key.key_id

    @property
    def alg(self) -> str:
        return self._key.alg

    @property
    def public_key(self) -> PublicKey:
        return self._key.public_key

    def sign(self, message: bytes) -> bytes:
        self.calls += 1
        return self._key.sign(message)


@pytest.mark.parametrize("alg", ["ed25519", "sm2-sm3"])
def test_one_signer_interface_serves_items_requests_and_checkpoints(alg: str) -> None:
    signer = CountingSigner(generate_key(alg, "huaibei-duji#k1"))
    signed = sign_item(template("lesson", "huaibei-duji"), signer)  # type: ignore[arg-type]
    verify_item(signed, signer.public_key)
    headers = httpsig.sign_request(
        signer,
        "GET",
        "/v1/items",
        "h",
        {},
        None,
        created=1_800_000_000,
        nonce=secrets.token_hex(4),
    )
    httpsig.verify_request(
        "GET",
        "/v1/items",
        "h",
        headers,
        None,
        key_lookup=lambda kid: signer.public_key,
        now=1_800_000_000,
    )
    note = sign_checkpoint(
        Checkpoint("o.example/log", 1, b"\0" * 32), NoteSigner("o.example/log", signer)
    )
    verify_checkpoint(note, [NoteVerifier.for_key("o.example/log", signer.public_key)])
    line = cosign_checkpoint(note, "w.example/log", signer, 1)
    verify_cosignature(note + line, "w.example/log", signer.public_key)
    assert signer.calls == 4
