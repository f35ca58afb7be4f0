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
from typing import Any

import orjson

from exchange.errors import Conflict, TooLarge
from schemas.errors import ErrorCode

from .database import Database

__all__ = ["CHUNK_SIZE", "BlobFetch", "BlobMeta", "BlobStore"]

CHUNK_SIZE = 256 * 1024


@dataclass(frozen=True)
class BlobMeta:
    """A stored blob's metadata."""

    sha256: str
    size: int
    media_type: str


@dataclass(frozen=True)
class BlobFetch:
    """An attachment of a replicated item still to fetch from its author's home node."""

    sha256: str
    author: str
    size: int
    media_type: str
    attempts: int
    last_error: str | None


_FETCH_COLUMNS = "sha256, author, size, media_type, attempts, last_error"


class BlobStore:
    """Queries on ``blobs`` and ``blob_chunks``, and on ``blob_fetches``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def meta(self, sha256: str) -> BlobMeta | None:
        """Metadata of a stored blob, or None."""
        async with self.db.pool.acquire() as c:
            row = await c.fetchrow("SELECT * FROM blobs WHERE sha256=$1", sha256)
        return BlobMeta(row["sha256"], row["size"], row["media_type"]) if row else None

    async def stored(self, sha256s: list[str]) -> set[str]:
        """Which of these blobs are stored here."""
        if not sha256s:
            return set()
        async with self.db.pool.acquire() as c:
            rows = await c.fetch(
                "SELECT sha256 FROM blobs WHERE sha256 = ANY($1::text[])", sha256s
            )
        return {r["sha256"] for r in rows}

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

    # -- attachments of replicated items ------------------------------------------------
    async def scan_attachments(self, batch: int = 1000) -> int:
        """Queue the attachments of replicated items stored since the last scan.

        Looks at up to ``batch`` items after ``blob_fetch_state.scanned``; each
        attachment of an item from a peer whose author is not yet an uploader of its
        bytes here becomes a ``blob_fetches`` row (size and media type as the signed
        item declares them). Moves the scan position in the same transaction.

        Returns:
            How many items were looked at (0: the scan is at the end of the log).
        """
        async with self.db.pool.acquire() as c, c.transaction():
            scanned = int(
                await c.fetchval(
                    "SELECT scanned FROM blob_fetch_state WHERE id = 1 FOR UPDATE"
                )
            )
            rows = await c.fetch(
                """SELECT idx, author,
                          CASE WHEN origin <> 'local' AND cardinality(attachments) > 0
                               THEN canonical END AS canonical
                   FROM items WHERE idx >= $1 ORDER BY idx LIMIT $2""",
                scanned,
                batch,
            )
            if not rows:
                return 0
            wanted = [
                (
                    str(a["sha256"]),
                    r["author"],
                    int(a["size"]),
                    str(a.get("media_type") or "application/octet-stream"),
                )
                for r in rows
                if r["canonical"] is not None
                for a in _attachments(bytes(r["canonical"]))
            ]
            if wanted:
                await c.execute(
                    """INSERT INTO blob_fetches (sha256, author, size, media_type)
                       SELECT w.sha256, w.author, w.size, w.media_type
                       FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[])
                            AS w(sha256, author, size, media_type)
                       WHERE NOT EXISTS (SELECT 1 FROM blob_uploaders u
                                         WHERE u.sha256 = w.sha256 AND u.site = w.author)
                       ON CONFLICT DO NOTHING""",
                    *(list(col) for col in zip(*wanted, strict=True)),
                )
            await c.execute(
                "UPDATE blob_fetch_state SET scanned = $1 WHERE id = 1",
                rows[-1]["idx"] + 1,
            )
        return len(rows)

    async def due_fetches(self, limit: int = 20) -> list[BlobFetch]:
        """Attachments whose next attempt is due, oldest first."""
        async with self.db.pool.acquire() as c:
            rows = await c.fetch(
                f"""SELECT {_FETCH_COLUMNS} FROM blob_fetches
                    WHERE next_at <= now() ORDER BY next_at LIMIT $1""",
                limit,
            )
        return [BlobFetch(**dict(r)) for r in rows]

    async def pending_fetches(self) -> list[BlobFetch]:
        """Every attachment still to fetch (for operators and tests)."""
        async with self.db.pool.acquire() as c:
            rows = await c.fetch(
                f"SELECT {_FETCH_COLUMNS} FROM blob_fetches ORDER BY sha256, author"
            )
        return [BlobFetch(**dict(r)) for r in rows]

    async def fetch_done(self, sha256: str, author: str) -> None:
        """The bytes arrived (and ``author`` is recorded as an uploader)."""
        async with self.db.pool.acquire() as c:
            await c.execute(
                "DELETE FROM blob_fetches WHERE sha256 = $1 AND author = $2",
                sha256,
                author,
            )

    async def fetch_failed(
        self, sha256: str, author: str, error: str, retry_in_s: float
    ) -> None:
        """Count a failed attempt and when to try again."""
        async with self.db.pool.acquire() as c:
            await c.execute(
                """UPDATE blob_fetches
                   SET attempts = attempts + 1, last_error = $3,
                       next_at = now() + make_interval(secs => $4)
                   WHERE sha256 = $1 AND author = $2""",
                sha256,
                author,
                error[:500],
                retry_in_s,
            )

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


def _attachments(canonical: bytes) -> list[dict[str, Any]]:
    """The well-formed attachment entries of a stored item (schema-checked at ingest)."""
    item = orjson.loads(canonical)
    return [
        a
        for a in item.get("attachments") or []
        if isinstance(a, dict)
        and isinstance(a.get("sha256"), str)
        and isinstance(a.get("size"), int)
    ]


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
