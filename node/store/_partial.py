"""Partial content: what the transfer engine writes into, one verified chunk at a time.

A partial record holds the manifest and a chunk-root list that was checked to hash to the
content root before the record became visible. Presence is a bitmap in 1 KiB index blocks
(8192 chunks each, 128 KiB per TB at 1 MiB chunks). :func:`put_chunk` verifies the bytes against
their chunk root before writing, writes the file durably, then sets the bit and takes the
reference in one atomic batch; the batch that sets the last bit also flips the record to
complete and drops the bitmap.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from node.content import EMPTY_ROOT, Manifest, StreamingTreeHasher, chunk_root, root_hex

from . import _maint
from ._errors import ChunkMismatch, InvalidChunkRoots
from ._index import (
    BITMAP_BLOCK_BITS,
    Batch,
    access_key,
    bit_get,
    bit_set,
    bitmap_key,
    bitmap_prefix,
    content_key,
    dumps,
    iter_prefix,
    job_key,
    pack_time,
    roots_key,
)
from ._records import ContentInfo, ContentRecord, State

if TYPE_CHECKING:
    from ._store import Store

#: Chunk-root entries per index commit while a list is streamed in.
ROOTS_BATCH = 4096


def begin(store: Store, manifest: Manifest, chunk_roots: Iterable[bytes]) -> ContentInfo:
    root = manifest.root
    existing = store._record(root)
    if existing is not None:
        return store._info(existing)
    n = manifest.chunk_count
    list_id = _maint.begin_job(store, "partial", present="none")
    try:
        tree = StreamingTreeHasher()
        batch = Batch(store._db)
        pending = 0
        for cr in chunk_roots:
            i = tree.count
            if i >= n:
                raise InvalidChunkRoots(f"more than {n} chunk roots for {root_hex(root)}")
            if not isinstance(cr, bytes) or len(cr) != 32:
                raise InvalidChunkRoots(f"chunk root {i} is not 32 bytes")
            tree.add(cr)
            batch.put(roots_key(list_id, i), cr)
            pending += 1
            if pending >= ROOTS_BATCH:
                batch.commit()
                batch, pending = Batch(store._db), 0
        batch.commit()
        if tree.count != n:
            raise InvalidChunkRoots(f"{tree.count} chunk roots for {n} chunks of {root_hex(root)}")
        got = tree.root() if n else EMPTY_ROOT
        if got != root:
            raise InvalidChunkRoots(
                f"chunk roots hash to {root_hex(got)}, not to the content root {root_hex(root)}"
            )
        return _publish(store, list_id, manifest)
    except BaseException:
        _maint.drain_job(store, list_id)
        raise


def _publish(store: Store, list_id: int, manifest: Manifest) -> ContentInfo:
    root = manifest.root
    now = time.time()
    with store._lock:
        existing = store._record(root)
        if existing is not None:  # someone else got there first
            _maint.mark_job(store, list_id, "remove", present="none")
            keep = existing
        else:
            n = manifest.chunk_count
            keep = ContentRecord(
                list_id=list_id,
                state=State.COMPLETE if n == 0 else State.PARTIAL,
                manifest=manifest,
                present=0,
                added=now,
            )
            batch = Batch(store._db)
            batch.put(content_key(root), dumps(keep.to_json()))
            batch.put(access_key(root), pack_time(now))
            batch.delete(job_key(list_id))
            batch.commit()
    if keep.list_id != list_id:
        _maint.drain_job(store, list_id)
    return store._info(keep)


def is_present(store: Store, rec: ContentRecord, index: int) -> bool:
    if rec.state is State.COMPLETE:
        return 0 <= index < rec.manifest.chunk_count
    block, bit = divmod(index, BITMAP_BLOCK_BITS)
    bm = store._db.get(bitmap_key(rec.list_id, block))
    return bm is not None and bit_get(bm, bit)


def put_chunk(store: Store, root: bytes, index: int, data: bytes | bytearray | memoryview) -> bool:
    rec = store._require(root)
    m = rec.manifest
    if not 0 <= index < m.chunk_count:
        raise ChunkMismatch(
            f"chunk index {index} outside 0..{m.chunk_count - 1} of {root_hex(root)}",
            root=root,
            index=index,
        )
    if rec.state is State.COMPLETE or is_present(store, rec, index):
        return False
    expected = store._chunk_root_of(rec, index)
    if len(data) != m.chunk_length(index):
        raise ChunkMismatch(
            f"chunk {index} of {root_hex(root)} has {len(data)} bytes, "
            f"expected {m.chunk_length(index)}",
            root=root,
            index=index,
        )
    if chunk_root(data) != expected:
        raise ChunkMismatch(
            f"chunk {index} of {root_hex(root)} does not match its chunk root",
            root=root,
            index=index,
        )
    with store._lock:
        store._inflight[expected] += 1
    try:
        if not store._files.exists_with_size(expected, len(data)):
            store._files.sync_dirs({store._files.write(expected, data)})
        with store._lock:
            rec = store._require(root)  # may have changed while we wrote
            if rec.state is State.COMPLETE or is_present(store, rec, index):
                return False
            batch = Batch(store._db)
            block, bit = divmod(index, BITMAP_BLOCK_BITS)
            bit_set(batch.bitmap(rec.list_id, block), bit)
            batch.ref(expected, +1, len(data))
            present = rec.present + 1
            if present == m.chunk_count:
                rec = rec.replace(state=State.COMPLETE, present=present)
                batch.put(content_key(root), dumps(rec.to_json()))
                batch.commit()
                # Dropping the bitmap is a separate batch: "complete" already means all present.
                drop = Batch(store._db)
                for key, _ in iter_prefix(store._db, bitmap_prefix(rec.list_id)):
                    drop.delete(key)
                drop.commit()
            else:
                batch.put(content_key(root), dumps(rec.replace(present=present).to_json()))
                batch.commit()
            store._touch(root)
            return True
    finally:
        with store._lock:
            store._release((expected,))


def missing_chunks(store: Store, root: bytes, start: int) -> Iterator[int]:
    rec = store._require(root)
    if rec.state is State.COMPLETE:
        return
    n = rec.manifest.chunk_count
    index = max(0, start)
    while index < n:
        block, _ = divmod(index, BITMAP_BLOCK_BITS)
        bm = store._db.get(bitmap_key(rec.list_id, block))
        end = min(n, (block + 1) * BITMAP_BLOCK_BITS)
        if bm is None:
            yield from range(index, end)
        else:
            base = block * BITMAP_BLOCK_BITS
            for i in range(index, end):
                if not bit_get(bm, i - base):
                    yield i
        index = end
