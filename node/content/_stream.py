"""Streaming tree hashing: memory stays O(log n) in the content size.

:class:`StreamingTreeHasher` folds leaf hashes (segment leaves, or chunk roots) into a stack of
perfect subtrees, one per set bit of the count so far: at most 64 entries whatever the size.
:class:`ChunkedHasher` cuts a byte stream into chunks and feeds their roots to one.
:func:`hash_file` does the same for a file with a small thread pool: ``hashlib`` releases the
GIL while hashing buffers of 2 KiB or more, so segment hashing of several chunks runs on
several cores while the main thread reads.
"""

from __future__ import annotations

import mmap
import os
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, NamedTuple

from ._tree import (
    DEFAULT_CHUNK_SIZE,
    EMPTY_ROOT,
    check_chunk_size,
    chunk_root,
    node_hash,
)


class StreamingTreeHasher:
    """Incremental RFC 6962 MTH over a sequence of equal-weight leaf hashes.

    Feed chunk roots (all full chunks, then the possibly shorter last one) or segment leaf
    hashes; :meth:`root` gives the same value as :func:`merkle_root` over the whole list.
    """

    __slots__ = ("_count", "_stack")

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []  # (leaves in subtree, hash), sizes decreasing
        self._count = 0

    @property
    def count(self) -> int:
        """Leaves added so far."""
        return self._count

    def add(self, leaf: bytes) -> None:
        stack = self._stack
        size, h = 1, leaf
        while stack and stack[-1][0] == size:
            left_size, left = stack.pop()
            h = node_hash(left, h)
            size += left_size
        stack.append((size, h))
        self._count += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        for leaf in leaves:
            self.add(leaf)

    def root(self) -> bytes:
        """Root of the leaves added so far (the hasher stays usable)."""
        if not self._stack:
            return EMPTY_ROOT
        h = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            h = node_hash(left, h)
        return h


OnChunk = Callable[[int, bytes, memoryview], None]


class ChunkedHasher:
    """Cut a byte stream into chunks; compute chunk roots and the content root as it goes.

    ``on_chunk(index, chunk_root, data)`` is called for every completed chunk; ``data`` is only
    valid during the call.
    """

    def __init__(self, chunk_size: int = DEFAULT_CHUNK_SIZE, on_chunk: OnChunk | None = None):
        self.chunk_size = check_chunk_size(chunk_size)
        self._buf = bytearray()
        self._tree = StreamingTreeHasher()
        self._on_chunk = on_chunk
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        mv = memoryview(data)
        self.size += len(mv)
        cs = self.chunk_size
        if self._buf:
            take = min(cs - len(self._buf), len(mv))
            self._buf += mv[:take]
            mv = mv[take:]
            if len(self._buf) == cs:
                self._emit(memoryview(self._buf))
                self._buf = bytearray()
        while len(mv) >= cs:
            self._emit(mv[:cs])
            mv = mv[cs:]
        if len(mv):
            self._buf += mv

    def _emit(self, chunk: memoryview) -> None:
        root = chunk_root(chunk)
        if self._on_chunk is not None:
            self._on_chunk(self._tree.count, root, chunk)
        self._tree.add(root)

    def finalize(self) -> tuple[bytes, int, int]:
        """Flush the last chunk; return ``(content_root, size, chunk_count)``."""
        if self._buf:
            self._emit(memoryview(self._buf))
            self._buf = bytearray()
        return self._tree.root(), self.size, self._tree.count


def read_full(f: BinaryIO, buf: bytearray | memoryview | mmap.mmap) -> int:
    """``readinto`` until ``buf`` is full or the stream ends; return the bytes read."""
    mv = memoryview(buf)
    got = 0
    while got < len(mv):
        n = f.readinto(mv[got:])  # type: ignore[attr-defined]
        if not n:
            break
        got += n
    return got


class HashResult(NamedTuple):
    root: bytes
    size: int
    chunk_roots: list[bytes] | None  #: only when asked for (``collect_roots=True``)


def hash_file(
    path: str | os.PathLike[str],
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    workers: int = 2,
    *,
    collect_roots: bool = False,
    on_chunk_root: Callable[[int, bytes], None] | None = None,
) -> HashResult:
    """Content root of a file, hashing up to ``workers`` chunks at once.

    At most ``2 * workers`` chunks are in memory at a time; chunk roots are passed to
    ``on_chunk_root(index, root)`` in order and kept only with ``collect_roots``.
    """
    check_chunk_size(chunk_size)
    tree = StreamingTreeHasher()
    roots: list[bytes] | None = [] if collect_roots else None
    pending: deque[Future[bytes]] = deque()
    size = 0

    def drain_one() -> None:
        root = pending.popleft().result()
        if on_chunk_root is not None:
            on_chunk_root(tree.count, root)
        if roots is not None:
            roots.append(root)
        tree.add(root)

    with open(Path(path), "rb", buffering=0) as f, ThreadPoolExecutor(max(1, workers)) as pool:
        while True:
            buf = bytearray(chunk_size)
            n = read_full(f, buf)
            if not n:
                break
            size += n
            data = memoryview(buf)[:n]
            pending.append(pool.submit(chunk_root, data))
            if len(pending) >= 2 * max(1, workers):
                drain_one()
        while pending:
            drain_one()
    return HashResult(tree.root(), size, roots)
