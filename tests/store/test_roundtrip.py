"""Add, read back, export: roots agree with node.content, bytes survive, chunks dedupe."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.content import EMPTY_ROOT, hash_file, tree_hash
from node.store import NotFound, State, Store

from .._hyp import examples
from .conftest import CS, chunk_files, rand, tmp_files, write_file

SIZES = [0, 1, 4095, 4096, 4097, CS - 1, CS, CS + 1, 3 * CS + 5000]


@pytest.mark.parametrize("size", SIZES)
def test_add_file_roundtrip(store: Store, store_path: Path, tmp_path: Path, size: int) -> None:
    data = rand(size, seed=size)
    src = write_file(tmp_path / "in.bin", data)
    m = store.add_file(src, chunk_size=CS)
    expected = hash_file(src, chunk_size=CS)
    assert m.root == expected.root
    assert m.size == size and m.name == "in.bin" and m.chunk_size == CS
    assert store.is_complete(m.root)
    assert store.get_manifest(m.root) == m
    assert b"".join(store.iter_verified(m.root)) == data
    assert [store.read_chunk(m.root, i) for i in range(m.chunk_count)] == [
        data[i * CS : (i + 1) * CS] for i in range(m.chunk_count)
    ]
    out = tmp_path / "out.bin"
    assert store.export(m.root, out) == size
    assert out.read_bytes() == data
    assert store.verify(m.root).ok
    assert len(chunk_files(store_path)) == m.chunk_count  # random data: no duplicate chunks
    assert tmp_files(store_path) == []


def test_empty_content_has_the_empty_root(store: Store) -> None:
    m = store.add_bytes(b"")
    assert m.root == EMPTY_ROOT and m.chunk_count == 0
    assert list(store.iter_verified(m.root)) == []
    assert list(store.chunk_roots(m.root)) == []


@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(size=st.integers(0, 3 * CS + 10), seed=st.integers(0, 2**32))
def test_add_bytes_matches_tree_hash(store: Store, size: int, seed: int) -> None:
    data = rand(size, seed)
    m = store.add_bytes(data, chunk_size=CS)
    assert m.root == tree_hash(data)
    assert b"".join(store.iter_verified(m.root)) == data


def test_stream_source_and_chunk_roots_paging(store: Store, tmp_path: Path) -> None:
    data = rand(5 * CS + 7, seed=3)
    src = write_file(tmp_path / "f", data)
    with open(src, "rb") as f:
        m = store.add_file(f, name="stream", chunk_size=CS)
    roots = hash_file(src, chunk_size=CS, collect_roots=True).chunk_roots
    assert roots is not None
    assert list(store.chunk_roots(m.root)) == roots
    assert list(store.chunk_roots(m.root, 2, 4)) == roots[2:4]
    assert store.chunk_root_at(m.root, 5) == roots[5]
    assert m.name == "stream"


def test_identical_chunks_are_stored_once(store: Store, store_path: Path) -> None:
    a, b = rand(CS, 1), rand(CS, 2)
    m1 = store.add_bytes(a + b + a + a, chunk_size=CS)
    assert len(chunk_files(store_path)) == 2
    assert store.used_bytes == 2 * CS
    m2 = store.add_bytes(b + a + rand(100, 3), chunk_size=CS)
    assert len(chunk_files(store_path)) == 3
    assert store.used_bytes == 2 * CS + 100
    assert b"".join(store.iter_verified(m1.root)) == a + b + a + a
    # Removing one content keeps the chunks the other still references.
    store.remove(m1.root)
    assert len(chunk_files(store_path)) == 3
    assert store.verify(m2.root).ok
    store.remove(m2.root)
    assert chunk_files(store_path) == [] and store.used_bytes == 0


def test_adding_twice_keeps_one_record(store: Store) -> None:
    data = rand(2 * CS, 9)
    m1 = store.add_bytes(data, name="first", chunk_size=CS)
    m2 = store.add_bytes(data, name="second", chunk_size=CS, pin=True)
    assert m2 == m1  # the first manifest is kept
    (info,) = store.list_content()
    assert info.pinned and info.state is State.COMPLETE
    assert store.used_bytes == 2 * CS


def test_unknown_root_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.get_manifest(b"\x01" * 32)
    with pytest.raises(NotFound):
        store.read_chunk(b"\x01" * 32, 0)
    assert not store.has_content(b"\x01" * 32)


def test_reopen_keeps_content(store_path: Path) -> None:
    with Store.open(store_path) as s:
        m = s.add_bytes(rand(2 * CS + 1, 4), chunk_size=CS, pin=True)
    with Store.open(store_path) as s:
        assert s.verify(m.root).ok
        (info,) = s.list_content()
        assert info.pinned and info.root == m.root


def test_second_opener_is_locked_out(store: Store, store_path: Path) -> None:
    from node.store import StoreLocked

    with pytest.raises(StoreLocked, match="in use by another process"):
        Store.open(store_path)


def test_progress_callback_reaches_the_size(store: Store, tmp_path: Path) -> None:
    data = rand(3 * CS + 1, 5)
    seen: list[int] = []
    store.add_file(write_file(tmp_path / "p", data), chunk_size=CS, progress_cb=seen.append)
    assert seen == sorted(seen) and seen[-1] == len(data)


def test_parsed_records_follow_every_change_and_stay_bounded(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Store._record keeps parsed records keyed by their stored bytes: a changed record (pin,
    presence) is never served stale, and the memo is bounded."""
    from node.store import _store as store_module

    root = store.add_bytes(rand(3 * CS, 41), chunk_size=CS, pin=False).root
    assert store._record(root) is store._record(root)  # parsed once
    assert not store._record(root).pinned  # type: ignore[union-attr]
    store.pin(root)
    assert store._record(root).pinned  # type: ignore[union-attr]
    store.unpin(root)
    assert not store._record(root).pinned  # type: ignore[union-attr]
    monkeypatch.setattr(store_module, "PARSED_RECORDS", 8)
    roots = [store.add_bytes(rand(CS, 100 + i), chunk_size=CS).root for i in range(20)]
    for r in roots:
        assert store._record(r) is not None
    assert len(store._parsed) <= 8
    store.remove(root)
    assert store._record(root) is None
