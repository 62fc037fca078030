"""RFC 6962 (Certificate Transparency) Merkle tree hashing and inclusion proofs; pure functions.

- leaf hash: ``SHA-256(0x00 || leaf)``; interior node: ``SHA-256(0x01 || left || right)``;
- the empty tree's hash is ``SHA-256("")``;
- a tree of ``n > 1`` leaves splits at ``k``, the largest power of two smaller than ``n`` (RFC 6962 2.1), so
  sizes that are not powers of two give the left-complete tree every CT log computes.

Inclusion proofs are the RFC's ``PATH(m, D[n])``; verification is RFC 9162 section 2.1.3.2.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(leaf: bytes) -> bytes:
    """``SHA-256(0x00 || leaf)``."""
    return hashlib.sha256(LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    if n < 2:
        raise ValueError(f"a split needs at least 2 leaves, got {n}")
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaf_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash over already hashed leaves.

    Pairs level by level and carries a level's odd last node up unchanged, which yields the same tree as the
    RFC's recursive split (tested against it) in one pass and without recursion.
    """
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def root(leaves: Sequence[bytes]) -> bytes:
    """``MTH(D[n])`` of raw leaves."""
    return root_from_leaf_hashes([leaf_hash(leaf) for leaf in leaves])


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The audit path ``PATH(index, D[n])`` for the leaf at ``index`` (0-based), from the leaf up.

    Raises:
        IndexError: If ``index`` is not in ``0..n-1``.
    """
    if not 0 <= index < len(leaf_hashes):
        raise IndexError(f"leaf index {index} is outside a tree of {len(leaf_hashes)} leaves")
    path: list[bytes] = []
    lo, hi, m = 0, len(leaf_hashes), index
    # Walk down from the root, remembering the sibling subtree at each split; the path lists them bottom-up.
    while hi - lo > 1:
        k = split_point(hi - lo)
        if m < k:
            path.append(root_from_leaf_hashes(leaf_hashes[lo + k : hi]))
            hi = lo + k
        else:
            path.append(root_from_leaf_hashes(leaf_hashes[lo : lo + k]))
            lo, m = lo + k, m - k
    path.reverse()
    return path


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes | None:
    """The root that ``proof`` implies for ``leaf`` (a leaf hash) at ``index`` in a tree of ``size``.

    Returns:
        The implied root, or None when the proof has the wrong shape for ``index`` and ``size``.
    """
    if not 0 <= index < size or any(len(p) != HASH_SIZE for p in proof):
        return None
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected_root: bytes) -> bool:
    """Whether ``proof`` shows that ``leaf`` (a leaf hash) sits at ``index`` of the tree with ``expected_root``."""
    return root_from_inclusion_proof(index, size, leaf, proof) == expected_root
