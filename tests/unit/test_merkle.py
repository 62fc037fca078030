"""RFC 6962 Merkle hashing: published test vectors, a reference recursive implementation, inclusion proofs."""

from __future__ import annotations

import hashlib

import pytest

from fraudshared.audit import merkle

# Certificate Transparency reference leaves and tree heads (transparency-dev/merkle testonly/constants.go).
LEAVES = [
    bytes.fromhex(h)
    for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")
]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
INCLUSION = {
    (0, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (5, 8): [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
}


def reference_mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, literally."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + reference_mth(leaves[:k]) + reference_mth(leaves[k:])).digest()


def reference_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 section 2.1.1 PATH(m, D[n]), literally."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*reference_path(m, leaves[:k]), reference_mth(leaves[k:])]
    return [*reference_path(m - k, leaves[k:]), reference_mth(leaves[:k])]


def synthetic(n: int) -> list[bytes]:
    return [i.to_bytes(4, "big") * (i % 3 + 1) for i in range(n)]


def test_empty_tree_is_sha256_of_nothing() -> None:
    assert merkle.root([]).hex() == ROOTS[0]
    assert merkle.root_from_leaf_hashes([]) == merkle.EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_published_roots_for_1_to_8_leaves(size: int) -> None:
    assert merkle.root(LEAVES[:size]).hex() == ROOTS[size]
    assert reference_mth(LEAVES[:size]).hex() == ROOTS[size]


@pytest.mark.parametrize(("index", "size"), sorted(INCLUSION))
def test_published_inclusion_proofs(index: int, size: int) -> None:
    hashes = [merkle.leaf_hash(leaf) for leaf in LEAVES[:size]]
    proof = merkle.inclusion_proof(index, hashes)
    assert [p.hex() for p in proof] == INCLUSION[(index, size)]
    assert merkle.verify_inclusion(index, size, hashes[index], proof, bytes.fromhex(ROOTS[size]))


def test_split_is_largest_power_of_two_below_n() -> None:
    assert [merkle.split_point(n) for n in (2, 3, 4, 5, 8, 9, 1000)] == [1, 2, 2, 4, 4, 8, 512]
    with pytest.raises(ValueError):
        merkle.split_point(1)


def test_iterative_root_matches_reference_recursion_for_every_size_up_to_70() -> None:
    for n in range(0, 71):
        leaves = synthetic(n)
        assert merkle.root(leaves) == reference_mth(leaves), n


def test_every_inclusion_proof_matches_reference_and_verifies() -> None:
    for n in range(1, 34):
        leaves = synthetic(n)
        hashes = [merkle.leaf_hash(x) for x in leaves]
        tree_root = merkle.root(leaves)
        for m in range(n):
            proof = merkle.inclusion_proof(m, hashes)
            assert proof == reference_path(m, leaves), (m, n)
            assert merkle.verify_inclusion(m, n, hashes[m], proof, tree_root), (m, n)


def test_inclusion_proofs_fail_when_anything_is_tampered() -> None:
    for n in (2, 3, 5, 8, 13):
        hashes = [merkle.leaf_hash(x) for x in synthetic(n)]
        tree_root = merkle.root_from_leaf_hashes(hashes)
        for m in range(n):
            proof = merkle.inclusion_proof(m, hashes)
            other = merkle.leaf_hash(b"not in the tree")
            assert not merkle.verify_inclusion(m, n, other, proof, tree_root)
            assert not merkle.verify_inclusion((m + 1) % n, n, hashes[m], proof, tree_root)
            assert not merkle.verify_inclusion(m, n, hashes[m], proof[:-1], tree_root)
            assert not merkle.verify_inclusion(m, n, hashes[m], [*proof, tree_root], tree_root)
            flipped = bytearray(proof[0])
            flipped[0] ^= 1
            assert not merkle.verify_inclusion(m, n, hashes[m], [bytes(flipped), *proof[1:]], tree_root)
            assert not merkle.verify_inclusion(m, n, hashes[m], proof, merkle.leaf_hash(b"other root"))


def test_single_leaf_tree_has_an_empty_path_and_bad_indices_are_refused() -> None:
    h = merkle.leaf_hash(b"only")
    assert merkle.inclusion_proof(0, [h]) == []
    assert merkle.verify_inclusion(0, 1, h, [], h)
    assert not merkle.verify_inclusion(1, 1, h, [], h)
    assert not merkle.verify_inclusion(-1, 1, h, [], h)
    with pytest.raises(IndexError):
        merkle.inclusion_proof(1, [h])


def test_leaf_and_node_prefixes_separate_domains() -> None:
    a, b = merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")
    # A leaf whose data is two hashes must not collide with the node over those hashes.
    assert merkle.leaf_hash(a + b) != merkle.node_hash(a, b)
    assert merkle.root([a + b]) != merkle.root_from_leaf_hashes([a, b])
