"""The node's Merkle log on the wire: checkpoints, proofs, receipts, entries.

Hashes follow RFC 9162 and travel in standard padded base64, as in the C2SP
``tlog-checkpoint`` signed-note format; ``note`` carries that signed note verbatim
because it is what the node's signature covers.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, model_validator

from ._base import HashB64, ItemId, Line, SafeInt, StrictModel, Text, Timestamp

__all__ = [
    "Checkpoint",
    "ConsistencyProof",
    "InclusionProof",
    "LogEntry",
    "LogEntryPage",
    "Receipt",
]

# A tree of at most 2**53 leaves has proofs of at most 53 (inclusion) and
# 2 * 53 (consistency) hashes.
_InclusionHashes = Annotated[list[HashB64], Field(max_length=64)]
_ConsistencyHashes = Annotated[list[HashB64], Field(max_length=128)]


class Checkpoint(StrictModel):
    """A signed statement of the log's size and root hash."""

    origin: Line = Field(description="The log's origin line, naming the node's log.")
    size: SafeInt = Field(description="Number of entries the root covers.")
    root_hash: HashB64 = Field(description="RFC 9162 root hash, base64.")
    note: Text = Field(description="The signed note, verbatim (with signatures).")
    key: Line | None = Field(
        default=None,
        description="The log's note verifier key (name+keyid+base64), to check ``note``.",
    )
    cosignatures: Annotated[list[Line], Field(max_length=100)] = Field(
        default=[],
        description="Witness cosignature lines (C2SP tlog-cosignature) of ``note``.",
    )


class InclusionProof(StrictModel):
    """Proof that entry ``index`` is in the tree of ``size`` entries."""

    index: SafeInt = Field(description="The entry's index, from 0.")
    size: SafeInt = Field(description="Tree size the proof is for.")
    hashes: _InclusionHashes = Field(description="Audit path, leaf to root.")

    @model_validator(mode="after")
    def _index_in_tree(self) -> Self:
        if self.index >= self.size:
            raise ValueError(
                f"index {self.index} is outside a tree of size {self.size}"
            )
        return self


class ConsistencyProof(StrictModel):
    """Proof that the tree of ``size1`` entries is a prefix of that of ``size2``."""

    size1: SafeInt = Field(description="The older tree size.")
    size2: SafeInt = Field(description="The newer tree size.")
    hashes: _ConsistencyHashes = Field(description="RFC 9162 consistency path.")

    @model_validator(mode="after")
    def _sizes_ordered(self) -> Self:
        if self.size1 > self.size2:
            raise ValueError(f"size1 {self.size1} is larger than size2 {self.size2}")
        return self


class Receipt(StrictModel):
    """What a pusher gets back for an accepted item: proof it is in the log."""

    item_id: ItemId = Field(description="The accepted item's id.")
    index: SafeInt = Field(description="Its index in the node's log.")
    checkpoint: Text = Field(description="A signed checkpoint note covering it.")
    inclusion: InclusionProof = Field(description="Inclusion in that checkpoint.")

    @model_validator(mode="after")
    def _same_index(self) -> Self:
        if self.inclusion.index != self.index:
            raise ValueError(
                f"inclusion proof is for index {self.inclusion.index}, "
                f"receipt for {self.index}"
            )
        return self


class LogEntry(StrictModel):
    """One entry of a node's log."""

    index: SafeInt = Field(description="Position in the log, from 0.")
    item_id: ItemId = Field(description="The item logged there.")
    accepted_at: Timestamp = Field(description="When the node accepted it.")


class LogEntryPage(StrictModel):
    """A page of ``GET /v1/log/entries``: ids and acceptance times only, never content.

    Each entry's leaf data is the RFC 8785 form of
    ``{"accepted_at": …, "id": …, "index": …}`` and its leaf hash
    ``SHA-256(0x00 || data)``, so a reader rebuilds the tree from these pages alone.
    """

    entries: Annotated[list[LogEntry], Field(max_length=1000)] = Field(
        description="Entries from ``start`` in index order; fewer than asked at the log's end."
    )
