"""The RFC 6962 Merkle tree over 4 KiB segments, with SHA-256.

    leaf      = SHA256(0x00 || segment)
    node      = SHA256(0x01 || left || right)
    MTH({})   = SHA256("")
    MTH(D[n]) = node(MTH(D[0:k]), MTH(D[k:n]))   for n > 1, k the largest power of two < n

Two facts the rest of the code leans on:

* Level-by-level pairing where an odd last node is carried up unchanged gives exactly the
  MTH above (the tree is "left-complete"); that is how :func:`merkle_root` computes it.
* A full chunk is 2^j segments, so every chunk (the last, shorter one too) is one subtree of
  the segment tree, and the content root is the MTH over the chunk roots taken as leaf hashes.
  One tree therefore serves chunk verification during transfer and 4 KiB inclusion proofs on
  chain; an audit path for a segment is its path inside its chunk followed by the chunk's path
  in the chunk-root tree (:func:`segment_proof`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from . import _accel
from ._errors import InvalidGeometry, InvalidProof

SEGMENT_SIZE = 4096
MIN_CHUNK_SIZE = 256 * 1024
DEFAULT_CHUNK_SIZE = 1024 * 1024
MAX_CHUNK_SIZE = 4 * 1024 * 1024
HASH_SIZE = 32

EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256
_LEAF_PREFIX = _sha256(b"\x00")
_NODE_PREFIX = b"\x01"


def leaf_hash(segment: bytes | bytearray | memoryview) -> bytes:
    """SHA256(0x00 || segment)."""
    h = _LEAF_PREFIX.copy()
    h.update(segment)
    return h.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA256(0x01 || left || right)."""
    return _sha256(_NODE_PREFIX + left + right).digest()


AUTO_CHUNKS = 16
""":func:`auto_chunk_size` grows a chunk only while the content keeps this many (D41)."""


def auto_chunk_size(size: int) -> int:
    """The chunk size for content of ``size`` bytes when none is asked for: the largest power
    of two <= ``size / 16``, clamped to [1 MiB (the default), 4 MiB]. Below 32 MiB that is
    the default; 32-64 MiB: 2 MiB; 64 MiB and more: 4 MiB (each chunk costs both nodes a
    fixed amount of work besides its bytes: a 100 MiB content as 25 chunks, not 100)."""
    if size < 0:
        raise ValueError("size must be >= 0")
    per = size // AUTO_CHUNKS
    best = DEFAULT_CHUNK_SIZE
    while best * 2 <= min(per, MAX_CHUNK_SIZE):
        best *= 2
    return best


def check_chunk_size(chunk_size: int) -> int:
    """Return ``chunk_size`` if it is a power of two in [256 KiB, 4 MiB], else raise."""
    if not (MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE) or chunk_size & (chunk_size - 1):
        raise InvalidGeometry(
            f"chunk size {chunk_size} is not a power of two in "
            f"[{MIN_CHUNK_SIZE}, {MAX_CHUNK_SIZE}] bytes"
        )
    return chunk_size


def segment_count(size: int) -> int:
    """Number of 4 KiB segments (leaves) of content of ``size`` bytes."""
    return -(-size // SEGMENT_SIZE)


def chunk_count(size: int, chunk_size: int) -> int:
    """Number of chunks of content of ``size`` bytes (0 for empty content)."""
    return -(-size // chunk_size)


def _reduce(level: list[bytes]) -> bytes:
    # Pair neighbours level by level; an odd last node moves up unchanged (RFC 6962 shape).
    sha = _sha256
    while len(level) > 1:
        odd = level[-1] if len(level) & 1 else None
        level = [
            sha(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)
        ]
        if odd is not None:
            level.append(odd)
    return level[0]


def merkle_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """RFC 6962 MTH over already-hashed leaves (segment leaf hashes, or chunk roots)."""
    if not leaf_hashes:
        return EMPTY_ROOT
    if _accel.merkle_root is not None and len(leaf_hashes) > 8:
        joined = b"".join(leaf_hashes)
        if len(joined) == HASH_SIZE * len(leaf_hashes):
            return _accel.merkle_root(joined)
    return _reduce(list(leaf_hashes))


def segment_leaf_hashes(data: bytes | bytearray | memoryview) -> list[bytes]:
    """Leaf hashes of the 4 KiB segments of ``data`` (the last segment may be shorter)."""
    mv = memoryview(data)
    prefix = _LEAF_PREFIX
    out = []
    for off in range(0, len(mv), SEGMENT_SIZE):
        h = prefix.copy()
        h.update(mv[off : off + SEGMENT_SIZE])
        out.append(h.digest())
    return out


def chunk_root(chunk: bytes | bytearray | memoryview) -> bytes:
    """Tree hash of one chunk's segments (the empty chunk hashes to :data:`EMPTY_ROOT`).

    With the C kernel (:mod:`._accel`, built by ``make setup``) the whole chunk is hashed in
    one call that releases the GIL; otherwise leaf by leaf in Python (same result)."""
    if _accel.tree_root is not None and len(chunk):
        return _accel.tree_root(chunk)
    return merkle_root(segment_leaf_hashes(chunk))


def chunk_root_py(chunk: bytes | bytearray | memoryview) -> bytes:
    """:func:`chunk_root` without the C kernel (the reference the kernel is tested against)."""
    return _reduce(segment_leaf_hashes(chunk)) if len(chunk) else EMPTY_ROOT


def tree_hash(data: bytes | bytearray | memoryview) -> bytes:
    """Content root of in-memory ``data`` (same as :func:`chunk_root`; any size)."""
    return chunk_root(data)


def root_from_subtrees(chunk_roots: Sequence[bytes]) -> bytes:
    """Content root from the list of chunk roots (each chunk is a subtree of the segment tree)."""
    return merkle_root(chunk_roots)


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 6962 audit path PATH(index, D[n]) for the leaf at ``index``, bottom-up."""
    n = len(leaf_hashes)
    if not 0 <= index < n:
        raise IndexError(f"leaf index {index} outside a tree of {n} leaves")
    path: list[bytes] = []
    lo, hi, m = 0, n, index
    # Walk down recording siblings, then reverse to get the bottom-up audit path.
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if m < k:
            path.append(merkle_root(leaf_hashes[lo + k : hi]))
            hi = lo + k
        else:
            path.append(merkle_root(leaf_hashes[lo : lo + k]))
            lo, m = lo + k, m - k
    path.reverse()
    return path


def inclusion_proof_from_ranges(
    leaves: Callable[[int, int], Iterable[bytes]], tree_size: int, index: int
) -> list[bytes]:
    """Audit path like :func:`inclusion_proof`, reading leaves through ``leaves(lo, hi)``.

    Each sibling subtree is hashed as a stream, so memory stays O(log n): this is how a host
    proves a segment of a terabyte root without loading a million chunk roots at once.
    """
    from ._stream import StreamingTreeHasher  # local import: _stream imports this module

    if not 0 <= index < tree_size:
        raise IndexError(f"leaf index {index} outside a tree of {tree_size} leaves")

    def subtree(lo: int, hi: int) -> bytes:
        h = StreamingTreeHasher()
        h.extend(leaves(lo, hi))
        if h.count != hi - lo:
            raise InvalidProof(f"leaf source gave {h.count} leaves for [{lo}, {hi})")
        return h.root()

    path: list[bytes] = []
    lo, hi, m = 0, tree_size, index
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if m < k:
            path.append(subtree(lo + k, hi))
            hi = lo + k
        else:
            path.append(subtree(lo, lo + k))
            lo, m = lo + k, m - k
    path.reverse()
    return path


def segment_proof(
    chunk_roots: Sequence[bytes],
    chunk_size: int,
    chunk_data: bytes | bytearray | memoryview,
    chunk_index: int,
    segment_in_chunk: int,
) -> list[bytes]:
    """Audit path of one segment against the content root.

    Needs only the chunk that holds the segment and the chunk-root list: the path inside the
    chunk's own tree, followed by the chunk's path in the tree over chunk roots.
    """
    check_chunk_size(chunk_size)
    leaves = segment_leaf_hashes(chunk_data)
    if chunk_root(chunk_data) != chunk_roots[chunk_index]:
        raise InvalidProof(f"chunk {chunk_index} does not match its chunk root")
    return inclusion_proof(leaves, segment_in_chunk) + inclusion_proof(chunk_roots, chunk_index)


def root_from_inclusion(leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes]) -> bytes:
    """Recompute the root from a leaf hash and its audit path (RFC 9162, section 2.1.3.2)."""
    if not 0 <= index < tree_size:
        raise InvalidProof(f"leaf index {index} outside a tree of {tree_size} leaves")
    if len(leaf) != HASH_SIZE:
        raise InvalidProof(f"leaf hash has {len(leaf)} bytes, want {HASH_SIZE}")
    fn, sn, r = index, tree_size - 1, leaf
    for p in proof:
        if len(p) != HASH_SIZE:
            raise InvalidProof(f"proof element has {len(p)} bytes, want {HASH_SIZE}")
        if sn == 0:
            raise InvalidProof("proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProof("proof is shorter than the tree is deep")
    return r


def verify_inclusion(
    leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise :class:`InvalidProof` unless ``proof`` shows ``leaf`` at ``index`` under ``root``."""
    if len(root) != HASH_SIZE:
        raise InvalidProof(f"root has {len(root)} bytes, want {HASH_SIZE}")
    if root_from_inclusion(leaf, index, tree_size, proof) != root:
        raise InvalidProof(f"proof for leaf {index} of {tree_size} does not lead to the root")


def check_segment(size: int, index: int, segment: bytes | bytearray | memoryview) -> None:
    """Raise unless ``segment`` has the length segment ``index`` of ``size``-byte content has."""
    n = segment_count(size)
    if not 0 <= index < n:
        raise InvalidProof(f"segment {index} outside content of {n} segments")
    want = SEGMENT_SIZE if index < n - 1 else size - (n - 1) * SEGMENT_SIZE
    if len(segment) != want:
        raise InvalidProof(f"segment {index} has {len(segment)} bytes, want {want}")
