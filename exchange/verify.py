"""Offline verification of signed item files (no network, no database).

``exchange verify FILE`` checks the schema, recomputes the id, finds the signer's public
key (``--public-key``, ``--sites``, or ``sites.json`` beside the file as written by
``exchange pull``) and checks the signature, the key's owner and its revocation state.

``exchange verify BUNDLE`` checks an export bundle (layout in
:mod:`exchange.service.export`): the checkpoint signature against the bundled log key;
when a roster is bundled, the roster against the pinned roster keys, the log key against
the node's roster entry, every witness cosignature and every site record; then for each
item its schema, signature (key from its site's signed record when there is one, else
from ``sites.json``), its leaf and its inclusion proof against the checkpoint root.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exchange.core.canonical import parse_json
from exchange.core.items import parse_signed_item
from exchange.core.logleaf import leaf_hash_for, log_origin
from exchange.core.merkle import verify_inclusion
from exchange.core.note import (
    Checkpoint,
    NoteVerifier,
    verify_checkpoint,
    verify_cosignature,
)
from exchange.core.roster import RosterView, verify_roster, verify_site_record
from exchange.core.signing import PublicKey, b64u_decode, parse_key_id
from exchange.errors import ExchangeError, VerificationError
from schemas.errors import ErrorCode

__all__ = ["Report", "verify_bundle", "verify_path"]


@dataclass
class Report:
    """What verification found; ``ok`` only if everything checked out."""

    ok: bool = True
    lines: list[str] = field(default_factory=list)

    def fail(self, msg: str) -> None:
        """Record a failure."""
        self.ok = False
        self.lines.append(f"FAIL {msg}")


def _read_json(path: Path) -> Any:
    """A JSON file read with the strict parser a node uses for pushes (no duplicate
    keys, no floats, no integers beyond 2^53, bounded depth).

    Raises:
        JsonError: not such JSON.
        OSError: unreadable.
    """
    return parse_json(path.read_bytes(), max_depth=64, allow_floats=False)


def _find_key(
    key_id: str, sites_file: Path | None, file: Path
) -> tuple[PublicKey, str, str | None]:
    candidates = [sites_file] if sites_file else [file.parent / "sites.json"]
    for cand in candidates:
        if not cand.exists():
            continue
        doc = _read_json(cand)
        for site in doc.get("sites", []):
            for k in site.get("keys", []):
                if k.get("key_id") == key_id:
                    return (
                        PublicKey(k["alg"], b64u_decode(k["public_key"]), key_id),
                        site.get("name", site.get("id", "")),
                        k.get("revoked_at"),
                    )
    raise VerificationError(
        f"no public key for {key_id}: pass --public-key or --sites (GET /v1/sites output)",
        code=ErrorCode.UNKNOWN_KEY,
    )


def verify_path(
    file: Path, *, sites_file: Path | None = None, public_key: str | None = None
) -> Report:
    """Verify one signed item file.

    Args:
        file: The signed item (``{"item":…, "sig":…}``).
        sites_file: A site directory to find the key in.
        public_key: The signer's base64url public key (overrides the directory).
    """
    report = Report()
    try:
        doc = parse_json(file.read_bytes(), allow_floats=False)
        parsed = parse_signed_item(doc)
        key_id = parsed.sig["key"]
        owner, _ = parse_key_id(key_id)
        if owner != parsed.item["author"]:
            raise VerificationError(
                f"signed by {key_id}, but the author is {parsed.item['author']}",
                code=ErrorCode.AUTHOR_MISMATCH,
            )
        revoked: str | None = None
        name = owner
        if public_key:
            key = PublicKey(parsed.sig["alg"], b64u_decode(public_key), key_id)
        else:
            key, name, revoked = _find_key(key_id, sites_file, file)
        if key.alg != parsed.sig["alg"] or not key.verify(
            parsed.message, parsed.signature
        ):
            raise VerificationError(
                "signature does not match the item: it was altered or signed by another key",
                code=ErrorCode.BAD_SIGNATURE,
            )
        report.lines.append(f"OK   {parsed.id}")
        report.lines.append(f"     {parsed.item['kind']} 《{parsed.item['title']}》")
        report.lines.append(
            f"     signed by {key_id} ({name}), created {parsed.item['created_at']}"
        )
        if revoked:
            when = datetime.fromisoformat(revoked)
            report.lines.append(
                f"NOTE key {key_id} was revoked at {when.isoformat()}; the signature is valid, "
                "and items the node accepted before then remain valid"
            )
    except ExchangeError as err:
        report.fail(f"{err.code.value}: {err.message}")
    except (OSError, ValueError, KeyError) as err:
        report.fail(f"cannot read {file}: {err}")
    return report


def _pinned(entries: list[str]) -> dict[str, PublicKey]:
    out: dict[str, PublicKey] = {}
    for e in entries:
        key_id, alg, pub = e.split()
        out[key_id] = PublicKey(alg, b64u_decode(pub), key_id)
    return out


def _bundle_checkpoint(
    folder: Path, report: Report
) -> tuple[dict[str, Any], Checkpoint] | None:
    """Read the manifest and verify its checkpoint against the bundled log key."""
    try:
        manifest = _read_json(folder / "manifest.json")
        cp = verify_checkpoint(manifest["checkpoint"], [manifest["log_key"]])
    except ExchangeError as err:
        report.fail(f"checkpoint: {err.code.value}: {err.message}")
        return None
    except (OSError, ValueError, KeyError, TypeError) as err:
        report.fail(f"{folder} is not a bundle (manifest.json unreadable: {err})")
        return None
    if cp.size != manifest.get("size"):
        report.fail(
            f"manifest size {manifest.get('size')} differs from its checkpoint ({cp.size})"
        )
    if cp.origin != log_origin(str(manifest.get("node"))):
        report.fail(
            f"checkpoint origin {cp.origin!r} is not node {manifest.get('node')}'s log"
        )
    report.lines.append(
        f"OK   checkpoint {cp.origin} size {cp.size} signed by {manifest['log_key'].split('+')[0]}"
    )
    return manifest, cp


_SiteKeys = dict[str, dict[str, PublicKey]]


def _bundle_federation(
    folder: Path, manifest: dict[str, Any], cp: Checkpoint, report: Report
) -> _SiteKeys | None:
    """Roster, log key, cosignatures and site records; returns keys by site (or None)."""
    cosigs = list(manifest.get("cosignatures") or [])
    roster_file = folder / "federation" / "roster.json"
    if not roster_file.exists():
        report.lines.append(
            "NOTE no roster in the bundle: compare the log key above with the "
            "federation roster yourself"
        )
        if cosigs:
            report.lines.append(
                f"NOTE {len(cosigs)} cosignature(s) not checked: no roster "
                "names the witnesses' keys"
            )
        return None
    try:
        pinned = _pinned(list(manifest.get("roster_keys") or []))
        if not pinned:
            raise VerificationError(
                "the bundle names no pinned roster key", code=ErrorCode.ROSTER_INVALID
            )
        view = RosterView(verify_roster(_read_json(roster_file), pinned))
    except ExchangeError as err:
        report.fail(f"roster: {err.code.value}: {err.message}")
        return None
    except (OSError, ValueError, TypeError) as err:
        report.fail(f"roster: unreadable: {err}")
        return None
    report.lines.append(
        f"OK   roster version {view.version} verifies with pinned key(s) "
        f"{', '.join(pinned)} (compare with your own pin)"
    )
    node = str(manifest["node"])
    log_key = NoteVerifier.from_vkey(manifest["log_key"]).public.raw
    if any(k.raw == log_key for k in view.node_keys(node).values()):
        report.lines.append(f"OK   the log key is node {node}'s key in the roster")
    else:
        report.fail(f"the bundle's log key is not a key of node {node} in the roster")
    for line in cosigs:
        name = str(line).removeprefix("\u2014 ").split(" ", 1)[0]
        witness = name.removeprefix(log_origin(""))
        reason = f"node {witness} has no key in the roster"
        for key in view.node_keys(witness).values():
            try:
                ts = verify_cosignature(manifest["checkpoint"] + line, name, key)
            except (ExchangeError, ValueError) as err:
                reason = getattr(err, "message", str(err))
                continue
            when = datetime.fromtimestamp(ts, UTC).isoformat()
            report.lines.append(f"OK   cosigned by witness {witness} at {when}")
            break
        else:
            report.fail(f"cosignature by {name}: {reason}")
    keys: _SiteKeys = {}
    records_file = folder / "federation" / "site-records.json"
    try:
        records = _read_json(records_file)["records"] if records_file.exists() else []
    except ExchangeError as err:
        report.fail(f"site records: {err.code.value}: {err.message}")
        return None
    except (OSError, KeyError, TypeError) as err:
        report.fail(f"site records: unreadable: {err}")
        return None
    for signed in records:
        try:
            rec = verify_site_record(signed, view)
        except ExchangeError as err:
            report.fail(f"site record: {err.code.value}: {err.message}")
            continue
        keys[rec.id] = {
            k.key_id: PublicKey(k.alg, b64u_decode(k.public_key), k.key_id)
            for k in rec.keys
        }
    if records:
        report.lines.append(
            f"OK   {len(keys)} of {len(records)} site records signed by their home nodes"
        )
    return keys


def _item_key(
    key_id: str, author: str, site_keys: _SiteKeys | None, sites_file: Path, f: Path
) -> tuple[PublicKey, bool]:
    """The signer's key: from the site's signed record if bundled (True), else sites.json."""
    if site_keys is not None and author in site_keys:
        key = site_keys[author].get(key_id)
        if key is None:
            raise VerificationError(
                f"key {key_id} is not in site {author}'s signed record",
                code=ErrorCode.UNKNOWN_KEY,
            )
        return key, True
    return _find_key(key_id, sites_file, f)[0], False


def verify_bundle(folder: Path, progress: Any = None) -> Report:
    """Verify an export bundle offline (see :mod:`exchange.service.export`).

    Args:
        folder: The bundle folder.
        progress: Optional ``callable(done, total)``.

    Returns:
        The report; ``ok`` only if every check passed.
    """
    report = Report()
    opened = _bundle_checkpoint(folder, report)
    if opened is None:
        return report
    manifest, cp = opened
    site_keys = _bundle_federation(folder, manifest, cp, report)
    files = sorted((folder / "items").glob("*.json"))
    if len(files) != manifest.get("items"):
        report.fail(
            f"manifest lists {manifest.get('items')} items, folder holds {len(files)}"
        )
    sites_file = folder / "sites.json"
    good = from_records = 0
    seen: set[int] = set()
    for n, f in enumerate(files, 1):
        try:
            doc = parse_json(f.read_bytes(), allow_floats=False)
            index = int(doc["index"])
            if index in seen:
                raise VerificationError(
                    f"a second item at index {index}", code=ErrorCode.PROOF_INVALID
                )
            seen.add(index)
            parsed = parse_signed_item(doc["signed"])
            if parsed.id != doc["id"]:
                raise VerificationError(
                    f"item content hashes to {parsed.id}, not {doc['id']}",
                    code=ErrorCode.BAD_SIGNATURE,
                )
            owner, _ = parse_key_id(parsed.sig["key"])
            key, pinned = _item_key(
                parsed.sig["key"], parsed.item["author"], site_keys, sites_file, f
            )
            if (
                owner != parsed.item["author"]
                or key.alg != parsed.sig["alg"]
                or not key.verify(parsed.message, parsed.signature)
            ):
                raise VerificationError(
                    "signature does not match the item", code=ErrorCode.BAD_SIGNATURE
                )
            leaf = leaf_hash_for(parsed.id, index, str(doc["received_at"]))
            proof = [base64.b64decode(h, validate=True) for h in doc["inclusion"]]
            verify_inclusion(leaf, index, cp.size, proof, cp.root_hash)
            good += 1
            from_records += pinned
        except ExchangeError as err:
            report.fail(f"{f.name}: {err.code.value}: {err.message}")
        except (OSError, ValueError, KeyError, TypeError) as err:
            report.fail(f"{f.name}: unreadable: {err}")
        if progress:
            progress(n, len(files))
    report.lines.append(
        f"{'OK  ' if good == len(files) else 'FAIL'} {good} of {len(files)} items: schema, "
        "signatures, leaves and inclusion proofs verify"
    )
    if site_keys is not None and good and from_records < good:
        report.lines.append(
            f"NOTE {good - from_records} item(s) checked with keys from sites.json "
            "only (no signed site record bundled for their site)"
        )
    return report
