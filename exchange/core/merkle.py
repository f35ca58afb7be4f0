"""RFC 9162 Merkle trees: hashing, proofs, verification and storage-friendly plans.

Every node keeps an append-only log whose tree head is the RFC 9162 (RFC 6962)
Merkle Tree Hash over SHA-256. This module is pure: no I/O, no clocks.

Four layers, from the definitions outwards:

* **Hashing.** :func:`leaf_hash` is ``SHA-256(0x00 || data)``, :func:`node_hash` is
  ``SHA-256(0x01 || left || right)`` and :data:`EMPTY_ROOT` is ``SHA-256("")``.
* **Reference proofs.** :func:`root_of`, :func:`inclusion_proof_of` and
  :func:`consistency_proof_of` are the literal recursive definitions of RFC 9162
  §2.1.1, §2.1.3.1 and §2.1.4.1 over an in-memory list of leaf hashes. They are
  O(n) and meant for tests and small trees.
* **Verifiers.** :func:`verify_inclusion` and :func:`verify_consistency` implement
  RFC 9162 §2.1.3.2 and §2.1.4.2 with the semantics of the Go library
  ``github.com/transparency-dev/merkle`` (for example ``size1 == 0`` is always an
  error; a protocol that treats "old size 0" as trivially consistent must decide
  that before calling). Unlike the Go code, every hash and root must be exactly 32
  bytes. They raise :class:`~exchange.errors.ProofError` (``proof_invalid``) with
  a reason a person can act on.
* **Storage-friendly proofs.** A node stores only hashes of *complete* subtrees,
  addressed ``(level, idx)``: the subtree over leaves
  ``[idx * 2**level, (idx + 1) * 2**level)``. Every element of an RFC 9162 proof is
  the hash of a leaf range ``[a, b)`` that is either such a subtree or a "ragged"
  range on the right edge of the tree; :func:`range_subtrees` splits it into
  maximal complete aligned subtrees (left to right) and :func:`fold_subtrees`
  recombines their hashes right to left, ``H(c1, H(c2, ... H(ck-1, ck)))``, which
  is exactly how RFC 9162 hashes a ragged range. A *plan*
  (:func:`inclusion_proof_plan`, :func:`consistency_proof_plan`,
  :func:`root_plan`) lists, per proof element, the subtrees to fold. Plans are
  computed from sizes alone in O(log n); :func:`plan_nodes` gives the set of
  O(log n) nodes a store fetches in one query, and :func:`proof_from_plan` turns
  the fetched hashes into the proof. :class:`CompactRange` (the "frontier") keeps
  the right-edge hashes so appends are O(1) amortised, and reports every complete
  subtree each leaf completes so the store can persist it.

Producers (reference functions, plans, :class:`CompactRange`) raise
:class:`ValueError` for impossible arguments: that is a bug in the caller, not a
bad proof from a peer. Verifiers raise :class:`~exchange.errors.ProofError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

from exchange.errors import ProofError
from schemas.errors import ErrorCode

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "NodeId",
    "Plan",
    "consistency_proof_of",
    "consistency_proof_plan",
    "fold_subtrees",
    "inclusion_proof_of",
    "inclusion_proof_plan",
    "leaf_hash",
    "node_hash",
    "plan_nodes",
    "proof_from_plan",
    "range_subtrees",
    "root_of",
    "root_plan",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Size in bytes of every hash, proof element and root (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""Root hash of the empty tree, ``SHA-256("")``."""

NodeId = tuple[int, int]
"""``(level, idx)``: the subtree over leaves ``[idx << level, (idx + 1) << level)``."""

Plan = list[list[NodeId]]
"""Per proof element, the subtrees whose :func:`fold_subtrees` gives that element."""

_sha256 = hashlib.sha256
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


# --------------------------------------------------------------------------- hashing


def leaf_hash(data: bytes) -> bytes:
    """Hash a leaf: ``SHA-256(0x00 || data)``.

    Args:
        data: The leaf's bytes (the entry, not a hash of it).

    Returns:
        The 32-byte leaf hash.
    """
    return _sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash an interior node: ``SHA-256(0x01 || left || right)``.

    Args:
        left: Hash of the left child.
        right: Hash of the right child.

    Returns:
        The 32-byte node hash.
    """
    return _sha256(_NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


# ------------------------------------------------------------------------- reference


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """Merkle Tree Hash of a list of leaf hashes (RFC 9162 §2.1.1).

    Args:
        leaf_hashes: The leaf hashes, in log order.

    Returns:
        The root; :data:`EMPTY_ROOT` for an empty list.
    """
    return _mth(leaf_hashes, 0, len(leaf_hashes))


def _mth(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    n = hi - lo
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[lo]
    k = _split(n)
    return node_hash(_mth(leaves, lo, lo + k), _mth(leaves, lo + k, hi))


def inclusion_proof_of(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Inclusion proof ``PATH(index, D[n])`` (RFC 9162 §2.1.3.1), leaf upwards.

    Args:
        leaf_hashes: All leaf hashes of the tree (``n = len(leaf_hashes)``).
        index: The leaf to prove, ``0 <= index < n``.

    Returns:
        The sibling hashes from the leaf up to the root.

    Raises:
        ValueError: ``index`` is not a leaf of the tree.
    """
    n = len(leaf_hashes)
    if not 0 <= index < n:
        raise ValueError(f"index {index} is not below tree size {n}")

    def path(m: int, lo: int, hi: int) -> list[bytes]:
        if hi - lo == 1:
            return []
        k = _split(hi - lo)
        if m < k:
            return [*path(m, lo, lo + k), _mth(leaf_hashes, lo + k, hi)]
        return [*path(m - k, lo + k, hi), _mth(leaf_hashes, lo, lo + k)]

    return path(index, 0, n)


def consistency_proof_of(leaf_hashes: Sequence[bytes], size1: int) -> list[bytes]:
    """Consistency proof ``PROOF(size1, D[n])`` (RFC 9162 §2.1.4.1).

    Args:
        leaf_hashes: All leaf hashes of the newer tree (``n = len(leaf_hashes)``).
        size1: Size of the older tree, ``1 <= size1 <= n``.

    Returns:
        The proof hashes, bottom-up; empty when ``size1 == n``.

    Raises:
        ValueError: ``size1`` is out of range (a proof from the empty tree is not
            defined).
    """
    n = len(leaf_hashes)
    if not 1 <= size1 <= n:
        raise ValueError(f"size1 {size1} is not in 1..{n}")

    def subproof(m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
        size = hi - lo
        if m == size:
            return [] if complete else [_mth(leaf_hashes, lo, hi)]
        k = _split(size)
        if m <= k:
            return [*subproof(m, lo, lo + k, complete), _mth(leaf_hashes, lo + k, hi)]
        return [*subproof(m - k, lo + k, hi, False), _mth(leaf_hashes, lo, lo + k)]

    return subproof(size1, 0, n, True)


# ------------------------------------------------------------------------- verifiers


def _fail(reason: str) -> ProofError:
    return ProofError(reason, code=ErrorCode.PROOF_INVALID)


def _check_hash(what: str, value: bytes) -> None:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise _fail(f"{what} must be bytes, not {type(value).__name__}")
    if len(value) != HASH_SIZE:
        raise _fail(f"{what} must be {HASH_SIZE} bytes, got {len(value)}")


def _check_hashes(proof: Sequence[bytes]) -> list[bytes]:
    hashes = list(proof)
    for i, h in enumerate(hashes):
        _check_hash(f"proof[{i}]", h)
    return [bytes(h) for h in hashes]


def _check_int(what: str, value: int) -> None:
    if type(value) is not int or value < 0:
        raise _fail(f"{what} must be a non-negative integer, got {value!r}")


def _inclusion_shape(index: int, size: int) -> tuple[int, int]:
    """``(inner, border)`` lengths of the inclusion path of ``index`` in ``size``.

    ``inner`` siblings lie below the level where the paths to ``index`` and to the
    last leaf meet; the ``border`` ones above it are all left siblings.
    """
    inner = (index ^ (size - 1)).bit_length()
    return inner, (index >> inner).bit_count()


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree with ``root``.

    RFC 9162 §2.1.3.2, with the proof length checked up front.

    Args:
        leaf_hash: The 32-byte leaf hash (already ``SHA-256(0x00 || entry)``).
        index: Position of the leaf, ``0 <= index < size``.
        size: Size of the tree the proof is for.
        proof: Sibling hashes from the leaf upwards (32 bytes each).
        root: The expected 32-byte root of the tree of ``size``.

    Raises:
        ProofError: (``proof_invalid``) the proof does not verify; the message
            says why.
    """
    _check_int("index", index)
    _check_int("tree size", size)
    if index >= size:
        raise _fail(f"index {index} is not below tree size {size}")
    _check_hash("leaf hash", leaf_hash)
    _check_hash("root", root)
    hashes = _check_hashes(proof)
    inner, border = _inclusion_shape(index, size)
    if len(hashes) != inner + border:
        raise _fail(
            f"inclusion proof for index {index} in tree size {size} has "
            f"{len(hashes)} hashes, expected {inner + border}"
        )
    h = bytes(leaf_hash)
    for i in range(inner):
        if (index >> i) & 1:
            h = node_hash(hashes[i], h)
        else:
            h = node_hash(h, hashes[i])
    for sibling in hashes[inner:]:
        h = node_hash(sibling, h)
    if h != root:
        raise _fail(
            f"root mismatch: proof for index {index} in tree size {size} gives "
            f"{h.hex()}, expected {bytes(root).hex()}"
        )


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree ``(size2, root2)`` extends the tree ``(size1, root1)``.

    RFC 9162 §2.1.4.2 with the Go library's edge cases: ``size1 == 0`` is an error
    (even ``0 -> 0``), equal sizes need an empty proof and equal roots.

    Args:
        size1: Size of the older tree, ``1 <= size1 <= size2``.
        size2: Size of the newer tree.
        proof: The consistency proof (32-byte hashes), bottom-up.
        root1: The 32-byte root of the older tree.
        root2: The 32-byte root of the newer tree.

    Raises:
        ProofError: (``proof_invalid``) the proof does not verify; the message
            says why.
    """
    _check_int("size1", size1)
    _check_int("size2", size2)
    if size2 < size1:
        raise _fail(f"size2 {size2} is smaller than size1 {size1}")
    if size1 == 0:
        raise _fail(
            "size1 is 0: a consistency proof from the empty tree is meaningless "
            "(treat an empty old tree as trivially consistent before verifying)"
        )
    _check_hash("root1", root1)
    _check_hash("root2", root2)
    hashes = _check_hashes(proof)
    if size1 == size2:
        if hashes:
            raise _fail(
                f"sizes are equal ({size1}) but proof has {len(hashes)} hashes, "
                "expected 0"
            )
        if root1 != root2:
            raise _fail(f"sizes are equal ({size1}) but the roots differ")
        return

    # The last complete subtree of tree 1 is node (level, index); the proof is
    # that node's hash (omitted when size1 is a power of two, as it is root1)
    # followed by its inclusion path, at that level, in tree 2.
    level = (size1 & -size1).bit_length() - 1
    index = (size1 - 1) >> level
    inner, border = _inclusion_shape(index, ((size2 - 1) >> level) + 1)
    start = 0 if index == 0 else 1
    if len(hashes) != start + inner + border:
        raise _fail(
            f"consistency proof from size {size1} to {size2} has {len(hashes)} "
            f"hashes, expected {start + inner + border}"
        )
    seed = bytes(root1) if start == 0 else hashes[0]
    path = hashes[start:]
    h1 = h2 = seed
    for i in range(inner):
        if (index >> i) & 1:
            h1 = node_hash(path[i], h1)
            h2 = node_hash(path[i], h2)
        else:
            h2 = node_hash(h2, path[i])
    for sibling in path[inner:]:
        h1 = node_hash(sibling, h1)
        h2 = node_hash(sibling, h2)
    if h1 != root1:
        raise _fail(
            f"root1 mismatch: proof from size {size1} to {size2} gives {h1.hex()}, "
            f"expected {bytes(root1).hex()}"
        )
    if h2 != root2:
        raise _fail(
            f"root2 mismatch: proof from size {size1} to {size2} gives {h2.hex()}, "
            f"expected {bytes(root2).hex()}"
        )


# --------------------------------------------------------------------- storage plans


def range_subtrees(start: int, end: int) -> list[NodeId]:
    """Split the leaf range ``[start, end)`` into maximal complete aligned subtrees.

    For every range that occurs as an RFC 9162 proof element or root (a complete
    subtree, or a range on the right edge starting at a multiple of a power of two
    at least as large as the range) the result, folded by :func:`fold_subtrees`,
    is that range's Merkle Tree Hash.

    Args:
        start: First leaf of the range.
        end: One past the last leaf; ``start <= end``.

    Returns:
        ``(level, idx)`` pairs, left to right.

    Raises:
        ValueError: ``start`` or ``end`` is negative, or ``start > end``.
    """
    if start < 0 or end < start:
        raise ValueError(f"[{start}, {end}) is not a valid leaf range")
    out: list[NodeId] = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start:
            level = min(level, (start & -start).bit_length() - 1)
        out.append((level, start >> level))
        start += 1 << level
    return out


def fold_subtrees(hashes: Sequence[bytes]) -> bytes:
    """Combine the subtree hashes of a range into its RFC 9162 hash.

    Right-to-left fold: ``H(c1, H(c2, ... H(ck-1, ck)))``.

    Args:
        hashes: Hashes of the subtrees from :func:`range_subtrees`, left to right.

    Returns:
        The range's hash; :data:`EMPTY_ROOT` for no subtrees (the empty tree).
    """
    if not hashes:
        return EMPTY_ROOT
    h = hashes[-1]
    for left in reversed(hashes[:-1]):
        h = _sha256(_NODE_PREFIX + left + h).digest()
    return h


def root_plan(size: int) -> list[NodeId]:
    """The subtrees whose :func:`fold_subtrees` is the root of a tree of ``size``.

    These are also the right-edge hashes a :class:`CompactRange` holds.

    Args:
        size: Tree size (``0`` gives ``[]``).

    Raises:
        ValueError: ``size`` is negative.
    """
    if size < 0:
        raise ValueError(f"tree size {size} is negative")
    return range_subtrees(0, size)


def inclusion_proof_plan(index: int, size: int) -> Plan:
    """Plan of the inclusion proof of leaf ``index`` in a tree of ``size``.

    Args:
        index: The leaf, ``0 <= index < size``.
        size: The tree size.

    Returns:
        For each proof element, leaf upwards, the subtrees to fold.

    Raises:
        ValueError: ``index`` is not a leaf of the tree.
    """
    if not 0 <= index < size:
        raise ValueError(f"index {index} is not below tree size {size}")
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        mid = lo + _split(hi - lo)
        if index < mid:
            ranges.append((mid, hi))
            hi = mid
        else:
            ranges.append((lo, mid))
            lo = mid
    return [range_subtrees(a, b) for a, b in reversed(ranges)]


def consistency_proof_plan(size1: int, size2: int) -> Plan:
    """Plan of the consistency proof from tree size ``size1`` to ``size2``.

    Args:
        size1: Older size, ``1 <= size1 <= size2``.
        size2: Newer size.

    Returns:
        For each proof element, bottom-up, the subtrees to fold (``[]`` when the
        sizes are equal).

    Raises:
        ValueError: the sizes are out of range.
    """
    if not 1 <= size1 <= size2:
        raise ValueError(f"consistency proof from {size1} to {size2} is not defined")
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, size2
    complete = True
    while True:
        if size1 == hi:
            if not complete:
                ranges.append((lo, hi))
            break
        mid = lo + _split(hi - lo)
        if size1 <= mid:
            ranges.append((mid, hi))
            hi = mid
        else:
            ranges.append((lo, mid))
            lo = mid
            complete = False
    return [range_subtrees(a, b) for a, b in reversed(ranges)]


def plan_nodes(plan: Iterable[Iterable[NodeId]]) -> set[NodeId]:
    """Every node a plan needs, for fetching them in one query.

    Args:
        plan: A plan, or a single list of nodes such as :func:`root_plan`'s
            wrapped in a list.

    Returns:
        The set of ``(level, idx)`` nodes (O(log n) of them).
    """
    return {node for element in plan for node in element}


def proof_from_plan(plan: Plan, nodes: Mapping[NodeId, bytes]) -> list[bytes]:
    """Build a proof from a plan and the fetched subtree hashes.

    Args:
        plan: From :func:`inclusion_proof_plan` or :func:`consistency_proof_plan`.
        nodes: Hashes keyed by ``(level, idx)``; must hold :func:`plan_nodes`.

    Returns:
        The proof hashes, in proof order.

    Raises:
        KeyError: a node the plan needs is missing from ``nodes``.
    """
    proof: list[bytes] = []
    for element in plan:
        try:
            hashes = [nodes[node] for node in element]
        except KeyError as exc:
            raise KeyError(f"subtree node {exc.args[0]} is missing") from None
        proof.append(fold_subtrees(hashes))
    return proof


# ------------------------------------------------------------------------ frontier


class CompactRange:
    """The right edge of a Merkle tree, for incremental appends.

    Holds the hashes of the :func:`root_plan` subtrees of the current size (one per
    set bit of the size, largest first). Appending a leaf merges equal-sized
    subtrees, exactly like incrementing a binary counter.

    Args:
        size: Number of leaves already in the tree.
        hashes: Hashes of ``root_plan(size)``, left to right.

    Raises:
        ValueError: ``size`` is negative, or ``hashes`` has the wrong count or a
            hash that is not 32 bytes.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0:
            raise ValueError(f"tree size {size} is negative")
        if len(hashes) != size.bit_count():
            raise ValueError(
                f"a tree of size {size} has {size.bit_count()} right-edge "
                f"subtrees, got {len(hashes)} hashes"
            )
        for h in hashes:
            if len(h) != HASH_SIZE:
                raise ValueError(
                    f"subtree hash must be {HASH_SIZE} bytes, got {len(h)}"
                )
        self._size = size
        self._hashes = [bytes(h) for h in hashes]

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """Hashes of the ``root_plan(size)`` subtrees, left to right."""
        return tuple(self._hashes)

    def append(self, leaf_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Append one leaf.

        Args:
            leaf_hash: The 32-byte leaf hash.

        Returns:
            ``(level, idx, hash)`` of every complete subtree this leaf completes,
            bottom-up, starting with the leaf itself at level 0.

        Raises:
            ValueError: ``leaf_hash`` is not 32 bytes.
        """
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(
                f"leaf hash must be {HASH_SIZE} bytes, got {len(leaf_hash)}"
            )
        idx = self._size
        self._size = idx + 1
        h = leaf_hash if type(leaf_hash) is bytes else bytes(leaf_hash)
        stack = self._hashes
        created = [(0, idx, h)]
        if idx & 1:  # a right child: merge with left siblings while they exist
            sha256 = _sha256
            level = 0
            while idx & 1:
                h = sha256(b"\x01" + stack.pop() + h).digest()
                idx >>= 1
                level += 1
                created.append((level, idx, h))
        stack.append(h)
        return created

    def root(self) -> bytes:
        """Root hash of the tree so far (:data:`EMPTY_ROOT` when empty)."""
        return fold_subtrees(self._hashes)

    def copy(self) -> CompactRange:
        """An independent copy of this range."""
        return CompactRange(self._size, self._hashes)

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"
