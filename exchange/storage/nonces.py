"""Request nonces seen within the signature window (replay protection).

Claims from concurrent requests are batched: whatever is queued while one INSERT is in
flight goes into the next one, so a busy node spends one round trip on many nonces. The
writes use the relaxed pool (no wait for the WAL flush): a nonce lost in a crash can at
worst let one request signed before the crash be replayed within its window, and every
write request is idempotent (items by id, blobs by hash).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from .database import Database

__all__ = ["NonceStore"]


class NonceStore:
    """Remembers ``(key_id, nonce)`` pairs until their signature would expire anyway."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: list[tuple[str, str, datetime, asyncio.Future[bool]]] = []
        self._draining: asyncio.Task[None] | None = None

    async def claim(self, key_id: str, nonce: str, expires_at: datetime) -> bool:
        """Record a nonce; False if it was already used (a replay)."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((key_id, nonce, expires_at, fut))
        if self._draining is None or self._draining.done():
            self._draining = asyncio.create_task(self._drain(), name="nonce-claims")
        return await fut

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                fresh = await self._insert(batch)
            except BaseException as exc:
                for *_, fut in batch:
                    if not fut.done():
                        fut.set_exception(
                            exc
                            if isinstance(exc, Exception)
                            else RuntimeError("cancelled")
                        )
                if not isinstance(exc, Exception):
                    raise
                continue
            for key_id, nonce, _, fut in batch:
                if not fut.done():
                    pair = (key_id, nonce)
                    fut.set_result(pair in fresh)
                    fresh.discard(
                        pair
                    )  # a second claim of the same pair in one batch loses

    async def _insert(
        self, batch: list[tuple[str, str, datetime, asyncio.Future[bool]]]
    ) -> set[tuple[str, str]]:
        async with self.db.relaxed_pool.acquire() as c:
            rows = await c.fetch(
                """INSERT INTO request_nonces (key_id, nonce, expires_at)
                   SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])
                   ON CONFLICT DO NOTHING RETURNING key_id, nonce""",
                [b[0] for b in batch],
                [b[1] for b in batch],
                [b[2] for b in batch],
            )
        return {(r["key_id"], r["nonce"]) for r in rows}

    async def purge(self, now: datetime) -> int:
        """Forget nonces whose window has passed; returns how many."""
        async with self.db.pool.acquire() as c:
            status = await c.execute(
                "DELETE FROM request_nonces WHERE expires_at < $1", now
            )
        return int(status.split()[-1])
