"""Tests for :mod:`exchange.core.note`: signed notes, checkpoints, cosignatures.

The transcribed examples come from c2sp.org/signed-note, c2sp.org/tlog-checkpoint
and golang.org/x/mod sumdb (see ``shared/vectors/SOURCES.md``).
"""

from __future__ import annotations

import base64
import json
from functools import cache
from typing import Any

import pytest

from exchange.core.merkle import EMPTY_ROOT, leaf_hash
from exchange.core.note import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    cosign_checkpoint,
    cosignature_key_id,
    cosignature_message,
    note_key_id,
    open_note,
    parse_checkpoint_body,
    sign_checkpoint,
    sign_note,
    verify_checkpoint,
    verify_cosignature,
    vkey_for,
)
from exchange.core.signing import generate_key
from exchange.errors import ProofError
from schemas.errors import ErrorCode
from tests.support import vectors_dir

EXAMPLES = vectors_dir("transcribed", "signed-note-examples.json")

# The c2sp.org/tlog-cosignature example: the spec's checkpoint with a witness line.
SPEC_BODY = (
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)
SPEC_WITNESS_LINE = (
    "\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWX"
    "EhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)


@cache
def _examples() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(EXAMPLES.read_text(encoding="utf-8"))
    return data


def _notes() -> list[Any]:
    return [pytest.param(ex, id=ex["name"]) for ex in _examples()["signedNotes"]]


def _invalid(exc: pytest.ExceptionInfo[ProofError]) -> str:
    assert exc.value.code is ErrorCode.CHECKPOINT_INVALID
    return exc.value.message


def _signer(name: str = "example.org/log") -> NoteSigner:
    return NoteSigner(name, generate_key())


def _checkpoint(size: int = 5) -> Checkpoint:
    return Checkpoint("example.org/log", size, leaf_hash(b"root-%d" % size))


# ------------------------------------------------------------------ transcribed


@pytest.mark.parametrize("example", _notes())
def test_transcribed_signed_note(example: dict[str, Any]) -> None:
    if example["valid"]:
        note = open_note(example["note"], [example["vkey"]])
        assert note.text == example["text"]
        [sig] = note.signatures
        assert sig.name == example["keyName"]
        assert f"{sig.key_id:08x}" == example["keyIdHex"]
        assert note.unverified == ()
        verifier = NoteVerifier.from_vkey(example["vkey"])
        assert (verifier.name, f"{verifier.key_id:08x}") == (
            example["keyName"],
            example["keyIdHex"],
        )
        assert verifier.vkey == example["vkey"]
        assert vkey_for(verifier.name, verifier.public) == example["vkey"]
        # Bytes in, same result; and a NoteVerifier works like its vkey string.
        assert open_note(example["note"].encode(), verifier).text == example["text"]
    else:
        with pytest.raises(ProofError) as exc:
            open_note(example["note"], [example["vkey"]])
        _invalid(exc)


def test_skey_resigns_byte_identically() -> None:
    [example] = [ex for ex in _examples()["signedNotes"] if "skey" in ex]
    signer = NoteSigner.from_skey(example["skey"])
    assert signer.vkey == example["vkey"]
    assert f"{signer.key_id:08x}" == example["keyIdHex"]
    assert sign_note(example["text"], signer) == example["note"]
    assert example["skey"] not in repr(signer)


@pytest.mark.parametrize(
    "example", [pytest.param(c, id=c["name"]) for c in _examples()["checkpoints"]]
)
def test_transcribed_checkpoint_bodies(example: dict[str, Any]) -> None:
    body = example.get("text") or example["note"].split("\n\n")[0] + "\n"
    cp = parse_checkpoint_body(body)
    assert cp.size == example["size"]
    assert cp.root_hash == base64.b64decode(example["rootHashB64"])
    assert cp.extensions == ()
    if "origin" in example:
        assert cp.origin == example["origin"]
    assert cp.to_body() == body


def test_sumdb_body_root_is_hello_world_leaf() -> None:
    [example] = [c for c in _examples()["checkpoints"] if "text" in c]
    assert parse_checkpoint_body(example["text"]).root_hash == leaf_hash(b"hello world")


def test_cosignature_matches_spec_example() -> None:
    assert cosignature_message(SPEC_BODY, 1679315147) == (
        b"cosignature/v1\ntime 1679315147\n" + SPEC_BODY.encode()
    )
    # Sign the spec body with our own log key, append the spec's witness line:
    # the witness line is an unknown key to the log verifier, and decodes to
    # key ID || 8-byte big-endian timestamp 1679315147 || 64-byte signature.
    log = _signer("example.com/behind-the-sofa")
    note = open_note(sign_note(SPEC_BODY, log) + SPEC_WITNESS_LINE, log.verifier)
    [witness] = note.unverified
    assert witness.name == "witness.example.com/w1"
    assert len(witness.signature) == 72
    assert int.from_bytes(witness.signature[:8], "big") == 1679315147
    with pytest.raises(ProofError, match="no cosignature"):
        verify_cosignature(
            SPEC_BODY + "\n" + SPEC_WITNESS_LINE,
            "witness.example.com/w1",
            generate_key().public_key,
        )


# -------------------------------------------------------------------- notes


def test_sign_and_open_multiple_signers_and_unknown_keys() -> None:
    a, b, c = _signer("a.example"), _signer("b.example"), _signer("c.example")
    text = "hello\nworld\n"
    signed = sign_note(text, [a, b, c])
    note = open_note(signed, [b.vkey])
    assert note.text == text
    assert [s.name for s in note.signatures] == ["b.example"]
    assert [s.name for s in note.unverified] == ["a.example", "c.example"]
    assert open_note(signed, [a.verifier, c.vkey]).text == text
    with pytest.raises(ProofError) as exc:
        open_note(signed, [_signer("a.example").verifier])
    assert "no signature from a known key" in _invalid(exc)


def test_open_accepts_blank_lines_in_text_per_spec() -> None:
    # c2sp.org/signed-note: the text is separated by the LAST blank line.
    signer = _signer()
    text = "first\n\nsecond\n"
    with pytest.raises(ValueError):
        sign_note(text, signer)  # we never produce such notes ...
    value = signer.key_id.to_bytes(4, "big") + signer.sign(text.encode())
    line = f"\u2014 {signer.name} {base64.b64encode(value).decode()}\n"
    note = open_note(f"{text}\n{line}", signer.verifier)  # ... but accept them
    assert note.text == text


@pytest.mark.parametrize(
    ("note", "reason"),
    [
        ("no blank line\n\u2014 a AAAAAAA=\n", "no blank line"),
        ("text\n\n", "no signature lines"),
        ("text\n\n\u2014 a AAAAAAAA", "newline"),
        ("text\n\n- a AAAAAAAA\n", "em dash"),
        ("text\n\n\u2014 a+b AAAAAAAA\n", "'+'"),
        ("text\n\n\u2014 a AAAA\u00e9AAA\n", "base64"),
        ("text\n\n\u2014 a AAAAAA==\n", "too short"),
        ("text\n\n\u2014 a\n", "no signature"),
        ("te\txt\n\n\u2014 a AAAAAAAA\n", "control character U+0009"),
        ("text\r\n\n\u2014 a AAAAAAAA\n", "control character U+000D"),
        ("text\n\n" + "\u2014 a AAAAAAAA\n" * 101, "more than 100"),
    ],
)
def test_malformed_notes(note: str, reason: str) -> None:
    with pytest.raises(ProofError) as exc:
        open_note(note, _signer().verifier)
    assert reason in _invalid(exc)


def test_open_rejects_invalid_utf8_bytes() -> None:
    with pytest.raises(ProofError, match="UTF-8"):
        open_note(b"text\xff\n\n\xe2\x80\x94 a AAAAAAAA\n", _signer().verifier)


def test_bad_signature_from_known_key_rejects_even_with_a_good_one() -> None:
    a, b = _signer("a.example"), _signer("b.example")
    signed = sign_note("hi\n", [a, b])
    text, sigs = signed.split("\n\n")
    line_a, line_b, _ = sigs.split("\n")
    raw = bytearray(base64.b64decode(line_b.split(" ")[2]))
    raw[-1] ^= 1
    bad_b = f"\u2014 b.example {base64.b64encode(bytes(raw)).decode()}"
    with pytest.raises(ProofError) as exc:
        open_note(f"{text}\n\n{line_a}\n{bad_b}\n", [a.verifier, b.verifier])
    assert "b.example" in _invalid(exc)


@pytest.mark.parametrize(
    "text", ["no newline", "", "\nleading blank\n", "a\n\nb\n", "tab\there\n"]
)
def test_sign_note_refuses_unsignable_text(text: str) -> None:
    with pytest.raises(ValueError):
        sign_note(text, _signer())


def test_sign_note_refuses_no_or_repeated_signers() -> None:
    signer = _signer()
    with pytest.raises(ValueError):
        sign_note("x\n", [])
    with pytest.raises(ValueError, match="twice"):
        sign_note("x\n", [signer, signer])


@pytest.mark.parametrize(
    "vkey",
    [
        "",
        "name",
        "name+530d903a",
        "name+530d903+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2",
        "example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "example.com/bar+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "example.com/foo+530d903a+BOkyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "bad name+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    ],
)
def test_malformed_vkeys(vkey: str) -> None:
    with pytest.raises(ProofError) as exc:
        NoteVerifier.from_vkey(vkey)
    _invalid(exc)


def test_key_ids_and_constructors() -> None:
    key = generate_key()
    raw = key.public_key.raw
    v = NoteVerifier.for_key("n.example", key.public_key)
    assert v.key_id == note_key_id("n.example", 0x01, raw)
    assert cosignature_key_id("n.example", raw) == note_key_id("n.example", 0x04, raw)
    assert cosignature_key_id("n.example", raw) != v.key_id
    with pytest.raises(ValueError, match="does not match"):
        NoteVerifier("n.example", v.key_id ^ 1, v.public)
    with pytest.raises(ValueError):
        NoteSigner("has space", key)
    with pytest.raises(ValueError):
        NoteSigner.from_skey("PRIVATE+KEY+n+00000000+AQ==")
    signer = NoteSigner("n.example", key)
    assert signer.verifier == v
    with pytest.raises(ValueError, match="wrong key ID"):
        seed = base64.b64encode(b"\x01" + key.secret_bytes()).decode()
        NoteSigner.from_skey(f"PRIVATE+KEY+n.example+{v.key_id ^ 1:08x}+{seed}")


# --------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip() -> None:
    signer = _signer()
    for cp in [
        _checkpoint(0),
        _checkpoint(1),
        Checkpoint("example.org/log", 2**63 - 1, EMPTY_ROOT, ("ext one", "ext2")),
    ]:
        signed = sign_checkpoint(cp, signer)
        assert verify_checkpoint(signed, [signer.vkey]) == cp
        assert verify_checkpoint(signed, signer.verifier, origin=cp.origin) == cp
        assert parse_checkpoint_body(cp.to_body()) == cp


def test_checkpoint_body_format() -> None:
    cp = Checkpoint("example.org/log", 10, EMPTY_ROOT)
    assert cp.to_body() == (
        "example.org/log\n10\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
    )


def _tamper_line(signed: str, line_no: int, new: str) -> str:
    body, sigs = signed.split("\n\n")
    lines = body.split("\n")
    lines[line_no] = new
    return "\n".join(lines) + "\n\n" + sigs


def test_tampered_checkpoints_fail() -> None:
    signer = _signer()
    cp = _checkpoint(5)
    signed = sign_checkpoint(cp, signer)
    other_root = base64.b64encode(leaf_hash(b"other")).decode()
    for tampered in [
        _tamper_line(signed, 1, "6"),
        _tamper_line(signed, 2, other_root),
        _tamper_line(signed, 0, "example.org/other"),
        signed.replace(signed.split(" ")[-1][:8], "AAAAAAAA"),
    ]:
        with pytest.raises(ProofError) as exc:
            verify_checkpoint(tampered, [signer.vkey])
        _invalid(exc)
    with pytest.raises(ProofError) as exc:
        verify_checkpoint(signed, [_signer().vkey])
    assert "no signature from a known key" in _invalid(exc)
    with pytest.raises(ProofError) as exc:
        verify_checkpoint(signed, [signer.vkey], origin="example.org/other")
    assert "origin" in _invalid(exc)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("o\n1\n" + base64.b64encode(EMPTY_ROOT).decode(), "newline"),
        ("o\n1\n", "at least 3"),
        ("o\n01\n" + base64.b64encode(EMPTY_ROOT).decode() + "\n", "leading zeros"),
        ("o\n+1\n" + base64.b64encode(EMPTY_ROOT).decode() + "\n", "decimal"),
        ("o\n\u0661\n" + base64.b64encode(EMPTY_ROOT).decode() + "\n", "decimal"),
        ("o\n1_0\n" + base64.b64encode(EMPTY_ROOT).decode() + "\n", "decimal"),
        (
            "o\n9223372036854775808\n" + base64.b64encode(EMPTY_ROOT).decode() + "\n",
            "2^63",
        ),
        ("o\n1\n" + base64.b64encode(b"x" * 31).decode() + "\n", "32 bytes"),
        ("o\n1\n" + base64.b64encode(EMPTY_ROOT).decode().rstrip("=") + "\n", "base64"),
        ("o\n1\n" + base64.urlsafe_b64encode(b"\xfb" * 32).decode() + "\n", "base64"),
        ("\n1\n" + base64.b64encode(EMPTY_ROOT).decode() + "\n", "line 1 is empty"),
        ("o\n1\n" + base64.b64encode(EMPTY_ROOT).decode() + "\n\n", "line 4 is empty"),
    ],
)
def test_malformed_checkpoint_bodies(body: str, reason: str) -> None:
    with pytest.raises(ProofError) as exc:
        parse_checkpoint_body(body)
    assert reason in _invalid(exc)


def test_checkpoint_constructor_validates() -> None:
    with pytest.raises(ValueError):
        Checkpoint("", 1, EMPTY_ROOT)
    with pytest.raises(ValueError):
        Checkpoint("o", -1, EMPTY_ROOT)
    with pytest.raises(ValueError):
        Checkpoint("o", 1, b"short")
    with pytest.raises(ValueError):
        Checkpoint("o", 1, EMPTY_ROOT, ("bad\nline",))


# -------------------------------------------------------------- cosignatures


def test_cosignature_round_trip() -> None:
    log, witness = _signer(), generate_key()
    signed = sign_checkpoint(_checkpoint(7), log)
    line = cosign_checkpoint(signed, "witness.example/w1", witness, 1_700_000_000)
    assert line.startswith("\u2014 witness.example/w1 ") and line.endswith("\n")
    cosigned = signed + line
    assert verify_cosignature(cosigned, "witness.example/w1", witness.public_key) == (
        1_700_000_000
    )
    # The log's verification ignores the witness line (unknown key to it) ...
    assert verify_checkpoint(cosigned, [log.vkey]) == _checkpoint(7)
    # ... and a bare body can be cosigned too, with the same result.
    body_line = cosign_checkpoint(
        _checkpoint(7).to_body(), "witness.example/w1", witness, 1_700_000_000
    )
    assert body_line == line  # Ed25519 is deterministic
    raw = base64.b64decode(line.split(" ")[2])
    assert len(raw) == 4 + 8 + 64
    assert int.from_bytes(raw[:4], "big") == cosignature_key_id(
        "witness.example/w1", witness.public_key
    )
    assert int.from_bytes(raw[4:12], "big") == 1_700_000_000


def test_cosignature_failures() -> None:
    log, witness = _signer(), generate_key()
    signed = sign_checkpoint(_checkpoint(7), log)
    line = cosign_checkpoint(signed, "w.example", witness, 1234)
    # Wrong key, wrong name: no matching line.
    for name, key in [("w.example", generate_key()), ("v.example", witness)]:
        with pytest.raises(ProofError, match="no cosignature") as exc:
            verify_cosignature(signed + line, name, key.public_key)
        _invalid(exc)
    # Cosignature moved to another checkpoint.
    other = sign_checkpoint(_checkpoint(8), log)
    with pytest.raises(ProofError, match="does not verify"):
        verify_cosignature(other + line, "w.example", witness.public_key)
    # Timestamp altered.
    raw = bytearray(base64.b64decode(line.split(" ")[2]))
    raw[11] ^= 1
    bad = f"\u2014 w.example {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(ProofError, match="does not verify"):
        verify_cosignature(signed + bad, "w.example", witness.public_key)
    # Wrong length after the key ID.
    short = f"\u2014 w.example {base64.b64encode(bytes(raw[:-1])).decode()}\n"
    with pytest.raises(ProofError, match="expected 72"):
        verify_cosignature(signed + short, "w.example", witness.public_key)
    # Not a checkpoint.
    with pytest.raises(ProofError):
        cosign_checkpoint("not a checkpoint\n", "w.example", witness, 1)
    with pytest.raises(ValueError):
        cosign_checkpoint(signed, "w.example", witness, -1)
    with pytest.raises(ValueError):
        cosign_checkpoint(signed, "w.example", witness, 2**63)


def test_cosigner_key_is_not_a_note_key() -> None:
    # The same key and name as a note signer has a different (0x01) key ID, so a
    # note signature is never mistaken for a cosignature, or the reverse.
    key = generate_key()
    signer = NoteSigner("w.example", key)
    signed = sign_checkpoint(_checkpoint(3), signer)
    with pytest.raises(ProofError, match="no cosignature"):
        verify_cosignature(signed, "w.example", key.public_key)
    line = cosign_checkpoint(signed, "w.example", key, 99)
    note = open_note(signed + line, signer.verifier)
    assert len(note.signatures) == 1 and len(note.unverified) == 1
