"""Per-peer adaptive window on outstanding request bytes (Bitswap / TCP style AIMD).

A peer starts with ``initial`` bytes of requests in flight (16 chunks by default: enough to
keep a fast loopback peer busy while the next request crosses the wire). Each delivered chunk
grows the window: by its size below the slow-start threshold (doubling per round trip), by
``chunk_size * chunk_size / window`` above it (one chunk per window's worth, additive).
A timeout or error halves it (multiplicative decrease), never below one chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FlowWindow:
    chunk_size: int
    initial_chunks: int = 16
    min_chunks: int = 1
    max_chunks: int = 64
    size: int = field(init=False)
    ssthresh: int = field(init=False)

    def __post_init__(self) -> None:
        if self.chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        if not 1 <= self.min_chunks <= self.initial_chunks <= self.max_chunks:
            raise ValueError("need 1 <= min_chunks <= initial_chunks <= max_chunks")
        self.size = self.initial_chunks * self.chunk_size
        self.ssthresh = self.max_chunks * self.chunk_size

    @property
    def floor(self) -> int:
        return self.min_chunks * self.chunk_size

    @property
    def ceiling(self) -> int:
        return self.max_chunks * self.chunk_size

    def has_room(self, outstanding: int, nbytes: int) -> bool:
        """May ``nbytes`` more be requested with ``outstanding`` bytes already in flight?

        An empty pipe always has room for one request, whatever its size.
        """
        return outstanding == 0 or outstanding + nbytes <= self.size

    def on_delivered(self, nbytes: int) -> None:
        if self.size < self.ssthresh:
            self.size += nbytes
        else:
            self.size += max(1, self.chunk_size * nbytes // self.size)
        self.size = min(self.size, self.ceiling)

    def on_congestion(self) -> None:
        """A timeout, BUSY or error: halve the window."""
        self.size = max(self.floor, self.size // 2)
        self.ssthresh = self.size
