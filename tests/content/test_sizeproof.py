"""Spine size proofs: they verify for the true size and for no other (node.content._sizeproof)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.content import (
    SEGMENT_SIZE,
    SizeProof,
    SizeProofError,
    inclusion_proof,
    leaf_hash,
    segment_leaf_hashes,
    size_proof,
    size_proof_shape,
    tree_hash,
    verify_size_proof,
)
from node.content._tree import root_from_inclusion

from .._hyp import examples


def _reader(data: bytes):  # type: ignore[no-untyped-def]
    return lambda off, length: data[off : off + length]


@settings(max_examples=examples(120), deadline=None)
@given(st.integers(0, 70 * SEGMENT_SIZE), st.integers(0, 2**32))
def test_proof_verifies_for_the_true_size_only(size: int, seed: int) -> None:
    data = os.urandom(size) if seed % 2 else bytes(size)  # zeros: identical segments, worst case
    root = tree_hash(data)
    proof = size_proof(_reader(data), size)
    assert verify_size_proof(root, size, proof)
    segments, hashes = size_proof_shape(size)
    assert (len(proof.left_segments) + (1 if size else 0), len(proof.edge_hashes)) == (
        segments,
        hashes,
    )
    for other in {size - 1, size + 1, size + SEGMENT_SIZE, size - SEGMENT_SIZE, 2 * size}:
        if 0 <= other < 2**64 and other != size:
            assert not verify_size_proof(root, other, proof)


def test_last_segment_path_alone_is_ambiguous_but_spine_proof_is_not() -> None:
    """2 segments vs a claimed 3: the old last-segment proof verifies for both sizes."""
    data = os.urandom(2 * SEGMENT_SIZE)
    root = tree_hash(data)
    leaves = segment_leaf_hashes(data)
    path = inclusion_proof(leaves, 1)
    claimed = 2 * SEGMENT_SIZE + SEGMENT_SIZE  # 3 segments, last one full
    # The old check: the true last segment as "segment 2 of 3" with the same single sibling.
    assert root_from_inclusion(leaves[1], 2, 3, path) == root
    # A spine proof for 3 segments needs a real 2-leaf left subtree: the forger can only offer
    # leaf 0 with leaf 1's hash as its edge, and then the last segment must be a third leaf.
    forged = SizeProof((data[:SEGMENT_SIZE],), (leaves[1],), data[SEGMENT_SIZE:])
    assert not verify_size_proof(root, claimed, forged)
    assert verify_size_proof(root, 2 * SEGMENT_SIZE, size_proof(_reader(data), 2 * SEGMENT_SIZE))


@settings(max_examples=examples(60), deadline=None)
@given(st.integers(1, 40 * SEGMENT_SIZE), st.data())
def test_tampered_proofs_fail(size: int, data: st.DataObject) -> None:
    content = os.urandom(size)
    root = tree_hash(content)
    proof = size_proof(_reader(content), size)
    fields = [f for f in ("left_segments", "edge_hashes", "last_segment") if getattr(proof, f)]
    field = data.draw(st.sampled_from(fields))
    value = getattr(proof, field)
    if field == "last_segment":
        i = data.draw(st.integers(0, len(value) - 1))
        bad = SizeProof(proof.left_segments, proof.edge_hashes, _flip(value, i))
    else:
        k = data.draw(st.integers(0, len(value) - 1))
        choice = data.draw(st.sampled_from(["flip", "drop", "extra"]))
        items = list(value)
        if choice == "flip":
            items[k] = _flip(items[k], data.draw(st.integers(0, len(items[k]) - 1)))
        elif choice == "drop":
            del items[k]
        else:
            items.append(items[k])
        bad = SizeProof(**{**proof.__dict__, field: tuple(items)})
    assert not verify_size_proof(root, size, bad)


def _flip(b: bytes, i: int) -> bytes:
    return b[:i] + bytes([b[i] ^ 1]) + b[i + 1 :]


def test_short_or_long_content_is_refused() -> None:
    data = os.urandom(3 * SEGMENT_SIZE + 5)
    with pytest.raises(SizeProofError):
        size_proof(_reader(data), len(data) + 1)
    with pytest.raises(SizeProofError):
        size_proof(_reader(data), len(data) - 1)
    with pytest.raises(SizeProofError):
        size_proof(_reader(b"x"), 0)


def test_empty_and_single_segment() -> None:
    assert verify_size_proof(tree_hash(b""), 0, size_proof(_reader(b""), 0))
    one = os.urandom(100)
    p = size_proof(_reader(one), 100)
    assert p.left_segments == () and p.edge_hashes == () and p.last_segment == one
    assert verify_size_proof(leaf_hash(one), 100, p)
    assert not verify_size_proof(leaf_hash(one), 101, p)


def test_shape_of_a_gib() -> None:
    assert size_proof_shape(1 << 30) == (19, 153)
