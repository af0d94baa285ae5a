"""Erasure-coded slots (docs/incentives.md section 2): the geometry, the encoder, the sample draw.

Content of ``size`` bytes is cut into 4096-byte segments, zero-padded to ``rows * K`` segments,
and each row of ``K`` segments is Reed-Solomon encoded with zfec (``Encoder(K, K + N)``). Slot
``j`` holds share ``K + j`` of every row, never a systematic share, so a slot's bytes exist only
where that slot is stored. A slot root is the RFC 6962 tree over the slot's ``rows`` segments;
``slotsRoot`` is the tree over the ``N`` slot roots taken as 32-byte leaf data.

zfec multiplies in GF(2^8) byte position by byte position with the same coefficients at every
position, so encoding ``B`` rows at once (block ``i`` = segment ``i`` of every row of the batch,
concatenated) gives, for each share, the concatenation of the rows' shares. That is how this
module encodes: one zfec call per batch of rows, memory bounded by the batch whatever the size.

Pure: the only I/O is through the ``read(offset, length)`` callable handed in.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

import zfec
from eth_hash.auto import keccak

from ._errors import ContentError
from ._stream import StreamingTreeHasher
from ._tree import (
    HASH_SIZE,
    SEGMENT_SIZE,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    segment_count,
    segment_leaf_hashes,
)

DEFAULT_DATA_SHARDS = 4
DEFAULT_SLOT_COUNT = 8
MAX_DATA_SHARDS = 32
MAX_SLOT_COUNT = 64
MAX_SHARES = 256  # zfec (GF(2^8)): K + N <= 256
MAX_CONTENT_SIZE = 2**64 - 1  # uint64 on chain

#: Bytes of encoder input plus output held per batch; rows per batch derive from it.
BATCH_BUDGET = 2 << 20
#: Rows per batch are a multiple of this (the store's sidecar tree groups 32 leaves).
BATCH_ALIGN = 32

ReadFn = Callable[[int, int], bytes | bytearray | memoryview]
"""``read(offset, length)``: content bytes at ``offset``; shorter only at the end."""


class SlotError(ContentError):
    """Root of the slot errors of :mod:`node.content`."""


class SlotLayoutError(SlotError, ValueError):
    """A slot geometry outside docs/incentives.md section 2 (K, N, K + N, size)."""


class SlotReadError(SlotError, ValueError):
    """``read`` returned fewer (or more) bytes than the layout's size says the content has."""


@dataclass(frozen=True)
class SlotLayout:
    """Slot geometry of one root: content size, ``K`` data shards, ``N`` slots.

    Fixed at registration (``ContentRegistry.register`` stores ``dataShards`` and
    ``slotCount``); every host and validator derives ``rows`` and slot sizes from it.
    """

    size: int
    data_shards: int = DEFAULT_DATA_SHARDS
    slot_count: int = DEFAULT_SLOT_COUNT

    def __post_init__(self) -> None:
        for name in ("size", "data_shards", "slot_count"):
            value = getattr(self, name)
            if type(value) is not int:  # bool is an int; a layout of True shards is a bug
                raise SlotLayoutError(f"{name} must be an int, got {type(value).__name__}")
        if not 1 <= self.size <= MAX_CONTENT_SIZE:
            raise SlotLayoutError(f"content size {self.size} outside [1, 2^64 - 1] for slots")
        # K = 1 would make every slot a plain copy of the content (zfec's shares of one block are
        # that block), so nothing would be unique to a host; N < K slots could not rebuild it.
        if not 2 <= self.data_shards <= MAX_DATA_SHARDS:
            raise SlotLayoutError(f"data shards {self.data_shards} outside [2, {MAX_DATA_SHARDS}]")
        if not self.data_shards <= self.slot_count <= MAX_SLOT_COUNT:
            raise SlotLayoutError(
                f"slot count {self.slot_count} outside [K = {self.data_shards}, {MAX_SLOT_COUNT}]"
            )
        if self.data_shards + self.slot_count > MAX_SHARES:
            raise SlotLayoutError(
                f"data shards + slots = {self.data_shards + self.slot_count} > {MAX_SHARES}"
            )

    @property
    def segments(self) -> int:
        """``n = ceil(size / 4096)``: segments of the content (leaves of its tree)."""
        return segment_count(self.size)

    @property
    def rows(self) -> int:
        """``ceil(n / K)``: rows of the code, and segments (leaves) of every slot."""
        return -(-self.segments // self.data_shards)

    @property
    def slot_bytes(self) -> int:
        """Bytes of one slot: ``rows * 4096``."""
        return self.rows * SEGMENT_SIZE

    @property
    def slot_size(self) -> int:
        """Alias of :attr:`slot_bytes` (the name docs/incentives.md section 2 uses)."""
        return self.slot_bytes

    @property
    def padded_size(self) -> int:
        """``rows * K * 4096``: the content with its zero padding."""
        return self.rows * self.data_shards * SEGMENT_SIZE

    def check_slot(self, slot: int) -> int:
        """Return ``slot`` if it is a slot of this layout, else raise :class:`SlotLayoutError`."""
        if type(slot) is not int or not 0 <= slot < self.slot_count:
            raise SlotLayoutError(f"slot {slot!r} outside [0, {self.slot_count - 1}]")
        return slot


def batch_rows(layout: SlotLayout, shares: int) -> int:
    """Rows encoded per zfec call when producing ``shares`` shares: a multiple of 32."""
    per_row = (layout.data_shards + shares) * SEGMENT_SIZE
    rows = BATCH_BUDGET // per_row // BATCH_ALIGN * BATCH_ALIGN
    return max(BATCH_ALIGN, rows)


def _read_exact(read: ReadFn, offset: int, length: int) -> bytes | bytearray | memoryview:
    """``length`` bytes at ``offset``, or fewer only where the content ends."""
    data = read(offset, length)
    if len(data) >= length:
        if len(data) > length:
            raise SlotReadError(f"read({offset}, {length}) returned {len(data)} bytes")
        return data
    # A short read may be a partial one (a pipe, a socket): ask again until it gives nothing.
    parts = [bytes(data)]
    got = len(data)
    while got < length:
        more = read(offset + got, length - got)
        if not more:
            break
        if len(more) > length - got:
            raise SlotReadError(f"read({offset + got}, {length - got}) returned {len(more)} bytes")
        parts.append(bytes(more))
        got += len(more)
    return b"".join(parts)


def iter_slot_batches(
    read: ReadFn,
    layout: SlotLayout,
    slots: Sequence[int],
    *,
    on_content: Callable[[bytes | bytearray | memoryview], None] | None = None,
) -> Iterator[tuple[int, list[bytes]]]:
    """Encode the content row batch by row batch; yield ``(first_row, shares)``.

    ``shares[i]`` is the concatenation of the batch's segments of slot ``slots[i]`` (a multiple
    of 4096 bytes, row order). ``on_content`` sees every byte of the content once, in order,
    unpadded (the store hashes it to check the content root while it encodes). Raises
    :class:`SlotReadError` when ``read`` disagrees with ``layout.size``.
    """
    k = layout.data_shards
    wanted = tuple(k + layout.check_slot(s) for s in slots)
    if not wanted:
        return
    encoder = zfec.Encoder(k, k + layout.slot_count)
    step = batch_rows(layout, len(wanted))
    rows, size = layout.rows, layout.size
    row_bytes = k * SEGMENT_SIZE
    for first in range(0, rows, step):
        count = min(step, rows - first)
        offset = first * row_bytes
        want = min(count * row_bytes, size - offset)
        data = _read_exact(read, offset, want)
        if len(data) != want:
            raise SlotReadError(
                f"content ends at {offset + len(data)} bytes, the layout says {size}"
            )
        if offset + want == size and read(size, 1):
            raise SlotReadError(f"content continues past the layout's size of {size} bytes")
        if on_content is not None:
            on_content(data)
        if want < count * row_bytes:  # the last batch: zero-pad the tail of the content
            padded = bytearray(count * row_bytes)
            padded[:want] = data
            data = padded
        mv = memoryview(data)
        if k == 1:
            blocks: tuple[bytes | memoryview, ...] = (mv,)
        else:
            # Block i of the batch = segment i of every row, rows in order.
            blocks = tuple(
                b"".join(
                    mv[(r * k + i) * SEGMENT_SIZE : (r * k + i + 1) * SEGMENT_SIZE]
                    for r in range(count)
                )
                for i in range(k)
            )
        yield first, list(encoder.encode(blocks, wanted))


def encode_slot_roots(read: ReadFn, layout: SlotLayout) -> tuple[list[bytes], bytes]:
    """``(slot_roots, slots_root)`` of the content ``read`` gives: every slot, streaming.

    Memory is a few batches of rows (about :data:`BATCH_BUDGET` bytes each) plus ``N`` tree
    stacks, whatever the content size; what a registrant runs before
    ``ContentRegistry.register``. zfec holds the GIL but ``hashlib`` releases it, so the slot
    segments of one batch are hashed in a helper thread while the next batch is encoded.
    """
    trees = [StreamingTreeHasher() for _ in range(layout.slot_count)]
    pending: deque[Future[list[list[bytes]]]] = deque()

    def hash_shares(shares: list[bytes]) -> list[list[bytes]]:
        return [segment_leaf_hashes(share) for share in shares]

    def fold_one() -> None:
        for tree, leaves in zip(trees, pending.popleft().result(), strict=True):
            tree.extend(leaves)

    with ThreadPoolExecutor(1, thread_name_prefix="slot-hash") as pool:
        try:
            for _first, shares in iter_slot_batches(read, layout, range(layout.slot_count)):
                pending.append(pool.submit(hash_shares, shares))
                if len(pending) > 2:
                    fold_one()
            while pending:
                fold_one()
        finally:
            for fut in pending:
                fut.cancel()
    roots = [tree.root() for tree in trees]
    return roots, slots_root_of(roots)


def encode_slot(read: ReadFn, layout: SlotLayout, slot: int, out: BinaryIO) -> bytes:
    """Write slot ``slot``'s bytes (``layout.slot_bytes``) to ``out``; return its slot root."""
    tree = StreamingTreeHasher()
    for _first, (share,) in iter_slot_batches(read, layout, (slot,)):
        out.write(share)
        tree.extend(segment_leaf_hashes(share))
    return tree.root()


def iter_slot_segments(read: ReadFn, layout: SlotLayout, slot: int) -> Iterator[bytes]:
    """Slot ``slot``'s 4096-byte segments in row order (only that share is computed)."""
    for _first, (share,) in iter_slot_batches(read, layout, (slot,)):
        for off in range(0, len(share), SEGMENT_SIZE):
            yield share[off : off + SEGMENT_SIZE]


def _check_roots(slot_roots: Sequence[bytes]) -> list[bytes]:
    if not 1 <= len(slot_roots) <= MAX_SLOT_COUNT:
        raise SlotLayoutError(f"{len(slot_roots)} slot roots, want 1..{MAX_SLOT_COUNT}")
    for i, r in enumerate(slot_roots):
        if len(r) != HASH_SIZE:
            raise SlotLayoutError(f"slot root {i} has {len(r)} bytes, want {HASH_SIZE}")
    return [leaf_hash(r) for r in slot_roots]


def slots_root_of(slot_roots: Sequence[bytes]) -> bytes:
    """RFC 6962 tree over the slot roots, each hashed as leaf data ``SHA256(0x00 || root)``."""
    return merkle_root(_check_roots(slot_roots))


def slot_root_proof(slot_roots: Sequence[bytes], slot: int) -> list[bytes]:
    """Audit path of leaf ``slot`` (data: its slot root) in the tree of :func:`slots_root_of`.

    Verify with ``verify_inclusion(leaf_hash(slot_roots[slot]), slot, N, path, slots_root)``;
    it is the ``slotProof`` of ``DataAvailability.commit``.
    """
    leaves = _check_roots(slot_roots)
    if not 0 <= slot < len(leaves):
        raise SlotLayoutError(f"slot {slot} outside [0, {len(leaves) - 1}]")
    return inclusion_proof(leaves, slot)


#: Names used by docs/incentives.md section 2.
encode_slots = encode_slot_roots
slots_proof = slot_root_proof


def draw_sample_indices(seed: bytes, challenge_id: int, samples: int, rows: int) -> list[int]:
    """``index[k] = uint256(keccak256(abi.encode(seed, id, k))) % rows`` for k < samples.

    The contract's draw (``DataAvailability.sampleIndicesOf``), bit for bit: ``seed`` is the
    32-byte seed block hash, ``id`` and ``k`` are uint256 words. Indices may repeat.
    """
    if len(seed) != 32:
        raise ValueError(f"seed has {len(seed)} bytes, want 32")
    if not 0 <= challenge_id < 2**256:
        raise ValueError(f"challenge id {challenge_id} is not a uint256")
    if not 0 <= samples < 2**256:
        raise ValueError(f"sample count {samples} is not a uint256")
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    prefix = bytes(seed) + challenge_id.to_bytes(32, "big")
    return [
        int.from_bytes(keccak(prefix + k.to_bytes(32, "big")), "big") % rows for k in range(samples)
    ]


_READ_BLOCK = 4 << 20  # content bytes hashed per read when proving the last segment
