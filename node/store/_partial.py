"""Partial content: what the transfer engine writes into, one verified chunk at a time.

A partial record holds the manifest and a chunk-root list that was checked to hash to the
content root before the record became visible. Presence is a bitmap in 1 KiB index blocks
(8192 chunks each, 128 KiB per TB at 1 MiB chunks). :class:`PartialWriter` verifies the bytes
against their chunk root before writing, writes the files, and commits groups of chunks: one
``fdatasync`` pass over the group's files, then one atomic batch that sets the bits and takes
the references; the batch that sets the last bit also flips the record to complete and drops
the bitmap. :func:`put_chunk` and :func:`put_chunks` are a one-group writer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

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
    ref_key,
    roots_key,
)
from ._links import LinkTarget, pack_link, put_link
from ._records import ContentInfo, ContentRecord, State

if TYPE_CHECKING:
    from ._store import Store

#: Chunk-root entries per index commit while a list is streamed in.
ROOTS_BATCH = 4096
#: Group commit of received chunks: at most this many bytes or seconds between index commits.
GROUP_BYTES = 16 << 20
GROUP_SECONDS = 0.5
#: A chunk at least this long is written while it is hashed (``PartialWriter._put_parallel``).
PARALLEL_WRITE_MIN = 1 << 20
#: The threads those writes run in: a put waits for its own writes (at most two: the output
#: and the chunk file), and a fetch runs a few puts at once (``PUT_BUFFER_BYTES``), so 8 keep
#: every write of one or two fetches of 4 MiB chunks going without queueing.
_WRITES = ThreadPoolExecutor(max_workers=8, thread_name_prefix="bcai-chunk-write")

Buffer = bytes | bytearray | memoryview


class CopyTarget(Protocol):
    """Where a :class:`PartialWriter` also writes each chunk it takes (a get's ``-o`` file):
    ``write_chunk(index, data)`` puts chunk ``index`` at its offset."""

    def write_chunk(self, index: int, data: bytes | bytearray | memoryview) -> None: ...


def begin(store: Store, manifest: Manifest, chunk_roots: Iterable[bytes]) -> ContentInfo:
    root = manifest.root
    existing = store._record(root)
    if existing is not None:
        return store._info(existing)
    n = manifest.chunk_count
    list_id = _maint.begin_job(store, "partial", present="none")
    try:
        tree = StreamingTreeHasher()
        batch = Batch(store._db, sync=store.durable)
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
                batch, pending = Batch(store._db, sync=store.durable), 0
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
            batch = Batch(store._db, sync=store.durable)
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


@dataclass(frozen=True)
class PutResult:
    """What :meth:`Store.put_chunks` did with one chunk."""

    index: int
    stored: bool  #: ``True``: written and committed now; ``False``: rejected or already present
    error: ChunkMismatch | None = None  #: why it was rejected (the sender's fault)


def _expect(store: Store, rec: ContentRecord, index: int, data: Buffer) -> tuple[bytes, bool]:
    """The chunk root ``data`` must hash to (its index and length checked), and whether chunk
    ``index`` is present already."""
    root, m = rec.manifest.root, rec.manifest
    if not 0 <= index < m.chunk_count:
        raise ChunkMismatch(
            f"chunk index {index} outside 0..{m.chunk_count - 1} of {root_hex(root)}",
            root=root,
            index=index,
        )
    if len(data) != m.chunk_length(index):
        raise ChunkMismatch(
            f"chunk {index} of {root_hex(root)} has {len(data)} bytes, "
            f"expected {m.chunk_length(index)}",
            root=root,
            index=index,
        )
    present = rec.state is State.COMPLETE or is_present(store, rec, index)
    return store._chunk_root_of(rec, index), present


def _mismatch(rec: ContentRecord, index: int) -> ChunkMismatch:
    root = rec.manifest.root
    return ChunkMismatch(
        f"chunk {index} of {root_hex(root)} does not match its chunk root", root=root, index=index
    )


def _verify(store: Store, rec: ContentRecord, index: int, data: Buffer) -> bytes | None:
    """Check ``data`` against its chunk root: every copy, a present chunk's too (a corrupt
    duplicate is its sender's fault and must be reported as such, never counted as delivered).
    The chunk root, or ``None`` if the chunk is present already."""
    expected, present = _expect(store, rec, index, data)
    if chunk_root(data) != expected:
        raise _mismatch(rec, index)
    return None if present else expected


class PartialWriter:
    """Group commit of verified chunks into one partial content; safe to share between threads.

    :meth:`put` verifies a chunk against its chunk root (a mismatch raises
    :class:`ChunkMismatch` and writes nothing), writes its file without ``fsync`` and queues it.
    :meth:`flush` commits the queued group: one ``fdatasync`` pass over its files and their
    directories (durable stores only), then ONE index batch that sets every presence bit, takes
    every reference and bumps ``present`` (synced on durable stores). A group is flushed by the
    :meth:`put` that makes it reach ``group_bytes`` or ``group_seconds`` of age, by
    :meth:`flush_if_due`, and by :meth:`flush`/:meth:`close`.

    Crash bound: a killed process or a power cut loses at most the chunks of the groups not
    yet committed (``group_bytes`` plus what other threads were writing); their files are
    unreferenced, the recovery pass sweeps them, a resumed fetch asks for them again. A chunk
    that failed verification is never written.

    With ``link`` (:mod:`._links`): each verified chunk is written into the link target only
    (``link.write_chunk``, before it is queued), a chunk the store has no copy of is linked there,
    and a group commit calls ``link.sync()`` before the batch that records the links.
    """

    def __init__(
        self,
        store: Store,
        root: bytes,
        *,
        group_bytes: int = GROUP_BYTES,
        group_seconds: float = GROUP_SECONDS,
        link: LinkTarget | None = None,
        copy: CopyTarget | None = None,
    ) -> None:
        rec = store._require(root)
        if link is not None and copy is not None:
            raise ValueError("a linked chunk has one copy: link or copy, not both")
        if link is not None and link.chunk_size != rec.manifest.chunk_size:
            raise ValueError("link target's chunk size differs from the content's")
        self._store = store
        self.root = root
        self.link = link
        self.copy = copy
        self.group_bytes = group_bytes
        self.group_seconds = group_seconds
        self._lock = threading.Lock()  # guards the queue
        self._commit_lock = threading.Lock()  # one group commit at a time
        self._queue: list[tuple[int, bytes, int]] = []  # (index, chunk root, length)
        self._linked: dict[bytes, bytes] = {}  # queued chunk root -> its link record
        self._queued: set[int] = set()  # indices queued or being committed
        self._busy: set[int] = set()  # indices a put is writing while it hashes them
        self._idle = threading.Condition(self._lock)  # notified when an index leaves _busy
        self._queued_bytes = 0
        self._oldest = 0.0
        self.committed_chunks = 0

    @property
    def queued_chunks(self) -> int:
        """Chunks written but not yet committed (what a crash now would lose)."""
        return len(self._queued)

    def put(self, index: int, data: Buffer) -> bool:
        """Verify and write chunk ``index``; ``False`` if it is present or already queued (a
        duplicate is verified too: a corrupt one raises, so its sender is never credited).

        Raises :class:`ChunkMismatch` (nothing written), :class:`NotFound`, :class:`StoreFull`.
        With ``copy``, a chunk the writer takes is also written there (the ``-o`` file of a
        get without ``--link``). A chunk of :data:`PARALLEL_WRITE_MIN` bytes or more is written
        (into the link target, or into a temp chunk file and the copy target) while it is
        hashed (:meth:`_put_parallel`).
        """
        store = self._store
        if len(data) >= PARALLEL_WRITE_MIN:
            return self._put_parallel(index, data)
        expected = _verify(store, store._require(self.root), index, data)
        if expected is None:
            return False
        with self._lock:
            if index in self._queued:
                return False
            self._queued.add(index)
        self._write_and_queue(index, data, expected, written=False)
        if self.copy is not None:
            self.copy.write_chunk(index, data)
        return True

    def _put_parallel(self, index: int, data: Buffer) -> bool:
        """:meth:`put` with its writes overlapping its hash (the writes in worker threads,
        the hash here; all release the GIL), so a put costs the longest of them instead of
        their sum (docs/store.md, "Writes while a chunk is verified").

        Each write lands before the chunk is verified, where that is safe: into the link or
        copy target (the fetch's ``.part`` file), in the region of a chunk that is neither
        present nor queued (checked first), which nothing refers to until it verifies; and
        into a temp file that becomes the chunk file (renamed to its chunk root) only once it
        verified, or is removed. A copy that fails verification leaves its bytes in the
        ``.part`` region until a good copy is written over them; that file is renamed into
        place only when every chunk verified. Puts of one index take turns, and each checks
        again that the chunk is neither present nor queued, so an unverified copy never
        overwrites a verified one."""
        store = self._store
        target = self.link if self.link is not None else self.copy
        with self._lock:
            while index in self._busy:
                self._idle.wait()
            self._busy.add(index)
        tmp: Path | None = None
        holding: bytes | None = None
        try:
            rec = store._require(self.root)
            expected, present = _expect(store, rec, index, data)
            with self._lock:
                queued = index in self._queued
            if present or queued:  # a duplicate: checked (as in put), not written
                if chunk_root(data) != expected:
                    raise _mismatch(rec, index)  # its sender is blamed, never credited
                return False
            # Held while we write and hash: a chunk file found below cannot be collected (gc,
            # eviction) before the reference _write_and_queue takes.
            with store._lock:
                store._inflight[expected] += 1
            holding = expected
            writes: list[Future[Any]] = []
            if target is not None:
                writes.append(_WRITES.submit(target.write_chunk, index, data))
            temp = None
            if self.link is None and not store._files.exists_with_size(expected, len(data)):
                temp = _WRITES.submit(store._files.write_temp, expected, data, fsync=False)
                writes.append(temp)
            try:
                match = chunk_root(data) == expected
            finally:
                failed = [f.exception() for f in writes]  # waits: the buffer is free after
                if temp is not None and temp.exception() is None:
                    tmp = temp.result()
            if not match:
                raise _mismatch(rec, index)
            for exc in failed:
                if exc is not None:
                    raise exc
            with self._lock:
                self._queued.add(index)
            committing, tmp = tmp, None  # _write_and_queue renames it or removes it
            self._write_and_queue(index, data, expected, written=True, tmp=committing)
            return True
        finally:
            if tmp is not None:
                store._files.discard_temp(tmp)
            if holding is not None:
                with store._lock:
                    store._release((holding,))
            with self._lock:
                self._busy.discard(index)
                self._idle.notify_all()

    def _write_and_queue(
        self, index: int, data: Buffer, expected: bytes, *, written: bool, tmp: Path | None = None
    ) -> None:
        """Write verified chunk ``index`` and queue it for the next group commit (flushing
        when the group is due). ``written``: its writes are done (:meth:`_put_parallel`), and
        ``tmp``, if any, is its chunk file to rename into place (``commit_temp`` removes it if
        that fails). The caller added ``index`` to ``_queued``."""
        store = self._store
        with store._lock:
            store._inflight[expected] += 1
        link = self.link
        try:
            if link is not None:
                if not written:
                    link.write_chunk(index, data)  # the one copy written; the store links to it
                if not store._files.exists_with_size(expected, len(data)):
                    offset = index * link.chunk_size
                    record = pack_link(link.linked.file_id, offset, len(data))
                    with self._lock:
                        self._linked[expected] = record
            elif tmp is not None:
                store._files.commit_temp(tmp, expected)  # removes it if the rename fails
                with store._lock:
                    store._uncommitted.add(expected)
            elif not written and not store._files.exists_with_size(expected, len(data)):
                store._files.write(expected, data, fsync=False)
                with store._lock:
                    store._uncommitted.add(expected)
        except BaseException:
            with self._lock:
                self._queued.discard(index)
            with store._lock:
                store._release((expected,))
            raise
        now = time.monotonic()
        with self._lock:
            if not self._queue:
                self._oldest = now
            self._queue.append((index, expected, len(data)))
            self._queued_bytes += len(data)
            due = self._due(now)
        if due:
            self.flush()

    def _due(self, now: float) -> bool:
        return bool(self._queue) and (
            self._queued_bytes >= self.group_bytes or now - self._oldest >= self.group_seconds
        )

    def flush_if_due(self) -> int:
        """Commit the queued group if it is big or old enough; return the chunks committed."""
        with self._lock:
            due = self._due(time.monotonic())
        return self.flush() if due else 0

    def flush(self) -> int:
        """Make every queued chunk durable and present; return how many became present."""
        store = self._store
        with self._commit_lock:
            with self._lock:
                items, self._queue = self._queue, []
                self._queued_bytes = 0
                links = {cr: self._linked.pop(cr) for _, cr, _ in items if cr in self._linked}
            if not items:
                return 0
            try:
                if links and self.link is not None and store.durable:
                    self.link.sync()
                store._files.sync_files(cr for _, cr, _ in items if cr not in links)
                added = _commit(store, self.root, items, links=links)
            except BaseException:
                # The group is lost (full disk, index error): its files are unreferenced, so
                # delete them now instead of leaving orphans for gc; a resume re-fetches them.
                with store._lock:
                    store._release(cr for _, cr, _ in items)
                    _maint.delete_unreferenced(store, (cr for _, cr, _ in items))
                    store._uncommitted.difference_update(cr for _, cr, _ in items)
                raise
            else:
                with store._lock:
                    store._release(cr for _, cr, _ in items)
                    store._uncommitted.difference_update(cr for _, cr, _ in items)
            finally:
                with self._lock:
                    self._queued.difference_update(i for i, _, _ in items)
            self.committed_chunks += added
            return added

    def close(self) -> None:
        self.flush()


def _commit(
    store: Store,
    root: bytes,
    items: list[tuple[int, bytes, int]],
    *,
    held_only: bool = False,
    taken: list[tuple[int, bytes, int]] | None = None,
    links: dict[bytes, bytes] | None = None,
) -> int:
    """One index batch for a group of written (and synced) chunk files.

    ``held_only`` (delta adoption, ``_delta``): take only chunks that some content references
    now (refcount > 0, so their files are committed and durable); the others are skipped and
    stay missing. Checked under the index lock, in the batch that takes the new reference, so
    a removal cannot delete the file in between (it re-checks the refcount under that lock).
    ``taken`` (a list) receives the items that became present. ``links`` (chunk root ->
    link record) are written in the same batch for the chunks that became present and have
    no chunk file (a chunk another writer stored meanwhile keeps its file).
    """
    with store._lock:
        rec = store._require(root)  # may have changed while we wrote
        if rec.state is State.COMPLETE:
            return 0
        m = rec.manifest
        batch = Batch(store._db, sync=store.durable)
        added = 0
        for index, cr, n in items:
            block, bit = divmod(index, BITMAP_BLOCK_BITS)
            bm = batch.bitmap(rec.list_id, block)
            if bit_get(bm, bit):
                continue
            if held_only and store._db.get(ref_key(cr)) is None:
                continue
            bit_set(bm, bit)
            batch.ref(cr, +1, n)
            if links:
                put_link(batch, store._files, cr, links.get(cr))
            added += 1
            if taken is not None:
                taken.append((index, cr, n))
        if not added:
            return 0
        present = rec.present + added
        if present == m.chunk_count:
            rec = rec.replace(state=State.COMPLETE, present=present)
            batch.put(content_key(root), dumps(rec.to_json()))
            batch.commit()
            # Dropping the bitmap is a separate batch: "complete" already means all present.
            drop = Batch(store._db, sync=store.durable)
            for key, _ in iter_prefix(store._db, bitmap_prefix(rec.list_id)):
                drop.delete(key)
            drop.commit()
        else:
            batch.put(content_key(root), dumps(rec.replace(present=present).to_json()))
            batch.commit()
        store._touch(root)
        return added


def put_chunk(store: Store, root: bytes, index: int, data: Buffer) -> bool:
    writer = PartialWriter(store, root, group_bytes=1 << 62, group_seconds=float("inf"))
    return writer.put(index, data) and writer.flush() > 0


def put_chunks(store: Store, root: bytes, chunks: Iterable[tuple[int, Buffer]]) -> list[PutResult]:
    writer = PartialWriter(store, root, group_bytes=1 << 62, group_seconds=float("inf"))
    results: list[PutResult] = []
    try:
        for index, data in chunks:
            try:
                results.append(PutResult(index, writer.put(index, data)))
            except ChunkMismatch as exc:
                results.append(PutResult(index, False, exc))
    finally:
        writer.flush()
    return results


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
