"""Request nonces seen within the signature window (replay protection)."""

from __future__ import annotations

from datetime import datetime

from .database import Database

__all__ = ["NonceStore"]


class NonceStore:
    """Remembers ``(key_id, nonce)`` pairs until their signature would expire anyway."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(self, key_id: str, nonce: str, expires_at: datetime) -> bool:
        """Record a nonce; False if it was already used (a replay)."""
        # Not waiting for the WAL flush is safe here: a nonce lost in a crash can at
        # worst let one request signed before the crash be replayed within its window,
        # and every write request is idempotent (items by id, blobs by hash).
        async with self.db.relaxed_pool.acquire() as c:
            status = await c.execute(
                """INSERT INTO request_nonces (key_id, nonce, expires_at) VALUES ($1, $2, $3)
                   ON CONFLICT DO NOTHING""",
                key_id,
                nonce,
                expires_at,
            )
        return bool(status.endswith(" 1"))

    async def purge(self, now: datetime) -> int:
        """Forget nonces whose window has passed; returns how many."""
        async with self.db.pool.acquire() as c:
            status = await c.execute(
                "DELETE FROM request_nonces WHERE expires_at < $1", now
            )
        return int(status.split()[-1])
