"""Chunk files on disk: one file per distinct chunk, named by its chunk root.

Layout under the store directory::

    chunks/<first byte hex>/<chunk root hex>   chunk bytes, written once, never modified
    tmp/<random>.part                           writes in flight (removed at open)

A chunk file is written to ``tmp/`` and renamed into place; before the index refers to it, the
file's data and its directory entry are made durable: either at once (``write(..., fsync=True)``
then :meth:`ChunkFiles.sync_dirs`) or for a whole group of files with one pass of
:meth:`ChunkFiles.sync_files` (group commit, see docs/store.md). A reader thus sees
either no file or the whole file; a crash leaves at most temp files and unreferenced chunk
files, which the recovery pass and :meth:`node.store.Store.gc` remove.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import secrets
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from ._errors import StoreFull, is_no_space

_O_BINARY = getattr(os, "O_BINARY", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECT = getattr(os, "O_DIRECT", 0)
DIRECT_ALIGN = 4096


def write_all(fd: int, data: bytes | bytearray | memoryview | mmap.mmap) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _no_space(exc: OSError, what: str) -> StoreFull:
    return StoreFull(exc.errno, f"no space left while writing {what}: {exc.strerror}")


class ChunkFiles:
    """The ``chunks/`` and ``tmp/`` directories of one store."""

    def __init__(self, root_dir: Path, *, durable: bool = True) -> None:
        self.chunks_dir = root_dir / "chunks"
        self.tmp_dir = root_dir / "tmp"
        self.durable = durable
        #: Write whole-4-KiB chunks with O_DIRECT (turned off when the file system refuses).
        self.direct = _O_DIRECT != 0
        self._local = threading.local()
        self.chunks_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    # -- names -----------------------------------------------------------------------------

    def path(self, chunk_root: bytes) -> Path:
        h = chunk_root.hex()
        return self.chunks_dir / h[:2] / h

    # -- writing ---------------------------------------------------------------------------

    def write(
        self, chunk_root: bytes, data: bytes | bytearray | memoryview, *, fsync: bool | None = None
    ) -> Path:
        """Write a chunk atomically (temp file, optional fsync, rename); return its directory.

        ``fsync`` defaults to :attr:`durable`. With it, the caller must :meth:`sync_dirs` the
        returned directory before the index refers to the chunk; without it (group commit),
        :meth:`sync_files` on the chunk roots. Raises :class:`StoreFull` when the disk refuses
        the write (nothing is left behind).
        """
        if fsync is None:
            fsync = self.durable
        final = self.path(chunk_root)
        tmp = self.tmp_dir / f"{chunk_root.hex()[:16]}.{secrets.token_hex(6)}.part"
        try:
            if not (self.direct and self._write_direct(tmp, data, fsync)):
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o644)
                try:
                    write_all(fd, data)
                    if fsync:
                        os.fsync(fd)
                finally:
                    os.close(fd)
            try:
                os.rename(tmp, final)
            except FileNotFoundError:
                final.parent.mkdir(exist_ok=True)
                if self.durable:
                    fsync_dir(self.chunks_dir)
                os.rename(tmp, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            if is_no_space(exc):
                raise _no_space(exc, f"chunk {chunk_root.hex()}") from exc
            raise
        return final.parent

    def sync_dirs(self, dirs: set[Path]) -> None:
        """``fsync`` the directories that gained chunk files (a no-op when not durable)."""
        if self.durable:
            for d in dirs:
                fsync_dir(d)

    def _write_direct(self, tmp: Path, data: bytes | bytearray | memoryview, fsync: bool) -> bool:
        """Write ``tmp`` with ``O_DIRECT``; ``False`` (nothing written) if it does not apply.

        Applies to whole multiples of 4 KiB (every chunk but a content's last). The bytes go
        through a page-aligned per-thread bounce buffer (one memcpy) to the device, skipping
        the page cache, whose copy costs 1-3.6 ms of kernel time per MiB on the VMs measured
        against ~0.3 ms here (docs/benchmarks.md). A file system that refuses ``O_DIRECT``
        (tmpfs) turns it off for this store.
        """
        n = len(data)
        if n == 0 or n % DIRECT_ALIGN:
            return False
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_DIRECT, 0o644)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            self.direct = False
            return False
        try:
            bounce = self._bounce(n)
            bounce[:n] = data
            try:
                write_all(fd, memoryview(bounce)[:n])
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self.direct = False
                os.close(fd)
                fd = -1
                os.unlink(tmp)
                return False
            if fsync:
                os.fsync(fd)
        finally:
            if fd >= 0:
                os.close(fd)
        return True

    def _bounce(self, n: int) -> mmap.mmap:
        buf: mmap.mmap | None = getattr(self._local, "bounce", None)
        if buf is None or len(buf) < n:
            buf = self._local.bounce = mmap.mmap(-1, max(n, 1 << 20))
        return buf

    def sync_files(self, chunk_roots: Iterable[bytes]) -> None:
        """Group commit: ``fdatasync`` each chunk file, then ``fsync`` their directories.

        One pass for a whole group of files written with ``fsync=False``: the kernel writes
        their pages back together and each call mostly waits for what is already in flight.
        A no-op when not durable; a file that is gone (a racing removal) is skipped.
        """
        if not self.durable:
            return
        dirs: set[Path] = set()
        for cr in chunk_roots:
            p = self.path(cr)
            try:
                fd = os.open(p, os.O_RDONLY | _O_BINARY)
            except FileNotFoundError:
                continue
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)
            dirs.add(p.parent)
        self.sync_dirs(dirs)

    # -- reading ---------------------------------------------------------------------------

    def exists_with_size(self, chunk_root: bytes, size: int) -> bool:
        """True if the chunk file exists with the expected length."""
        try:
            return os.stat(self.path(chunk_root)).st_size == size
        except FileNotFoundError:
            return False

    def read_into(self, chunk_root: bytes, buf: bytearray | memoryview) -> int | None:
        """Read the chunk into ``buf`` (at most ``len(buf)`` bytes); ``None`` if it is missing.

        Returns the bytes read; pass a buffer one byte longer than expected to notice a file
        that grew.
        """
        try:
            fd = os.open(self.path(chunk_root), os.O_RDONLY | _O_BINARY | _O_NOFOLLOW)
        except FileNotFoundError:
            return None
        try:
            view = memoryview(buf).cast("B")
            got = 0
            while got < len(view):
                n = os.readv(fd, [view[got:]])
                if not n:
                    break
                got += n
            return got
        finally:
            os.close(fd)

    def read(self, chunk_root: bytes, expected: int) -> bytes | None:
        """The chunk's bytes, or ``None`` if its file is missing. Length is not checked here."""
        try:
            fd = os.open(self.path(chunk_root), os.O_RDONLY | _O_BINARY | _O_NOFOLLOW)
        except FileNotFoundError:
            return None
        try:
            # One byte more than expected, so a file that grew is noticed by the caller.
            parts = []
            want = expected + 1
            while want > 0:
                b = os.read(fd, want)
                if not b:
                    break
                parts.append(b)
                want -= len(b)
            return parts[0] if len(parts) == 1 else b"".join(parts)
        finally:
            os.close(fd)

    # -- removal and sweeping --------------------------------------------------------------

    def delete(self, chunk_root: bytes) -> int:
        """Remove a chunk file; return the bytes freed (0 if it was not there)."""
        p = self.path(chunk_root)
        try:
            size = p.stat().st_size
            p.unlink()
        except FileNotFoundError:
            return 0
        return size

    def iter_chunk_roots(self) -> Iterator[tuple[bytes, int]]:
        """Every chunk file on disk as ``(chunk_root, size)``; skips names that are not roots."""
        with os.scandir(self.chunks_dir) as top:
            for d in top:
                if not d.is_dir(follow_symlinks=False) or len(d.name) != 2:
                    continue
                with os.scandir(d.path) as files:
                    for f in files:
                        if len(f.name) != 64 or not f.name.startswith(d.name):
                            continue
                        try:
                            root = bytes.fromhex(f.name)
                            size = f.stat(follow_symlinks=False).st_size
                        except (ValueError, FileNotFoundError):
                            continue
                        yield root, size

    def clear_tmp(self) -> int:
        """Remove every temp file (only safe when no write is in flight); return the count."""
        n = 0
        with os.scandir(self.tmp_dir) as it:
            for f in it:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f.path)
                    n += 1
        return n
