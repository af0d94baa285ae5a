"""ChunkBudget: a node-wide byte budget for the chunk buffers a provider holds, shared fairly.

Every chunk a provider serves is held in memory from its read until its last byte is handed
to the kernel: the bytes read, the plaintext pieces and the sealed (encrypted) copy. Without a
node-wide bound that is a few chunks per active connection, so memory grows with the peer
count (1,000 peers fetching 1 MiB chunks: ~3 GiB). :class:`ChunkBudget` bounds the chunk
bytes in flight across all connections: a connection acquires a chunk's length before
reading it and releases it after the send, and waits while the budget is spent.

Fair: waiters are granted strictly in arrival order (FIFO), so a connection that just had a
buffer queues behind the ones already waiting; no connection can starve, whatever the chunk
sizes (a small request never overtakes a large one that arrived first, which would starve the
large one). A chunk larger than the whole budget is granted the whole budget once nothing else
is held, so any chunk can be served.

A grant is a plain byte count: ``release(n)`` what ``acquire`` returned. Cancelled while
waiting, a waiter leaves the queue (and hands on a grant it got at the same moment).
"""

from __future__ import annotations

from collections import deque

import trio

#: Default node-wide budget (``[network] upload_buffers``).
DEFAULT_UPLOAD_BUFFERS = 64 << 20


class ChunkBudget:
    """See the module docstring. ``limit`` bytes in flight at most (> 0)."""

    def __init__(self, limit: int = DEFAULT_UPLOAD_BUFFERS) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
            raise ValueError(f"chunk budget must be a positive number of bytes, got {limit!r}")
        self.limit = limit
        self.used = 0
        self.peak = 0  #: most bytes held at once
        self.waits = 0  #: acquisitions that had to wait
        self._waiters: deque[tuple[int, trio.Event]] = deque()

    @property
    def waiting(self) -> int:
        """Acquisitions waiting for bytes now."""
        return len(self._waiters)

    async def acquire(self, nbytes: int) -> int:
        """Wait for ``nbytes`` (capped at the limit) of budget; returns the bytes granted."""
        n = max(0, min(nbytes, self.limit))
        if not self._waiters and self.used + n <= self.limit:
            await trio.lowlevel.checkpoint_if_cancelled()  # raises if cancelled, never yields
            self._take(n)
            return n
        self.waits += 1
        entry = (n, trio.Event())
        self._waiters.append(entry)
        try:
            await entry[1].wait()
        except BaseException:
            if entry[1].is_set():  # granted as we were cancelled: hand it on
                self.release(n)
            else:
                self._waiters.remove(entry)
                self._grant()  # it may have been the head, blocking smaller ones behind it
            raise
        return n

    def release(self, nbytes: int) -> None:
        """Give back a grant (the value ``acquire`` returned)."""
        if nbytes <= 0:
            return
        self.used -= nbytes
        if self.used < 0:
            raise RuntimeError("chunk budget released more than was acquired")
        self._grant()

    def _take(self, n: int) -> None:
        self.used += n
        if self.used > self.peak:
            self.peak = self.used

    def _grant(self) -> None:
        waiters = self._waiters
        while waiters and self.used + waiters[0][0] <= self.limit:
            n, event = waiters.popleft()
            self._take(n)
            event.set()
