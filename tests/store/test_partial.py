"""Partial content: begin with a verified chunk-root list, put chunks in any order, resume."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from node.content import Manifest, tree_hash
from node.store import (
    ChunkMismatch,
    InvalidChunkRoots,
    NotFound,
    State,
    Store,
    _index,
    _maint,
    _partial,
)

from .conftest import CS, chunk_files, chunk_of, content


def test_put_chunks_in_any_order_completes(store: Store, tmp_path: Path) -> None:
    data, m, roots = content(tmp_path, 6 * CS + 123)
    info = store.begin_partial(m, iter(roots))
    assert info.state is State.PARTIAL and info.present_chunks == 0
    assert list(store.missing_chunks(m.root)) == list(range(7))
    order = list(range(7))
    random.Random(1).shuffle(order)
    for k, i in enumerate(order):
        assert not store.is_complete(m.root)
        assert store.put_chunk(m.root, i, chunk_of(data, i)) is True
        assert store.put_chunk(m.root, i, chunk_of(data, i)) is False  # already there
        assert list(store.missing_chunks(m.root)) == sorted(order[k + 1 :])
    assert store.is_complete(m.root)
    assert b"".join(store.iter_verified(m.root)) == data
    assert store.verify(m.root).ok


def test_bad_chunks_are_refused_before_writing(
    store: Store, store_path: Path, tmp_path: Path
) -> None:
    data, m, roots = content(tmp_path, 2 * CS + 10)
    store.begin_partial(m, roots)
    with pytest.raises(ChunkMismatch) as err:
        store.put_chunk(m.root, 1, chunk_of(data, 0))
    assert err.value.index == 1
    with pytest.raises(ChunkMismatch, match="bytes"):
        store.put_chunk(m.root, 2, chunk_of(data, 2) + b"x")
    with pytest.raises(ChunkMismatch, match="outside"):
        store.put_chunk(m.root, 3, b"x")
    assert chunk_files(store_path) == []
    assert list(store.missing_chunks(m.root)) == [0, 1, 2]
    with pytest.raises(NotFound):
        store.read_chunk(m.root, 0)


def test_chunk_root_list_must_hash_to_the_root(store: Store, tmp_path: Path) -> None:
    _, m, roots = content(tmp_path, 3 * CS)
    bad = [*roots[:2], bytes(32)]
    with pytest.raises(InvalidChunkRoots, match="hash to"):
        store.begin_partial(m, bad)
    with pytest.raises(InvalidChunkRoots, match="chunk roots for"):
        store.begin_partial(m, roots[:2])
    with pytest.raises(InvalidChunkRoots, match="more than"):
        store.begin_partial(m, [*roots, roots[0]])
    assert not store.has_content(m.root, partial=True)
    # No list entries, jobs or bitmaps were left behind.
    assert list(_index.iter_prefix(store._db, _index.ROOTS)) == []
    assert list(_index.iter_prefix(store._db, _index.JOBS)) == []


def test_resume_after_reopen(store_path: Path, tmp_path: Path) -> None:
    data, m, roots = content(tmp_path, 5 * CS)
    with Store.open(store_path) as s:
        s.begin_partial(m, roots)
        for i in (0, 3):
            s.put_chunk(m.root, i, chunk_of(data, i))
    with Store.open(store_path) as s:
        assert s.begin_partial(m, iter(())).present_chunks == 2  # known: no-op
        missing = list(s.missing_chunks(m.root))
        assert missing == [1, 2, 4]
        assert list(s.missing_chunks(m.root, start=2)) == [2, 4]
        assert s.verify(m.root).ok and s.verify(m.root).missing == 3
        for i in missing:
            s.put_chunk(m.root, i, chunk_of(data, i))
        assert s.is_complete(m.root)
        assert b"".join(s.iter_verified(m.root)) == data


def test_bitmap_blocks_across_boundaries(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for mod in (_index, _partial, _maint):
        monkeypatch.setattr(mod, "BITMAP_BLOCK_BITS", 8, raising=False)
    monkeypatch.setattr(_index, "BITMAP_BLOCK_BYTES", 1)
    data, m, roots = content(tmp_path, 19 * CS)
    store.begin_partial(m, roots)
    have = [0, 7, 8, 9, 15, 16, 18]
    for i in have:
        store.put_chunk(m.root, i, chunk_of(data, i))
    want = [i for i in range(19) if i not in have]
    assert list(store.missing_chunks(m.root)) == want
    assert list(store.missing_chunks(m.root, start=8)) == [i for i in want if i >= 8]
    for i in want:
        store.put_chunk(m.root, i, chunk_of(data, i))
    assert store.is_complete(m.root)
    assert list(_index.iter_prefix(store._db, _index.BITMAP)) == []


def test_add_file_completes_a_partial_copy(store: Store, store_path: Path, tmp_path: Path) -> None:
    data, m, roots = content(tmp_path, 3 * CS + 1)
    store.begin_partial(m, roots)
    store.put_chunk(m.root, 1, chunk_of(data, 1))
    store.pin(m.root)
    m2 = store.add_bytes(data, chunk_size=CS)
    assert m2.root == m.root
    info = store.info(m.root)
    assert info.complete and info.pinned
    assert len(chunk_files(store_path)) == 4
    assert store.used_bytes == len(data)


def test_remove_partial_releases_only_present_chunks(
    store: Store, store_path: Path, tmp_path: Path
) -> None:
    data, m, roots = content(tmp_path, 3 * CS, seed=5)
    store.begin_partial(m, roots)
    store.put_chunk(m.root, 2, chunk_of(data, 2))
    other = store.add_bytes(chunk_of(data, 2), chunk_size=CS)  # shares chunk 2
    store.remove(m.root)
    assert store.verify(other.root).ok
    assert len(chunk_files(store_path)) == 1
    assert store.used_bytes == CS


def test_empty_partial_is_complete_at_once(store: Store) -> None:
    m = Manifest(root=tree_hash(b""), size=0, chunk_size=CS)
    assert store.begin_partial(m, []).complete
