"""Small file-system helpers shared by the layers (rank 0: imports nothing of the project)."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import mmap
import os
import secrets
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically: a reader sees the old file or the new one.

    Writes a temporary file beside it (created with ``mode``, e.g. 0o600 for secrets), fsyncs
    it when ``durable``, and renames it over ``path``; the temporary file never outlives a
    failure.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


# -- output destinations (``export -o``, ``get -o``) ------------------------------------------

#: errno values that mean "no room": disk full, quota exceeded, file too large (RLIMIT_FSIZE).
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def is_no_space(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS


#: The ``-o`` value that means standard output.
STDOUT = "-"


class OutputReplaced(OSError):
    """The destination turned into something other than a regular file while we wrote, or is
    a file that must not be replaced (one the store links chunks into: ``get --link``)."""


LINKED_OUTPUT = "holds chunks the store links to (get --link) and is not replaced; write elsewhere"


@dataclass(frozen=True)
class OutputTarget:
    """Where ``-o PATH`` really writes.

    ``path`` is ``PATH`` with symlinks resolved (a link is followed, never replaced: the bytes
    go to its target, and a dangling link's target is created). ``in_place`` is true for an
    existing file that is not a regular file (a character or block device such as /dev/null,
    a FIFO, a socket): it is opened for writing as it is, never created, truncated, renamed
    over or fsynced. Everything else (a regular file, a new name) is written to a temporary
    file beside it and renamed into place, so a reader never sees partial output.
    """

    path: Path
    in_place: bool


def output_target(path: str | os.PathLike[str]) -> OutputTarget:
    """Classify ``path`` for writing; a directory raises :class:`IsADirectoryError`.

    A non-regular file keeps the path as given: ``/dev/fd/63`` (``-o >(cmd)``) is a "magic"
    link to a pipe that only ``open`` can follow, not :func:`os.path.realpath`.
    """
    try:
        st = os.stat(path)  # follows symlinks
    except FileNotFoundError:
        return OutputTarget(Path(os.path.realpath(path)), in_place=False)
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
    if not stat.S_ISREG(st.st_mode):
        return OutputTarget(Path(path), in_place=True)
    return OutputTarget(Path(os.path.realpath(path)), in_place=False)


def open_in_place(path: Path) -> int:
    """Open an existing non-regular file for writing: no O_CREAT, no O_TRUNC."""
    return os.open(path, os.O_WRONLY | getattr(os, "O_NOCTTY", 0))


def replace_output(tmp: Path, dest: Path) -> None:
    """Rename ``tmp`` over ``dest``, but only over a regular file or nothing.

    Checked right before the rename: a device node, FIFO, symlink or directory that appeared at
    ``dest`` while we wrote is never replaced (:class:`OutputReplaced`; ``tmp`` is left for the
    caller to remove or keep).
    """
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISREG(st.st_mode):
            raise OutputReplaced(
                errno.EEXIST, "is no longer a regular file; not replacing it", str(dest)
            )
    os.replace(tmp, dest)


def aligned_for_direct(data: bytes | bytearray | memoryview, align: int = 4096) -> bool:
    """Can ``data`` go to an ``O_DIRECT`` write as it is: its address and length are multiples
    of ``align``? (A page-aligned ``mmap``, or a view of one from offset 0; read-only or
    unaligned buffers answer False and go through a bounce buffer.)"""
    n = len(data)
    if not n or n % align:
        return False
    try:
        address = ctypes.addressof(ctypes.c_char.from_buffer(data))
    except (TypeError, ValueError, BufferError):
        return False
    return address % align == 0


_MAP_PRIVATE = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)


def anonymous_buffer(size: int) -> mmap.mmap:
    """A new page-aligned, zeroed buffer of ``size`` bytes: an anonymous private mapping
    (what ``O_DIRECT`` writes take without a bounce copy; unmapped when dropped, never left
    in a malloc arena; a private one unmaps in about half the time of the shared one
    ``mmap.mmap(-1, n)`` makes)."""
    if _MAP_PRIVATE:
        return mmap.mmap(-1, size, flags=_MAP_PRIVATE)
    return mmap.mmap(-1, size)  # (no MAP_PRIVATE here: the default, shared)


class DirectBuffers:
    """What an ``O_DIRECT`` write is given: the caller's bytes when they are page-aligned
    (:func:`aligned_for_direct`), else a copy in a page-aligned bounce buffer, one per thread
    (an anonymous ``mmap``, grown as needed and reused)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def view(self, data: bytes | bytearray | memoryview) -> memoryview:
        if aligned_for_direct(data):
            return memoryview(data)
        n = len(data)
        buf: mmap.mmap | None = getattr(self._local, "bounce", None)
        if buf is None or len(buf) < n:
            buf = self._local.bounce = anonymous_buffer(max(n, 1 << 20))
        buf[:n] = data
        return memoryview(buf)[:n]


_RWF_NOWAIT = getattr(os, "RWF_NOWAIT", 0)
_probe_buf = threading.local()


def resident(fd: int, offset: int, length: int) -> bool:
    """Are bytes ``[offset, offset + length)`` of ``fd`` in the page cache, so that reading
    them now would not wait for the disk? Probes the first and the last byte with
    ``preadv2(RWF_NOWAIT)`` (Linux >= 4.14), which fails with ``EAGAIN`` rather than start a
    disk read. A file is read whole (and reclaimed, by the kernel or DAMON, in large runs), so
    two pages stand for the range; a page missing in between costs one short wait, no harm.
    ``True`` where the probe is not supported (no ``RWF_NOWAIT``, a file system that refuses
    it): the caller then reads as it always did."""
    if not _RWF_NOWAIT or length <= 0:
        return True
    buf = getattr(_probe_buf, "b", None)
    if buf is None:
        buf = _probe_buf.b = bytearray(1)
    for at in (offset, offset + length - 1) if length > 1 else (offset,):
        try:
            os.preadv(fd, [buf], at, _RWF_NOWAIT)
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                return True
            raise
    return True


def willneed(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start reading ``[offset, offset + length)`` of ``fd`` into the page
    cache (``POSIX_FADV_WILLNEED``: returns at once); a refusal, or a platform without
    ``posix_fadvise``, is ignored (the later read just waits)."""
    with contextlib.suppress(OSError, AttributeError):
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_WILLNEED)


def write_all(fd: int, data: bytes | bytearray | memoryview | mmap.mmap) -> None:
    """Write all of ``data`` to ``fd`` (the file's position), however many calls it takes."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def pwrite_all(fd: int, data: bytes | bytearray | memoryview | mmap.mmap, offset: int) -> None:
    """Write all of ``data`` at ``offset`` (the file's position is left alone)."""
    view = memoryview(data)
    while view:
        k = os.pwrite(fd, view, offset)
        view = view[k:]
        offset += k


def write_output(
    path: str | os.PathLike[str], chunks: Iterable[bytes], *, durable: bool = True
) -> int:
    """Write ``chunks`` to ``path`` as :class:`OutputTarget` describes; return bytes written.

    A regular destination is replaced atomically (temp file beside it, fsync when ``durable``,
    rename, directory fsync); the temp file never outlives a failure, so ``path`` keeps its old
    contents or does not exist. A device or FIFO is written in place. OSErrors (ENOSPC too) are
    raised unchanged for the caller to classify.
    """
    target = output_target(path)
    size = 0
    if target.in_place:
        fd = open_in_place(target.path)
        try:
            for data in chunks:
                write_all(fd, data)
                size += len(data)
        finally:
            os.close(fd)
        return size
    dest = target.path
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            for data in chunks:
                write_all(fd, data)
                size += len(data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        replace_output(tmp, dest)
        if durable:
            fsync_dir(dest.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return size


def fsync_dir(path: Path, *, strict: bool = False) -> None:
    """fsync a directory so a rename (a new file) in it survives a power cut.

    Best effort by default (an output's directory); ``strict`` raises, for a store whose
    index is about to refer to what the directory holds."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        if strict:
            raise
        return
    try:
        try:
            os.fsync(fd)
        except OSError:
            if strict:
                raise
    finally:
        os.close(fd)
