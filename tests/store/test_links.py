"""Linked chunks (``get -o FILE --link``): the store refers to FILE instead of a copy of its own.

Real LevelDB and real files: the output file is the transfer engine's ``OutputFile`` (the
store's link target), chunks go through ``PartialWriter`` as a fetch puts them.
"""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import pytest

from node._fs import OutputReplaced
from node.content import Manifest
from node.store import CorruptStoredChunk, NotLinkable, State, Store
from node.transfer._output import OutputFile

from .conftest import CS, chunk_files, chunk_of, content, flip_byte


def run_linked(store: Store, out: Path, data: bytes, root: bytes, stop_after: int | None) -> bool:
    m = store.get_manifest(root)
    output = OutputFile(out, m, durable=True, store=store, link=True)
    writer = store.partial_writer(root, link=output)
    order = list(range(m.chunk_count))
    random.Random(7).shuffle(order)
    try:
        for k, i in enumerate(order):
            if stop_after is not None and k == stop_after:
                writer.flush()
                return False
            assert writer.put(i, chunk_of(data, i)) is True
        writer.flush()
        output.finish(store)
        return True
    finally:
        output.close()


def linked(store: Store, tmp_path: Path, n_bytes: int) -> tuple[bytes, Manifest, Path]:
    """Fresh content fetched whole, linked into ``tmp_path/out.bin``: (data, manifest, out)."""
    data, m, roots = content(tmp_path, n_bytes)
    store.begin_partial(m, iter(roots))
    out = tmp_path / "out.bin"
    assert run_linked(store, out, data, m.root, None)
    return data, m, out


def test_linked_fetch_writes_no_chunk_file_and_reads_back(
    store: Store, store_path: Path, tmp_path: Path
) -> None:
    data, m, out = linked(store, tmp_path, 5 * CS + 777)
    assert out.read_bytes() == data
    assert not out.with_name("out.bin.part").exists()
    assert chunk_files(store_path) == []  # every byte was written once: into out.bin
    assert store.info(m.root).state is State.COMPLETE
    assert store.verify(m.root).ok
    assert b"".join(store.iter_verified(m.root)) == data
    buf = bytearray(CS + 1)
    assert store.read_chunk_into(m.root, 2, buf, verify=True) == CS
    assert bytes(buf[:CS]) == chunk_of(data, 2)
    # a second copy elsewhere comes from the links
    assert store.export(m.root, tmp_path / "copy.bin") == len(data)
    assert (tmp_path / "copy.bin").read_bytes() == data


def test_links_survive_reopen(store_path: Path, tmp_path: Path) -> None:
    data, m, roots = content(tmp_path, 3 * CS + 5)
    out = tmp_path / "out.bin"
    with Store.open(store_path) as store:
        store.begin_partial(m, iter(roots))
        assert run_linked(store, out, data, m.root, None)
    with Store.open(store_path) as store:
        assert b"".join(store.iter_verified(m.root)) == data
        assert store.gc().files_removed == 0
        assert b"".join(store.iter_verified(m.root)) == data


def test_changed_or_replaced_file_is_damage_not_data(
    store: Store, store_path: Path, tmp_path: Path
) -> None:
    data, m, out = linked(store, tmp_path, 4 * CS)
    flip_byte(out, 1 * CS + 10)  # changed in place: chunk 1 fails verification
    report = store.verify(m.root)
    assert not report.ok and report.bad == [1]
    with pytest.raises(CorruptStoredChunk):
        store.read_chunk(m.root, 1)
    # replaced (a new inode at the same path): every linked chunk is missing
    tmp = tmp_path / "other"
    tmp.write_bytes(data)
    os.replace(tmp, out)
    with pytest.raises(CorruptStoredChunk, match="missing"):
        store.read_chunk(m.root, 0)
    # repair marks them missing; a fetch fills them again (here: a plain put)
    assert sorted(store.repair(m.root)) == [0, 1, 2, 3]
    for i in range(4):
        assert store.put_chunk(m.root, i, chunk_of(data, i))
    assert store.verify(m.root).ok and len(chunk_files(store_path)) == 4


def test_remove_and_gc_forget_links_never_the_file(
    store: Store, store_path: Path, tmp_path: Path
) -> None:
    data, m, out = linked(store, tmp_path, 2 * CS + 1)
    assert store.stats().linked_files == [str(out)]
    store.remove(m.root)
    store.gc()
    assert out.read_bytes() == data  # the user's file is untouched
    assert store.stats().linked_files == []
    assert store._links.iter_linked() == []
    assert store._links.file_at(out) is None  # its record went with its last link


def test_failed_run_keeps_the_part_and_resume_finishes_into_it(
    store: Store, store_path: Path, tmp_path: Path
) -> None:
    data, m, roots = content(tmp_path, 6 * CS + 99)
    store.begin_partial(m, iter(roots))
    out = tmp_path / "out.bin"
    assert not run_linked(store, out, data, m.root, stop_after=3)
    part = tmp_path / "out.bin.part"
    assert part.exists() and not out.exists()  # the links point into it: kept
    assert len(list(store.missing_chunks(m.root))) == 4
    # the resumed run writes only what is missing, into the same file, then renames it
    output = OutputFile(out, m, durable=True, store=store, link=True)
    writer = store.partial_writer(m.root, link=output)
    try:
        for i in list(store.missing_chunks(m.root)):
            assert writer.put(i, chunk_of(data, i))
        writer.flush()
        output.finish(store)
    finally:
        output.close()
    assert out.read_bytes() == data and not part.exists()
    assert chunk_files(store_path) == []
    assert b"".join(store.iter_verified(m.root)) == data  # the earlier run's links followed


def test_export_onto_the_linked_file_keeps_it(store: Store, tmp_path: Path) -> None:
    data, m, out = linked(store, tmp_path, 3 * CS)
    ino = out.stat().st_ino
    assert store.export(m.root, out) == len(data)  # already holds it: nothing rewritten
    assert out.stat().st_ino == ino
    other, m2, roots2 = content(tmp_path, 2 * CS, seed=5)
    store.begin_partial(m2, iter(roots2))
    for i in range(2):
        store.put_chunk(m2.root, i, chunk_of(other, i))
    with pytest.raises(OutputReplaced, match="links to"):
        store.export(m2.root, out)  # would replace the inode the links point at
    assert out.read_bytes() == data and store.verify(m.root).ok


def test_chunk_already_held_is_not_linked(store: Store, store_path: Path, tmp_path: Path) -> None:
    """A chunk the store has a file for keeps it (dedup across contents); only the output is
    written for it."""
    data, m, roots = content(tmp_path, 2 * CS)
    src = tmp_path / "held.bin"
    src.write_bytes(chunk_of(data, 0))
    store.add_file(src, chunk_size=CS)  # chunk 0's bytes, as a content of their own
    assert len(chunk_files(store_path)) == 1
    store.begin_partial(m, iter(roots))
    out = tmp_path / "out.bin"
    assert run_linked(store, out, data, m.root, None)
    assert out.read_bytes() == data
    assert len(chunk_files(store_path)) == 1
    assert store._links.link_of(roots[0]) is None and store._links.link_of(roots[1]) is not None


def test_add_link_keeps_no_copy_and_serves_from_the_source(
    store: Store, store_path: Path, tmp_path: Path
) -> None:
    data, m, _roots = content(tmp_path, 4 * CS + 3, seed=9)
    src = tmp_path / "src9"  # written by content()
    got = store.add_file(src, chunk_size=CS, link=True)
    assert got.root == m.root and chunk_files(store_path) == []
    assert b"".join(store.iter_verified(m.root)) == data
    assert store.read_chunk(m.root, 4, verify=False) == chunk_of(data, 4)
    flip_byte(src, 2 * CS + 1)
    assert store.verify(m.root).bad == [2]
    with pytest.raises(NotLinkable):
        store.add_file(io.BytesIO(data), chunk_size=CS, link=True)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(NotLinkable):
        store.add_file(tmp_path / "fifo", chunk_size=CS, link=True)


def test_add_link_of_held_chunks_keeps_their_files(
    store: Store, store_path: Path, tmp_path: Path
) -> None:
    data, _m, _roots = content(tmp_path, 3 * CS, seed=11)
    src = tmp_path / "src11"
    store.add_file(src, chunk_size=CS)  # copied: three chunk files
    again = tmp_path / "again"
    again.write_bytes(data + b"tail")
    store.add_file(again, chunk_size=CS, link=True)  # the first three chunks are held already
    assert len(chunk_files(store_path)) == 3
    assert len(store._links.iter_linked()) == 1  # only the new tail chunk is linked


def test_chunk_held_in_the_cold_tier_is_not_linked(tmp_path: Path) -> None:
    """A chunk whose file sits in the cold tier is held too: a linked fetch writes it to the
    output only and records no link for it (``put`` checks both tiers; the group commit's
    second check, for a file that appeared in between, now does too: ``put_link``)."""
    data, m, roots = content(tmp_path, 2 * CS, seed=13)
    with Store.open(tmp_path / "s", cold_dir=tmp_path / "cold") as store:
        src = tmp_path / "held.bin"
        src.write_bytes(chunk_of(data, 0))
        held = store.add_file(src, chunk_size=CS)  # chunk 0's bytes, as a content of their own
        assert store.demote(held.root) == CS  # its one chunk file is in the cold tier now
        store.begin_partial(m, iter(roots))
        out = tmp_path / "out.bin"
        assert run_linked(store, out, data, m.root, None)
        assert out.read_bytes() == data
        assert store._links.link_of(roots[0]) is None
        assert store._links.link_of(roots[1]) is not None
        assert b"".join(store.iter_verified(m.root)) == data


def test_linked_files_are_found_by_inode_without_reading_every_record(
    store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each ``get --link`` registers its output and checks the path first: with many linked
    files kept, neither reads every record again (it did, parsing each: a cost that grew
    with every linked get the store had kept). Found right after renames, a reopen and gc."""
    from node.store import _links

    outs = []
    with Store.open(store_path) as store:
        for k in range(12):
            sub = tmp_path / f"c{k}"
            sub.mkdir()
            data, m, roots = content(sub, CS + k, seed=k + 1)  # no chunk shared
            store.begin_partial(m, iter(roots))
            assert run_linked(store, sub / "out.bin", data, m.root, None)
            outs.append((sub / "out.bin", m, data))
        parsed = [0]
        real = _links.LinkedFile.from_json

        def counting(file_id: int, raw: bytes) -> _links.LinkedFile:
            parsed[0] += 1
            return real(file_id, raw)

        monkeypatch.setattr(_links.LinkedFile, "from_json", counting)
        ids = set()
        for out, _, _ in outs:
            found = store.linked_file_at(out)
            assert found is not None and found.path == out
            ids.add(found.file_id)
        data, m, out = linked(store, tmp_path, 2 * CS)  # one more get: register, finish
        assert parsed[0] == 0 and len(ids) == 12
        assert store.linked_file_at(out).file_id not in ids  # type: ignore[union-attr]
        monkeypatch.undo()
    with Store.open(store_path) as store:  # the map is read again from the index
        for out, m, data in outs:
            assert store.linked_file_at(out) is not None
            assert b"".join(store.iter_verified(m.root)) == data
        gone, m0, _ = outs[0]
        store.remove(m0.root)
        store.gc()
        assert store.linked_file_at(gone) is None  # its record went with its last link
        assert store.linked_file_at(outs[1][0]) is not None
