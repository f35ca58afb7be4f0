"""Witness state: peers' checkpoints we verified, cosignatures of ours, evidence."""

from __future__ import annotations

from typing import Any

from .database import Database

__all__ = ["WitnessStore"]


class WitnessStore:
    """Queries on ``witnessed``, ``cosignatures`` and ``witness_evidence``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def last_seen(self, node_id: str) -> tuple[int, bytes, str] | None:
        """The newest checkpoint of a peer's log we verified: (size, root, note)."""
        async with self.db.pool.acquire() as c:
            row = await c.fetchrow(
                "SELECT size, root, note FROM witnessed WHERE node_id = $1", node_id
            )
        return (int(row["size"]), bytes(row["root"]), row["note"]) if row else None

    async def advance(
        self, node_id: str, old_size: int | None, size: int, root: bytes, note: str
    ) -> bool:
        """Compare-and-set: store a newer checkpoint only if ours is still ``old_size``."""
        async with self.db.pool.acquire() as c:
            if old_size is None:
                status = await c.execute(
                    """INSERT INTO witnessed (node_id, size, root, note) VALUES ($1, $2, $3, $4)
                       ON CONFLICT (node_id) DO NOTHING""",
                    node_id,
                    size,
                    root,
                    note,
                )
            else:
                status = await c.execute(
                    """UPDATE witnessed SET size = $3, root = $4, note = $5, seen_at = now()
                       WHERE node_id = $1 AND size = $2""",
                    node_id,
                    old_size,
                    size,
                    root,
                    note,
                )
        return bool(status.endswith(" 1"))

    async def evidence(
        self, node_id: str, reason: str, old_note: str, new_note: str, proof: list[str]
    ) -> None:
        """Keep evidence of an inconsistent checkpoint."""
        async with self.db.pool.acquire() as c:
            await c.execute(
                """INSERT INTO witness_evidence (node_id, reason, old_note, new_note, proof)
                   VALUES ($1, $2, $3, $4, $5)""",
                node_id,
                reason,
                old_note,
                new_note,
                proof,
            )

    async def all_evidence(self) -> list[dict[str, Any]]:
        """Every piece of evidence, newest first."""
        async with self.db.pool.acquire() as c:
            rows = await c.fetch("SELECT * FROM witness_evidence ORDER BY id DESC")
        return [dict(r) for r in rows]

    async def add_cosignature(self, size: int, witness: str, line: str) -> None:
        """Store a peer's cosignature of one of our checkpoints."""
        async with self.db.pool.acquire() as c:
            await c.execute(
                """INSERT INTO cosignatures (size, witness, line) VALUES ($1, $2, $3)
                   ON CONFLICT (size, witness) DO UPDATE SET line = EXCLUDED.line""",
                size,
                witness,
                line,
            )

    async def cosignatures(self, size: int) -> list[str]:
        """Cosignature lines for our checkpoint of ``size``."""
        async with self.db.pool.acquire() as c:
            rows = await c.fetch(
                "SELECT line FROM cosignatures WHERE size = $1 ORDER BY witness", size
            )
        return [r["line"] for r in rows]
