"""Content-addressed blobs, stored in 256 KiB chunks.

An upload is streamed: each chunk is hashed and inserted as it arrives, inside one
transaction that commits only if the final SHA-256 equals the name it was uploaded under.
A mismatch, an oversize body or a dropped connection rolls everything back, so a blob
is either whole and correct or absent. Downloads stream chunk by chunk, so memory stays
bounded by the chunk size whatever the blob's size.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from exchange.errors import Conflict, TooLarge
from schemas.errors import ErrorCode

from .database import Database

__all__ = ["CHUNK_SIZE", "BlobMeta", "BlobStore"]

CHUNK_SIZE = 256 * 1024


@dataclass(frozen=True)
class BlobMeta:
    """A stored blob's metadata."""

    sha256: str
    size: int
    media_type: str


class BlobStore:
    """Queries on ``blobs`` and ``blob_chunks``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def meta(self, sha256: str) -> BlobMeta | None:
        """Metadata of a stored blob, or None."""
        async with self.db.pool.acquire() as c:
            row = await c.fetchrow("SELECT * FROM blobs WHERE sha256=$1", sha256)
        return BlobMeta(row["sha256"], row["size"], row["media_type"]) if row else None

    async def uploaded_by(self, sha256: str, site_id: str) -> bool:
        """Whether ``site_id`` uploaded the blob (uploaders may read their own blobs)."""
        async with self.db.pool.acquire() as c:
            found = await c.fetchval(
                "SELECT 1 FROM blob_uploaders WHERE sha256=$1 AND site=$2", sha256, site_id
            )
        return bool(found)

    async def add_uploader(
        self, sha256: str, chunks: AsyncIterator[bytes], *, uploader: str, max_bytes: int
    ) -> None:
        """Record another uploader of a stored blob once its bytes arrived again.

        Only a site that sends the very bytes becomes an uploader (and so may attach the
        blob to its items): naming a hash proves nothing.

        Raises:
            TooLarge: more than ``max_bytes`` arrived.
            Conflict: (``blob_hash_mismatch``) the bytes do not hash to ``sha256``.
        """
        h = hashlib.sha256()
        size = 0
        async for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(
                    f"blob is larger than the limit of {max_bytes} bytes",
                    code=ErrorCode.TOO_LARGE,
                )
            h.update(chunk)
        _check_hash(h.hexdigest(), sha256)
        async with self.db.pool.acquire() as c:
            await c.execute(
                "INSERT INTO blob_uploaders (sha256, site) VALUES ($1, $2) "
                "ON CONFLICT DO NOTHING",
                sha256,
                uploader,
            )

    async def put_stream(
        self,
        sha256: str,
        chunks: AsyncIterator[bytes],
        *,
        media_type: str,
        uploader: str,
        max_bytes: int,
    ) -> BlobMeta:
        """Store a blob from a byte stream, checking its size and hash.

        Raises:
            TooLarge: more than ``max_bytes`` arrived.
            Conflict: (``blob_hash_mismatch``) the bytes do not hash to ``sha256``.
        """
        h = hashlib.sha256()
        size = 0
        seq = 0
        buf = bytearray()
        async with self.db.pool.acquire() as c, c.transaction():
            await c.execute(
                """INSERT INTO blobs (sha256, size, media_type, uploader)
                   VALUES ($1, 0, $2, $3)""",
                sha256,
                media_type,
                uploader,
            )
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(
                        f"blob is larger than the limit of {max_bytes} bytes",
                        code=ErrorCode.TOO_LARGE,
                    )
                h.update(chunk)
                buf += chunk
                while len(buf) >= CHUNK_SIZE:
                    await c.execute(
                        "INSERT INTO blob_chunks (sha256, seq, data) VALUES ($1, $2, $3)",
                        sha256,
                        seq,
                        bytes(buf[:CHUNK_SIZE]),
                    )
                    del buf[:CHUNK_SIZE]
                    seq += 1
            if buf:
                await c.execute(
                    "INSERT INTO blob_chunks (sha256, seq, data) VALUES ($1, $2, $3)",
                    sha256,
                    seq,
                    bytes(buf),
                )
            _check_hash(h.hexdigest(), sha256)
            await c.execute("UPDATE blobs SET size=$2 WHERE sha256=$1", sha256, size)
            await c.execute(
                "INSERT INTO blob_uploaders (sha256, site) VALUES ($1, $2)", sha256, uploader
            )
        return BlobMeta(sha256, size, media_type)

    async def stream(self, sha256: str) -> AsyncIterator[bytes]:
        """Yield a blob's chunks in order (one chunk in memory at a time)."""
        seq = 0
        while True:
            async with self.db.pool.acquire() as c:
                data = await c.fetchval(
                    "SELECT data FROM blob_chunks WHERE sha256=$1 AND seq=$2",
                    sha256,
                    seq,
                )
            if data is None:
                return
            yield bytes(data)
            seq += 1


def _check_hash(got: str, sha256: str) -> None:
    if got != sha256:
        raise Conflict(
            f"uploaded bytes hash to {got}, not {sha256}; nothing stored",
            code=ErrorCode.BLOB_HASH_MISMATCH,
        )
