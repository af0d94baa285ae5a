"""The LevelDB index: key schema and the small read-modify-write helpers built on it.

Key schema (every integer is big-endian, so LevelDB's byte order is numeric order)::

    b"c" + root[32]                  -> content record (JSON, see _records.ContentRecord)
    b"a" + root[32]                  -> last access, unix time as a big-endian float64
    b"r" + id[8] + index[8]          -> chunk root[32]       (the chunk-root list of list ``id``)
    b"b" + id[8] + block[8]          -> presence bitmap block (1 KiB = 8192 chunks), partial only
    b"k" + chunk_root[32]            -> refcount[8] + chunk length[4]   (absent when 0)
    b"u" + id[8]                     -> job record (JSON): a list being built or torn down
    b"q" + root[32] + index[8]       -> chunk root[32] of a stored chunk found damaged
                                        (quarantined: never served, named by verify)
    b"t" + chunk_root[32]            -> chunk length[4]: the chunk's file is in the cold tier
                                        (absent: in the hot tier, the store directory)
    b"M" + name                      -> store metadata: next_id, used (bytes), open (dirty flag),
                                        cold (bytes of referenced chunks in the cold tier)
    b"L" + chunk_root[32]            -> linked file id[8] + offset[8] + length[4]: the chunk is
                                        kept in a file the store does not own (``_links``)
    b"F" + file id[8]                -> linked file (JSON: path, device, inode)

Chunk-root lists are keyed by an internal list id, not by the content root, because ``add``
learns the root only after the last byte. The invariant every write batch keeps::

    refcount(X) == number of entries r/id/i == X whose chunk i is present

where "present" means: every chunk of a complete list, the bitmap bit of a partial list, and
per the job record for a list in a ``u`` job. A chunk file (or a linked file's bytes) is
durable before its reference.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import plyvel

from ._errors import StoreError, StoreFull, StoreLocked, is_no_space

CONTENT = b"c"
ACCESS = b"a"
ROOTS = b"r"
BITMAP = b"b"
REFS = b"k"
JOBS = b"u"
QUARANTINE = b"q"
TIER = b"t"
META = b"M"

BITMAP_BLOCK_BITS = 8192
BITMAP_BLOCK_BYTES = BITMAP_BLOCK_BITS // 8

_U64 = struct.Struct(">Q")
_F64 = struct.Struct(">d")
_REF = struct.Struct(">QI")


def u64(n: int) -> bytes:
    return _U64.pack(n)


def content_key(root: bytes) -> bytes:
    return CONTENT + root


def access_key(root: bytes) -> bytes:
    return ACCESS + root


def roots_prefix(list_id: int) -> bytes:
    return ROOTS + u64(list_id)


def roots_key(list_id: int, index: int) -> bytes:
    return ROOTS + u64(list_id) + u64(index)


def bitmap_prefix(list_id: int) -> bytes:
    return BITMAP + u64(list_id)


def bitmap_key(list_id: int, block: int) -> bytes:
    return BITMAP + u64(list_id) + u64(block)


def quarantine_key(root: bytes, index: int) -> bytes:
    return QUARANTINE + root + u64(index)


def ref_key(chunk_root: bytes) -> bytes:
    return REFS + chunk_root


def tier_key(chunk_root: bytes) -> bytes:
    return TIER + chunk_root


def job_key(list_id: int) -> bytes:
    return JOBS + u64(list_id)


def pack_ref(count: int, length: int) -> bytes:
    return _REF.pack(count, length)


def unpack_ref(value: bytes) -> tuple[int, int]:
    count, length = _REF.unpack(value)
    return count, length


def pack_time(t: float) -> bytes:
    return _F64.pack(t)


def unpack_time(value: bytes) -> float:
    return float(_F64.unpack(value)[0])


def dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def loads(value: bytes) -> dict[str, Any]:
    obj = json.loads(value)
    if not isinstance(obj, dict):
        raise StoreError("index record is not a JSON object")
    return obj


def open_db(path: Path) -> plyvel.DB:
    """Open (creating) the LevelDB; a held lock becomes :class:`StoreLocked`."""
    try:
        return plyvel.DB(str(path), create_if_missing=True, paranoid_checks=True)
    except plyvel.IOError as exc:
        text = str(exc)
        if "lock" in text.lower():
            raise StoreLocked(
                f"the store at {path.parent} is in use by another process "
                f"(LevelDB lock held: {text}); stop it or use another --data-dir"
            ) from None
        if is_no_space(exc):
            raise StoreFull(28, f"no space to open the index at {path}: {text}") from None
        raise StoreError(f"cannot open the index at {path}: {text}") from None


class Batch:
    """A LevelDB write batch plus a read-your-writes overlay for refcounts and bitmaps.

    Refcount changes are accumulated as deltas and merged with the stored values at
    :meth:`commit`; call it with the store's index lock held. ``sync=False`` skips LevelDB's
    log fsync: the batch still reaches the kernel with one ``write()``, so it survives a killed
    process (not a power cut). Stores opened with ``durable=False`` use it.
    """

    def __init__(self, db: plyvel.DB, *, sync: bool = True) -> None:
        self._db = db
        self._wb = db.write_batch(sync=sync)
        self._ref_delta: dict[bytes, list[int]] = {}  # chunk root -> [delta, length]
        self._bitmaps: dict[bytes, bytearray] = {}
        self.used_delta = 0
        self.freed: list[bytes] = []  # chunk roots whose refcount reached 0 in this batch

    def put(self, key: bytes, value: bytes) -> None:
        self._wb.put(key, value)

    def delete(self, key: bytes) -> None:
        self._wb.delete(key)

    def ref(self, chunk_root: bytes, delta: int, length: int) -> None:
        slot = self._ref_delta.setdefault(chunk_root, [0, length])
        slot[0] += delta

    def bitmap(self, list_id: int, block: int) -> bytearray:
        key = bitmap_key(list_id, block)
        bm = self._bitmaps.get(key)
        if bm is None:
            stored = self._db.get(key)
            bm = bytearray(stored) if stored else bytearray(BITMAP_BLOCK_BYTES)
            self._bitmaps[key] = bm
        return bm

    def commit(self) -> list[bytes]:
        """Write everything atomically and durably; return chunk roots now unreferenced."""
        db = self._db
        for chunk_root, (delta, length) in self._ref_delta.items():
            if delta == 0:
                continue
            key = ref_key(chunk_root)
            old = db.get(key)
            count, old_len = unpack_ref(old) if old else (0, length)
            new = count + delta
            if new < 0:
                raise StoreError(f"refcount of chunk {chunk_root.hex()} would drop below zero")
            if new == 0:
                self._wb.delete(key)
                self.used_delta -= old_len
                self.freed.append(chunk_root)
            else:
                if count == 0:
                    self.used_delta += length
                self._wb.put(key, pack_ref(new, old_len if count else length))
        for key, bm in self._bitmaps.items():
            self._wb.put(key, bytes(bm))
        if self.used_delta:
            used = get_meta_int(db, b"used") + self.used_delta
            self._wb.put(META + b"used", u64(max(0, used)))
        try:
            self._wb.write()
        except plyvel.Error as exc:
            if is_no_space(exc):
                raise StoreFull(28, f"no space left to update the index: {exc}") from None
            raise StoreError(f"index write failed: {exc}") from None
        return self.freed


def get_meta_int(db: plyvel.DB, name: bytes, default: int = 0) -> int:
    v = db.get(META + name)
    return _U64.unpack(v)[0] if v else default


def iter_prefix(db: plyvel.DB, prefix: bytes, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
    """Key/value pairs under ``prefix`` in order, from ``prefix + start`` on (keys keep prefix)."""
    with db.iterator(start=prefix + start, stop=prefix_end(prefix)) as it:
        yield from it


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix`` (None: no bound)."""
    p = bytearray(prefix)
    while p:
        if p[-1] < 0xFF:
            p[-1] += 1
            return bytes(p)
        p.pop()
    return None


def bit_get(bm: bytes | bytearray, bit: int) -> bool:
    return bool(bm[bit >> 3] & (1 << (bit & 7)))


def bit_set(bm: bytearray, bit: int) -> None:
    bm[bit >> 3] |= 1 << (bit & 7)


def bit_clear(bm: bytearray, bit: int) -> None:
    bm[bit >> 3] &= ~(1 << (bit & 7)) & 0xFF
