"""Attachments travel with replicated items: fetch them from the author's home node.

Design
------
Items replicate; their attachments are content-addressed blobs that each site uploads
to its own home node. A reader on another node sees the item, so it must be able to open
its attachments there too. Every round this loop

1. **scans** the items stored since the last round (a cursor in ``blob_fetch_state``)
   and queues each attachment of an item from a peer whose author is not yet recorded
   as having sent its bytes here (``blob_fetches``, with the size and media type the
   author's signed item declares);
2. **fetches** the queued attachments that are due from the author's home node as the
   roster names it, ``GET /v1/blobs/{sha256}`` signed with this node's key. The home
   node serves a blob only through an item this node may see *whose author uploaded
   it there*, so naming someone else's hash in an item gets nothing; the bytes are
   streamed to a spool file, counted against the signed size and this node's
   ``max_blob_bytes``, and stored only if their SHA-256 is the name (a blob is whole
   and correct or absent). The author is then recorded as its uploader here, which is
   what lets readers of the item open it (the same rule as for local uploads).

A failed attempt (home node down, not there yet, wrong bytes, too large) is counted and
retried with the federation's backoff; the error stays on the row for operators.

One process per database fetches: the one that writes the log (as for witnessing), so
``--workers`` do not fetch the same bytes N times.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import aiohttp

from exchange.client import ExchangeClient
from exchange.errors import ExchangeError
from exchange.service.loop import BackgroundLoop, rounds_while
from exchange.storage.blobs import BlobFetch

if TYPE_CHECKING:
    from exchange.node import Node

__all__ = ["BlobFetcher"]

_log = logging.getLogger(__name__)

_MIN_RATE = 64 * 1024
"""Bytes per second a home node must sustain: a fetch's deadline is the request
timeout plus the blob's size at this rate."""


class BlobFetcher(BackgroundLoop):
    """Fetches the attachments of replicated items from their authors' home nodes."""

    task_name = "blob-fetcher"
    SCAN_BATCHES = 20  # most scan steps (of 1,000 items) per round
    PER_ROUND = 20  # most fetches per round

    def __init__(self, node: Node) -> None:
        self.node = node
        fed = node.config.federation
        self.interval = fed.pull_interval_ms / 1000
        self.timeout = fed.request_timeout_s
        self.backoff_base = fed.backoff_base_ms / 1000
        self.backoff_max = fed.backoff_max_s
        self.fetched_total = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        await rounds_while(
            lambda: self.node.sequencer.is_writer,
            self.round,
            self.interval,
            "attachment fetch",
        )

    async def round(self) -> int:
        """Scan new items, then fetch what is due; returns how many blobs arrived."""
        blobs = self.node.blobs
        for _ in range(self.SCAN_BATCHES):
            if not await blobs.scan_attachments():
                break
        arrived = 0
        for want in await blobs.due_fetches(self.PER_ROUND):
            arrived += await self.fetch(want)
        return arrived

    def _retry_in(self, attempts: int) -> float:
        return float(min(self.backoff_max, self.backoff_base * 2 ** min(attempts, 20)))

    async def fetch(self, want: BlobFetch) -> bool:
        """One attempt at one attachment; True if its bytes are now stored here."""
        blobs = self.node.blobs
        base_url, problem = self._source(want)
        if base_url is None:
            await self._failed(want, problem)
            return False
        try:
            async with (
                ExchangeClient(
                    base_url, key=self.node.key, timeout=self.timeout, lean=True
                ) as client,
                asyncio.timeout(self.timeout + want.size / _MIN_RATE),
            ):
                await blobs.put_stream(
                    want.sha256,
                    client.blob_chunks(
                        want.sha256, max_bytes=want.size, read_timeout=self.timeout
                    ),
                    media_type=want.media_type,
                    uploader=want.author,
                    max_bytes=want.size,
                    spool_dir=self.node.config.data_path / "uploads",
                )
        except ExchangeError as exc:
            await self._failed(want, f"{exc.code.value}: {exc.message}")
            return False
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            await self._failed(want, f"unreachable: {type(exc).__name__}")
            return False
        await blobs.fetch_done(want.sha256, want.author)
        self.fetched_total += 1
        self.node.metrics.blob_fetches.labels("fetched").inc()
        return True

    def _source(self, want: BlobFetch) -> tuple[str | None, str]:
        """``(base URL of the author's home node, "")``, or ``(None, why the
        attachment cannot be fetched now)``."""
        limit = self.node.config.http.max_blob_bytes
        if want.size > limit:
            return None, (
                f"too large: {want.size} bytes, over this node's "
                f"http.max_blob_bytes ({limit})"
            )
        view = self.node.federation.view
        home = view.home_of(want.author) if view is not None else None
        entry = view.node(home) if view is not None and home is not None else None
        if entry is None or home == self.node.id:
            return None, f"no home node of {want.author} in the roster"
        return str(entry.base_url).rstrip("/"), ""

    async def _failed(self, want: BlobFetch, error: str) -> None:
        self.node.metrics.blob_fetches.labels("failed").inc()
        retry = self._retry_in(want.attempts)
        if want.attempts in (0, 5) or want.attempts % 50 == 0:
            _log.warning(
                "attachment %s of %s not fetched (attempt %d, next in %.0f s): %s",
                want.sha256[:16],
                want.author,
                want.attempts + 1,
                retry,
                error,
            )
        await self.node.blobs.fetch_failed(want.sha256, want.author, error, retry)
