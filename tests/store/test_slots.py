"""SlotStore on a real directory: build, prove, and every way a slot on disk can go bad.

The rule under test: a proof that leaves the store verifies against the committed slot root;
anything else is a typed error (SlotMissing, CorruptSlot), never a wrong proof.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.content import (
    SEGMENT_SIZE,
    SlotLayout,
    draw_sample_indices,
    encode_slot_roots,
    iter_slot_segments,
    leaf_hash,
    merkle_root,
    node_hash,
    tree_hash,
    verify_inclusion,
)
from node.store import (
    CorruptSlot,
    CorruptStoredChunk,
    IncompleteContent,
    SlotError,
    SlotMismatch,
    SlotMissing,
    SlotStore,
    Store,
    StoreLocked,
)
from node.store._slots import GROUP, level_counts

from .._hyp import examples
from .conftest import CS, chunk_files, content, flip_byte, rand


def reader(data: bytes) -> Callable[[int, int], bytes]:
    return lambda offset, length: data[offset : offset + length]


@pytest.fixture
def slots(tmp_path: Path) -> Iterator[SlotStore]:
    with SlotStore.open(tmp_path / "slots", durable=False) as s:
        yield s


def files(store: SlotStore, root: bytes, slot: int) -> tuple[Path, Path, Path]:
    d = store.path / root.hex()
    return d / f"{slot}.slot", d / f"{slot}.tree", d / f"{slot}.json"


def check_all(
    proofs: list[tuple[bytes, list[bytes]]], idx: list[int], rows: int, sr: bytes
) -> None:
    assert len(proofs) == len(idx)
    for i, (seg, path) in zip(idx, proofs, strict=True):
        assert len(seg) == SEGMENT_SIZE
        verify_inclusion(leaf_hash(seg), i, rows, path, sr)


# 70 rows at K=4: three groups of 32 leaves, the last one short; several tree levels.
SIZE = 70 * 4 * SEGMENT_SIZE - 1000


class Built(tuple[bytes, bytes, SlotLayout, list[bytes]]):
    """(data, root, layout, slot roots) with a short repr (hypothesis prints fixtures)."""

    def __repr__(self) -> str:
        return f"Built(size={len(self[0])})"


@pytest.fixture(scope="module")
def built() -> Built:
    data = rand(SIZE, seed=11)
    lay = SlotLayout(SIZE)
    roots, _ = encode_slot_roots(reader(data), lay)
    return Built((data, tree_hash(data), lay, roots))


# -- building and proving ------------------------------------------------------------------


def test_build_and_prove_every_index(
    slots: SlotStore, built: tuple[bytes, bytes, SlotLayout, list[bytes]]
) -> None:
    data, root, lay, roots = built
    for j in (0, 5, 7):
        assert slots.build(root, j, lay, reader(data), expected_slot_root=roots[j]) == roots[j]
        assert slots.has(root, j)
        info = slots.info(root, j)
        assert (info.layout, info.slot_root) == (lay, roots[j])
        idx = list(range(lay.rows))
        proofs = slots.prove(root, j, idx)
        check_all(proofs, idx, lay.rows, roots[j])
        assert [seg for seg, _ in proofs] == list(iter_slot_segments(reader(data), lay, j))
        slots.verify(root, j)
        slot_file, tree_file, _ = files(slots, root, j)
        assert slot_file.stat().st_size == lay.slot_bytes
        assert tree_file.stat().st_size == 32 * sum(level_counts(lay.rows))
    assert slots.slots() == [(root, 0), (root, 5), (root, 7)]
    assert not slots.has(root, 1)


def test_prove_drawn_samples_with_repeats(
    slots: SlotStore, built: tuple[bytes, bytes, SlotLayout, list[bytes]]
) -> None:
    data, root, lay, roots = built
    slots.build(root, 2, lay, reader(data))
    idx = draw_sample_indices(b"\x42" * 32, 9, 20, lay.rows)
    idx += [idx[0], 0, lay.rows - 1, lay.rows - 1]
    check_all(slots.prove(root, 2, idx), idx, lay.rows, roots[2])
    assert slots.prove(root, 2, []) == []
    with pytest.raises(IndexError):
        slots.prove(root, 2, [lay.rows])
    with pytest.raises(IndexError):
        slots.prove(root, 2, [-1])


@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    size=st.one_of(
        st.integers(1, 3 * SEGMENT_SIZE),
        st.integers(1, 140).map(lambda s: s * SEGMENT_SIZE),
        st.integers(1, 140 * SEGMENT_SIZE),
    ),
    kn=st.integers(2, 32).flatmap(lambda k: st.tuples(st.just(k), st.integers(k, 64))),
    seed=st.integers(0, 2**32),
)
def test_build_prove_any_geometry(
    tmp_path_factory: pytest.TempPathFactory, size: int, kn: tuple[int, int], seed: int
) -> None:
    k, n = kn
    data = random.Random(seed).randbytes(size)
    lay = SlotLayout(size, k, n)
    j = seed % n
    roots, _ = encode_slot_roots(reader(data), lay)
    with SlotStore.open(tmp_path_factory.mktemp("slots"), durable=False) as s:
        root = tree_hash(data)
        assert s.build(root, j, lay, reader(data)) == roots[j]
        idx = sorted(set(random.Random(seed).choices(range(lay.rows), k=10)))
        check_all(s.prove(root, j, idx), idx, lay.rows, roots[j])
        s.verify(root, j)


def test_build_from_the_chunk_store(tmp_path: Path) -> None:
    data, manifest, _ = content(tmp_path, 3 * CS + 12_345, seed=4)
    lay = SlotLayout(manifest.size, 3, 6)
    with (
        Store.open(tmp_path / "store", durable=False) as store,
        SlotStore.open(tmp_path / "slots", durable=False) as s,
    ):
        store.add_bytes(data, chunk_size=CS)
        roots, _ = encode_slot_roots(store.reader(manifest.root), lay)
        assert roots == encode_slot_roots(reader(data), lay)[0]
        assert s.build(manifest.root, 4, lay, store.reader(manifest.root)) == roots[4]


def test_durable_build_survives_reopen(
    tmp_path: Path, built: tuple[bytes, bytes, SlotLayout, list[bytes]]
) -> None:
    data, root, lay, roots = built
    with SlotStore.open(tmp_path / "slots") as s:
        s.build(root, 3, lay, reader(data))
    with SlotStore.open(tmp_path / "slots") as s:
        assert s.slots() == [(root, 3)]
        check_all(s.prove(root, 3, [0, 69]), [0, 69], lay.rows, roots[3])


# -- build refuses the wrong content -------------------------------------------------------


def test_build_rejects_content_that_is_not_the_root(
    slots: SlotStore, built: tuple[bytes, bytes, SlotLayout, list[bytes]]
) -> None:
    data, root, lay, roots = built
    bad = bytearray(data)
    bad[5000] ^= 1
    with pytest.raises(SlotMismatch):
        slots.build(root, 0, lay, reader(bytes(bad)))
    with pytest.raises(SlotMismatch):
        slots.build(root, 0, lay, reader(data), expected_slot_root=roots[1])
    with pytest.raises(SlotMismatch):  # right bytes, claimed under another root
        slots.build(bytes(32), 0, lay, reader(data))
    assert slots.slots() == []
    assert not any((slots.path / "tmp").iterdir())
    assert not (slots.path / root.hex()).exists()


def test_failed_rebuild_keeps_the_committed_slot(
    slots: SlotStore, built: tuple[bytes, bytes, SlotLayout, list[bytes]]
) -> None:
    data, root, lay, roots = built
    slots.build(root, 6, lay, reader(data))
    calls = 0

    def dying(offset: int, length: int) -> bytes:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise OSError("disk went away")
        return data[offset : offset + length]

    with pytest.raises(OSError, match="disk went away"):
        slots.build(root, 6, lay, dying)
    check_all(slots.prove(root, 6, [0, 40, 69]), [0, 40, 69], lay.rows, roots[6])
    assert not any((slots.path / "tmp").iterdir())


# -- damage on disk ------------------------------------------------------------------------


def test_missing_slot_and_missing_data(
    slots: SlotStore, built: tuple[bytes, bytes, SlotLayout, list[bytes]]
) -> None:
    data, root, lay, _ = built
    with pytest.raises(SlotMissing):
        slots.prove(root, 0, [0])
    slots.build(root, 0, lay, reader(data))
    files(slots, root, 0)[0].unlink()  # a host that deleted its data
    assert not slots.has(root, 0)
    with pytest.raises(SlotMissing):
        slots.prove(root, 0, [0])
    with pytest.raises(SlotMissing):
        slots.verify(root, 0)


@pytest.mark.parametrize("keep", [0, 1, SEGMENT_SIZE, 69 * SEGMENT_SIZE, 70 * SEGMENT_SIZE - 1])
def test_truncated_slot_file(
    slots: SlotStore, built: tuple[bytes, bytes, SlotLayout, list[bytes]], keep: int
) -> None:
    data, root, lay, _ = built
    slots.build(root, 1, lay, reader(data))
    os.truncate(files(slots, root, 1)[0], keep)
    with pytest.raises(CorruptSlot):
        slots.prove(root, 1, [0])
    with pytest.raises(CorruptSlot):
        slots.verify(root, 1)


def test_extended_or_truncated_tree_file(
    slots: SlotStore, built: tuple[bytes, bytes, SlotLayout, list[bytes]]
) -> None:
    data, root, lay, _ = built
    slots.build(root, 1, lay, reader(data))
    tree = files(slots, root, 1)[1]
    with open(tree, "ab") as f:
        f.write(b"\0" * 32)
    with pytest.raises(CorruptSlot):
        slots.prove(root, 1, [0])
    os.truncate(tree, 32)
    with pytest.raises(CorruptSlot):
        slots.prove(root, 1, [0])
    tree.unlink()
    with pytest.raises(CorruptSlot):
        slots.prove(root, 1, [0])


@settings(
    max_examples=examples(30),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(pos=st.integers(0, 70 * SEGMENT_SIZE - 1), bit=st.integers(0, 7))
def test_any_flipped_data_byte_is_caught(
    slots: SlotStore, built: tuple[bytes, bytes, SlotLayout, list[bytes]], pos: int, bit: int
) -> None:
    data, root, lay, roots = built
    if not slots.has(root, 4):
        slots.build(root, 4, lay, reader(data))
    path = files(slots, root, 4)[0]
    flip(path, pos, bit)
    try:
        hit = pos // SEGMENT_SIZE
        with pytest.raises(CorruptSlot):
            slots.prove(root, 4, [hit])
        with pytest.raises(CorruptSlot):  # a neighbour in the same group reads the same bytes
            slots.prove(root, 4, [hit ^ 1 if (hit ^ 1) < lay.rows else hit])
        with pytest.raises(CorruptSlot):
            slots.verify(root, 4)
        # A group that does not hold the damage still proves, and correctly.
        far = (hit + GROUP) % lay.rows
        if far // GROUP != hit // GROUP:
            check_all(slots.prove(root, 4, [far]), [far], lay.rows, roots[4])
    finally:
        restore(path, pos)
    slots.verify(root, 4)


@settings(
    max_examples=examples(30),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data_=st.data())
def test_flipped_tree_byte_never_gives_a_wrong_proof(
    slots: SlotStore, built: tuple[bytes, bytes, SlotLayout, list[bytes]], data_: st.DataObject
) -> None:
    data, root, lay, roots = built
    if not slots.has(root, 3):
        slots.build(root, 3, lay, reader(data))
    path = files(slots, root, 3)[1]
    pos = data_.draw(st.integers(0, path.stat().st_size - 1))
    flip(path, pos, data_.draw(st.integers(0, 7)))
    try:
        refused = 0
        for i in range(lay.rows):
            try:
                check_all(slots.prove(root, 3, [i]), [i], lay.rows, roots[3])
            except CorruptSlot:
                refused += 1
        # A node is read iff it has a sibling (one carried up unpaired, or the root, is on no
        # path: its flip costs no proof, and the full check below still sees it).
        counts = level_counts(lay.rows)
        level, node = 0, pos // 32
        while node >= counts[level]:
            node -= counts[level]
            level += 1
        on_path = level < len(counts) - 1 and (node ^ 1) < counts[level]
        assert (refused > 0) == on_path
        with pytest.raises(CorruptSlot):
            slots.verify(root, 3)
    finally:
        restore(path, pos)
    slots.verify(root, 3)


_ORIGINAL: dict[tuple[Path, int], int] = {}


def flip(path: Path, pos: int, bit: int) -> None:
    with open(path, "r+b") as f:
        f.seek(pos)
        b = f.read(1)[0]
        _ORIGINAL.setdefault((path, pos), b)
        f.seek(pos)
        f.write(bytes([b ^ (1 << bit)]))


def restore(path: Path, pos: int) -> None:
    with open(path, "r+b") as f:
        f.seek(pos)
        f.write(bytes([_ORIGINAL.pop((path, pos))]))


def test_tampered_metadata(
    slots: SlotStore, built: tuple[bytes, bytes, SlotLayout, list[bytes]]
) -> None:
    data, root, lay, roots = built
    slots.build(root, 5, lay, reader(data))
    meta = files(slots, root, 5)[2]
    doc = json.loads(meta.read_bytes())
    for key, value in [("slot_root", roots[4].hex()), ("size", SIZE + 1), ("rows", 1)]:
        meta.write_text(json.dumps({**doc, key: value}))
        with pytest.raises(CorruptSlot):
            slots.prove(root, 5, [0])
    meta.write_text("{not json")
    with pytest.raises(CorruptSlot):
        slots.prove(root, 5, [0])
    meta.write_text(json.dumps(doc))
    check_all(slots.prove(root, 5, [0]), [0], lay.rows, roots[5])


# -- crashes and the file system -----------------------------------------------------------


def test_open_removes_what_a_crash_left(
    tmp_path: Path, built: tuple[bytes, bytes, SlotLayout, list[bytes]]
) -> None:
    data, root, lay, roots = built
    path = tmp_path / "slots"
    with SlotStore.open(path, durable=False) as s:
        s.build(root, 0, lay, reader(data))
        s.build(root, 1, lay, reader(data))
    d = path / root.hex()
    (d / "1.json").unlink()  # crash between the data rename and the metadata write
    (path / "tmp" / "abc.slot").write_bytes(b"half a build")
    (d / ".0.json.1234abcd.tmp").write_bytes(b"half a metadata write")
    with SlotStore.open(path, durable=False) as s:
        assert s.slots() == [(root, 0)]
        assert sorted(p.name for p in d.iterdir()) == ["0.json", "0.slot", "0.tree"]
        assert not any((path / "tmp").iterdir())
        check_all(s.prove(root, 0, [1, 2]), [1, 2], lay.rows, roots[0])


def test_one_process_per_directory(tmp_path: Path) -> None:
    with SlotStore.open(tmp_path / "slots", durable=False), pytest.raises(StoreLocked):
        SlotStore.open(tmp_path / "slots")
    SlotStore.open(tmp_path / "slots").close()


@pytest.mark.parametrize("which", [0, 1, 2])
def test_never_renames_over_what_it_did_not_create(
    slots: SlotStore, built: tuple[bytes, bytes, SlotLayout, list[bytes]], which: int
) -> None:
    data, root, lay, _ = built
    target = files(slots, root, 0)[which]
    target.parent.mkdir(parents=True)
    os.mkfifo(target)
    with pytest.raises(SlotError):
        slots.build(root, 0, lay, reader(data))
    assert target.is_fifo()
    assert not any((slots.path / "tmp").iterdir())


def test_symlinked_slot_file_is_not_followed(
    tmp_path: Path, slots: SlotStore, built: tuple[bytes, bytes, SlotLayout, list[bytes]]
) -> None:
    data, root, lay, _ = built
    slots.build(root, 0, lay, reader(data))
    slot_file = files(slots, root, 0)[0]
    outside = tmp_path / "outside"
    outside.write_bytes(slot_file.read_bytes())
    slot_file.unlink()
    slot_file.symlink_to(outside)
    with pytest.raises(CorruptSlot):
        slots.prove(root, 0, [0])


def test_remove(slots: SlotStore, built: tuple[bytes, bytes, SlotLayout, list[bytes]]) -> None:
    data, root, lay, _ = built
    slots.build(root, 0, lay, reader(data))
    slots.build(root, 1, lay, reader(data))
    slots.remove(root, 0)
    assert slots.slots() == [(root, 1)]
    with pytest.raises(SlotMissing):
        slots.prove(root, 0, [0])
    slots.remove(root, 1)
    slots.remove(root, 1)  # idempotent
    assert slots.slots() == []
    assert not (slots.path / root.hex()).exists()


def test_closed_store_refuses(tmp_path: Path) -> None:
    s = SlotStore.open(tmp_path / "slots", durable=False)
    s.close()
    s.close()
    with pytest.raises(SlotError):
        s.slots()


# -- Store.reader --------------------------------------------------------------------------


def test_store_reader(tmp_path: Path) -> None:
    data, manifest, _ = content(tmp_path, 2 * CS + 777, seed=8)
    with Store.open(tmp_path / "store", durable=False) as store:
        store.add_bytes(data, chunk_size=CS)
        read = store.reader(manifest.root)
        for off, n in [(0, 10), (CS - 5, 10), (0, len(data)), (len(data) - 3, 100), (5, 3 * CS)]:
            assert read(off, n) == data[off : off + n]
        assert read(len(data), 10) == b""
        assert read(len(data) + 5, 10) == b""
        assert read(100, 0) == b""
        with pytest.raises(ValueError):
            read(-1, 5)
        flip_byte(chunk_files(tmp_path / "store")[0])
        with pytest.raises(CorruptStoredChunk):
            store.reader(manifest.root)(0, len(data))


def test_store_reader_needs_complete_content(tmp_path: Path) -> None:
    _, manifest, chunk_roots = content(tmp_path, 2 * CS + 1, seed=2)
    with Store.open(tmp_path / "store", durable=False) as store:
        store.begin_partial(manifest, chunk_roots)
        with pytest.raises(IncompleteContent):
            store.reader(manifest.root)


def test_upper_levels_across_read_pieces(tmp_path: Path) -> None:
    """Levels built in pieces of 65536 nodes equal the left-complete tree over level 5."""
    count = 2 * 65536 + 3
    rows = count * GROUP - 5
    rng = random.Random(7)
    level5 = [rng.randbytes(32) for _ in range(count)]
    fd = os.open(tmp_path / "tree", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"".join(level5))
        top = SlotStore._write_upper_levels(fd, rows)
    finally:
        os.close(fd)
    levels = [level5]
    while len(levels[-1]) > 1:
        lv = levels[-1]
        nxt = [node_hash(lv[i], lv[i + 1]) for i in range(0, len(lv) - 1, 2)]
        levels.append(nxt + ([lv[-1]] if len(lv) % 2 else []))
    assert [len(lv) for lv in levels] == level_counts(rows)
    assert (tmp_path / "tree").read_bytes() == b"".join(b"".join(lv) for lv in levels)
    assert top == levels[-1][0] == merkle_root(level5)
