"""Errors of the store, rooted in :class:`StoreError`.

Split by whose fault it is: :class:`CorruptStoredChunk` means our own disk holds bad bytes (a
local fault: re-fetch or re-add), :class:`ChunkMismatch` means bytes handed to
:meth:`Store.put_chunk` do not match the verified chunk root (the peer that sent them is at
fault). Both are :class:`CorruptChunk`, so a caller that only wants "bad chunk" catches one name.
"""

from __future__ import annotations

import errno


class StoreError(Exception):
    """Root of every error raised by :mod:`node.store`."""


class NotFound(StoreError, KeyError):
    """No content with that root (or not in the asked-for state) in this store."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want the plain message
        return str(self.args[0]) if self.args else "not found"


class StoreLocked(StoreError):
    """Another process has this store open (LevelDB allows one process per database)."""


class StoreFull(StoreError, OSError):
    """The disk (or a file-size limit) refused a write; the store is still consistent."""


class StoreCorrupt(StoreError):
    """The index contradicts itself (e.g. a chunk-root list that does not hash to its root)."""


class IncompleteContent(StoreError):
    """The content is known but some chunks are still missing (a transfer in progress)."""

    def __init__(self, message: str, *, missing: int) -> None:
        super().__init__(message)
        self.missing = missing


class CorruptChunk(StoreError):
    """A chunk's bytes do not hash to its chunk root."""

    def __init__(self, message: str, *, root: bytes, index: int) -> None:
        super().__init__(message)
        self.root = root
        self.index = index


class CorruptStoredChunk(CorruptChunk):
    """A chunk file on our disk is damaged or missing (local fault)."""


class ChunkMismatch(CorruptChunk, ValueError):
    """Bytes given to :meth:`Store.put_chunk` are not the chunk they claim to be (remote fault)."""


class InvalidChunkRoots(StoreError, ValueError):
    """A chunk-root list offered to :meth:`Store.begin_partial` does not hash to the root."""


class WouldBlock(Exception):
    """Not an error: a ``nowait=True`` read found the chunk's bytes in neither the memory tier
    nor the page cache, so reading them now would wait for the disk. Read again where waiting
    is fine (a worker thread). Deliberately not a :class:`StoreError`."""


class NotLinkable(StoreError, ValueError):
    """``add --link`` of something the store cannot link to (a stream, a device, a FIFO)."""


#: errno values that mean "no room": disk full, quota exceeded, file too large (RLIMIT_FSIZE).
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def is_no_space(exc: BaseException) -> bool:
    """True for an OSError (or LevelDB IOError text) that means the disk is full."""
    if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
        return True
    text = str(exc).lower()
    return "no space left" in text or "file too large" in text or "quota exceeded" in text
