"""The cold tier: chunk files moved to a second directory (another disk) and back, by use.

The index records which tier holds a referenced chunk: ``t/<chunk root>`` (its length) means
the cold directory, absence means the hot one (the store directory); ``M cold`` is the bytes in
the cold tier. New chunks are always written hot.

A move is crash-safe and never loses the only copy (docs/store.md, "Tiers"):

1. copy the file into the target tier (verified against its chunk root while copied; temp
   file, fsync, hard link into place, directory fsync: :meth:`ChunkFiles.copy_to_tier`);
2. ONE synced index batch sets or deletes ``t/<chunk root>`` and adjusts ``M cold``;
3. unlink the source copy.

A crash after 1 leaves a second copy the index does not name; a crash after 2 leaves the old
copy. The sweep (:func:`sweep`, run by ``gc`` and by the recovery pass after an unclean stop)
keeps the copy the index names and deletes the other. Moves and the sweep exclude each other
(``Store._tier_lock``); a chunk with a write in flight is not moved, and the move holds an
in-flight mark so a concurrent removal leaves the files to the mover, which cleans up.

Policy: with ``hot_limit`` set, when the hot tier holds more than that many bytes the least
recently used content (the store's per-root LRU) has its chunks demoted until the hot tier is
down to 90 % of the limit. A chunk read from the cold tier is queued for promotion, done by a
background thread while the hot tier has room (up to ``hot_limit``), so demotion and promotion
do not chase each other. Without ``hot_limit`` nothing is demoted automatically
(:meth:`Store.demote` moves a root by hand) and every chunk read cold is promoted.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Container, Iterable
from typing import TYPE_CHECKING

from node.content import chunk_root, root_hex
from node.log import get_logger

from ._index import (
    META,
    TIER,
    Batch,
    get_meta_int,
    iter_prefix,
    ref_key,
    tier_key,
    u64,
    unpack_ref,
)

if TYPE_CHECKING:
    from ._store import Store

log = get_logger(__name__)

_U32 = struct.Struct(">I")
#: demotion brings the hot tier down to this fraction of ``hot_limit``
LOW_WATER = 0.9
#: chunk roots waiting for promotion at most (more are dropped: they are asked again on use)
PROMOTE_QUEUE = 4096


def cold_bytes(store: Store) -> int:
    return get_meta_int(store._db, b"cold")


def is_cold(store: Store, cr: bytes) -> bool:
    return store._db.get(tier_key(cr)) is not None


def _set_tier(store: Store, cr: bytes, length: int, *, cold: bool) -> None:
    """One synced batch: ``t`` key and ``M cold``. Call with ``_lock`` held."""
    batch = Batch(store._db, sync=store.durable)
    if cold:
        batch.put(tier_key(cr), _U32.pack(length))
        total = cold_bytes(store) + length
    else:
        batch.delete(tier_key(cr))
        total = cold_bytes(store) - length
    batch.put(META + b"cold", u64(max(0, total)))
    batch.commit()


def forget(store: Store, cr: bytes) -> None:
    """Drop the tier record of a chunk whose files are gone. Call with ``_lock`` held."""
    value = store._db.get(tier_key(cr))
    if value is not None:
        _set_tier(store, cr, _U32.unpack(value)[0], cold=False)


def move(store: Store, cr: bytes, *, cold: bool, skip: Container[bytes] = ()) -> int:
    """Move one referenced chunk into the cold (or hot) tier; return the bytes moved (0: not).

    Skipped (0) when the chunk is unreferenced, has a write in flight, is already there, is
    in ``skip`` once the tier lock is held (a promotion a demote dropped meanwhile), or its
    source file is missing or fails its chunk-root check (``verify`` names it).
    """
    with store._tier_lock:
        with store._lock:
            store._check_open()
            ref = store._db.get(ref_key(cr))
            if ref is None or store._inflight[cr] or is_cold(store, cr) == cold or cr in skip:
                return 0
            _, length = unpack_ref(ref)
            store._inflight[cr] += 1
        released = False
        try:
            ok = store._files.copy_to_tier(
                cr, length, cold=cold, check=lambda data: chunk_root(data) == cr
            )
            with store._lock:
                store._release((cr,))
                released = True
                if store._db.get(ref_key(cr)) is None:
                    # Removed while we copied: the removal left the files to us.
                    if store._inflight[cr] == 0:
                        store._delete_chunk_files(cr)
                    return 0
                if not ok:
                    return 0
                _set_tier(store, cr, length, cold=cold)
                store._files.unlink_tier(cr, cold=not cold)
                store.tier_counts["demoted" if cold else "promoted"] += 1
                return length
        finally:
            if not released:
                with store._lock:
                    store._release((cr,))


def _stopping(store: Store) -> bool:
    """The store is closing: a long pass ends at the next chunk (``close`` waits for it)."""
    mover = store._mover
    return store._closed or (mover is not None and mover.stopping)


def hot_bytes(store: Store) -> int:
    return max(0, store.used_bytes - cold_bytes(store))


def demote_root(store: Store, root: bytes, *, until: int | None = None) -> int:
    """Demote the hot chunks of ``root`` (until the hot tier is at ``until`` bytes); bytes moved."""
    moved = 0
    seen: set[bytes] = set()
    for cr in store.chunk_roots(root):
        if _stopping(store) or (until is not None and hot_bytes(store) <= until):
            break
        if cr in seen:
            continue
        seen.add(cr)
        moved += move(store, cr, cold=True)
    return moved


def promote_root(store: Store, root: bytes) -> int:
    moved = 0
    for cr in set(store.chunk_roots(root)):
        moved += move(store, cr, cold=False)
    return moved


def rebalance(
    store: Store,
    promote: Iterable[bytes] = (),
    *,
    protect: Iterable[bytes] = (),
    skip: Container[bytes] = (),
) -> int:
    """Demote least recently used content above ``hot_limit``; promote what fits, but none in
    ``skip`` (checked as each is moved). Bytes moved."""
    limit = store.hot_limit
    moved = 0
    if limit is not None and hot_bytes(store) > limit:
        target = int(limit * LOW_WATER)
        keep = set(protect)
        candidates = sorted(
            (info.last_access, info.root) for info in store.list_content() if info.root not in keep
        )
        for _, root in candidates:
            if hot_bytes(store) <= target:
                break
            n = demote_root(store, root, until=target)
            if n:
                log.info("demoted to the cold tier", root=root_hex(root), bytes=n)
            moved += n
    for cr in promote:
        if _stopping(store):
            break
        if limit is not None:
            value = store._db.get(ref_key(cr))
            if value is None or hot_bytes(store) + unpack_ref(value)[1] > limit:
                continue
        moved += move(store, cr, cold=False, skip=skip)
    return moved


def sweep(store: Store) -> tuple[int, int]:
    """Reconcile files with the tier records after a crash; return ``(files, bytes)`` removed.

    For a referenced chunk the copy the index names is kept and the other deleted; a cold copy
    the index does not name and no hot copy backs is adopted (its ``t`` record written); ``t``
    records of unreferenced or vanished chunks go; ``M cold`` is recomputed.
    """
    files = freed = 0
    if not store._files.tiered:
        return 0, 0
    with store._tier_lock, store._lock:
        for cr, size in list(store._files.iter_chunk_roots(cold=True)):
            if store._inflight[cr]:
                continue
            if store._db.get(ref_key(cr)) is None:
                n = store._files.unlink_tier(cr, cold=True)
            elif is_cold(store, cr):
                continue
            elif store._files.has_tier(cr, cold=False):
                n = store._files.unlink_tier(cr, cold=True)  # a promotion's leftover
            else:
                _set_tier(store, cr, size, cold=True)  # the only copy: adopt it
                continue
            files += 1
            freed += n
        total = 0
        for key, value in list(iter_prefix(store._db, TIER)):
            cr = bytes(key[len(TIER) :])
            length = _U32.unpack(value)[0]
            if store._db.get(ref_key(cr)) is None or not store._files.has_tier(cr, cold=True):
                store._db.delete(key, sync=store.durable)
                continue
            total += length
            if store._inflight[cr] == 0 and store._files.has_tier(cr, cold=False):
                freed += store._files.unlink_tier(cr, cold=False)  # a demotion's leftover
                files += 1
        store._db.put(META + b"cold", u64(total), sync=store.durable)
    return files, freed


class TierMover:
    """A background thread: promotes chunks read from the cold tier, demotes above the limit."""

    def __init__(self, store: Store, *, interval: float = 1.0) -> None:
        self._store = store
        self.interval = interval
        self._queue: dict[bytes, None] = {}
        self._dropped: set[bytes] = set()  #: of the batch being worked on: skip them
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="store-tiers", daemon=True)
        self._thread.start()

    def request_promotion(self, cr: bytes) -> None:
        with self._lock:
            if cr in self._queue or len(self._queue) >= PROMOTE_QUEUE:
                return
            self._queue[cr] = None
        self._wake.set()

    def drop(self, chunk_roots: Iterable[bytes]) -> None:
        """Forget promotions asked for these chunks, queued or in the batch being worked on
        (``Store.demote``: a read before it must not bring the chunks back after it)."""
        with self._lock:
            for cr in chunk_roots:
                self._queue.pop(cr, None)
                self._dropped.add(cr)

    @property
    def stopping(self) -> bool:
        return self._stop

    def kick(self) -> None:
        """Run a pass now (after an add that may have filled the hot tier)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop:
                break
            with self._lock:
                batch, self._queue = list(self._queue), {}
                self._dropped = set()
            try:
                rebalance(self._store, batch, skip=self._dropped)
            except Exception as exc:  # never kill the thread; the next pass retries
                if not self._stop:
                    log.warning("tier pass failed", error=str(exc))

    def stop(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join()
