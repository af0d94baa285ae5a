"""Write fetched content straight to its destination file as verified chunks arrive.

``bcai get -o FILE`` should not read the whole content back from the store and hash it a
second time after the transfer (that would double the time for a 1 GiB file). Each chunk the
store accepted (so verified against its chunk root) is also written with ``os.pwrite`` at its
offset in ``FILE.part``; chunks that were already in the store from an earlier run are copied
from the store at the end; then ``FILE.part`` is fsynced (unless ``durable=False``, which
``bcai get --no-fsync`` asks for, as scp and curl never fsync) and renamed to ``FILE``.

``FILE`` is classified by :func:`node._fs.output_target`: a symlink is followed (its target is
written, the link stays); an existing device, FIFO or socket (``/dev/null``) is written in
place at the end, sequentially from the store, with no ``.part`` and no rename; the rename
never replaces anything but a regular file. A failed or interrupted run removes ``FILE.part``:
it holds nothing the store does not (a re-run copies every chunk it did not write itself), so
resume works from the store's verified chunks and a full disk gets its space back. A full disk
while writing the output raises :class:`node.store.StoreFull`.

``link=True`` (``bcai get --link``): the store keeps no copy of its own; each verified chunk is
written once, here, and the store links to it (``node.store._links``). ``FILE.part`` is then
registered with the store, kept after a failure (the store's links point into it, and a re-run
resumes into the same file), and its new path recorded after the rename. A device or FIFO
cannot be linked: the run stores its own copy as without ``link``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from node._fs import (
    LINKED_OUTPUT,
    DirectBuffers,
    OutputReplaced,
    is_no_space,
    open_in_place,
    output_target,
    pwrite_all,
    replace_output,
    write_all,
)
from node.content import Manifest
from node.store import LinkedFile, Store, StoreFull

from ._bitmap import Bitmap

_O_DIRECT = getattr(os, "O_DIRECT", 0)
_ALIGN = 4096


def _no_space(exc: OSError, path: Path) -> BaseException:
    if is_no_space(exc):
        return StoreFull(exc.errno, f"no space left writing {path}: {exc.strerror}")
    return exc


class OutputFile:
    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        *,
        durable: bool = True,
        store: Store | None = None,
        link: bool = False,
    ) -> None:
        target = output_target(path)
        self.path = target.path
        self.in_place = target.in_place
        self.durable = durable
        self.part = self.path.with_name(self.path.name + ".part")
        self.manifest = manifest
        self.written = Bitmap(manifest.chunk_count)
        self._done = False
        self._fd = -1
        self._direct = -1
        self._direct_buffers = DirectBuffers()
        self._stale: list[int] = []
        self._store = store
        #: the store links to this file (``link=True`` and a regular file)
        self._linked: LinkedFile | None = None
        if self.in_place:
            return  # opened in finish(): a FIFO's open blocks until someone reads it
        if store is not None and store.linked_file_at(self.path) is not None:
            raise OutputReplaced(errno.EEXIST, LINKED_OUTPUT, str(self.path))
        # O_NOFOLLOW: a symlink planted at FILE.part is refused, not followed.
        self._fd = os.open(
            self.part, os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644
        )
        if not stat.S_ISREG(os.fstat(self._fd).st_mode):
            os.close(self._fd)
            self._fd = -1
            raise OutputReplaced(errno.EEXIST, "exists and is not a regular file", str(self.part))
        try:
            os.ftruncate(self._fd, manifest.size)
        except OSError as exc:
            self.close()
            raise _no_space(exc, self.part) from exc
        # Whole 4 KiB-aligned chunks go through O_DIRECT (page-aligned bounce buffer per
        # thread): no page-cache copy, which was half of the receiver's kernel time.
        if _O_DIRECT:
            try:
                self._direct = os.open(self.part, os.O_WRONLY | _O_DIRECT)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    self.close()
                    raise
        if link:
            if store is None:
                raise ValueError("link=True needs the store")
            self._linked = store.link_file(self._fd, self.part)

    # -- the store's link target (node.store.LinkTarget) ------------------------------------

    @property
    def linked(self) -> LinkedFile:
        assert self._linked is not None
        return self._linked

    @property
    def chunk_size(self) -> int:
        return self.manifest.chunk_size

    @property
    def links(self) -> bool:
        """The store links to this file (a verified chunk goes only here)."""
        return self._linked is not None

    def sync(self) -> None:
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            raise _no_space(exc, self.part) from exc

    def write_chunk(self, index: int, data: bytes | bytearray | memoryview) -> None:
        """Write a verified chunk at its offset (call from a worker thread)."""
        if self.in_place:
            return  # written from the store, in order, by finish()
        try:
            self._write_chunk(index, data)
        except OSError as exc:
            raise _no_space(exc, self.part) from exc

    def _write_chunk(self, index: int, data: bytes | bytearray | memoryview) -> None:
        offset = index * self.manifest.chunk_size
        n = len(data)
        direct = self._direct
        if direct >= 0 and n and not n % _ALIGN and not offset % _ALIGN:
            view = self._direct_buffers.view(data)  # the fetch's chunk buffers: no copy
            try:
                pwrite_all(direct, view, offset)
                self.written.set(index)
                return
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                # The file system wants more alignment: buffered from now on. The fd is closed
                # at close()/finish(), not here, where another thread may be using it.
                self._direct = -1
                self._stale.append(direct)
        pwrite_all(self._fd, memoryview(data), offset)
        self.written.set(index)

    def finish(self, store: Store) -> None:
        """Fill in chunks not written in this run (from the store), fsync, rename into place.

        In place (a device or FIFO): write every chunk from the store, in order.
        """
        if self.in_place:
            self._fd = open_in_place(self.path)
            try:
                for index in range(self.manifest.chunk_count):
                    write_all(self._fd, store.read_chunk(self.manifest.root, index, verify=True))
            except OSError as exc:
                raise _no_space(exc, self.path) from exc
            finally:
                os.close(self._fd)
                self._fd = -1
            self._done = True
            return
        root = self.manifest.root
        for index in range(self.manifest.chunk_count):
            if index in self.written:
                continue
            if self._linked is not None and store.is_linked_at(root, index, self._linked):
                continue  # an earlier run's chunk, already here
            self.write_chunk(index, store.read_chunk(root, index, verify=True))
        while self._stale:
            os.close(self._stale.pop())
        if self._direct >= 0:
            os.close(self._direct)
            self._direct = -1
        try:
            if self.durable:
                os.fsync(self._fd)
        except OSError as exc:
            raise _no_space(exc, self.part) from exc
        os.close(self._fd)
        self._fd = -1
        replace_output(self.part, self.path)
        self._done = True
        if self._linked is not None:
            self._linked = store.link_moved(self._linked, self.path)

    def close(self) -> None:
        """Release the file descriptors; after a failure also remove ``FILE.part``."""
        while self._stale:
            os.close(self._stale.pop())
        if self._direct >= 0:
            os.close(self._direct)
            self._direct = -1
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._linked is not None and self._store is not None:
            self._store.link_done(self._linked)
            return  # FILE.part holds what the store links to: kept for the re-run
        if not self._done and not self.in_place:
            with contextlib.suppress(OSError):
                os.unlink(self.part)
