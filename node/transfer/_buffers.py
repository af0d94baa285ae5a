"""Chunk buffers kept between fetches of one process (a daemon's gets reuse them).

A fetch receives each full-size chunk into a page-aligned buffer (an anonymous ``mmap``: the
store and the ``-o`` file write it with ``O_DIRECT``, no bounce copy). A new mapping costs its
first touch: one page fault per 4 KiB, each zeroing its page, and an ``munmap`` at the end.
Measured on the session-11 VM: 7 fresh 4 MiB buffers filled once took 11-15 ms against
2.4-3.3 ms for the same buffers reused, and unmapping them 1-2 ms; a receiver daemon took
~4,100 page faults per 100 MiB get. Most of that fell on the first chunks of every get (the
transport decrypts into the buffer on the event loop), so on its latency.

:class:`BufferPool` keeps the buffers a fetch gives back, up to ``max_bytes`` in all (the
excess is unmapped at once), and :meth:`BufferPool.trim` unmaps those idle longer than
``idle``: a daemon calls it periodically (``node.app._daemon``), so an idle node holds none.
A :meth:`BufferPool.take` of a size the pool has none of unmaps the buffers of other sizes
(an earlier get's chunk size): a get of 4 MiB chunks after one of 1 MiB chunks would
otherwise hold both sets at once.
Buffers are private anonymous mappings (``node._fs.anonymous_buffer``): unmapping them is
about half the cost of the shared ones ``mmap.mmap(-1, n)`` makes.

Thread-safe (a lock); in practice the trio thread takes and gives them.
"""

from __future__ import annotations

import mmap
import threading
import time
from collections.abc import Callable

from node._fs import anonymous_buffer as new_buffer

#: Idle bytes a process keeps at most (the default pool): one 4 MiB-chunk fetch's buffers
#: (3 put slots + 4 being received) fit.
MAX_BYTES = 32 << 20
#: Seconds a kept buffer may stay unused before :meth:`BufferPool.trim` unmaps it.
IDLE_SECONDS = 30.0


class BufferPool:
    """Free page-aligned buffers by size (module docstring)."""

    def __init__(
        self,
        max_bytes: int = MAX_BYTES,
        idle: float = IDLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_bytes < 0 or idle < 0:
            raise ValueError("max_bytes and idle must be >= 0")
        self.max_bytes = max_bytes
        self.idle = idle
        self._clock = clock
        self._lock = threading.Lock()
        self._free: dict[int, list[tuple[float, mmap.mmap]]] = {}
        self.held_bytes = 0
        #: counters: buffers handed out from the pool / newly mapped / unmapped by the pool
        self.reused = 0
        self.created = 0
        self.dropped = 0

    def take(self, size: int) -> mmap.mmap:
        """A buffer of exactly ``size`` bytes: the most recently given back one, else a new
        one. Its contents are whatever it held last (the caller overwrites it)."""
        with self._lock:
            free = self._free.get(size)
            if free:
                _, buf = free.pop()
                self.held_bytes -= size
                self.reused += 1
                return buf
            self.created += 1
            # a size the pool has none of: the others are another chunk size's (an earlier
            # get's), which would sit there while this one maps new memory
            stale = [b for n, free in self._free.items() if n != size for _, b in free]
            self._free = {n: free for n, free in self._free.items() if n == size}
            self.held_bytes = sum(n * len(free) for n, free in self._free.items())
        for buf in stale:
            self._close(buf)
        return new_buffer(size)

    def give(self, buf: mmap.mmap) -> None:
        """Keep ``buf`` for a later :meth:`take` (unmapped at once if the pool is full)."""
        if buf.closed:
            return
        size = len(buf)
        with self._lock:
            free = self._free.get(size, [])
            if any(b is buf for _, b in free):
                return  # given back twice: kept once (two owners of one buffer would clash)
            if self.held_bytes + size > self.max_bytes:
                keep = False
            else:
                free.append((self._clock(), buf))
                self._free[size] = free
                self.held_bytes += size
                keep = True
        if not keep:
            self._close(buf)

    def trim(self, idle: float | None = None) -> int:
        """Unmap the buffers unused for ``idle`` seconds (default :attr:`idle`; ``0``: all);
        return the bytes freed."""
        limit = self._clock() - (self.idle if idle is None else idle)
        gone: list[mmap.mmap] = []
        with self._lock:
            for size, free in list(self._free.items()):
                keep = [(t, b) for t, b in free if t > limit]
                gone.extend(b for t, b in free if t <= limit)
                self.held_bytes -= size * (len(free) - len(keep))
                if keep:
                    self._free[size] = keep
                else:
                    del self._free[size]
        freed = sum(len(b) for b in gone)
        for buf in gone:
            self._close(buf)
        return freed

    def _close(self, buf: mmap.mmap) -> None:
        try:
            buf.close()
        except BufferError:  # a view of it is still alive: it goes with the last view
            return
        with self._lock:
            self.dropped += 1


#: The process's pool: every fetch takes its full-size chunk buffers here.
POOL = BufferPool()
