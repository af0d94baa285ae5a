"""Linked chunks: verified chunks the store keeps inside a file it does not own.

``bcai get -o FILE --link`` writes each received byte once: into ``FILE``. Instead of a chunk
file of its own, the store records where the chunk lives (the IPFS filestore idea)::

    b"F" + file id[8]      -> linked file (JSON): {"path": ..., "dev": ..., "ino": ...}
    b"L" + chunk_root[32]  -> file id[8] + offset[8] + length[4]: the chunk's bytes there

A link is written in the same index batch that makes the chunk present (after the linked
file's data was made durable on durable stores), so the invariant "bytes durable before
their reference" holds as for chunk files. A chunk with its own chunk file is read from that
file; a link is only read when there is none.

The file is the user's: the store never writes, truncates, renames or unlinks it. A linked
file is identified by its path AND its (device, inode) pair: a file replaced at that path
(another inode) or removed makes its chunks missing, and a file changed in place makes them
fail verification. Either way the store's ordinary damage handling applies: a verifying read
(``bcai verify``, a DA challenge, ``export``) raises ``CorruptStoredChunk``, a provider that
served it gets the receiver's BAD_CHUNK and quarantines it, ``repair`` fetches it again (into
a chunk file of the store's own). ``delete``/``gc``/eviction forget links, never the file.
"""

from __future__ import annotations

import json
import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import plyvel

from node._fs import resident, willneed

from ._errors import WouldBlock
from ._index import META, get_meta_int, iter_prefix, u64

LINK_FILE = b"F"
LINK_CHUNK = b"L"

_LINK = struct.Struct(">QQI")
_U64 = struct.Struct(">Q")
_O_BINARY = getattr(os, "O_BINARY", 0)


def link_key(chunk_root: bytes) -> bytes:
    return LINK_CHUNK + chunk_root


def file_key(file_id: int) -> bytes:
    return LINK_FILE + u64(file_id)


def put_link(batch: Any, files: Any, chunk_root: bytes, record: bytes | None) -> None:
    """Put ``chunk_root``'s link ``record`` into ``batch`` unless the store has a chunk file
    of it in either tier (``files``: the store's ``ChunkFiles``): a chunk with a file of its
    own is read from there and keeps no link (the one rule of a group commit, for fetches
    and for ``add --link`` alike)."""
    if record is not None and not files.has_file(chunk_root):
        batch.put(link_key(chunk_root), record)


def pack_link(file_id: int, offset: int, length: int) -> bytes:
    return _LINK.pack(file_id, offset, length)


@dataclass(frozen=True)
class LinkedFile:
    """A file registered for links: where it is and which inode it must be."""

    file_id: int
    path: Path
    dev: int
    ino: int

    def to_json(self) -> bytes:
        return json.dumps(
            {"path": os.fsencode(self.path).hex(), "dev": self.dev, "ino": self.ino},
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, file_id: int, raw: bytes) -> LinkedFile:
        d = json.loads(raw)
        path = Path(os.fsdecode(bytes.fromhex(d["path"])))
        return cls(file_id, path, int(d["dev"]), int(d["ino"]))


class Links:
    """The link records of one store (thread-safe; reads open the linked file per call).

    The linked files are found by inode through an in-memory map, read from the index once
    and kept up to date by this object (the only writer of those records: the store is
    locked to one process): every ``get --link`` registers its output and checks that path
    first, and a scan of every record, parsing each, grew with every linked get a store had
    kept (0.6 ms at ~45 files, issue #11). ``durable``: the records are written with
    LevelDB's sync, as the store's other index writes."""

    def __init__(self, db: plyvel.DB, *, durable: bool = True) -> None:
        self._db = db
        self._durable = durable
        self._lock = threading.Lock()
        self._files: dict[int, LinkedFile | None] = {}
        self._active: set[int] = set()  # registered and still being written: never dropped
        self._inodes: dict[tuple[int, int], LinkedFile] | None = None  # (dev, ino) -> file

    def _by_inode(self) -> dict[tuple[int, int], LinkedFile]:
        """The (dev, ino) map of the linked files (call with ``_lock`` held); two records of
        one inode (a reused inode, until ``gc`` drops the stale one): the oldest, as a scan
        of the records in key order finds it first."""
        if self._inodes is None:
            inodes: dict[tuple[int, int], LinkedFile] = {}
            for f in self.files():
                inodes.setdefault((f.dev, f.ino), f)
            self._inodes = inodes
        return self._inodes

    # -- linked files --------------------------------------------------------------------

    def register(self, fd: int, path: Path) -> LinkedFile:
        """Record the open regular file ``fd`` (at ``path``) as a link target; return it.

        A file already registered (the same inode: a resumed fetch into its ``.part``) keeps
        its id, so the links an earlier run committed follow it when it is renamed."""
        st = os.fstat(fd)
        where = Path(os.path.abspath(path))
        with self._lock:
            inodes = self._by_inode()
            old = inodes.get((st.st_dev, st.st_ino))
            with self._db.write_batch(sync=self._durable) as batch:
                if old is not None:
                    linked = LinkedFile(old.file_id, where, old.dev, old.ino)
                else:
                    file_id = get_meta_int(self._db, b"next_link", 1)
                    linked = LinkedFile(file_id, where, st.st_dev, st.st_ino)
                    batch.put(META + b"next_link", u64(file_id + 1))
                batch.put(file_key(linked.file_id), linked.to_json())
            inodes[(linked.dev, linked.ino)] = linked
            self._files[linked.file_id] = linked
            self._active.add(linked.file_id)
        return linked

    def release(self, file_id: int) -> None:
        with self._lock:
            self._active.discard(file_id)

    def moved(self, linked: LinkedFile, path: Path) -> LinkedFile:
        """The linked file was renamed to ``path`` (same inode): record the new path."""
        new = LinkedFile(linked.file_id, Path(os.path.abspath(path)), linked.dev, linked.ino)
        with self._lock:
            self._db.put(file_key(new.file_id), new.to_json(), sync=self._durable)
            self._files[new.file_id] = new
            inodes = self._by_inode()
            if inodes.get((new.dev, new.ino), new).file_id == new.file_id:
                inodes[(new.dev, new.ino)] = new
        return new

    def file_at(self, path: Path) -> LinkedFile | None:
        """The linked file now at ``path`` (the same inode as recorded), or ``None``."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        with self._lock:
            return self._by_inode().get((st.st_dev, st.st_ino))

    def files(self) -> list[LinkedFile]:
        """Every linked file recorded (those no link uses any more go at the next ``gc``)."""
        return [
            LinkedFile.from_json(_U64.unpack(key[1:9])[0], raw)
            for key, raw in iter_prefix(self._db, LINK_FILE)
        ]

    def _file(self, file_id: int) -> LinkedFile | None:
        with self._lock:
            if file_id in self._files:
                return self._files[file_id]
        raw = self._db.get(file_key(file_id))
        linked = LinkedFile.from_json(file_id, raw) if raw is not None else None
        with self._lock:
            self._files[file_id] = linked
        return linked

    # -- chunks --------------------------------------------------------------------------

    def _record(self, chunk_root: bytes) -> tuple[int, int, int] | None:
        """``(file id, offset, length)`` of the chunk's link record, or ``None``."""
        raw = self._db.get(link_key(chunk_root))
        if raw is None or len(raw) != _LINK.size:
            return None
        file_id, offset, length = _LINK.unpack(raw)
        return int(file_id), int(offset), int(length)

    def where(self, chunk_root: bytes) -> tuple[LinkedFile, int, int] | None:
        """``(file, offset, length)`` of the chunk's link, or ``None``."""
        record = self._record(chunk_root)
        if record is None:
            return None
        file_id, offset, length = record
        linked = self._file(file_id)
        return None if linked is None else (linked, offset, length)

    def _open(self, linked: LinkedFile) -> int | None:
        """An fd on the linked file if it is still the same inode, else ``None``."""
        try:
            fd = os.open(linked.path, os.O_RDONLY | _O_BINARY)
        except OSError:
            return None
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (linked.dev, linked.ino):
            os.close(fd)
            return None
        return fd

    def has(self, chunk_root: bytes, size: int) -> bool:
        """A link exists and its file still holds ``size`` bytes at the offset."""
        at = self.where(chunk_root)
        if at is None:
            return False
        linked, offset, length = at
        if length != size:
            return False
        try:
            st = os.stat(linked.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == (linked.dev, linked.ino) and st.st_size >= offset + size

    def read_into(self, chunk_root: bytes, view: memoryview, *, nowait: bool = False) -> int | None:
        """Read the linked chunk (at most ``len(view)`` bytes: never past its recorded length);
        ``None`` if there is no link or its file is gone or replaced. A short count means the
        file was truncated. ``nowait``: raise ``WouldBlock`` rather than wait for the disk."""
        at = self.where(chunk_root)
        if at is None:
            return None
        linked, offset, length = at
        view = view[:length]
        fd = self._open(linked)
        if fd is None:
            return None
        try:
            if nowait and not resident(fd, offset, len(view)):
                raise WouldBlock(chunk_root.hex())
            got = 0
            while got < len(view):
                n = os.preadv(fd, [view[got:]], offset + got)
                if not n:
                    break
                got += n
            return got
        finally:
            os.close(fd)

    def prefetch(self, chunk_root: bytes) -> None:
        """``WILLNEED`` for the linked chunk's bytes (``ChunkFiles.prefetch``)."""
        at = self.where(chunk_root)
        if at is None:
            return
        linked, offset, length = at
        fd = self._open(linked)
        if fd is None:
            return
        try:
            willneed(fd, offset, length)
        finally:
            os.close(fd)

    def read(self, chunk_root: bytes, want: int, *, nowait: bool = False) -> bytes | None:
        buf = bytearray(want)
        n = self.read_into(chunk_root, memoryview(buf), nowait=nowait)
        if n is None:
            return None
        del buf[n:]
        return bytes(buf)

    def forget(self, chunk_root: bytes) -> bool:
        """Drop the chunk's link (never the file); ``True`` if there was one."""
        key = link_key(chunk_root)
        if self._db.get(key) is None:
            return False
        self._db.delete(key)
        return True

    def link_of(self, chunk_root: bytes) -> tuple[int, int] | None:
        """``(file id, offset)`` of the chunk's link, or ``None``."""
        record = self._record(chunk_root)
        return None if record is None else record[:2]

    def iter_linked(self) -> list[bytes]:
        """Every linked chunk root."""
        return [key[len(LINK_CHUNK) :] for key, _ in iter_prefix(self._db, LINK_CHUNK)]

    def drop_unused_files(self) -> int:
        """Forget linked-file records no link uses any more; return how many."""
        used = set()
        for _key, raw in iter_prefix(self._db, LINK_CHUNK):
            if len(raw) == _LINK.size:
                used.add(_LINK.unpack(raw)[0])
        dropped = 0
        for key, _raw in iter_prefix(self._db, LINK_FILE):
            file_id = _U64.unpack(key[1:9])[0]
            with self._lock:
                active = file_id in self._active
            if file_id not in used and not active:
                self._db.delete(key)
                with self._lock:
                    self._files.pop(file_id, None)
                    self._inodes = None  # read again when next needed (gc is rare)
                dropped += 1
        return dropped


class LinkTarget(Protocol):
    """What a :class:`node.store.PartialWriter` writes linked chunks into: the caller's open
    file. ``write_chunk(index, data)`` puts chunk ``index`` at ``index * chunk_size``; ``sync()``
    makes what was written durable (called before the links are committed)."""

    @property
    def linked(self) -> LinkedFile: ...

    @property
    def chunk_size(self) -> int: ...

    def write_chunk(self, index: int, data: bytes | bytearray | memoryview) -> None: ...

    def sync(self) -> None: ...
