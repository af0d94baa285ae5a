"""The memory tier's policy (node/store/_cache.py): budget, hits, invalidation, scans, races."""

from __future__ import annotations

import collections
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.store._cache import ChunkCache


def key(i: int) -> bytes:
    return i.to_bytes(32, "big")


def val(i: int, size: int) -> bytes:
    return bytes([i % 251]) * size


ops = st.lists(
    st.tuples(
        st.sampled_from(["put", "get", "load", "invalidate"]),
        st.integers(0, 40),
        st.integers(0, 300),
    ),
    max_size=300,
)


@settings(max_examples=150, deadline=None)
@given(budget=st.integers(0, 2000), ops=ops)
def test_budget_never_exceeded_hit_after_put_and_invalidation(budget: int, ops: list) -> None:
    cache = ChunkCache(budget)
    sizes: dict[int, int] = {}
    for op, i, size in ops:
        size = sizes.setdefault(i, size)  # one key, one value (content addressing)
        if op == "put":
            cache.put(key(i), val(i, size))
            if size <= budget:
                assert cache.get(key(i)) == val(i, size)  # hit right after put
        elif op == "get":
            got = cache.get(key(i))
            assert got is None or got == val(i, size)
        elif op == "load":
            data, hit = cache.get_or_load(key(i), lambda i=i, size=size: val(i, size))
            assert data == val(i, size)
            assert hit == (data is cache.get(key(i))) or not hit
        else:
            cache.invalidate(key(i))
            assert cache.get(key(i)) is None
        # The invariant: bytes held == sum of the entries' sizes, never above the budget.
        st_ = cache.stats()
        assert st_.used <= budget
        assert st_.used == sum(len(e.value) for e in cache._map.values())
        assert st_.entries == len(cache._map)


def test_hit_returns_the_same_object_without_a_copy() -> None:
    cache = ChunkCache(1 << 20)
    data = b"x" * 4096
    assert cache.get_or_load(key(1), lambda: data) == (data, False)
    got, hit = cache.get_or_load(key(1), lambda: pytest.fail("loaded twice"))
    assert hit and got is data
    s = cache.stats()
    assert (s.hits, s.misses, s.hit_ratio) == (1, 1, 0.5)


def test_too_big_for_the_budget_is_not_admitted() -> None:
    cache = ChunkCache(100)
    assert not cache.put(key(1), b"y" * 101)
    assert cache.get(key(1)) is None and cache.used == 0


def _trace(gap: int) -> list[int]:
    """10 hot keys, then 400 one-off keys with the hot set re-read every ``gap`` of them."""
    hot = list(range(10))
    out = list(hot)
    for scan in range(1000, 1400):
        out.append(scan)
        if scan % gap == 0:
            out.extend(hot)
    return out


def _lru_hot_misses(trace: list[int], slots: int) -> int:
    lru: collections.OrderedDict[int, None] = collections.OrderedDict()
    misses = 0
    for k in trace:
        if k in lru:
            lru.move_to_end(k)
            continue
        misses += k < 10
        lru[k] = None
        if len(lru) > slots:
            lru.popitem(last=False)
    return misses


def test_a_one_off_scan_does_not_flush_the_hot_set() -> None:
    """SIEVE keeps entries re-visited between two passes of the hand; LRU loses them."""
    size = 1000
    trace = _trace(gap=15)  # 15 scan inserts between hot reads > the 10 free slots
    cache = ChunkCache(20 * size)
    hot_misses = 0
    for k in trace:
        _, hit = cache.get_or_load(key(k), lambda k=k: val(k, size))
        hot_misses += k < 10 and not hit
    assert hot_misses == 10  # only the first read of each hot chunk went to disk
    assert all(key(i) in cache for i in range(10))
    assert _lru_hot_misses(trace, 20) > 100  # LRU re-reads the hot set after every gap


def test_concurrent_misses_read_once() -> None:
    cache = ChunkCache(1 << 20)
    calls = []
    gate = threading.Event()

    def load() -> bytes:
        calls.append(1)
        gate.wait(5)
        return b"z" * 1000

    results: list[tuple[bytes, bool]] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_or_load(key(7), load)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    time.sleep(0.1)
    gate.set()
    for t in threads:
        t.join(5)
    assert len(calls) == 1
    assert sorted(hit for _, hit in results) == [False] + [True] * 7
    s = cache.stats()
    assert (s.hits, s.misses) == (7, 1)


def test_a_failed_load_is_not_cached_and_waiters_retry() -> None:
    cache = ChunkCache(1 << 20)

    def bad() -> bytes:
        raise OSError("disk")

    with pytest.raises(OSError):
        cache.get_or_load(key(1), bad)
    assert key(1) not in cache and not cache._loading
    assert cache.get_or_load(key(1), lambda: b"ok") == (b"ok", False)


def test_invalidation_during_a_load_keeps_it_out_of_the_cache() -> None:
    """A chunk found bad while its read was in flight must not be cached by that read."""
    cache = ChunkCache(1 << 20)

    def load() -> bytes:
        cache.invalidate(key(1))  # e.g. quarantine() on another thread
        return b"old"

    assert cache.get_or_load(key(1), load) == (b"old", False)
    assert cache.get(key(1)) is None


def test_observer_hears_hits_and_misses_and_cannot_break_reads() -> None:
    class Obs:
        hits = misses = 0

        def cache_hit(self, n: int = 1) -> None:
            self.hits += n
            raise RuntimeError("observer bug")

        def cache_miss(self, n: int = 1) -> None:
            self.misses += n

    obs = Obs()
    cache = ChunkCache(1 << 20, obs)
    for _ in range(3):
        cache.get_or_load(key(1), lambda: b"a")
    assert (obs.hits, obs.misses) == (2, 1)
