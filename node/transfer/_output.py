"""Write fetched content straight to its destination file as verified chunks arrive.

``bcai get -o FILE`` should not read the whole content back from the store and hash it a
second time after the transfer (that would double the time for a 1 GiB file). Each chunk the
store accepted (so verified against its chunk root) is also written with ``os.pwrite`` at its
offset in ``FILE.part``; chunks that were already in the store from an earlier run are copied
from the store at the end; then ``FILE.part`` is fsynced (unless ``durable=False``, which
``bcai get --no-fsync`` asks for, as scp and curl never fsync) and renamed to ``FILE``.
"""

from __future__ import annotations

import os
from pathlib import Path

from node.content import Manifest
from node.store import Store

from ._bitmap import Bitmap


class OutputFile:
    def __init__(self, path: Path, manifest: Manifest, *, durable: bool = True) -> None:
        self.path = Path(path)
        self.durable = durable
        self.part = self.path.with_name(self.path.name + ".part")
        self.manifest = manifest
        self.written = Bitmap(manifest.chunk_count)
        self._fd = os.open(self.part, os.O_WRONLY | os.O_CREAT, 0o644)
        os.ftruncate(self._fd, manifest.size)

    def write_chunk(self, index: int, data: bytes | bytearray | memoryview) -> None:
        """Write a verified chunk at its offset (call from a worker thread)."""
        view = memoryview(data)
        offset = index * self.manifest.chunk_size
        while view:
            n = os.pwrite(self._fd, view, offset)
            view = view[n:]
            offset += n
        self.written.set(index)

    def finish(self, store: Store) -> None:
        """Fill in chunks not written in this run (from the store), fsync, rename into place."""
        for index in range(self.manifest.chunk_count):
            if index not in self.written:
                self.write_chunk(index, store.read_chunk(self.manifest.root, index, verify=True))
        if self.durable:
            os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1
        os.replace(self.part, self.path)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
