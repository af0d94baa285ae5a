"""A compact bitmap over chunk indices (1 bit each): presence, need, and peers' haves.

1 TB of 1 MiB chunks is 10^6 indices: 125 KB here, where a ``set[int]`` would take ~50 MB.
Bit ``i`` lives in byte ``i >> 3`` at mask ``0x80 >> (i & 7)`` (MSB first, like BitTorrent's
bitfield), so the bytes can go on the wire as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator


class Bitmap:
    __slots__ = ("_bits", "_count", "size")

    def __init__(self, size: int, *, fill: bool = False) -> None:
        if size < 0:
            raise ValueError("size must be >= 0")
        self.size = size
        nbytes = (size + 7) // 8
        self._bits = bytearray(b"\xff" * nbytes if fill else nbytes)
        if fill and size % 8:
            self._bits[-1] &= (0xFF << (8 - size % 8)) & 0xFF
        self._count = size if fill else 0

    @classmethod
    def from_indices(cls, size: int, indices: Iterable[int]) -> Bitmap:
        bm = cls(size)
        for i in indices:
            bm.set(i)
        return bm

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> Bitmap:
        if len(data) != (size + 7) // 8:
            raise ValueError("bitfield length does not match the chunk count")
        bm = cls(size)
        bm._bits[:] = data
        if size % 8 and bm._bits:
            bm._bits[-1] &= (0xFF << (8 - size % 8)) & 0xFF
        bm._count = sum(bin(b).count("1") for b in bm._bits)
        return bm

    def to_bytes(self) -> bytes:
        return bytes(self._bits)

    def __contains__(self, i: int) -> bool:
        return 0 <= i < self.size and bool(self._bits[i >> 3] & (0x80 >> (i & 7)))

    def __len__(self) -> int:
        """Number of set bits."""
        return self._count

    def set(self, i: int) -> bool:
        """Set bit ``i``; returns whether it changed."""
        if not 0 <= i < self.size:
            raise IndexError(i)
        mask = 0x80 >> (i & 7)
        if self._bits[i >> 3] & mask:
            return False
        self._bits[i >> 3] |= mask
        self._count += 1
        return True

    def clear(self, i: int) -> bool:
        if not 0 <= i < self.size:
            raise IndexError(i)
        mask = 0x80 >> (i & 7)
        if not self._bits[i >> 3] & mask:
            return False
        self._bits[i >> 3] &= ~mask & 0xFF
        self._count -= 1
        return True

    def next_set(self, start: int) -> int:
        """Lowest set index >= ``start``, or ``size`` when there is none (skips zero bytes)."""
        i = max(0, start)
        bits = self._bits
        while i < self.size:
            byte = bits[i >> 3]
            if byte == 0:
                i = ((i >> 3) + 1) << 3
                continue
            if byte & (0x80 >> (i & 7)):
                return i
            i += 1
        return self.size

    def __iter__(self) -> Iterator[int]:
        i = self.next_set(0)
        while i < self.size:
            yield i
            i = self.next_set(i + 1)
