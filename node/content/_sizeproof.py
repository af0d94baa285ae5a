"""Size proofs: show on chain that a root's content is exactly ``size`` bytes long.

Why not the last segment's audit path alone: its siblings are opaque hashes, and a verifier
cannot tell a leaf hash from a subtree root when it appears as a sibling. The path of the last
segment of an ``n``-leaf tree also verifies as the last segment of any ``n'`` whose ``n' - 1``
has the same number of one bits (e.g. 2 and 3 leaves: sibling ``l0`` vs ``H(l0, l1)``), so a
registrant could claim a wrong size.

The spine proof. The last segment's siblings are the perfect subtrees given by the binary
decomposition of ``n - 1``: for each one bit ``a`` of ``n - 1`` (lowest first, which is the
bottom-up order of the path), a perfect subtree of ``2^a`` leaves. The proof carries, for each
such subtree, its leftmost segment (4096 bytes) and its left edge: the ``a`` right-hand siblings
met walking from that segment up to the subtree root. The verifier rebuilds each subtree root
from a *real leaf* (``SHA256(0x00 || segment)``) through exactly ``a`` node hashes, then the
content root along the right spine. Walking down from the root, every node's preimage is
unique (SHA-256 collision resistance) and a leaf hash can never equal a node hash (0x00/0x01
prefixes), so the only way to reach a real leaf after exactly ``a`` steps is the true tree's
own left edge of that depth: the heights, hence ``n``, and the last segment's length, hence
``size``, are the true ones.

Cost: ``popcount(n - 1) + 1`` segments and ``sum of the bit positions`` hashes, e.g. a 1 GiB
content (``n = 2^18``) needs 19 segments and 153 hashes (about 81 KiB of calldata), paid once
per root at registration. The verifier is ``contracts/src/SizeProof.sol``; both sides are
tested against each other (tests/content/test_sizeproof.py, tests/chain).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ._errors import ContentError
from ._stream import StreamingTreeHasher
from ._tree import EMPTY_ROOT, HASH_SIZE, SEGMENT_SIZE, leaf_hash, node_hash, segment_count
from ._tree import segment_leaf_hashes as _leaf_hashes

__all__ = [
    "SizeProof",
    "SizeProofError",
    "size_proof",
    "size_proof_root",
    "size_proof_shape",
    "verify_size_proof",
]

_READ_BLOCK = 4 << 20  # bytes hashed per read


class SizeProofError(ContentError, ValueError):
    """The content cannot be read as ``size`` bytes, or a proof is malformed."""


@dataclass(frozen=True)
class SizeProof:
    """A spine size proof (see the module docstring). Field order is the calldata order."""

    left_segments: tuple[bytes, ...]  #: leftmost segment of each spine subtree, bottom-up
    edge_hashes: tuple[bytes, ...]  #: each subtree's left-edge siblings, bottom-up, concatenated
    last_segment: bytes

    @property
    def calldata_bytes(self) -> int:
        """Bytes of segment and hash payload (what dominates the registration's gas)."""
        return (
            sum(len(s) for s in self.left_segments)
            + HASH_SIZE * len(self.edge_hashes)
            + len(self.last_segment)
        )


def _spine_bits(n: int) -> list[int]:
    """Bit positions of ``n - 1``, lowest first (the spine subtrees, bottom-up)."""
    rest, bits, a = n - 1, [], 0
    while rest:
        if rest & 1:
            bits.append(a)
        rest >>= 1
        a += 1
    return bits


def size_proof(read: object, size: int) -> SizeProof:
    """Build the spine size proof of the ``size``-byte content read by ``read(offset, length)``.

    Reads every segment once (streamed, O(log n) memory). Raises :class:`SizeProofError` if the
    content is shorter or longer than ``size``.
    """
    if not callable(read):
        raise TypeError("read must be callable as read(offset, length)")
    if not 0 <= size < 2**64:
        raise SizeProofError(f"content size {size} outside [0, 2^64)")
    if size == 0:
        if read(0, 1):
            raise SizeProofError("content is longer than 0 bytes")
        return SizeProof((), (), b"")
    n = segment_count(size)
    last_off = (n - 1) * SEGMENT_SIZE
    last = bytes(read(last_off, size - last_off))
    if len(last) != size - last_off or read(size, 1):
        raise SizeProofError(f"content does not end at the given size of {size} bytes")

    def leaves(lo: int, hi: int) -> Iterator[bytes]:
        per = _READ_BLOCK // SEGMENT_SIZE
        for start in range(lo, hi, per):
            stop = min(hi, start + per)
            want = (stop - start) * SEGMENT_SIZE
            data = read(start * SEGMENT_SIZE, want)
            if len(data) != want:
                raise SizeProofError(f"content ends before segment {stop} of {n}")
            yield from _leaf_hashes(data)

    # Left to right the spine subtrees are the high bits first; the proof lists them bottom-up.
    bits = _spine_bits(n)
    starts: dict[int, int] = {}
    s = 0
    for a in reversed(bits):
        starts[a] = s
        s += 1 << a
    segments: list[bytes] = []
    edges: list[bytes] = []
    for a in bits:
        start = starts[a]
        first = bytes(read(start * SEGMENT_SIZE, SEGMENT_SIZE))
        if len(first) != SEGMENT_SIZE:
            raise SizeProofError(f"content ends before segment {start + 1} of {n}")
        segments.append(first)
        # Right-hand siblings of the left edge: MTH over [start + 2^j, start + 2^(j+1)).
        it = leaves(start + 1, start + (1 << a))
        for j in range(a):
            hasher = StreamingTreeHasher()
            for _ in range(1 << j):
                hasher.add(next(it))
            edges.append(hasher.root())
    return SizeProof(tuple(segments), tuple(edges), last)


def size_proof_root(proof: SizeProof, size: int) -> bytes | None:
    """The root a spine proof of ``size`` bytes leads to (``None`` if it is malformed): the
    fold ``SizeProof.verify`` in Solidity compares with the claimed root."""
    if not 0 <= size < 2**64:
        return None
    if size == 0:
        empty = not (proof.left_segments or proof.edge_hashes or proof.last_segment)
        return EMPTY_ROOT if empty else None
    n = segment_count(size)
    if len(proof.last_segment) != size - (n - 1) * SEGMENT_SIZE:
        return None
    node = leaf_hash(proof.last_segment)
    seg = edge = 0
    for a in _spine_bits(n):
        if seg >= len(proof.left_segments) or edge + a > len(proof.edge_hashes):
            return None
        first = proof.left_segments[seg]
        seg += 1
        if len(first) != SEGMENT_SIZE:
            return None
        sibling = leaf_hash(first)
        for h in proof.edge_hashes[edge : edge + a]:
            if len(h) != HASH_SIZE:
                return None
            sibling = node_hash(sibling, h)
        edge += a
        node = node_hash(sibling, node)
    if seg != len(proof.left_segments) or edge != len(proof.edge_hashes):
        return None
    return node


def verify_size_proof(root: bytes, size: int, proof: SizeProof) -> bool:
    """Whether ``proof`` shows that ``root``'s content is ``size`` bytes (never raises on
    malformed proofs; mirrors ``SizeProof.verify`` in Solidity)."""
    return len(root) == HASH_SIZE and size_proof_root(proof, size) == root


def size_proof_shape(size: int) -> tuple[int, int]:
    """``(segments, hashes)`` a size proof of ``size`` bytes carries (for gas estimates)."""
    if size == 0:
        return (0, 0)
    bits: Sequence[int] = _spine_bits(segment_count(size))
    return (len(bits) + 1, sum(bits))
