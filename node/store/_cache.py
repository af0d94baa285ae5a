"""The memory tier: verified chunk bytes in a bounded, scan-resistant in-memory cache.

:class:`ChunkCache` maps a chunk root to the chunk's bytes. Only bytes that hashed to their
chunk root are admitted (the store verifies on every miss before inserting), so a hit is
served without re-hashing and without a copy (``bytes`` are immutable: every reader gets the
same object). Keys are chunk roots, so identical chunks of different contents share one entry.

Policy: SIEVE (Zhang et al., NSDI 2024). Entries sit in a FIFO queue with one "visited" bit;
a hit only sets the bit (no reordering, so a hit is a dict lookup and a store under a short
lock); on eviction a hand walks from the oldest entry towards the newest, clearing visited
bits and evicting the first entry whose bit is clear. A one-off scan (a full read of a big
root) inserts entries that are never visited again, so the hand evicts them and keeps the hot
set, which is re-visited between two passes of the hand; plain LRU would flush it
(docs/decisions.md D26). The budget counts chunk bytes; ``used <= budget`` always holds.

Admission (a doorkeeper, as in TinyLFU): a read that may take unverified bytes (a provider
serving a peer, who verifies every chunk itself) passes ``first``; the first miss of a chunk
not seen recently is served by ``first()`` and only remembered (a bounded FIFO of keys),
neither hashed nor admitted; its next miss loads verified bytes and admits them. One stream
reading a big root once therefore costs the provider no hashing (~1 s of CPU per GiB) and
leaves the cache alone, while a root that several peers fetch is admitted from its second
read on. Reads that must be verified (``first=None``) always load verified and admit.

Single flight: concurrent misses of one chunk read the disk once; the others wait for that
read and count as hits (they cost no disk read). Invalidation (:meth:`invalidate`) bumps an
epoch, and a load that started before it is returned to its caller but not inserted, so a
chunk found bad (quarantine, repair, removal) is never served from the cache afterwards.

Thread-safe: one lock guards the map and the queue; loads run outside it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ._errors import WouldBlock


class CacheObserver(Protocol):
    """Told about every cached read (``node.app``'s metrics implement it)."""

    def cache_hit(self, n: int = 1) -> None: ...

    def cache_miss(self, n: int = 1) -> None: ...


class _Entry:
    __slots__ = ("key", "newer", "older", "size", "value", "visited")

    def __init__(self, key: bytes, value: bytes) -> None:
        self.key = key
        self.value = value
        self.size = len(value)
        self.visited = False
        self.newer: _Entry | None = None
        self.older: _Entry | None = None


class _Load:
    __slots__ = ("done", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: bytes | None = None


@dataclass(frozen=True)
class CacheStats:
    """A snapshot of the memory tier's counters."""

    budget: int  #: bytes the cache may hold
    used: int  #: bytes it holds now
    entries: int
    hits: int  #: reads served from memory (including waits on another thread's load)
    misses: int  #: reads that went to disk
    evictions: int
    inserted: int

    @property
    def hit_ratio(self) -> float | None:
        total = self.hits + self.misses
        return self.hits / total if total else None


SEEN_MIN = 1024
SEEN_CHUNK = 256 * 1024
"""The doorkeeper remembers max(SEEN_MIN, 4 x budget / 256 KiB) keys (~100 bytes each)."""


class ChunkCache:
    """A byte-bounded SIEVE cache of verified chunks keyed by chunk root (module docstring)."""

    def __init__(self, budget: int, observer: CacheObserver | None = None) -> None:
        if budget < 0:
            raise ValueError(f"cache budget must not be negative: {budget}")
        self.budget = budget
        self.observer = observer
        self._lock = threading.Lock()
        self._map: dict[bytes, _Entry] = {}
        self._head: _Entry | None = None  # newest
        self._tail: _Entry | None = None  # oldest
        self._hand: _Entry | None = None
        self._used = 0
        self._epoch = 0
        self._loading: dict[bytes, _Load] = {}
        self._hits = self._misses = self._evictions = self._inserted = 0
        #: keys missed once recently (the doorkeeper, FIFO); see the module docstring
        self._seen: dict[bytes, None] = {}
        self.seen_limit = max(SEEN_MIN, 4 * budget // SEEN_CHUNK)

    # -- reading -----------------------------------------------------------------------------

    def has(self, key: bytes) -> bool:
        """Is ``key`` cached? (Neither marks it visited nor counts.)"""
        with self._lock:
            return key in self._map

    def get(self, key: bytes) -> bytes | None:
        """The cached bytes of ``key`` (marked visited), or ``None``. Counts nothing."""
        with self._lock:
            e = self._map.get(key)
            if e is None:
                return None
            e.visited = True
            return e.value

    def get_or_load(
        self,
        key: bytes,
        load: Callable[[], bytes],
        first: Callable[[], bytes] | None = None,
        *,
        nowait: bool = False,
    ) -> tuple[bytes, bool]:
        """``(bytes, hit)``: from memory, or from ``load()`` (which must return VERIFIED bytes).

        Concurrent misses of one key call ``load`` once; the others wait and count as hits.
        An exception from ``load`` propagates (to every waiter, who then loads for itself).
        ``first`` (unverified bytes acceptable): the first miss of a key not seen recently
        returns ``first()`` and admits nothing (module docstring, admission).
        ``nowait`` (the loaders raise ``WouldBlock`` rather than wait for the disk): a miss
        that would wait for another thread's load raises ``WouldBlock`` too, and a first miss
        whose ``first()`` raised it is forgotten (not counted, not "seen"), so the read done
        again in a thread is the same first miss.
        """
        mine: _Load | None = None
        epoch = 0
        doorkeeper = False
        with self._lock:
            e = self._map.get(key)
            if e is not None:
                e.visited = True
                self._hits += 1
                hit: bytes | None = e.value
                pending = None
            else:
                hit = None
                pending = self._loading.get(key)
                if pending is not None and nowait:
                    raise WouldBlock(key.hex())
                if pending is None and first is not None and key not in self._seen:
                    doorkeeper = True
                    self._misses += 1
                    self._seen[key] = None
                    while len(self._seen) > self.seen_limit:
                        del self._seen[next(iter(self._seen))]
                elif pending is None:
                    mine = self._loading[key] = _Load()
                    epoch = self._epoch
        if hit is not None:
            self._notify(True)
            return hit, True
        if doorkeeper:
            assert first is not None
            try:
                data = first()
            except WouldBlock:
                with self._lock:
                    self._misses -= 1
                    self._seen.pop(key, None)
                raise
            self._notify(False)
            return data, False
        if pending is not None:
            pending.done.wait()
            if pending.value is not None:
                with self._lock:
                    self._hits += 1
                self._notify(True)
                return pending.value, True
            data = load()  # the loader failed or was invalidated: read for ourselves
            with self._lock:
                self._misses += 1
            self._notify(False)
            return data, False
        assert mine is not None
        try:
            data = load()
        except BaseException:
            with self._lock:
                del self._loading[key]
            mine.done.set()
            raise
        with self._lock:
            del self._loading[key]
            self._misses += 1
            self._seen.pop(key, None)
            if epoch == self._epoch:
                self._insert(key, data)
                mine.value = data
        mine.done.set()
        self._notify(False)
        return data, False

    def _notify(self, hit: bool) -> None:
        obs = self.observer
        if obs is not None:
            with contextlib.suppress(Exception):  # an observer never breaks a read
                if hit:
                    obs.cache_hit()
                else:
                    obs.cache_miss()

    # -- writing -----------------------------------------------------------------------------

    def put(self, key: bytes, value: bytes) -> bool:
        """Insert verified bytes (no-op if present or larger than the budget); True if added."""
        with self._lock:
            return self._insert(key, value)

    def _insert(self, key: bytes, value: bytes) -> bool:
        if key in self._map or len(value) > self.budget or not isinstance(value, bytes):
            return False
        while self._used + len(value) > self.budget:
            self._evict_one()
        e = _Entry(key, value)
        e.older = self._head
        if self._head is not None:
            self._head.newer = e
        self._head = e
        if self._tail is None:
            self._tail = e
        self._map[key] = e
        self._used += e.size
        self._inserted += 1
        return True

    def _evict_one(self) -> None:
        e = self._hand or self._tail
        assert e is not None, "eviction from an empty cache"
        while e.visited:
            e.visited = False
            e = e.newer or self._tail
            assert e is not None
        self._hand = e.newer
        self._unlink(e)
        self._evictions += 1

    def _unlink(self, e: _Entry) -> None:
        if self._hand is e:
            self._hand = e.newer
        if e.newer is not None:
            e.newer.older = e.older
        else:
            self._head = e.older
        if e.older is not None:
            e.older.newer = e.newer
        else:
            self._tail = e.newer
        e.newer = e.older = None
        del self._map[e.key]
        self._used -= e.size

    def invalidate(self, key: bytes) -> bool:
        """Drop ``key`` and make loads in flight uncacheable; True if an entry was dropped."""
        with self._lock:
            self._epoch += 1
            self._seen.pop(key, None)
            e = self._map.get(key)
            if e is None:
                return False
            self._unlink(e)
            return True

    def clear(self) -> None:
        with self._lock:
            self._epoch += 1
            self._map.clear()
            self._head = self._tail = self._hand = None
            self._used = 0

    # -- introspection -----------------------------------------------------------------------

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._map

    def __len__(self) -> int:
        return len(self._map)

    @property
    def used(self) -> int:
        return self._used

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                budget=self.budget,
                used=self._used,
                entries=len(self._map),
                hits=self._hits,
                misses=self._misses,
                evictions=self._evictions,
                inserted=self._inserted,
            )
