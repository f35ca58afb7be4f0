"""Offline verification of signed item files (no network, no database).

``exchange verify FILE`` checks the schema, recomputes the id, finds the signer's public
key (``--public-key``, ``--sites``, or ``sites.json`` beside the file as written by
``exchange pull``) and checks the signature, the key's owner and its revocation state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from exchange.core.canonical import parse_json
from exchange.core.items import parse_signed_item
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


def _find_key(
    key_id: str, sites_file: Path | None, file: Path
) -> tuple[PublicKey, str, str | None]:
    candidates = [sites_file] if sites_file else [file.parent / "sites.json"]
    for cand in candidates:
        if cand is None or not cand.exists():
            continue
        doc = json.loads(cand.read_text(encoding="utf-8"))
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


def verify_bundle(folder: Path, progress: Any = None) -> Report:
    """Verify an export bundle offline (see :mod:`exchange.service.export`).

    Args:
        folder: The bundle folder.
        progress: Optional ``callable(done, total)``.
    """
    import base64

    from exchange.core.logleaf import leaf_hash_for
    from exchange.core.merkle import verify_inclusion
    from exchange.core.note import verify_checkpoint

    report = Report()
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        cp = verify_checkpoint(manifest["checkpoint"], [manifest["log_key"]])
    except ExchangeError as err:
        report.fail(f"checkpoint: {err.code.value}: {err.message}")
        return report
    except (OSError, ValueError, KeyError) as err:
        report.fail(f"{folder} is not a bundle (manifest.json unreadable: {err})")
        return report
    if cp.size != manifest.get("size"):
        report.fail(f"manifest size {manifest.get('size')} differs from its checkpoint ({cp.size})")
    report.lines.append(
        f"OK   checkpoint {cp.origin} size {cp.size} signed by {manifest['log_key'].split('+')[0]}"
    )
    files = sorted((folder / "items").glob("*.json"))
    if len(files) != manifest.get("items"):
        report.fail(f"manifest lists {manifest.get('items')} items, folder holds {len(files)}")
    sites_file = folder / "sites.json"
    good = 0
    for n, f in enumerate(files, 1):
        try:
            doc = parse_json(f.read_bytes(), allow_floats=False)
            parsed = parse_signed_item(doc["signed"])
            if parsed.id != doc["id"]:
                raise VerificationError(f"item content hashes to {parsed.id}, not {doc['id']}",
                                        code=ErrorCode.BAD_SIGNATURE)
            key, _name, _rev = _find_key(parsed.sig["key"], sites_file, f)
            owner, _ = parse_key_id(parsed.sig["key"])
            if owner != parsed.item["author"] or not key.verify(parsed.message, parsed.signature):
                raise VerificationError("signature does not match the item",
                                        code=ErrorCode.BAD_SIGNATURE)
            leaf = leaf_hash_for(parsed.id, int(doc["index"]), str(doc["received_at"]))
            proof = [base64.b64decode(h) for h in doc["inclusion"]]
            verify_inclusion(leaf, int(doc["index"]), cp.size, proof, cp.root_hash)
            good += 1
        except ExchangeError as err:
            report.fail(f"{f.name}: {err.code.value}: {err.message}")
        except (OSError, ValueError, KeyError, TypeError) as err:
            report.fail(f"{f.name}: unreadable: {err}")
        if progress:
            progress(n, len(files))
    report.lines.append(f"OK   {good} of {len(files)} items: signatures, leaves and inclusion proofs verify")
    return report
