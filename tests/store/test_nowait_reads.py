"""Reads that must not wait for the disk: ``Store.read_chunk(nowait=True)``, ``prefetch``, and a
provider that moves its cold reads to threads (issue #11: an event loop reading a chunk that is
not in the page cache stopped every connection of the node for the disk's time).

Real files on the test's file system, evicted from the page cache with ``fsync`` +
``POSIX_FADV_DONTNEED``; skipped where the kernel cannot be asked (no ``RWF_NOWAIT``, or a file
system, like tmpfs, whose pages are its storage and cannot be evicted).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import trio

from node._fs import resident
from node.store import Store, WouldBlock
from node.store._cache import ChunkCache
from node.transfer import Provider

from ..transfer.helpers import fetch_served, make_identity, read_all
from .conftest import CS, chunk_files


def _evict(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _is_resident(path: Path) -> bool:
    """The kernel's own answer, independent of ``node._fs.resident``: a whole-file read with
    ``RWF_NOWAIT`` fails (or comes back short) unless every page is cached."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        try:
            return os.preadv(fd, [bytearray(size)], 0, os.RWF_NOWAIT) == size
        except BlockingIOError:
            return False
    finally:
        os.close(fd)


@pytest.fixture
def evictable(tmp_path: Path) -> None:
    if not hasattr(os, "RWF_NOWAIT") or not hasattr(os, "posix_fadvise"):
        pytest.skip("no RWF_NOWAIT / posix_fadvise here")
    probe = tmp_path / "probe.bin"
    probe.write_bytes(os.urandom(1 << 20))
    os.read(fd := os.open(probe, os.O_RDONLY), 1 << 20)
    os.close(fd)
    _evict(probe)
    if _is_resident(probe):
        pytest.skip("this file system keeps its pages (tmpfs?): nothing to evict")


def _content(tmp_path: Path, store: Store, chunks: int = 4) -> tuple[bytes, bytes]:
    data = os.urandom(chunks * CS)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    return store.add_file(src, chunk_size=CS).root, data


def test_cold_chunk_would_block_then_reads(tmp_path: Path, evictable: None) -> None:
    with Store.open(tmp_path / "s", durable=False) as store:
        root, data = _content(tmp_path, store)
        for f in chunk_files(tmp_path / "s"):
            _evict(f)
        # (no probe of our own here: a failed RWF_NOWAIT read may start the kernel's readahead)
        with pytest.raises(WouldBlock):
            store.read_chunk(root, 0, verify=False, nowait=True)
        assert store.read_chunk(root, 0, verify=False) == data[:CS]  # waits: fine here
        # read once, it is in the page cache: the event loop may read it now
        assert store.read_chunk(root, 0, verify=False, nowait=True) == data[:CS]
        # the others are still cold
        with pytest.raises(WouldBlock):
            store.read_chunk(root, 1, verify=True, nowait=True)


def test_prefetch_brings_chunks_in(tmp_path: Path, evictable: None) -> None:
    with Store.open(tmp_path / "s", durable=False) as store:
        root, data = _content(tmp_path, store)
        for f in chunk_files(tmp_path / "s"):
            _evict(f)
        store.prefetch(root, [2, 3, 99, -1])  # out-of-range indices are skipped
        deadline = time.monotonic() + 5
        while True:
            try:
                got = store.read_chunk(root, 3, verify=True, nowait=True)
                break
            except WouldBlock:
                assert time.monotonic() < deadline, "prefetched chunk never reached the cache"
                time.sleep(0.01)
        assert got == data[3 * CS :]
        with pytest.raises(WouldBlock):  # not asked for
            store.read_chunk(root, 0, verify=False, nowait=True)
        store.prefetch(b"\x01" * 32, [0])  # an unknown root: nothing, no error


def test_resident_probe(tmp_path: Path, evictable: None) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(CS))
    fd = os.open(path, os.O_RDONLY)
    try:
        _evict(path)
        assert not resident(fd, 0, CS) and not resident(fd, CS - 1, 1)
        os.read(fd, CS)
        assert resident(fd, 0, CS) and resident(fd, 0, 1) and resident(fd, 0, 0)
    finally:
        os.close(fd)


def test_linked_chunk_would_block(tmp_path: Path, evictable: None) -> None:
    data = os.urandom(3 * CS)
    src = tmp_path / "linked.bin"
    src.write_bytes(data)
    with Store.open(tmp_path / "s", durable=False) as store:
        root = store.add_file(src, chunk_size=CS, link=True).root
        assert not chunk_files(tmp_path / "s")  # the store keeps no copy of its own
        _evict(src)
        with pytest.raises(WouldBlock):
            store.read_chunk(root, 1, verify=False, nowait=True)
        assert store.read_chunk(root, 1, verify=False) == data[CS : 2 * CS]
        assert store.read_chunk(root, 1, verify=False, nowait=True) == data[CS : 2 * CS]


def test_memory_tier_first_miss_that_would_block_is_not_seen(
    tmp_path: Path, evictable: None
) -> None:
    """The doorkeeper admits a chunk on its second miss. A nowait miss that raised is
    forgotten, so the read repeated in a thread is still the first one: nothing admitted, no
    hash (``verify=False``), one miss counted."""
    with Store.open(tmp_path / "s", durable=False, memory_cache=8 * CS) as store:
        root, data = _content(tmp_path, store)
        for f in chunk_files(tmp_path / "s"):
            _evict(f)
        with pytest.raises(WouldBlock):
            store.read_chunk(root, 0, verify=False, nowait=True)
        assert store.read_chunk(root, 0, verify=False) == data[:CS]
        stats = store.tier_stats()["memory"]
        assert isinstance(stats, dict)
        assert stats["misses"] == 1 and stats["hits"] == 0
        assert stats["bytes"] == 0  # a first miss admits nothing
        # the second miss loads verified bytes and admits them; a nowait read then hits
        assert store.read_chunk(root, 0, verify=False) == data[:CS]
        assert store.read_chunk(root, 0, verify=False, nowait=True) == data[:CS]
        stats = store.tier_stats()["memory"]
        assert isinstance(stats, dict)
        assert stats["misses"] == 2 and stats["hits"] == 1


def test_nowait_does_not_wait_for_another_threads_load() -> None:
    cache = ChunkCache(1 << 20)
    started, release = threading.Event(), threading.Event()

    def slow_load() -> bytes:
        started.set()
        release.wait(5)
        return b"x" * 10

    t = threading.Thread(target=lambda: cache.get_or_load(b"k", slow_load))
    t.start()
    assert started.wait(5)
    t0 = time.monotonic()
    with pytest.raises(WouldBlock):
        cache.get_or_load(b"k", lambda: b"y", nowait=True)
    assert time.monotonic() - t0 < 1.0
    release.set()
    t.join(5)
    assert cache.get_or_load(b"k", lambda: b"z", nowait=True) == (b"x" * 10, True)


async def test_provider_reads_cold_chunks_in_threads(tmp_path: Path, evictable: None) -> None:
    """A provider whose chunks are not in the page cache serves them whole and verified: each
    cold read went to a thread (``disk_reads``), and the chunks after it were prefetched."""
    provider_id, receiver_id = make_identity(), make_identity()
    src = Store.open(tmp_path / "a", durable=False)
    root, data = _content(tmp_path, src, chunks=12)
    for f in chunk_files(tmp_path / "a"):
        _evict(f)
    dst = Store.open(tmp_path / "b", durable=False)
    provider = Provider(src, provider_id)
    with trio.fail_after(30):
        result = await fetch_served(
            src, provider_id, dst, receiver_id, root, serve={"provider": provider}
        )
    assert read_all(dst, root) == data and result.fetched_chunks == 12
    # at least the first read was cold; prefetching made later ones warm (not all 12 cold)
    assert 1 <= provider.stats.disk_reads < 12
    src.close()
    dst.close()
