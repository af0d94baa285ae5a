"""Chunk files on disk: one file per distinct chunk, named by its chunk root.

Layout under the store directory::

    chunks/<first byte hex>/<chunk root hex>   chunk bytes, written once, never modified
    tmp/<random>.part                           writes in flight (removed at open)

and, with a cold tier (``cold_dir``, another disk), the same two directories under it. New
chunks are always written to the hot directory; :meth:`ChunkFiles.copy_to_tier` copies one
file between the tiers crash-safely (temp file, fsync, hard link into place, which never
replaces an existing path, directory fsync). Readers try the hot path, then the cold one: a
move (copy, index update, unlink of the source) keeps at least one complete copy at every
moment, so a read racing a move always finds the chunk.

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
import os
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from node._fs import DirectBuffers, fsync_dir, resident, willneed, write_all

from ._errors import StoreFull, WouldBlock, is_no_space
from ._links import Links

_O_BINARY = getattr(os, "O_BINARY", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECT = getattr(os, "O_DIRECT", 0)
DIRECT_ALIGN = 4096


def _no_space(exc: OSError, what: str) -> StoreFull:
    return StoreFull(exc.errno, f"no space left while writing {what}: {exc.strerror}")


class ChunkFiles:
    """The ``chunks/`` and ``tmp/`` directories of one store."""

    def __init__(
        self, root_dir: Path, *, durable: bool = True, cold_dir: Path | None = None
    ) -> None:
        self.chunks_dir = root_dir / "chunks"
        self.tmp_dir = root_dir / "tmp"
        self.durable = durable
        #: Write whole-4-KiB chunks with O_DIRECT (turned off when the file system refuses).
        self.direct = _O_DIRECT != 0
        self._direct_buffers = DirectBuffers()
        self.chunks_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        #: the cold tier's directories (``None``: one tier)
        self.cold_chunks_dir: Path | None = None
        self.cold_tmp_dir: Path | None = None
        if cold_dir is not None:
            self.cold_chunks_dir = cold_dir / "chunks"
            self.cold_tmp_dir = cold_dir / "tmp"
            self.cold_chunks_dir.mkdir(parents=True, exist_ok=True)
            self.cold_tmp_dir.mkdir(parents=True, exist_ok=True)
        #: linked chunks (``_links``): read when a chunk has no file of its own
        self.links: Links | None = None
        self._count_lock = threading.Lock()
        #: chunk files opened for reading (both tiers), of which from the cold tier; bytes read
        self.reads = 0
        self.cold_reads = 0
        self.read_bytes = 0

    # -- names -----------------------------------------------------------------------------

    def path(self, chunk_root: bytes) -> Path:
        h = chunk_root.hex()
        return self.chunks_dir / h[:2] / h

    @property
    def tiered(self) -> bool:
        return self.cold_chunks_dir is not None

    def cold_path(self, chunk_root: bytes) -> Path:
        if self.cold_chunks_dir is None:
            raise ValueError("this store has no cold tier")
        h = chunk_root.hex()
        return self.cold_chunks_dir / h[:2] / h

    def tier_path(self, chunk_root: bytes, cold: bool) -> Path:
        return self.cold_path(chunk_root) if cold else self.path(chunk_root)

    # -- writing ---------------------------------------------------------------------------

    def write(
        self,
        chunk_root: bytes,
        data: bytes | bytearray | memoryview,
        *,
        fsync: bool | None = None,
        direct: bool = True,
    ) -> Path:
        """Write a chunk atomically (temp file, optional fsync, rename); return its directory.

        ``fsync`` defaults to :attr:`durable`. With it, the caller must :meth:`sync_dirs` the
        returned directory before the index refers to the chunk; without it (group commit),
        :meth:`sync_files` on the chunk roots. ``direct=False`` writes through the page cache
        even where ``O_DIRECT`` applies, so the chunk is still there to be read soon after (an
        add's first ``add_cached`` bytes). Raises :class:`StoreFull` when the disk refuses the
        write (nothing is left behind).
        """
        return self.commit_temp(
            self.write_temp(chunk_root, data, fsync=fsync, direct=direct), chunk_root
        )

    def write_temp(
        self,
        chunk_root: bytes,
        data: bytes | bytearray | memoryview,
        *,
        fsync: bool | None = None,
        direct: bool = True,
    ) -> Path:
        """The first half of :meth:`write`: the bytes in a new temp file, not yet a chunk file
        (:meth:`commit_temp` renames it into place, :meth:`discard_temp` removes it). So a
        chunk can be written while it is still being verified and named only if it verifies
        (``PartialWriter``). Raises :class:`StoreFull` (nothing left behind)."""
        if fsync is None:
            fsync = self.durable
        tmp = self.tmp_dir / f"{chunk_root.hex()[:16]}.{secrets.token_hex(6)}.part"
        try:
            if not (direct and self.direct and self._write_direct(tmp, data, fsync)):
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o644)
                try:
                    write_all(fd, data)
                    if fsync:
                        os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            self.discard_temp(tmp)
            if is_no_space(exc):
                raise _no_space(exc, f"chunk {chunk_root.hex()}") from exc
            raise
        return tmp

    def commit_temp(self, tmp: Path, chunk_root: bytes) -> Path:
        """Rename a :meth:`write_temp` file into place as ``chunk_root``'s chunk file; return
        its directory (the temp file is gone either way)."""
        final = self.path(chunk_root)
        try:
            try:
                os.rename(tmp, final)
            except FileNotFoundError:
                final.parent.mkdir(exist_ok=True)
                if self.durable:
                    fsync_dir(self.chunks_dir, strict=True)
                os.rename(tmp, final)
        except OSError as exc:
            self.discard_temp(tmp)
            if is_no_space(exc):
                raise _no_space(exc, f"chunk {chunk_root.hex()}") from exc
            raise
        return final.parent

    @staticmethod
    def discard_temp(tmp: Path) -> None:
        with contextlib.suppress(OSError):
            tmp.unlink()

    def sync_dirs(self, dirs: set[Path]) -> None:
        """``fsync`` the directories that gained chunk files (a no-op when not durable)."""
        if self.durable:
            for d in dirs:
                fsync_dir(d, strict=True)

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
            view = self._direct_buffers.view(data)  # the fetch's chunk buffers: no copy
            try:
                write_all(fd, view)
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
        """True if the chunk file exists (in either tier) with the expected length, or the
        chunk is linked into a file that still holds it."""
        paths = [self.path(chunk_root)]
        if self.cold_chunks_dir is not None:
            paths.append(self.cold_path(chunk_root))
        for p in paths:
            try:
                if os.stat(p).st_size == size:
                    return True
            except FileNotFoundError:
                pass
        return self.links is not None and self.links.has(chunk_root, size)

    def _open(self, chunk_root: bytes) -> tuple[int, bool] | None:
        """``(fd, from the cold tier)``: the hot copy if there is one, else the cold one."""
        flags = os.O_RDONLY | _O_BINARY | _O_NOFOLLOW
        cold = False
        try:
            fd = os.open(self.path(chunk_root), flags)
        except FileNotFoundError:
            if self.cold_chunks_dir is None:
                return None
            try:
                fd = os.open(self.cold_path(chunk_root), flags)
            except FileNotFoundError:
                return None
            cold = True
        return fd, cold

    def _count_read(self, cold: bool) -> None:
        with self._count_lock:
            self.reads += 1
            self.cold_reads += cold

    def _count_bytes(self, n: int) -> None:
        with self._count_lock:
            self.read_bytes += n

    def read_into(self, chunk_root: bytes, buf: bytearray | memoryview) -> int | None:
        """Read the chunk into ``buf`` (at most ``len(buf)`` bytes); ``None`` if it is missing.

        Returns the bytes read; pass a buffer one byte longer than expected to notice a file
        that grew.
        """
        opened = self._open(chunk_root)
        if opened is None:
            if self.links is None:
                return None
            got_linked = self.links.read_into(chunk_root, memoryview(buf).cast("B"))
            if got_linked is not None:
                self._count_bytes(got_linked)
            return got_linked
        fd = opened[0]
        self._count_read(opened[1])
        try:
            view = memoryview(buf).cast("B")
            got = 0
            while got < len(view):
                n = os.readv(fd, [view[got:]])
                if not n:
                    break
                got += n
            self._count_bytes(got)
            return got
        finally:
            os.close(fd)

    def read(self, chunk_root: bytes, expected: int) -> bytes | None:
        """The chunk's bytes, or ``None`` if its file is missing. Length is not checked here."""
        return self.read_tier(chunk_root, expected)[0]

    def read_tier(
        self, chunk_root: bytes, expected: int, *, nowait: bool = False
    ) -> tuple[bytes | None, bool]:
        """``(bytes or None, read from the cold tier)``; see :meth:`read`. ``nowait``: raise
        :class:`WouldBlock` instead of waiting for the disk (the bytes are not in the page
        cache: ``node._fs.resident``)."""
        opened = self._open(chunk_root)
        if opened is None:
            if self.links is None:
                return None, False
            linked = self.links.read(chunk_root, expected + 1, nowait=nowait)  # +1: grew
            if linked is not None:
                self._count_bytes(len(linked))
            return linked, False
        fd, cold = opened
        if nowait and not resident(fd, 0, expected):
            os.close(fd)
            raise WouldBlock(chunk_root.hex())
        self._count_read(cold)
        data = self._read_fd(fd, expected)
        self._count_bytes(len(data))
        return data, cold

    def prefetch(self, chunk_root: bytes, expected: int) -> None:
        """Ask the kernel to start reading the chunk into the page cache (``WILLNEED``): the
        read that follows finds it there. Missing files and refusals are ignored."""
        opened = self._open(chunk_root)
        if opened is None:
            if self.links is not None:
                self.links.prefetch(chunk_root)
            return
        fd = opened[0]
        try:
            willneed(fd, 0, expected)
        finally:
            os.close(fd)

    @staticmethod
    def _read_fd(fd: int, expected: int) -> bytes:
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
            if not parts:
                return b""
            return parts[0] if len(parts) == 1 else b"".join(parts)
        finally:
            os.close(fd)

    # -- moving between tiers --------------------------------------------------------------

    def copy_to_tier(
        self, chunk_root: bytes, expected: int, *, cold: bool, check: Callable[[bytes], bool]
    ) -> bool:
        """Copy the chunk's file from the other tier into the ``cold`` (or hot) tier.

        The source bytes must pass ``check`` (the chunk-root hash: a damaged file is never
        moved). The copy is written to the target tier's ``tmp/``, fsynced (durable stores),
        hard-linked into place (``link`` fails rather than replace a path we did not create),
        and the directory fsynced. Returns ``False`` (nothing left behind) if the source is
        missing or fails ``check``. An existing target file that is whole and passes ``check``
        (a copy a crash left) is kept; a damaged one is replaced. The source is left alone.
        """
        if self.cold_chunks_dir is None or self.cold_tmp_dir is None:
            raise ValueError("this store has no cold tier")
        src = self.tier_path(chunk_root, not cold)
        try:
            fd = os.open(src, os.O_RDONLY | _O_BINARY | _O_NOFOLLOW)
        except FileNotFoundError:
            return False
        data = self._read_fd(fd, expected)
        if len(data) != expected or not check(data):
            return False
        final = self.tier_path(chunk_root, cold)
        tmp_dir = self.cold_tmp_dir if cold else self.tmp_dir
        tmp = tmp_dir / f"{chunk_root.hex()[:16]}.{secrets.token_hex(6)}.move"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o644)
            try:
                write_all(fd, data)
                if self.durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            final.parent.mkdir(exist_ok=True)
            for _ in range(2):
                try:
                    os.link(tmp, final)
                    break
                except FileExistsError:
                    old, _cold = self._read_path(final, expected)
                    if old is not None and len(old) == expected and check(old):
                        break  # a whole copy is already there (left by a crashed move)
                    with contextlib.suppress(FileNotFoundError):
                        final.unlink()
            else:
                return False
            if self.durable:
                fsync_dir(final.parent, strict=True)
        except OSError as exc:
            if is_no_space(exc):
                raise _no_space(exc, f"a copy of chunk {chunk_root.hex()}") from exc
            raise
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        return True

    def _read_path(self, path: Path, expected: int) -> tuple[bytes | None, bool]:
        try:
            fd = os.open(path, os.O_RDONLY | _O_BINARY | _O_NOFOLLOW)
        except FileNotFoundError:
            return None, False
        return self._read_fd(fd, expected), False

    def unlink_tier(self, chunk_root: bytes, *, cold: bool) -> int:
        """Remove the chunk's copy in one tier; return the bytes freed (0 if none)."""
        if cold and self.cold_chunks_dir is None:
            return 0
        p = self.tier_path(chunk_root, cold)
        try:
            size = p.stat().st_size
            p.unlink()
        except FileNotFoundError:
            return 0
        return size

    def has_tier(self, chunk_root: bytes, *, cold: bool) -> bool:
        if cold and self.cold_chunks_dir is None:
            return False
        return self.tier_path(chunk_root, cold).exists()

    def has_file(self, chunk_root: bytes) -> bool:
        """The store has a chunk file of ``chunk_root`` in either tier."""
        return self.has_tier(chunk_root, cold=False) or self.has_tier(chunk_root, cold=True)

    # -- removal and sweeping --------------------------------------------------------------

    def delete(self, chunk_root: bytes) -> int:
        """Remove a chunk's files (both tiers) and forget its link (never the linked file);
        return the bytes freed (0 if no file was there)."""
        if self.links is not None:
            self.links.forget(chunk_root)
        return self.unlink_tier(chunk_root, cold=False) + self.unlink_tier(chunk_root, cold=True)

    def iter_chunk_roots(self, *, cold: bool = False) -> Iterator[tuple[bytes, int]]:
        """Every chunk file of a tier as ``(chunk_root, size)``; skips names that are not roots."""
        top_dir = self.chunks_dir
        if cold:
            if self.cold_chunks_dir is None:
                return
            top_dir = self.cold_chunks_dir
        with os.scandir(top_dir) as top:
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
        for d in (self.tmp_dir, self.cold_tmp_dir):
            if d is None:
                continue
            with os.scandir(d) as it:
                for f in it:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(f.path)
                        n += 1
        return n
