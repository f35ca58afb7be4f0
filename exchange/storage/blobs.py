"""Content-addressed blobs, stored in 256 KiB chunks.

An upload is spooled first: its bytes go to a temporary file as they arrive, hashed on
the way, with no database connection held however slow the sender. Only when the whole
body is there and its SHA-256 equals the name it was uploaded under is it copied into
the database, in one short transaction. A mismatch, an oversize body or a dropped
connection leaves nothing behind, so a blob is either whole and correct or absent.
Downloads stream chunk by chunk, so memory stays bounded by the chunk size whatever the
blob's size.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

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
                "SELECT 1 FROM blob_uploaders WHERE sha256=$1 AND site=$2",
                sha256,
                site_id,
            )
        return bool(found)

    async def add_uploader(
        self,
        sha256: str,
        chunks: AsyncIterator[bytes],
        *,
        uploader: str,
        max_bytes: int,
    ) -> None:
        """Record another uploader of a stored blob once its bytes arrived again.

        Only a site that sends the very bytes becomes an uploader (and so may attach the
        blob to its items): naming a hash proves nothing.

        Raises:
            TooLarge: more than ``max_bytes`` arrived.
            Conflict: (``blob_hash_mismatch``) the bytes do not hash to ``sha256``.
        """
        async for _ in _hashed(chunks, sha256, max_bytes):
            pass
        async with self.db.pool.acquire() as c:
            await c.execute(
                "INSERT INTO blob_uploaders (sha256, site) VALUES ($1, $2) "
                "ON CONFLICT DO NOTHING",
                sha256,
                uploader,
            )

    async def uploaded_bytes(self, site_id: str) -> int:
        """Bytes of the blobs ``site_id`` has uploaded (for its quota)."""
        async with self.db.pool.acquire() as c:
            return int(
                await c.fetchval(
                    """SELECT coalesce(sum(b.size), 0) FROM blob_uploaders u
                   JOIN blobs b USING (sha256) WHERE u.site = $1""",
                    site_id,
                )
            )

    async def put_stream(
        self,
        sha256: str,
        chunks: AsyncIterator[bytes],
        *,
        media_type: str,
        uploader: str,
        max_bytes: int,
        spool_dir: Path | None = None,
    ) -> BlobMeta:
        """Store a blob from a byte stream, checking its size and hash.

        The stream is spooled to a temporary file in ``spool_dir`` (the system's
        temporary folder by default) before the database is touched.

        Raises:
            TooLarge: more than ``max_bytes`` arrived.
            Conflict: (``blob_hash_mismatch``) the bytes do not hash to ``sha256``.
        """
        if spool_dir is not None:
            spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, name = tempfile.mkstemp(prefix="blob-", dir=spool_dir)
        path = Path(name)
        try:
            size = 0
            with os.fdopen(fd, "wb") as f:
                async for chunk in _hashed(chunks, sha256, max_bytes):
                    f.write(chunk)
                    size += len(chunk)
            return await self._insert_file(sha256, path, size, media_type, uploader)
        finally:
            with contextlib.suppress(OSError):
                path.unlink()

    async def _insert_file(
        self, sha256: str, path: Path, size: int, media_type: str, uploader: str
    ) -> BlobMeta:
        """Copy a spooled, checked blob into the database in one transaction (local
        reads only: it is short). A concurrent upload of the same bytes wins the race
        harmlessly: this one then only records its uploader."""
        async with self.db.pool.acquire() as c, c.transaction():
            inserted = await c.fetchval(
                """INSERT INTO blobs (sha256, size, media_type, uploader)
                   VALUES ($1, $2, $3, $4) ON CONFLICT (sha256) DO NOTHING
                   RETURNING true""",
                sha256,
                size,
                media_type,
                uploader,
            )
            if inserted:
                with path.open("rb") as f:
                    seq = 0
                    while data := f.read(CHUNK_SIZE):
                        await c.execute(
                            "INSERT INTO blob_chunks (sha256, seq, data) VALUES ($1, $2, $3)",
                            sha256,
                            seq,
                            data,
                        )
                        seq += 1
            await c.execute(
                "INSERT INTO blob_uploaders (sha256, site) VALUES ($1, $2) "
                "ON CONFLICT DO NOTHING",
                sha256,
                uploader,
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


async def _hashed(
    chunks: AsyncIterator[bytes], sha256: str, max_bytes: int
) -> AsyncIterator[bytes]:
    """Pass ``chunks`` on, hashing them; at the end the hash must be ``sha256``.

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
        yield chunk
    _check_hash(h.hexdigest(), sha256)


def _check_hash(got: str, sha256: str) -> None:
    if got != sha256:
        raise Conflict(
            f"uploaded bytes hash to {got}, not {sha256}; nothing stored",
            code=ErrorCode.BLOB_HASH_MISMATCH,
        )
