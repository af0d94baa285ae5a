"""Quota, LRU eviction, pins, removal and gc."""

from __future__ import annotations

from pathlib import Path

from node.store import Store

from .conftest import CS, chunk_files, rand


def test_lru_eviction_respects_pins_and_access(store_path: Path) -> None:
    with Store.open(store_path, quota=3 * CS) as s:
        a = s.add_bytes(rand(CS, 1), chunk_size=CS, pin=True)
        b = s.add_bytes(rand(CS, 2), chunk_size=CS)
        c = s.add_bytes(rand(CS, 3), chunk_size=CS)
        s.read_chunk(b.root, 0)  # b is now more recent than c
        d = s.add_bytes(rand(CS, 4), chunk_size=CS)  # over quota: evict the LRU unpinned
        roots = {i.root for i in s.list_content()}
        assert roots == {a.root, b.root, d.root}
        assert s.used_bytes == 3 * CS
        assert len(chunk_files(store_path)) == 3
        # Pinned content is never evicted, even when pins alone exceed the quota.
        s.pin(b.root)
        s.pin(d.root)
        report = s.evict_to_quota(CS)
        assert report.evicted == []
        assert {i.root for i in s.list_content()} == {a.root, b.root, d.root}
        s.unpin(b.root)
        report = s.evict_to_quota(CS)
        assert report.evicted == [b.root] and report.bytes_freed == CS
        assert c.root not in {i.root for i in s.list_content()}


def test_eviction_keeps_chunks_shared_with_kept_content(store_path: Path) -> None:
    shared = rand(CS, 7)
    with Store.open(store_path) as s:
        x = s.add_bytes(shared + rand(CS, 8), chunk_size=CS)
        y = s.add_bytes(rand(CS, 9) + shared, chunk_size=CS, pin=True)
        assert s.used_bytes == 3 * CS
        report = s.evict_to_quota(0)
        assert report.evicted == [x.root] and report.bytes_freed == CS
        assert s.verify(y.root).ok
        assert len(chunk_files(store_path)) == 2


def test_gc_removes_only_unreferenced_files(store: Store, store_path: Path) -> None:
    m = store.add_bytes(rand(2 * CS, 1), chunk_size=CS)
    orphan_root = bytes(range(32))
    orphan = store_path / "chunks" / orphan_root.hex()[:2] / orphan_root.hex()
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"z" * 1000)
    report = store.gc()
    assert report.files_removed == 1 and report.bytes_freed == 1000
    assert not orphan.exists()
    assert store.verify(m.root).ok
    assert store.gc().files_removed == 0


def test_stats_count_logical_and_stored_bytes(store: Store) -> None:
    data = rand(CS, 1)
    store.add_bytes(data + data, chunk_size=CS, pin=True)
    store.add_bytes(b"tiny", chunk_size=CS)
    st = store.stats()
    assert (st.contents, st.complete, st.partial, st.pinned) == (2, 2, 0, 1)
    assert st.logical_bytes == 2 * CS + 4
    assert st.used_bytes == CS + 4
    assert st.pinned_bytes == 2 * CS
