"""The log writer: integrates accepted items into the Merkle tree and signs checkpoints.

Design
------
Every serving node process (``exchange node up``; started through :func:`sequencer_ctx` in
the HTTP app's ``cleanup_ctx``, unless ``[log] writer = false``) runs a :class:`Sequencer`;
CLI commands never do. Only one per database *writes*: the one holding the PostgreSQL
session advisory lock ``LOCK_KEY`` on its dedicated connection.
The others retry the lock every second, so if the writer dies (its connection drops, the
lock goes with it) another process takes over within about a second. Several API workers
can therefore share one database safely.

The writer keeps the tree's right edge in memory (:class:`~exchange.core.merkle.CompactRange`,
loaded from the stored subtrees when it takes over) and, woken by ``LISTEN exchange_items``
(ingest notifies after each commit) or a periodic tick, integrates new items in batches:
leaf hashes of the entries' leaf records, every newly completed subtree hash, and the new
state, in one transaction with a compare-and-set on the old size. It then signs a
checkpoint (C2SP tlog-checkpoint, with the node key) when the log grew and the
checkpoint interval has passed.

Rollback guard: the largest checkpoint ever signed is remembered both in the database and
in a file in the node's data folder (``log-head.json``, fsynced). A node whose database
was restored from an old backup would otherwise sign a *smaller* tree than one it already
published — a fork that partners would catch. The writer refuses: it logs an error, sets
:attr:`Sequencer.refusal`, which ``/readyz`` reports, and signs nothing smaller. Growing
past the remembered size is not enough either: before signing a larger tree the writer
recomputes, from the stored subtrees, the root of its first ``floor`` entries and signs
only if it equals the remembered root (the new checkpoint must be consistent with the one
already published). Once the log was regrown differently, only an operator can resolve
it (restore the newest backup; see the refusal message).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg

from exchange.core.logleaf import leaf_hash_for, log_origin
from exchange.core.merkle import CompactRange, fold_subtrees, root_plan
from exchange.core.note import Checkpoint, NoteSigner, sign_checkpoint
from exchange.service.loop import BackgroundLoop, run_as_leader
from exchange.storage.log import LogStore

if TYPE_CHECKING:
    from exchange.node import Node

__all__ = ["LOCK_KEY", "Sequencer", "sequencer_ctx"]

_log = logging.getLogger(__name__)
LOCK_KEY = 0x45584C47  # "EXLG"


def sequencer_ctx(node: Node) -> Callable[[Any], AsyncIterator[None]]:
    """A ``cleanup_ctx`` entry: compete for the writer lock while the app serves.

    Does nothing when ``[log] writer = false`` (a process that only serves reads).
    Usage: ``app.cleanup_ctx.append(sequencer_ctx(node))``.
    """

    async def run(_app: Any) -> AsyncIterator[None]:
        if node.config.log.writer:
            node.sequencer.start()
        try:
            yield
        finally:
            await node.sequencer.stop()

    return run


class Sequencer(BackgroundLoop):
    """The single log writer of a database (when it holds the lock).

    Args:
        node: The started node (database, key, config).
        interval: Seconds between checkpoints while the log grows.
        batch: Most entries integrated per transaction.
    """

    def __init__(self, node: Node, *, interval: float = 1.0, batch: int = 5000) -> None:
        self.node = node
        self.store = LogStore(node.db)  # type: ignore[arg-type]
        self.interval = interval
        self.batch = batch
        self.origin = log_origin(node.id)
        assert node.key is not None
        self.signer = NoteSigner(self.origin, node.key)
        self.is_writer = False
        self.refusal: str | None = None
        # Set False by the node when witnesses run: after a start, sign nothing until the
        # peers were asked how far they witnessed this log (see Witness.learn_own_floor).
        self.floor_checked = True
        self.integrated = 0
        self.leaves_integrated_total = 0
        self._range: CompactRange | None = None
        self._last_signed_at = 0.0
        self._signed_size = 0
        # (size, root) of a signed tree the in-memory range is known to extend.
        self._extends: tuple[int, bytes] | None = None
        self._head_file = node.config.data_path / "log-head.json"
        self._task: asyncio.Task[None] | None = None

    @property
    def vkey(self) -> str:
        """The note verifier key of this log (``name+keyid+base64``)."""
        return self.signer.vkey

    # -- lifecycle: start() competes for the writer lock; stop() releases it with the
    # connection (BackgroundLoop) ---------------------------------------------------------
    async def _run(self) -> None:
        db = self.node.db
        assert db is not None
        await run_as_leader(
            db.url,
            LOCK_KEY,
            self._write_loop,
            name="log writer",
            app_name=f"exchange-log-{self.node.id}-{os.getpid()}",
            on_change=self._lead,
        )

    def _lead(self, leading: bool) -> None:
        self.is_writer = leading
        if not leading:
            self._range = None

    async def _write_loop(self, conn: asyncpg.Connection) -> None:
        wake = asyncio.Event()
        unsubscribe = self.node.notifier.subscribe(
            "exchange_items", lambda _: wake.set()
        )
        try:
            await self._write(conn, wake)
        finally:
            unsubscribe()

    async def _write(self, conn: asyncpg.Connection, wake: asyncio.Event) -> None:
        await self._load(conn)
        while not conn.is_closed():
            await self.integrate(conn)
            await self.maybe_checkpoint()
            timeout = self.interval
            if self._unsigned_growth():
                # Sign as soon as the interval since the last checkpoint has passed.
                due = self._last_signed_at + self.interval - time.monotonic()
                timeout = min(self.interval, max(0.005, due))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=timeout)
            wake.clear()
            # Let small commits gather: one integration (a transaction and a head-file
            # write) per ~50 ms at most, not one per push; checkpoints come every
            # `interval` anyway.
            await asyncio.sleep(0.05)

    def _unsigned_growth(self) -> bool:
        return self._range is not None and self._range.size > self._signed_size

    async def _load(self, conn: asyncpg.Connection) -> None:
        size, _root = await self.store.state(conn=conn)
        plan = root_plan(size)
        nodes = await self.store.nodes(plan, conn=conn)
        self._range = CompactRange(size, [nodes[k] for k in plan])
        self.integrated = size
        self._extends = None

    # -- integration -----------------------------------------------------------------------
    async def integrate(self, conn: asyncpg.Connection) -> int:
        """Integrate every pending entry; returns how many were integrated now."""
        done = 0
        while True:
            assert self._range is not None
            start = self._range.size
            leaves = await self.store.pending_leaves(start, self.batch, conn=conn)
            if not leaves:
                return done
            work = CompactRange(self._range.size, self._range.hashes)
            new_nodes: list[tuple[int, int, bytes]] = []
            for idx, item_id, accepted in leaves:
                if idx != work.size:  # an index gap means a concurrent writer; reload
                    raise asyncpg.InterfaceError(
                        f"log entry {work.size} missing (found {idx})"
                    )
                new_nodes.extend(work.append(leaf_hash_for(item_id, idx, accepted)))
            async with conn.transaction():
                ok = await self.store.integrate_txn(
                    conn, start, new_nodes, work.size, work.root()
                )
            if not ok:
                await self._load(conn)
                continue
            self._range = work
            self.integrated = work.size
            self.leaves_integrated_total += len(leaves)
            done += len(leaves)

    # -- checkpoints -----------------------------------------------------------------------
    def _read_head_file(self) -> tuple[int, bytes | None]:
        try:
            doc = json.loads(self._head_file.read_text())
            return int(doc["size"]), base64.b64decode(doc["root"])
        except (OSError, ValueError, KeyError):
            return 0, None

    def _write_head_file(self, size: int, root: bytes) -> None:
        tmp = self._head_file.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(
                {
                    "size": size,
                    "root": base64.b64encode(root).decode(),
                    "origin": self.origin,
                },
                f,
            )
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._head_file)

    def raise_floor(self, size: int, root: bytes) -> None:
        """Remember a size this log signed that a peer witnessed (never lowers)."""
        file_size, _ = self._read_head_file()
        if size > file_size:
            self._write_head_file(size, root)
            _log.info(
                "peers witnessed this log at size %d; not signing anything smaller",
                size,
            )

    async def signed_floor(self) -> tuple[int, bytes | None]:
        """The largest size this log has ever signed (database or file), with its root."""
        file_size, file_root = self._read_head_file()
        latest = await self.store.latest_checkpoint()
        if latest is not None and latest.size >= file_size:
            return latest.size, latest.root
        return file_size, file_root

    async def maybe_checkpoint(self, *, force: bool = False) -> str | None:
        """Sign a checkpoint of the integrated tree if it grew; returns the note or None."""
        rng = self._range
        if rng is None or rng.size == 0:
            return None
        if not self.floor_checked:
            return None  # first learn from peers how far they witnessed this log
        if not force and time.monotonic() - self._last_signed_at < self.interval:
            return None
        size, root = rng.size, rng.root()
        floor, floor_root = await self.signed_floor()
        problem: str | None = None
        if size < floor or (
            size == floor and floor_root is not None and floor_root != root
        ):
            problem = f"this log already signed size {floor}"
        elif size > floor > 0 and floor_root is not None:
            if self._extends != (floor, floor_root):
                if await self._root_at(floor) != floor_root:
                    problem = (
                        f"this log already signed size {floor} with another root: its first "
                        f"{floor} entries changed since"
                    )
                else:
                    self._extends = (floor, floor_root)
        if problem is not None:
            msg = (
                f"refusing to sign a checkpoint of size {size}: {problem} (database restored "
                "from an older backup, or rewritten?). Restore the newest backup; the signed "
                f"size is remembered in {self._head_file} and by the peers that witnessed it"
            )
            if self.refusal != msg:
                _log.error(msg)
            self.refusal = msg
            self._signed_size = size  # re-check when the log grows, not in a tight loop
            return None
        self.refusal = None
        self._signed_size = floor
        if size == floor:
            return None
        note = sign_checkpoint(Checkpoint(self.origin, size, root), self.signer)
        await self.store.add_checkpoint(size, root, note)
        await asyncio.to_thread(self._write_head_file, size, root)
        self._last_signed_at = time.monotonic()
        self._signed_size = size
        self._extends = (size, root)
        return note

    async def _root_at(self, size: int) -> bytes | None:
        """Root of the stored tree's first ``size`` entries (None if nodes are missing)."""
        plan = root_plan(size)
        nodes = await self.store.nodes(plan)
        if len(nodes) != len(plan):
            return None
        return fold_subtrees([nodes[k] for k in plan])

    def head_file(self) -> Path:
        """Where the largest signed checkpoint is remembered outside the database."""
        return self._head_file
