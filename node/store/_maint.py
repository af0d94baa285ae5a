"""Jobs, removal, eviction, garbage collection, recovery and verification.

A *job* (``u/<id>`` in the index) names a chunk-root list that is being built (``add``,
``partial``) or torn down (``remove``) and says which of its chunks hold a reference
(``present``: ``all``, ``bitmap`` or ``none``). Tearing a list down deletes its entries in
batches, each batch decrementing the refcounts of exactly the entries it deletes, so a crash at
any point leaves a job that is simply resumed. Chunk files whose refcount reaches zero are
deleted right after the batch that released them commits.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from node.content import StreamingTreeHasher, root_hex
from node.log import get_logger

from ._errors import CorruptStoredChunk, StoreCorrupt
from ._index import (
    BITMAP_BLOCK_BITS,
    BITMAP_BLOCK_BYTES,
    JOBS,
    META,
    QUARANTINE,
    Batch,
    access_key,
    bit_clear,
    bit_get,
    bit_set,
    bitmap_key,
    bitmap_prefix,
    content_key,
    dumps,
    get_meta_int,
    iter_prefix,
    job_key,
    loads,
    quarantine_key,
    ref_key,
    roots_prefix,
    u64,
)
from ._records import ContentRecord, EvictReport, GcReport, State, VerifyReport

if TYPE_CHECKING:
    from ._store import Store

log = get_logger(__name__)

DRAIN_BATCH = 4096


# -- jobs --------------------------------------------------------------------------------


def job_value(op: str, present: str) -> bytes:
    return dumps({"op": op, "present": present})


def begin_job(store: Store, op: str, *, present: str) -> int:
    """Allocate a list id and record the job durably before any of its entries exist."""
    with store._lock:
        store._check_open()
        list_id = get_meta_int(store._db, b"next_id", 1)
        batch = Batch(store._db, sync=store.durable)
        batch.put(META + b"next_id", u64(list_id + 1))
        batch.put(job_key(list_id), job_value(op, present))
        batch.commit()
    return list_id


def mark_job(store: Store, list_id: int, op: str, *, present: str) -> None:
    store._db.put(job_key(list_id), job_value(op, present), sync=store.durable)


def drain_job(store: Store, list_id: int) -> int:
    """Tear down list ``list_id`` if a job names it; return chunk bytes freed on disk."""
    value = store._db.get(job_key(list_id))
    if value is None:
        return 0
    present = loads(value).get("present", "all")
    prefix = roots_prefix(list_id)
    freed_bytes = 0
    while True:
        with store._lock:
            batch = Batch(store._db, sync=store.durable)
            block_cache: dict[int, bytes | None] = {}
            n = 0
            for key, cr in itertools.islice(iter_prefix(store._db, prefix), DRAIN_BATCH):
                index = int.from_bytes(key[len(prefix) :], "big")
                batch.delete(key)
                n += 1
                if present == "all" or (
                    present == "bitmap" and _bit(store, block_cache, list_id, index)
                ):
                    batch.ref(bytes(cr), -1, 0)
            if n == 0:
                for key, _ in iter_prefix(store._db, bitmap_prefix(list_id)):
                    batch.delete(key)
                batch.delete(job_key(list_id))
                batch.commit()
                return freed_bytes
            freed = batch.commit()
            freed_bytes += delete_unreferenced(store, freed)


def _bit(store: Store, cache: dict[int, bytes | None], list_id: int, index: int) -> bool:
    block, bit = divmod(index, BITMAP_BLOCK_BITS)
    if block not in cache:
        cache[block] = store._db.get(bitmap_key(list_id, block))
    bm = cache[block]
    return bm is not None and bit_get(bm, bit)


def delete_unreferenced(store: Store, chunk_roots: Iterable[bytes]) -> int:
    """Delete files of chunks with no reference and no write in flight; return bytes freed."""
    freed = 0
    with store._lock:
        for cr in chunk_roots:
            if store._inflight[cr] == 0 and store._db.get(ref_key(cr)) is None:
                freed += store._delete_chunk_files(cr)
    return freed


# -- removal and eviction ----------------------------------------------------------------


def remove(store: Store, root: bytes) -> EvictReport:
    with store._lock:
        rec = store._require(root)
        _unpublish(store, rec)
    freed = drain_job(store, rec.list_id)
    log.info("removed", root=root_hex(root), bytes_freed=freed)
    return EvictReport([root], freed, store.used_bytes, store.quota)


def _unpublish(store: Store, rec: ContentRecord) -> None:
    """Atomically drop the content record and turn its list into a ``remove`` job."""
    root = rec.manifest.root
    batch = Batch(store._db, sync=store.durable)
    batch.delete(content_key(root))
    batch.delete(access_key(root))
    present = "all" if rec.state is State.COMPLETE else "bitmap"
    batch.put(job_key(rec.list_id), job_value("remove", present))
    for key, _ in iter_prefix(store._db, QUARANTINE + root):
        batch.delete(key)
    batch.commit()
    store._quarantined = {q for q in store._quarantined if q[0] != root}
    store._access.pop(root, None)
    store._access_written.pop(root, None)


def evict_to_quota(store: Store, quota: int | None, protect: set[bytes]) -> EvictReport:
    evicted: list[bytes] = []
    freed = 0
    if quota is None or store.used_bytes <= quota:
        return EvictReport(evicted, freed, store.used_bytes, quota)
    candidates = sorted(
        (info.last_access, info.root)
        for info in store.list_content()
        if not info.pinned and info.root not in protect
    )
    for _, root in candidates:
        if store.used_bytes <= quota:
            break
        with store._lock:
            rec = store._record(root)
            if rec is None or rec.pinned:
                continue
            _unpublish(store, rec)
        freed += drain_job(store, rec.list_id)
        evicted.append(root)
        log.info("evicted", root=root_hex(root), quota=quota)
    return EvictReport(evicted, freed, store.used_bytes, quota)


# -- garbage collection and recovery -----------------------------------------------------


def gc(store: Store) -> GcReport:
    """Sweep ``chunks/`` (both tiers): delete every file that no reference names.

    With a cold tier, also keep only the copy the index names of each chunk (a crashed move
    leaves two) and recompute the cold tier's bytes (``_tier.sweep``).
    """
    from . import _tier

    files = 0
    freed = 0
    for cr, size in store._files.iter_chunk_roots():
        if delete_unreferenced(store, (cr,)) or not store._files.path(cr).exists():
            files += 1
            freed += size
    links = store._files.links
    if links is not None:  # links nothing references (a crash between write and commit)
        with store._lock:
            for cr in links.iter_linked():
                if store._inflight[cr] == 0 and store._db.get(ref_key(cr)) is None:
                    links.forget(cr)
            links.drop_unused_files()
    tier_files, tier_freed = _tier.sweep(store)
    files += tier_files
    freed += tier_freed
    log.info("gc", files_removed=files, bytes_freed=freed)
    return GcReport(files, freed)


def recover(store: Store) -> None:
    """Run at open: clear temp files, finish interrupted jobs, sweep after an unclean stop."""
    db = store._db
    unclean = get_meta_int(db, b"open") != 0
    removed_tmp = store._files.clear_tmp()
    jobs = [int.from_bytes(k[len(JOBS) :], "big") for k, _ in iter_prefix(db, JOBS)]
    for list_id in jobs:
        drain_job(store, list_id)
    swept = gc(store) if unclean or jobs else None
    db.put(META + b"open", u64(1), sync=True)
    if unclean or jobs or removed_tmp:
        log.info(
            "recovered",
            unclean=unclean,
            jobs=len(jobs),
            tmp_files=removed_tmp,
            orphans=swept.files_removed if swept else 0,
        )


# -- quarantine and repair --------------------------------------------------------------


def load_quarantine(store: Store) -> set[tuple[bytes, int]]:
    """Every quarantined ``(root, index)`` (read once at open; the set is kept in memory)."""
    out: set[tuple[bytes, int]] = set()
    for key, _ in iter_prefix(store._db, QUARANTINE):
        body = key[len(QUARANTINE) :]
        out.add((bytes(body[:32]), int.from_bytes(body[32:], "big")))
    return out


def quarantine(store: Store, root: bytes, index: int) -> bool:
    """Persistently mark chunk ``index`` of ``root`` as damaged here; ``False`` if it was."""
    with store._lock:
        rec = store._require(root)
        cr = store._chunk_root_of(rec, index)
        if (root, index) in store._quarantined:
            return False
        store._db.put(quarantine_key(root, index), cr, sync=store.durable)
        store._quarantined.add((root, index))
        store._invalidate_cached((cr,))
    log.error("stored chunk quarantined", root=root_hex(root), index=index, chunk_root=cr.hex())
    return True


def mark_missing(store: Store, root: bytes, indices: Iterable[int]) -> list[int]:
    """Turn present chunks back into missing ones (the content becomes partial).

    One batch clears their presence bits (building the bitmap of complete content first),
    releases their references, lowers ``present`` and drops their quarantine marks; then each
    damaged file is deleted, even when other content shares it (its bytes are bad for everyone,
    and a same-sized bad file would otherwise be kept by the writer's "already there" check).
    A resumed fetch then asks for exactly these chunks. Returns the indices marked.
    """
    wanted = sorted(set(indices))
    marked: list[tuple[int, bytes]] = []
    with store._lock:
        rec = store._require(root)
        n = rec.manifest.chunk_count
        batch = Batch(store._db, sync=store.durable)
        if rec.state is State.COMPLETE and wanted:
            for block in range((n + BITMAP_BLOCK_BITS - 1) // BITMAP_BLOCK_BITS):
                bm = batch.bitmap(rec.list_id, block)
                base = block * BITMAP_BLOCK_BITS
                if base + BITMAP_BLOCK_BITS <= n:
                    bm[:] = b"\xff" * BITMAP_BLOCK_BYTES
                else:
                    for bit in range(n - base):
                        bit_set(bm, bit)
        for index in wanted:
            if not 0 <= index < n:
                raise IndexError(f"chunk {index} outside 0..{n - 1}")
            block, bit = divmod(index, BITMAP_BLOCK_BITS)
            bm = batch.bitmap(rec.list_id, block)
            if not bit_get(bm, bit):
                continue
            bit_clear(bm, bit)
            cr = store._chunk_root_of(rec, index)
            batch.ref(cr, -1, 0)
            batch.delete(quarantine_key(root, index))
            marked.append((index, cr))
        if not marked:
            return []
        new = rec.replace(state=State.PARTIAL, present=rec.present - len(marked))
        batch.put(content_key(root), dumps(new.to_json()))
        freed = batch.commit()
        for index, _ in marked:
            store._quarantined.discard((root, index))
        store._invalidate_cached(cr for _, cr in marked)
        for _, cr in marked:
            if store._inflight[cr] == 0:
                store._delete_chunk_files(cr)
        delete_unreferenced(store, freed)
    log.warning(
        "damaged chunks marked missing", root=root_hex(root), chunks=[i for i, _ in marked][:20]
    )
    return [i for i, _ in marked]


# -- verification ------------------------------------------------------------------------


def verify(store: Store, root: bytes) -> VerifyReport:
    rec = store._require(root)
    n = rec.manifest.chunk_count
    tree = StreamingTreeHasher()
    bad: list[int] = []
    checked = 0
    roots_ok = True
    is_partial = rec.state is State.PARTIAL
    cache: dict[int, bytes | None] = {}

    def check(index: int, cr: bytes) -> int | None:
        try:
            store._read_chunk(rec, index, cr, True)
        except CorruptStoredChunk:
            return index
        return None

    ahead = 4 * store.workers
    with ThreadPoolExecutor(store.workers, thread_name_prefix="store-verify") as pool:
        futs = []
        try:
            for index, cr in enumerate(store.chunk_roots(root)):
                tree.add(cr)
                if is_partial and not _bit(store, cache, rec.list_id, index):
                    continue
                futs.append(pool.submit(check, index, cr))
                checked += 1
                if len(futs) >= ahead:
                    r = futs.pop(0).result()
                    if r is not None:
                        bad.append(r)
        except StoreCorrupt:
            roots_ok = False
        for fut in futs:
            r = fut.result()
            if r is not None:
                bad.append(r)
    if roots_ok and (tree.count != n or tree.root() != root):
        roots_ok = False
    quarantined = sorted(i for r, i in store._quarantined if r == root)
    damaged = sorted(set(bad) | set(quarantined))
    if bad:  # found bad on disk: never served from the memory tier again
        store._invalidate_cached(store._chunk_root_of(rec, i) for i in bad)
    report = VerifyReport(
        root=root,
        chunks=n,
        checked=checked,
        bad=sorted(bad),
        quarantined=quarantined,
        damaged_roots={i: store._chunk_root_of(rec, i) for i in damaged} if roots_ok else {},
        missing=n - rec.present if is_partial else 0,
        roots_ok=roots_ok,
    )
    if not report.ok:
        log.warning(
            "verify failed",
            root=root_hex(root),
            bad=report.bad[:20],
            quarantined=quarantined[:20],
            roots_ok=roots_ok,
        )
    return report
