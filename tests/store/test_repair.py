"""Damaged chunks: quarantine survives a restart, repair re-opens just them, no orphan files.

Real LevelDB and real chunk files throughout; the damage is done to the files on disk.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from node.content import chunk_root
from node.store import NotFound, State, Store, _index

from .conftest import CS, chunk_files, flip_byte, rand


def _damage(store: Store, root: bytes, index: int) -> None:
    flip_byte(store._files.path(store.chunk_root_at(root, index)))


def test_quarantine_is_persistent_and_never_read_out(store_path: Path) -> None:
    data = rand(4 * CS + 7, 11)
    with Store.open(store_path) as store:
        m = store.add_bytes(data, chunk_size=CS)
        _damage(store, m.root, 2)
        assert store.quarantine(m.root, 2) is True
        assert store.quarantine(m.root, 2) is False  # idempotent
        cr2 = store.chunk_root_at(m.root, 2)
    with Store.open(store_path) as store:  # a restart: the mark is in the index
        assert store.quarantined(m.root) == [2]
        assert list(_index.iter_prefix(store._db, _index.QUARANTINE)) == [
            (_index.quarantine_key(m.root, 2), cr2)
        ]
        with pytest.raises(NotFound, match="quarantined"):
            store.read_chunk(m.root, 2, verify=False)
        with pytest.raises(NotFound, match="quarantined"):
            store.read_chunk_into(m.root, 2, bytearray(CS + 1))
        assert store.read_chunk(m.root, 1) == data[CS : 2 * CS]  # the others still served
        report = store.verify(m.root)
        assert not report.ok
        assert report.quarantined == [2] and report.bad == [2]
        assert report.damaged_roots == {2: cr2}
        d = report.to_dict()
        assert d["quarantined_chunks"] == [2]
        want = {"index": 2, "chunk_root": "0x" + cr2.hex(), "reason": "quarantined"}
        assert d["damaged"] == [want]


def test_quarantine_of_an_intact_chunk_still_fails_verify(store: Store) -> None:
    m = store.add_bytes(rand(2 * CS, 12), chunk_size=CS)
    store.quarantine(m.root, 0)
    report = store.verify(m.root)
    assert report.bad == [] and report.quarantined == [0] and not report.ok


def test_repair_marks_only_damaged_chunks_missing_and_a_put_heals(store: Store) -> None:
    data = rand(5 * CS + 3, 13)
    m = store.add_bytes(data, chunk_size=CS)
    used = store.used_bytes
    _damage(store, m.root, 1)
    store.quarantine(m.root, 4)  # quarantined by the provider side, file intact
    assert store.repair(m.root) == [1, 4]
    info = store.info(m.root)
    assert info.state is State.PARTIAL and info.present_chunks == 4
    assert list(store.missing_chunks(m.root)) == [1, 4]
    assert store.quarantined(m.root) == []
    assert store.used_bytes == used - 2 * CS
    assert not store._files.path(store.chunk_root_at(m.root, 1)).exists()  # damaged file gone
    report = store.verify(m.root)
    assert report.ok and report.missing == 2  # partial, nothing damaged: not an error
    with pytest.raises(NotFound):
        store.read_chunk(m.root, 1)
    assert store.read_chunk(m.root, 0) == data[:CS]
    assert store.put_chunk(m.root, 1, data[CS : 2 * CS])
    assert store.put_chunk(m.root, 4, data[4 * CS : 5 * CS])
    assert store.is_complete(m.root)
    assert store.verify(m.root).ok and store.used_bytes == used
    assert store.read_chunk(m.root, 1) == data[CS : 2 * CS]
    assert store.repair(m.root) == []


def test_repair_heals_content_sharing_the_damaged_file(store: Store) -> None:
    """A deduplicated chunk: the bad file is deleted, so the re-fetched bytes replace it."""
    block = rand(CS, 14)
    a = store.add_bytes(block + rand(CS, 15), chunk_size=CS)
    b = store.add_bytes(block + rand(CS, 16), chunk_size=CS)
    _damage(store, a.root, 0)  # same file as b's chunk 0
    assert store.repair(a.root) == [0]
    assert store.put_chunk(a.root, 0, block)
    assert store.verify(a.root).ok and store.verify(b.root).ok


def test_repair_survives_a_restart(store_path: Path) -> None:
    data = rand(3 * CS, 17)
    with Store.open(store_path) as store:
        m = store.add_bytes(data, chunk_size=CS)
        _damage(store, m.root, 2)
        store.repair(m.root)
    with Store.open(store_path) as store:
        assert list(store.missing_chunks(m.root)) == [2]
        assert store.put_chunk(m.root, 2, data[2 * CS :])
        assert store.verify(m.root).ok


def test_failed_group_commit_leaves_no_orphan_files(store: Store) -> None:
    """The content is removed while a transfer writes into it: the commit fails, files go."""
    data = rand(3 * CS, 18)
    src = Store.open(store.path.parent / "src")
    try:
        m = src.add_bytes(data, chunk_size=CS)
        roots = list(src.chunk_roots(m.root))
    finally:
        src.close()
    store.begin_partial(m, roots)
    writer = store.partial_writer(m.root, group_bytes=1 << 40, group_seconds=1e9)
    assert writer.put(0, data[:CS]) and writer.put(1, data[CS : 2 * CS])
    assert len(chunk_files(store.path)) == 2
    store.remove(m.root)
    with pytest.raises(NotFound):
        writer.flush()
    assert chunk_files(store.path) == []


def test_close_sweeps_files_of_an_abandoned_writer(store_path: Path) -> None:
    data = rand(3 * CS, 19)
    with Store.open(store_path / "src") as src:
        m = src.add_bytes(data, chunk_size=CS)
        roots = list(src.chunk_roots(m.root))
    with Store.open(store_path) as store:
        store.begin_partial(m, roots)
        writer = store.partial_writer(m.root, group_bytes=1 << 40, group_seconds=1e9)
        assert writer.put(0, data[:CS]) and writer.put(2, data[2 * CS :])
        assert writer.flush() == 2
        assert writer.put(1, data[CS : 2 * CS])  # never committed: the transfer failed
        assert len(chunk_files(store_path)) == 3
    assert len(chunk_files(store_path)) == 2  # clean close: the orphan is gone, not left to gc
    with Store.open(store_path) as store:
        assert list(store.missing_chunks(m.root)) == [1]
        assert store.verify(m.root).ok
        assert store.gc().files_removed == 0


def test_export_writes_a_fifo_in_place(store: Store, tmp_path: Path) -> None:
    data = rand(2 * CS + 5, 20)
    m = store.add_bytes(data, chunk_size=CS)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    assert store.export(m.root, fifo) == len(data)
    reader.join(10)
    assert got == [data]
    assert fifo.is_fifo()  # not renamed over
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_export_refuses_a_directory(store: Store, tmp_path: Path) -> None:
    m = store.add_bytes(rand(CS, 21), chunk_size=CS)
    d = tmp_path / "dir"
    d.mkdir()
    with pytest.raises(IsADirectoryError):
        store.export(m.root, d)
    assert d.is_dir() and list(d.iterdir()) == []


def test_chunk_root_of_the_damaged_chunk_is_what_it_should_hash_to(store: Store) -> None:
    data = rand(2 * CS, 22)
    m = store.add_bytes(data, chunk_size=CS)
    _damage(store, m.root, 1)
    report = store.verify(m.root)
    assert report.damaged_roots == {1: chunk_root(data[CS:])}
    assert report.to_dict()["damaged"][0]["reason"] == "corrupt"
