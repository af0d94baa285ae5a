"""Adding a file: read, hash in worker threads, write chunk files, index in batches.

The calling thread reads chunk-sized pieces into reusable page-aligned buffers (anonymous
mappings: an ``O_DIRECT`` chunk write goes straight from them, with no bounce copy nor a bounce
buffer per worker thread, and they are unmapped when the add ends instead of staying in a
daemon worker thread's malloc arena); a small thread pool hashes each chunk (``hashlib``
releases the GIL on large updates, so two cores work) and writes its file (temp, rename; no
fsync per file). Results are consumed in order: each chunk
root goes into a :class:`~node.content.StreamingTreeHasher` (O(log n) memory) and into the
chunk-root list, which is committed to LevelDB every ``COMMIT_BYTES`` after one ``fdatasync``
pass over the files of that group and their directories (group commit). Memory is a few chunk
buffers (at most ``AHEAD_BYTES`` read ahead) plus one index batch, whatever the file size.

Crash safety: the list is built under a ``u`` job record written before the first chunk; the
content record appears in the same batch that deletes the job. A crash in between leaves a job
that the recovery pass tears down (and unreferenced files that its sweep removes).

``link`` (``bcai add --link``, a regular file only): no chunk file is written; each chunk the
store has no file for is linked to its offset in the source file, in the group's commit batch
(``_links``; the source is the user's and must stay as it is, docs/store.md).
"""

from __future__ import annotations

import collections
import contextlib
import mmap
import os
import stat
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from node._fs import anonymous_buffer
from node.content import Manifest, StreamingTreeHasher, check_chunk_size, chunk_root, read_full
from node.log import get_logger

from . import _maint
from ._index import Batch, access_key, content_key, dumps, job_key, pack_time, roots_key
from ._links import LinkedFile, pack_link, put_link
from ._records import ContentRecord, State

if TYPE_CHECKING:
    from ._store import ProgressCallback, Store

log = get_logger(__name__)

#: Bytes of content per index commit: bounds the work a crash loses and the batch in memory.
COMMIT_BYTES = 32 << 20
#: Chunk bytes read ahead of the hashers at most (besides the one being read). Two chunks per
#: worker keep every hasher busy with small chunks; with 4 MiB chunks that was 32 MiB of
#: buffers, and a daemon adding a 100 MiB content peaked at 114-118 MiB (session 11), where
#: 4 chunks in flight hash as fast on two cores.
AHEAD_BYTES = 16 << 20


def pending_chunks(workers: int, chunk_size: int) -> int:
    """Chunks in flight to the worker threads: two per worker, within :data:`AHEAD_BYTES`
    (at least two)."""
    return max(2, min(2 * workers, AHEAD_BYTES // chunk_size))


def _hash_and_write(
    store: Store, data: memoryview, link: LinkedFile | None = None, offset: int = 0
) -> tuple[bytes, Path | bytes | None]:
    """Worker: chunk root, then the chunk file unless an identical one is already stored
    (with ``link``: the link record to ``offset`` in the source instead of a file).

    No fsync here: the group of files a commit covers is synced in one pass before it.
    """
    cr = chunk_root(data)
    with store._lock:
        store._inflight[cr] += 1
    try:
        if store._files.exists_with_size(cr, len(data)):
            return cr, None
        if link is not None:
            return cr, pack_link(link.file_id, offset, len(data))
        # the content's first add_cached bytes stay in the page cache: content is added to be
        # served, usually right away (docs/store.md); the rest skips it (O_DIRECT)
        direct = offset + len(data) > store.add_cached
        return cr, store._files.write(cr, data, fsync=False, direct=direct)
    except BaseException:
        with store._lock:
            store._release((cr,))
        raise


def ingest(
    store: Store,
    f: BinaryIO,
    *,
    name: str,
    media_type: str,
    chunk_size: int,
    pin: bool,
    progress_cb: ProgressCallback | None,
    link: LinkedFile | None = None,
) -> Manifest:
    check_chunk_size(chunk_size)
    store._check_open()
    _advise_sequential(f)
    list_id = _maint.begin_job(store, "add", present="all")
    tree = StreamingTreeHasher()
    workers = store.workers
    max_pending = pending_chunks(workers, chunk_size)
    pending: collections.deque[tuple[Future[tuple[bytes, Path | bytes | None]], mmap.mmap, int]]
    pending = collections.deque()
    free: list[mmap.mmap] = []
    entries: list[tuple[bytes, int]] = []  # (chunk root, length) not yet committed
    links: dict[bytes, bytes] = {}  # chunk root -> link record, for the uncommitted group
    size = 0
    committed = 0

    # Group commits run on one committer thread, one at a time and in order, so the disk
    # writes back group k while the readers and hashers already work on group k+1.
    commit_pool = ThreadPoolExecutor(1, thread_name_prefix="store-commit")
    in_commit: Future[None] | None = None

    def commit_group(
        group: list[tuple[bytes, int]], start: int, group_links: dict[bytes, bytes]
    ) -> None:
        try:
            # The files this batch refers to are made durable first, in one pass (an identical
            # chunk found on disk may itself be uncommitted, so every file is synced).
            store._files.sync_files(cr for cr, _ in group if cr not in group_links)
            with store._lock:
                batch = Batch(store._db, sync=store.durable)
                for i, (cr, n) in enumerate(group, start):
                    batch.put(roots_key(list_id, i), cr)
                    batch.ref(cr, +1, n)
                    put_link(batch, store._files, cr, group_links.get(cr))
                batch.commit()
        finally:
            with store._lock:
                store._release(cr for cr, _ in group)

    def wait_commit() -> None:
        nonlocal in_commit
        if in_commit is not None:
            fut, in_commit = in_commit, None
            fut.result()

    def flush() -> None:
        nonlocal committed, in_commit
        wait_commit()
        if entries:
            group = entries.copy()
            entries.clear()
            group_links = links.copy()
            links.clear()
            in_commit = commit_pool.submit(commit_group, group, committed, group_links)
            committed += len(group)

    def drain_one() -> None:
        fut, buf, n = pending.popleft()
        cr, written = fut.result()
        if isinstance(written, bytes):
            links[cr] = written
        free.append(buf)
        tree.add(cr)
        entries.append((cr, n))
        if len(entries) * chunk_size >= COMMIT_BYTES:
            flush()

    try:
        with commit_pool, ThreadPoolExecutor(workers, thread_name_prefix="store-add") as pool:
            try:
                while True:
                    buf = free.pop() if free else anonymous_buffer(chunk_size)
                    n = read_full(f, buf)
                    if not n:
                        break
                    view = memoryview(buf)[:n]
                    pending.append((pool.submit(_hash_and_write, store, view, link, size), buf, n))
                    size += n
                    if len(pending) >= max_pending:
                        drain_one()
                    if progress_cb is not None:
                        progress_cb(size)
                while pending:
                    drain_one()
                flush()
                wait_commit()
            except BaseException:
                with contextlib.suppress(BaseException):
                    wait_commit()
                _abandon(store, pending, entries)
                raise
        root = tree.root()
        manifest = Manifest(
            root=root,
            size=size,
            chunk_size=chunk_size,
            name=name,
            media_type=media_type,
            created=int(time.time()),
        )
        manifest = _finish(store, list_id, manifest, pin)
    except BaseException:
        with contextlib.suppress(Exception):
            _maint.drain_job(store, list_id)
        raise
    log.info("added", root=manifest.root_hex, size=size, chunks=tree.count)
    if store.quota is not None:
        store.evict_to_quota(protect=(manifest.root,))
    return manifest


def _abandon(
    store: Store,
    pending: collections.deque[tuple[Future[tuple[bytes, Path | bytes | None]], mmap.mmap, int]],
    entries: list[tuple[bytes, int]],
) -> None:
    """Release in-flight markers of chunks that will never be committed; delete their files."""
    roots = [cr for cr, _ in entries]
    for fut, _, _ in pending:
        with contextlib.suppress(BaseException):
            roots.append(fut.result()[0])
    with store._lock:
        store._release(roots)
    # Free their space first (a full disk is a likely reason we are here), then the job's.
    _maint.delete_unreferenced(store, roots)
    entries.clear()
    pending.clear()


def _finish(store: Store, list_id: int, manifest: Manifest, pin: bool) -> Manifest:
    """Publish the content record, or fold into an existing one; return the manifest kept."""
    root = manifest.root
    now = time.time()
    with store._lock:
        existing = store._record(root)
        if existing is not None and existing.state is State.COMPLETE:
            # Already have it: our list is redundant; keep the first manifest.
            if pin and not existing.pinned:
                store._db.put(content_key(root), dumps(existing.replace(pinned=True).to_json()))
            _maint.mark_job(store, list_id, "remove", present="all")
            drop: int | None = list_id
            kept = existing.manifest
        else:
            rec = ContentRecord(
                list_id=list_id,
                state=State.COMPLETE,
                manifest=manifest,
                pinned=pin or (existing is not None and existing.pinned),
                present=manifest.chunk_count,
                added=now,
            )
            batch = Batch(store._db, sync=store.durable)
            batch.put(content_key(root), dumps(rec.to_json()))
            batch.put(access_key(root), pack_time(now))
            batch.delete(job_key(list_id))
            drop = None
            if existing is not None:  # a partial copy: the complete one replaces it
                batch.put(job_key(existing.list_id), _maint.job_value("remove", "bitmap"))
                drop = existing.list_id
            batch.commit()
            kept = manifest
        store._touch(root, force=True)
    if drop is not None:
        _maint.drain_job(store, drop)
    return kept


def _advise_sequential(f: BinaryIO) -> None:
    try:
        fd = f.fileno()
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    except (OSError, AttributeError, ValueError):
        pass
