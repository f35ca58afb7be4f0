"""Proofs and receipts from the stored Merkle log (O(log n) node reads per proof)."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

from exchange.core.merkle import (
    consistency_proof_plan,
    inclusion_proof_plan,
    plan_nodes,
    proof_from_plan,
)
from exchange.errors import InputError, NotFound
from exchange.storage.log import CheckpointRow, LogStore
from schemas.errors import ErrorCode

__all__ = ["ProofService", "b64"]


def b64(data: bytes) -> str:
    """Standard base64, as hashes travel in checkpoints and proofs."""
    return base64.b64encode(data).decode("ascii")


class ProofService:
    """Builds inclusion and consistency proofs and receipts."""

    def __init__(self, log: LogStore) -> None:
        self.log = log

    async def _integrated(self) -> int:
        size, _ = await self.log.state()
        return size

    async def inclusion(self, index: int, size: int) -> list[bytes]:
        """Audit path of entry ``index`` in the tree of ``size`` entries.

        Raises:
            InputError: ``index``/``size`` out of range or beyond the integrated tree.
        """
        integrated = await self._integrated()
        if not 0 <= index < size:
            raise InputError(
                f"index {index} is not below size {size}", code=ErrorCode.BAD_REQUEST
            )
        if size > integrated:
            raise InputError(
                f"size {size} is beyond the integrated log ({integrated}); ask for a "
                "signed checkpoint's size",
                code=ErrorCode.BAD_REQUEST,
            )
        plan = inclusion_proof_plan(index, size)
        nodes = await self.log.nodes(plan_nodes(plan))
        return proof_from_plan(plan, nodes)

    async def inclusions(self, indices: list[int], size: int) -> list[list[bytes]]:
        """Audit paths of several entries in the tree of ``size``, nodes read in one query.

        Raises:
            InputError: an index or ``size`` out of range or beyond the integrated tree.
        """
        integrated = await self._integrated()
        if size > integrated:
            raise InputError(
                f"size {size} is beyond the integrated log ({integrated})",
                code=ErrorCode.BAD_REQUEST,
            )
        bad = next((i for i in indices if not 0 <= i < size), None)
        if bad is not None:
            raise InputError(
                f"index {bad} is not below size {size}", code=ErrorCode.BAD_REQUEST
            )
        plans = [inclusion_proof_plan(i, size) for i in indices]
        wanted: set[tuple[int, int]] = set()
        for plan in plans:
            wanted |= plan_nodes(plan)
        nodes = await self.log.nodes(wanted)
        return [proof_from_plan(plan, nodes) for plan in plans]

    async def consistency(self, size1: int, size2: int) -> list[bytes]:
        """Consistency path from the tree of ``size1`` to that of ``size2``.

        Raises:
            InputError: sizes out of order or beyond the integrated tree.
        """
        integrated = await self._integrated()
        if not 0 < size1 <= size2:
            raise InputError("need 0 < size1 <= size2", code=ErrorCode.BAD_REQUEST)
        if size2 > integrated:
            raise InputError(
                f"size2 {size2} is beyond the integrated log ({integrated})",
                code=ErrorCode.BAD_REQUEST,
            )
        plan = consistency_proof_plan(size1, size2)
        nodes = await self.log.nodes(plan_nodes(plan))
        return proof_from_plan(plan, nodes)

    async def receipt(
        self, item_id: str, index: int, wait: float = 0.0
    ) -> dict[str, Any]:
        """Signed checkpoint covering ``index`` plus the inclusion proof against it.

        Args:
            item_id: The item's id.
            index: Its log index.
            wait: Seconds to wait (bounded by the caller) for a covering checkpoint.

        Raises:
            NotFound: (``not_yet_integrated``) no signed checkpoint covers it yet.
        """
        deadline = time.monotonic() + wait
        cp: CheckpointRow | None = await self.log.checkpoint_covering(index)
        while cp is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            cp = await self.log.checkpoint_covering(index)
        if cp is None:
            raise NotFound(
                f"item {item_id} (index {index}) is not yet in a signed checkpoint; "
                "retry in a second or pass ?wait=5",
                code=ErrorCode.NOT_YET_INTEGRATED,
                detail={"retry_after": 1},
            )
        proof = await self.inclusion(index, cp.size)
        return {
            "item_id": item_id,
            "index": index,
            "checkpoint": cp.note,
            "inclusion": {
                "index": index,
                "size": cp.size,
                "hashes": [b64(h) for h in proof],
            },
        }
