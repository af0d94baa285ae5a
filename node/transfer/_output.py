"""Write fetched content straight to its destination file as verified chunks arrive.

``bcai get -o FILE`` should not read the whole content back from the store and hash it a
second time after the transfer (that would double the time for a 1 GiB file). Each chunk the
store accepted (so verified against its chunk root) is also written with ``os.pwrite`` at its
offset in ``FILE.part``; chunks that were already in the store from an earlier run are copied
from the store at the end; then ``FILE.part`` is fsynced (unless ``durable=False``, which
``bcai get --no-fsync`` asks for, as scp and curl never fsync) and renamed to ``FILE``.
"""

from __future__ import annotations

import errno
import mmap
import os
import threading
from pathlib import Path

from node.content import Manifest
from node.store import Store

from ._bitmap import Bitmap

_O_DIRECT = getattr(os, "O_DIRECT", 0)
_ALIGN = 4096


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        k = os.pwrite(fd, view, offset)
        view = view[k:]
        offset += k


class OutputFile:
    def __init__(self, path: Path, manifest: Manifest, *, durable: bool = True) -> None:
        self.path = Path(path)
        self.durable = durable
        self.part = self.path.with_name(self.path.name + ".part")
        self.manifest = manifest
        self.written = Bitmap(manifest.chunk_count)
        self._fd = os.open(self.part, os.O_WRONLY | os.O_CREAT, 0o644)
        os.ftruncate(self._fd, manifest.size)
        # Whole 4 KiB-aligned chunks go through O_DIRECT (page-aligned bounce buffer per
        # thread): no page-cache copy, which was half of the receiver's kernel time.
        self._direct = -1
        if _O_DIRECT:
            try:
                self._direct = os.open(self.part, os.O_WRONLY | _O_DIRECT)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    os.close(self._fd)
                    raise
        self._local = threading.local()
        self._stale: list[int] = []

    def write_chunk(self, index: int, data: bytes | bytearray | memoryview) -> None:
        """Write a verified chunk at its offset (call from a worker thread)."""
        offset = index * self.manifest.chunk_size
        n = len(data)
        direct = self._direct
        if direct >= 0 and n and not n % _ALIGN and not offset % _ALIGN:
            bounce = self._bounce(n)
            bounce[:n] = data
            try:
                _pwrite_all(direct, memoryview(bounce)[:n], offset)
                self.written.set(index)
                return
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                # The file system wants more alignment: buffered from now on. The fd is closed
                # at close()/finish(), not here, where another thread may be using it.
                self._direct = -1
                self._stale.append(direct)
        _pwrite_all(self._fd, memoryview(data), offset)
        self.written.set(index)

    def _bounce(self, n: int) -> mmap.mmap:
        buf: mmap.mmap | None = getattr(self._local, "bounce", None)
        if buf is None or len(buf) < n:
            buf = self._local.bounce = mmap.mmap(-1, max(n, 1 << 20))
        return buf

    def finish(self, store: Store) -> None:
        """Fill in chunks not written in this run (from the store), fsync, rename into place."""
        for index in range(self.manifest.chunk_count):
            if index not in self.written:
                self.write_chunk(index, store.read_chunk(self.manifest.root, index, verify=True))
        while self._stale:
            os.close(self._stale.pop())
        if self._direct >= 0:
            os.close(self._direct)
            self._direct = -1
        if self.durable:
            os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1
        os.replace(self.part, self.path)

    def close(self) -> None:
        while self._stale:
            os.close(self._stale.pop())
        if self._direct >= 0:
            os.close(self._direct)
            self._direct = -1
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
