"""A durable set of item ids a sink has already handed over, for idempotent sinks.

Sinks whose target cannot itself deduplicate (a mail server, someone else's HTTP
endpoint) remember what they delivered in ``<data_dir>/sent.txt``: one id per line,
appended and fsynced **after** the target accepted the item. A crash between the two
can repeat one delivery; nothing is ever skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["SentLog"]


class SentLog:
    """Item ids already delivered, loaded lazily from ``folder/sent.txt``.

    Args:
        folder: The adapter's data folder (created on the first write).
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / "sent.txt"
        self._ids: set[str] | None = None

    def _load(self) -> set[str]:
        if self._ids is None:
            ids: set[str] = set()
            if self.path.exists():
                lines = self.path.read_text("utf-8").splitlines()
                ids = {ln.strip() for ln in lines if ln.strip()}
            self._ids = ids
        return self._ids

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._load()

    def __len__(self) -> int:
        return len(self._load())

    def add(self, ids: Iterable[str]) -> None:
        """Record ids as delivered (appended and fsynced before returning)."""
        new = [i for i in ids if i not in self._load()]
        if not new:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write("".join(i + "\n" for i in new))
            f.flush()
            os.fsync(f.fileno())
        self._load().update(new)
