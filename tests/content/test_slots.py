"""Erasure-coded slots: geometry, encoding against a naive per-row reference, proofs, draws."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest
import zfec
from Crypto.Hash import keccak as pycryptodome_keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from node.content import (
    DEFAULT_DATA_SHARDS,
    DEFAULT_SLOT_COUNT,
    SEGMENT_SIZE,
    InvalidProof,
    SlotLayout,
    SlotLayoutError,
    SlotReadError,
    draw_sample_indices,
    encode_slot,
    encode_slot_roots,
    encode_slots,
    inclusion_proof,
    iter_slot_batches,
    iter_slot_segments,
    leaf_hash,
    segment_leaf_hashes,
    slot_root_proof,
    slots_proof,
    slots_root_of,
    tree_hash,
    verify_inclusion,
)

from .._hyp import examples

VECTORS = Path(__file__).resolve().parent / "vectors" / "slots"


def reader(data: bytes, max_read: int | None = None) -> Callable[[int, int], bytes]:
    """``read(offset, length)`` over ``data``; ``max_read`` makes every read a short one."""

    def read(offset: int, length: int) -> bytes:
        if max_read is not None:
            length = min(length, max_read)
        return data[offset : offset + length]

    return read


def naive_slots(data: bytes, k: int, n: int) -> list[list[bytes]]:
    """Slots as docs/incentives.md section 2 says, one row and one zfec call at a time."""
    segs = -(-len(data) // SEGMENT_SIZE)
    rows = -(-segs // k)
    padded = data + bytes(rows * k * SEGMENT_SIZE - len(data))
    enc = zfec.Encoder(k, k + n)
    slots: list[list[bytes]] = [[] for _ in range(n)]
    for r in range(rows):
        blocks = [
            padded[(r * k + i) * SEGMENT_SIZE : (r * k + i + 1) * SEGMENT_SIZE] for i in range(k)
        ]
        shares = enc.encode(blocks)
        for j in range(n):
            slots[j].append(bytes(shares[k + j]))
    return slots


def reference_mth(leaves: list[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + reference_mth(leaves[:k]) + reference_mth(leaves[k:])).digest()


def naive_slot_root(segments: list[bytes]) -> bytes:
    return reference_mth([hashlib.sha256(b"\x00" + s).digest() for s in segments])


def keccak256(data: bytes) -> bytes:
    return pycryptodome_keccak.new(digest_bits=256, data=data).digest()


# Sizes around the edges that matter: 1 byte, a segment +-1, whole rows, a tail, several
# encoder batches (32 rows each at K=4, N=8).
def sizes(max_segments: int = 80) -> st.SearchStrategy[int]:
    return st.one_of(
        st.integers(1, 3 * SEGMENT_SIZE),
        st.integers(1, max_segments).map(lambda s: s * SEGMENT_SIZE),
        st.tuples(st.integers(1, max_segments), st.sampled_from([-1, 1, 17, 4000])).map(
            lambda t: max(1, t[0] * SEGMENT_SIZE + t[1])
        ),
        st.integers(1, max_segments * SEGMENT_SIZE),
    )


# -- geometry ------------------------------------------------------------------------------


def test_defaults_and_geometry() -> None:
    assert (DEFAULT_DATA_SHARDS, DEFAULT_SLOT_COUNT) == (4, 8)
    lay = SlotLayout(9000)
    assert (lay.data_shards, lay.slot_count) == (4, 8)
    assert (lay.segments, lay.rows, lay.slot_bytes) == (3, 1, 4096)
    assert lay.slot_size == lay.slot_bytes
    lay = SlotLayout(5 * SEGMENT_SIZE + 1, 2, 3)
    assert (lay.segments, lay.rows, lay.slot_bytes, lay.padded_size) == (6, 3, 3 * 4096, 6 * 4096)
    lay = SlotLayout(1, 2, 2)
    assert (lay.segments, lay.rows, lay.slot_bytes) == (1, 1, 4096)
    lay = SlotLayout(2**64 - 1, 32, 64)
    segments = (2**64 - 1 + 4095) // 4096
    assert lay.rows == (segments + 31) // 32


@pytest.mark.parametrize(
    "size,k,n",
    [
        (0, 4, 8),
        (-1, 4, 8),
        (2**64, 4, 8),
        (1, 0, 8),
        (1, 1, 8),  # one data shard: every slot would be a plain copy
        (1, 4, 3),  # fewer slots than data shards cannot rebuild the content
        (1, 33, 8),
        (1, 4, 0),
        (1, 4, 65),
        (1, True, 8),
        (1.0, 4, 8),
    ],
)
def test_layout_rejects(size: object, k: object, n: object) -> None:
    with pytest.raises(SlotLayoutError):
        SlotLayout(size, k, n)  # type: ignore[arg-type]
    assert issubclass(SlotLayoutError, ValueError)


def test_layout_limits_accepted() -> None:
    SlotLayout(1, 32, 64)
    SlotLayout(1, 2, 2)
    lay = SlotLayout(1, 4, 8)
    assert lay.check_slot(7) == 7
    with pytest.raises(SlotLayoutError):
        lay.check_slot(8)
    with pytest.raises(SlotLayoutError):
        lay.check_slot(-1)


# -- encoding against the naive reference --------------------------------------------------


@settings(max_examples=examples(40), deadline=None)
@given(
    size=sizes(200),
    kn=st.integers(2, 32).flatmap(lambda k: st.tuples(st.just(k), st.integers(k, 64))),
    seed=st.integers(0, 2**32),
    max_read=st.sampled_from([None, None, 1000, 5 * SEGMENT_SIZE + 3]),
)
def test_slot_roots_match_naive(
    size: int, kn: tuple[int, int], seed: int, max_read: int | None
) -> None:
    k, n = kn
    data = random.Random(seed).randbytes(size)
    lay = SlotLayout(size, k, n)
    slots = naive_slots(data, k, n)
    roots, top = encode_slot_roots(reader(data, max_read), lay)
    assert len(roots) == n
    assert roots == [naive_slot_root(s) for s in slots]
    assert top == reference_mth([hashlib.sha256(b"\x00" + r).digest() for r in roots])
    assert top == slots_root_of(roots)
    j = random.Random(seed).randrange(n)
    got = list(iter_slot_segments(reader(data), lay, j))
    assert got == slots[j]
    assert all(len(s) == SEGMENT_SIZE for s in got) and len(got) == lay.rows
    for i in range(n):
        verify_inclusion(leaf_hash(roots[i]), i, n, slot_root_proof(roots, i), top)


@settings(max_examples=examples(40), deadline=None)
@given(
    size=sizes(),
    kn=st.integers(2, 32).flatmap(lambda k: st.tuples(st.just(k), st.integers(k, 64))),
    seed=st.integers(0, 2**32),
)
def test_any_k_slots_rebuild_the_content(size: int, kn: tuple[int, int], seed: int) -> None:
    k, n = kn
    data = random.Random(seed).randbytes(size)
    lay = SlotLayout(size, k, n)
    rng = random.Random(seed + 1)
    chosen = sorted(rng.sample(range(n), k))
    slots = {j: list(iter_slot_segments(reader(data), lay, j)) for j in chosen}
    dec = zfec.Decoder(k, k + n)
    out = bytearray()
    for r in range(lay.rows):
        blocks = [slots[j][r] for j in chosen]
        out += b"".join(dec.decode(blocks, [k + j for j in chosen]))
    assert bytes(out[:size]) == data
    assert not any(out[size:])  # the padding is zeros


@settings(max_examples=examples(30), deadline=None)
@given(
    rows=st.integers(1, 3),
    kn=st.integers(2, 32).flatmap(lambda k: st.tuples(st.just(k), st.integers(k, 64))),
    seed=st.integers(0, 2**32),
)
def test_slots_are_distinct_and_hold_no_plain_content(
    rows: int, kn: tuple[int, int], seed: int
) -> None:
    """For K >= 2 no slot segment is a content segment and no two slots share a segment.

    (The code is MDS: a parity row equal to a unit row, or two equal parity rows, would make
    some K rows singular.) Full rows of random content, so an accidental equality has
    probability ~2^-32768; low-entropy content (zeros) naturally gives equal shares.
    """
    k, n = kn
    size = rows * k * SEGMENT_SIZE
    data = random.Random(seed).randbytes(size)
    lay = SlotLayout(size, k, n)
    seen = {data[i : i + SEGMENT_SIZE] for i in range(0, size, SEGMENT_SIZE)}
    for j in range(n):
        segs = set(iter_slot_segments(reader(data), lay, j))
        assert not seen & segs
        seen |= segs


def test_one_data_shard_is_refused() -> None:
    """K = 1 would make zfec's shares copies of the data (every slot the plain content, all
    slots the same), so no slot would prove distinct storage: SlotLayout and the registry
    refuse it (docs/content-addressing.md)."""
    with pytest.raises(SlotLayoutError):
        SlotLayout(3 * SEGMENT_SIZE, 1, 4)


def test_batches_cross_boundaries_and_see_all_content() -> None:
    # 32-row batches at K=4 N=8: 300 segments = 75 rows = 3 batches, the last partial.
    data = random.Random(5).randbytes(300 * SEGMENT_SIZE - 123)
    lay = SlotLayout(len(data))
    seen = bytearray()
    firsts = []
    for first, shares in iter_slot_batches(reader(data), lay, range(8), on_content=seen.extend):
        firsts.append(first)
        assert len(shares) == 8 and len({len(s) for s in shares}) == 1
    assert bytes(seen) == data
    assert firsts == [0, 32, 64]
    slots = naive_slots(data, 4, 8)
    roots, _ = encode_slot_roots(reader(data), lay)
    assert roots == [naive_slot_root(s) for s in slots]


def test_encode_slot_writes_the_slot(tmp_path: Path) -> None:
    data = random.Random(9).randbytes(50_000)
    lay = SlotLayout(len(data), 3, 5)
    with open(tmp_path / "slot", "wb") as f:
        root = encode_slot(reader(data), lay, 4, f)
    written = (tmp_path / "slot").read_bytes()
    assert len(written) == lay.slot_bytes
    assert written == b"".join(naive_slots(data, 3, 5)[4])
    assert root == tree_hash(written)
    assert encode_slots is encode_slot_roots and slots_proof is slot_root_proof


def test_read_disagreeing_with_size_is_an_error() -> None:
    data = random.Random(1).randbytes(20_000)
    with pytest.raises(SlotReadError):
        encode_slot_roots(reader(data), SlotLayout(20_001))  # content shorter
    with pytest.raises(SlotReadError):
        encode_slot_roots(reader(data), SlotLayout(19_999))  # content longer
    with pytest.raises(SlotReadError):
        encode_slot_roots(lambda off, n: b"\0" * (n + 1), SlotLayout(100))  # too generous


# -- slot-root tree ----------------------------------------------------


def test_slots_root_errors() -> None:
    roots = [bytes([i]) * 32 for i in range(8)]
    with pytest.raises(SlotLayoutError):
        slots_root_of([])
    with pytest.raises(SlotLayoutError):
        slots_root_of([b"\0" * 31])
    with pytest.raises(SlotLayoutError):
        slots_root_of([b"\0" * 32] * 65)
    with pytest.raises(SlotLayoutError):
        slot_root_proof(roots, 8)
    # One slot: the root is the leaf hash of its slot root, with an empty path.
    assert slots_root_of(roots[:1]) == hashlib.sha256(b"\x00" + roots[0]).digest()
    assert slot_root_proof(roots[:1], 0) == []
    # A proof for one slot does not pass for another slot root or position.
    top = slots_root_of(roots)
    proof = slot_root_proof(roots, 3)
    with pytest.raises(InvalidProof):
        verify_inclusion(leaf_hash(roots[4]), 3, 8, proof, top)
    with pytest.raises(InvalidProof):
        verify_inclusion(leaf_hash(roots[3]), 2, 8, proof, top)


def test_last_segment_path_alone_does_not_bind_the_size() -> None:
    """A known gap of docs/incentives.md section 3.1, kept visible here.

    The audit path of the last leaf is the left siblings only, and a verifier cannot tell a
    leaf hash from a subtree root when it is a sibling. So the path of leaf 1 of 2 also proves
    "leaf 2 of 3" and "leaf 4 of 5": any tree size n' with popcount(n'-1) == popcount(n-1)
    and the same last-segment length verifies. This is why ContentRegistry takes a spine size
    proof (node.content.size_proof, tests/content/test_sizeproof.py).
    """
    data = random.Random(3).randbytes(SEGMENT_SIZE + 1)  # n = 2
    seg = data[SEGMENT_SIZE:]
    proof = inclusion_proof(segment_leaf_hashes(data), 1)
    root = tree_hash(data)
    for n_other in (2, 3, 5, 9):
        verify_inclusion(leaf_hash(seg), n_other - 1, n_other, proof, root)


# -- sample draw ---------------------------------------------------------------------------

# Computed independently of the code under test: pycryptodome's Keccak-256 of the three
# abi.encode words (see vectors/slots/generate.py), then mod rows.
HARD_CODED = [
    (bytes(32), 0, 1000, [449, 897, 930, 424, 456]),
    (bytes([0x11]) * 32, 7, 1000, [919, 868, 348, 767, 963]),
]


@pytest.mark.parametrize("seed,cid,rows,want", HARD_CODED)
def test_draw_hard_coded(seed: bytes, cid: int, rows: int, want: list[int]) -> None:
    assert draw_sample_indices(seed, cid, len(want), rows) == want


def test_keccak_is_keccak256_not_sha3() -> None:
    """The reference is Ethereum's Keccak-256 (pre-NIST padding), not SHA3-256."""
    empty = "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert keccak256(b"").hex() == empty
    assert hashlib.sha3_256(b"").hexdigest() != empty


def test_draw_matches_vector_file() -> None:
    doc = json.loads((VECTORS / "samples.json").read_text())
    assert len(doc["cases"]) >= 5
    for case in doc["cases"]:
        got = draw_sample_indices(
            bytes.fromhex(case["seed"]),
            int(case["challenge_id"]),
            case["samples"],
            int(case["rows"]),
        )
        assert got == [int(i) for i in case["indices"]]


@settings(max_examples=examples(50), deadline=None)
@given(
    seed=st.binary(min_size=32, max_size=32),
    cid=st.integers(0, 2**256 - 1),
    samples=st.integers(0, 30),
    rows=st.integers(1, 2**64),
)
def test_draw_matches_independent_keccak(seed: bytes, cid: int, samples: int, rows: int) -> None:
    want = [
        int.from_bytes(keccak256(seed + cid.to_bytes(32, "big") + k.to_bytes(32, "big")), "big")
        % rows
        for k in range(samples)
    ]
    got = draw_sample_indices(seed, cid, samples, rows)
    assert got == want
    assert all(0 <= i < rows for i in got)


@pytest.mark.parametrize(
    "seed,cid,samples,rows",
    [
        (b"\0" * 31, 0, 1, 1),
        (b"\0" * 32, -1, 1, 1),
        (b"\0" * 32, 2**256, 1, 1),
        (b"\0" * 32, 0, 1, 0),
    ],
)
def test_draw_rejects(seed: bytes, cid: int, samples: int, rows: int) -> None:
    with pytest.raises(ValueError):
        draw_sample_indices(seed, cid, samples, rows)


# -- the shared slot-root vectors (also read by the contract tests) ------------------------


def vector_content(size: int) -> bytes:
    return bytes((i * 31 + (i >> 12) * 101 + 7) & 0xFF for i in range(size))


def test_slot_root_vectors() -> None:
    doc = json.loads((VECTORS / "slot-roots.json").read_text())
    assert len(doc["cases"]) >= 5
    for case in doc["cases"]:
        size, k, n = case["size"], case["data_shards"], case["slot_count"]
        data = vector_content(size)
        assert hashlib.sha256(data).hexdigest() == case["content_sha256"]
        lay = SlotLayout(size, k, n)
        assert (lay.segments, lay.rows) == (case["segments"], case["rows"])
        root = tree_hash(data)
        assert root.hex() == case["root"]
        roots, top = encode_slot_roots(reader(data), lay)
        assert [r.hex() for r in roots] == case["slot_roots"]
        assert top.hex() == case["slots_root"]
        for j in range(n):
            proof = slot_root_proof(roots, j)
            assert [p.hex() for p in proof] == case["slot_proofs"][j]
            verify_inclusion(leaf_hash(roots[j]), j, n, proof, top)
        segments = -(-size // SEGMENT_SIZE)
        seg = data[(segments - 1) * SEGMENT_SIZE :]
        proof = inclusion_proof(segment_leaf_hashes(data), segments - 1)
        assert seg.hex() == case["last_segment"]
        assert [p.hex() for p in proof] == case["last_proof"]
        sample = case["sample"]
        segs = list(iter_slot_segments(reader(data), lay, sample["slot"]))
        assert segs[sample["index"]].hex() == sample["segment"]
        verify_inclusion(
            leaf_hash(bytes.fromhex(sample["segment"])),
            sample["index"],
            lay.rows,
            [bytes.fromhex(p) for p in sample["proof"]],
            roots[sample["slot"]],
        )
