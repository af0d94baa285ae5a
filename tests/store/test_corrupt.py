"""Damaged chunk files and a damaged index are found, named, and never served."""

from __future__ import annotations

from pathlib import Path

import plyvel
import pytest

from node.store import CorruptChunk, CorruptStoredChunk, Store, _index

from .conftest import CS, flip_byte, rand


def _corrupt_chunk(store: Store, root: bytes, index: int) -> Path:
    path = store._files.path(store.chunk_root_at(root, index))
    flip_byte(path)
    return path


def test_verify_names_the_bad_chunk(store: Store) -> None:
    m = store.add_bytes(rand(4 * CS + 9, 1), chunk_size=CS)
    _corrupt_chunk(store, m.root, 2)
    report = store.verify(m.root)
    assert not report.ok and report.bad == [2] and report.roots_ok
    assert report.checked == 5
    with pytest.raises(CorruptStoredChunk) as err:
        store.read_chunk(m.root, 2)
    assert err.value.index == 2 and "chunk 2" in str(err.value)
    assert store.read_chunk(m.root, 2, verify=False) != rand(4 * CS + 9, 1)[2 * CS : 3 * CS]


def test_missing_chunk_file_is_a_bad_chunk(store: Store) -> None:
    m = store.add_bytes(rand(3 * CS, 2), chunk_size=CS)
    store._files.path(store.chunk_root_at(m.root, 0)).unlink()
    assert store.verify(m.root).bad == [0]
    with pytest.raises(CorruptStoredChunk, match="missing"):
        store.read_chunk(m.root, 0)


def test_iter_and_export_refuse_unverified_bytes(store: Store, tmp_path: Path) -> None:
    data = rand(3 * CS, 3)
    m = store.add_bytes(data, chunk_size=CS)
    _corrupt_chunk(store, m.root, 1)
    got: list[bytes] = []
    with pytest.raises(CorruptChunk) as err:
        for chunk in store.iter_verified(m.root):
            got.append(chunk)
    assert err.value.index == 1
    assert got == [data[:CS]]  # only the verified prefix
    out = tmp_path / "out.bin"
    with pytest.raises(CorruptChunk):
        store.export(m.root, out)
    assert not out.exists()
    assert list(tmp_path.glob(".out.bin.*")) == []
    # An existing destination is left as it was.
    out.write_bytes(b"old")
    with pytest.raises(CorruptChunk):
        store.export(m.root, out)
    assert out.read_bytes() == b"old"


def test_tampered_chunk_root_list_is_detected(store_path: Path) -> None:
    with Store.open(store_path) as s:
        m = s.add_bytes(rand(3 * CS, 4), chunk_size=CS)
        list_id = s._record(m.root).list_id  # type: ignore[union-attr]
    db = plyvel.DB(str(store_path / "index"))
    try:
        db.put(_index.roots_key(list_id, 1), bytes(32))
    finally:
        db.close()
    with Store.open(store_path) as s:
        report = s.verify(m.root)
        assert not report.ok and not report.roots_ok
