"""A durable local spool: signed items wait here until the node has acknowledged them.

Layout under the runner's data folder::

    spool/items/000000000042-<64 hex>.json   one signed item per file, in push order
    spool/blobs/<sha256>                     attachment bytes, until no item needs them
    spool/rejected/<name>.json (+ .why.txt)  items the node refused for good
    state/<name>.json                        a source's position; pull-cursor.json

Every file is written the same way: a temporary file in the same folder, ``fsync``,
``rename`` over the final name, ``fsync`` of the folder. A crash leaves either the old
file or the new one, never half of one (leftover temporaries are removed on open).

The runner's order of operations is what makes this lose nothing:

1. a source's drafts are signed and **spooled** (:meth:`Spool.add`);
2. only then is the source's new position saved (:meth:`StateFiles.save`);
3. a spooled item is removed only after the node acknowledged it (:meth:`Spool.done`).

A crash between 1 and 2 re-reads the same documents, which give the same items (same
id): :meth:`Spool.add` keeps one copy, and the node stores one copy of anything pushed
twice. A crash between a push and 3 pushes the item again: the node answers
``duplicate``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from exchange.core.canonical import item_id
from exchange.errors import ConfigError

__all__ = ["SpoolEntry", "Spool", "StateFiles", "atomic_write"]

_ENTRY = re.compile(r"^(\d{12})-([0-9a-f]{64})\.json$")
_TMP_PREFIX = ".tmp-"


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` durably: temp file, fsync, rename, fsync folder.

    Args:
        path: The final file name (its folder must exist).
        data: The whole content.
    """
    tmp = path.parent / f"{_TMP_PREFIX}{secrets.token_hex(6)}-{path.name}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _clean_temporaries(folder: Path) -> None:
    for p in folder.iterdir():
        if p.name.startswith(_TMP_PREFIX):
            _remove(p)


@dataclass(frozen=True)
class SpoolEntry:
    """One spooled item."""

    path: Path
    id: str
    signed: dict[str, Any]

    @property
    def blobs(self) -> list[str]:
        """SHA-256 of each attachment the item names."""
        atts = self.signed.get("item", {}).get("attachments") or []
        return [str(a["sha256"]) for a in atts if isinstance(a, dict) and "sha256" in a]


class Spool:
    """Signed items (and their attachments) not yet acknowledged by the node.

    Args:
        root: The ``spool`` folder (created if missing).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.items_dir = root / "items"
        self.blobs_dir = root / "blobs"
        self.rejected_dir = root / "rejected"
        for d in (self.items_dir, self.blobs_dir, self.rejected_dir):
            d.mkdir(parents=True, exist_ok=True)
            _clean_temporaries(d)
        self._ids: dict[str, Path] = {}
        self._refs: dict[str, set[str]] = {}
        self._seq = 0
        for p in sorted(self.items_dir.iterdir()):
            m = _ENTRY.match(p.name)
            if m is None:
                continue
            self._seq = max(self._seq, int(m.group(1)))
            self._ids[m.group(2)] = p
        for entry in self.pending():
            for sha in entry.blobs:
                self._refs.setdefault(sha, set()).add(entry.id)

    @property
    def backlog(self) -> int:
        """Items waiting for the node."""
        return len(self._ids)

    @property
    def rejected(self) -> int:
        """Items the node refused for good (kept for a person to look at)."""
        return sum(1 for p in self.rejected_dir.glob("*.json"))

    def contains(self, item_id_: str) -> bool:
        """Whether an item (``sha256:…``) is waiting in the spool."""
        return item_id_.removeprefix("sha256:") in self._ids

    def add(
        self, signed: Mapping[str, Any], blobs: Mapping[str, bytes] | None = None
    ) -> bool:
        """Spool a signed item and its attachment bytes, durably.

        Args:
            signed: ``{"item": …, "sig": …}``.
            blobs: Attachment bytes by SHA-256 hex (each must hash to its key).

        Returns:
            False if the same item was already waiting (nothing written).
        """
        iid = item_id(signed["item"])
        hexid = iid.removeprefix("sha256:")
        if hexid in self._ids:
            return False
        for sha, data in (blobs or {}).items():
            if hashlib.sha256(data).hexdigest() != sha:
                raise ValueError(f"attachment bytes do not match sha256 {sha}")
            path = self.blobs_dir / sha
            if not path.exists():
                atomic_write(path, data)
        self._seq += 1
        path = self.items_dir / f"{self._seq:012d}-{hexid}.json"
        atomic_write(path, orjson.dumps(dict(signed)))
        self._ids[hexid] = path
        for sha in SpoolEntry(path, iid, dict(signed)).blobs:
            self._refs.setdefault(sha, set()).add(iid)
        return True

    def pending(self, limit: int | None = None) -> list[SpoolEntry]:
        """The oldest waiting items, in the order they were spooled."""
        paths = sorted(self._ids.values())
        if limit is not None:
            paths = paths[:limit]
        out = []
        for p in paths:
            m = _ENTRY.match(p.name)
            assert m is not None
            out.append(
                SpoolEntry(p, "sha256:" + m.group(2), orjson.loads(p.read_bytes()))
            )
        return out

    def blob(self, sha: str) -> bytes | None:
        """A spooled attachment's bytes (``None`` if it is not here)."""
        try:
            return (self.blobs_dir / sha).read_bytes()
        except FileNotFoundError:
            return None

    def _drop(self, entry: SpoolEntry) -> None:
        hexid = entry.id.removeprefix("sha256:")
        _remove(entry.path)
        self._ids.pop(hexid, None)
        for sha in entry.blobs:
            refs = self._refs.get(sha)
            if refs is not None:
                refs.discard(entry.id)
                if not refs:
                    del self._refs[sha]
                    _remove(self.blobs_dir / sha)

    def done(self, entries: Iterable[SpoolEntry]) -> None:
        """Forget items the node acknowledged (accepted or duplicate)."""
        for entry in entries:
            self._drop(entry)
        _fsync_dir(self.items_dir)

    def reject(self, entry: SpoolEntry, reason: str) -> None:
        """Move an item the node refused for good to ``rejected/`` with the reason."""
        atomic_write(self.rejected_dir / entry.path.name, entry.path.read_bytes())
        atomic_write(
            self.rejected_dir / (entry.path.stem + ".why.txt"), reason.encode("utf-8")
        )
        self._drop(entry)
        _fsync_dir(self.items_dir)


class StateFiles:
    """Small JSON documents (source positions, the pull cursor), written atomically.

    Args:
        root: The ``state`` folder.
        create: Create it if missing (``False`` for a read-only dry run).
    """

    def __init__(self, root: Path, *, create: bool = True) -> None:
        self.root = root
        if create:
            root.mkdir(parents=True, exist_ok=True)
            _clean_temporaries(root)

    def _path(self, name: str) -> Path:
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,100}", name):
            raise ValueError(f"bad state name {name!r}")
        return self.root / f"{name}.json"

    def load(self, name: str) -> dict[str, Any]:
        """The saved document, or ``{}`` if none was saved.

        Raises:
            ConfigError: the file exists but is not a JSON object (names the file).
        """
        path = self._path(name)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict):
            raise ConfigError(
                f"{path} is damaged (not a JSON object); move it away to start that "
                "source from the beginning (items already sent are not sent twice)"
            )
        return doc

    def save(self, name: str, doc: Mapping[str, Any]) -> None:
        """Replace the saved document durably."""
        atomic_write(
            self._path(name), orjson.dumps(dict(doc), option=orjson.OPT_SORT_KEYS)
        )

    def names(self) -> Sequence[str]:
        """Names of the saved documents."""
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("*.json"))
