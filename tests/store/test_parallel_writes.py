"""A chunk is written while it is hashed (``PartialWriter._put_parallel``): into the output
file (linked or copied) and, without ``--link``, into a temp file that becomes its chunk file.

The writes land before the chunk is verified; these tests hold the guarantees that makes
necessary: an unverified copy never overwrites a verified one (puts of one index run one at a
time), a copy that fails verification or whose write fails is neither queued, linked nor named
as a chunk file (its temp file is removed), and a fetch that goes through this path reads back
byte for byte. Real LevelDB, real files, real threads; the chunk size is lowered past
``PARALLEL_WRITE_MIN`` so 256 KiB chunks take it.
"""

from __future__ import annotations

import errno
import threading
import time
from pathlib import Path

import pytest

from node.content import Manifest
from node.store import ChunkMismatch, PartialWriter, State, Store, StoreFull, _partial
from node.store._links import LinkedFile
from node.transfer._output import OutputFile

from .conftest import CS, chunk_files, chunk_of, content, tmp_files
from .test_links import linked


@pytest.fixture(autouse=True)
def every_chunk_in_parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_partial, "PARALLEL_WRITE_MIN", 0)


class Target:
    """The fetch's ``OutputFile`` as a link target, with a hook before each chunk write."""

    def __init__(self, out: OutputFile, before: object = None) -> None:
        self.out = out
        self.before = before
        self.writes = 0

    @property
    def linked(self) -> LinkedFile:
        return self.out.linked

    @property
    def chunk_size(self) -> int:
        return self.out.chunk_size

    def write_chunk(self, index: int, data: bytes | bytearray | memoryview) -> None:
        if callable(self.before):
            self.before(index, bytes(data))
        self.writes += 1
        self.out.write_chunk(index, data)

    def sync(self) -> None:
        self.out.sync()


def open_writer(
    store: Store, path: Path, m: Manifest, link: bool, before: object = None
) -> tuple[OutputFile, Target, PartialWriter]:
    """The fetch's output file at ``path``, wrapped in a :class:`Target`, and a writer that
    links into it or copies into it."""
    output = OutputFile(path, m, durable=False, store=store, link=link)
    target = Target(output, before)
    if link:
        return output, target, store.partial_writer(m.root, link=target)  # type: ignore[arg-type]
    return output, target, store.partial_writer(m.root, copy=target)


def test_a_linked_fetch_written_while_hashed_reads_back(
    store: Store, store_path: Path, tmp_path: Path
) -> None:
    data, m, out = linked(store, tmp_path, 5 * CS + 777)
    assert out.read_bytes() == data
    assert chunk_files(store_path) == []
    assert store.info(m.root).state is State.COMPLETE
    assert store.verify(m.root).ok


@pytest.mark.parametrize("link", [True, False], ids=["link", "copy"])
def test_a_corrupt_copy_never_overwrites_the_good_one_of_the_same_chunk(
    store: Store, store_path: Path, tmp_path: Path, link: bool
) -> None:
    n = 6
    data, m, roots = content(tmp_path, n * CS)
    store.begin_partial(m, iter(roots))
    good = {i: chunk_of(data, i) for i in range(n)}
    bad = {i: bytes([good[i][0] ^ 0xFF]) + good[i][1:] for i in range(n)}

    def slow_bad(index: int, chunk: bytes) -> None:
        if chunk == bad[index]:
            time.sleep(0.05)  # the corrupt copy's write lands last, unless it is kept out

    output, _, writer = open_writer(store, tmp_path / "out.bin", m, link, slow_bad)
    outcomes: dict[tuple[int, str], object] = {}

    def put(index: int, which: str, gate: threading.Barrier) -> None:
        gate.wait()
        if which == "good":
            time.sleep(0.005)  # the corrupt one starts first, then the good one arrives
        try:
            outcomes[index, which] = writer.put(index, (good if which == "good" else bad)[index])
        except ChunkMismatch as exc:
            outcomes[index, which] = exc

    try:
        threads = []
        for i in range(n):
            gate = threading.Barrier(2)
            threads += [threading.Thread(target=put, args=(i, w, gate)) for w in ("bad", "good")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        writer.flush()
        for i in range(n):
            assert outcomes[i, "good"] is True
            assert isinstance(outcomes[i, "bad"], ChunkMismatch) or outcomes[i, "bad"] is False
        output.finish(store)
    finally:
        output.close()
    assert (tmp_path / "out.bin").read_bytes() == data
    assert store.verify(m.root).ok
    assert len(chunk_files(store_path)) == (0 if link else n) and tmp_files(store_path) == []
    assert not store._inflight


@pytest.mark.parametrize("link", [True, False], ids=["link", "copy"])
def test_a_copy_that_fails_verification_is_not_kept_and_a_good_one_replaces_it(
    store: Store, store_path: Path, tmp_path: Path, link: bool
) -> None:
    data, m, roots = content(tmp_path, 3 * CS)
    store.begin_partial(m, iter(roots))
    output, target, writer = open_writer(store, tmp_path / "out.bin", m, link)
    try:
        corrupt = b"\x00" * CS
        with pytest.raises(ChunkMismatch):
            writer.put(1, corrupt)
        assert target.writes == 1  # written while hashed, into the part file
        # not named after its chunk root, and its temp file is gone
        assert chunk_files(store_path) == [] and tmp_files(store_path) == []
        writer.flush()
        assert list(store.missing_chunks(m.root)) == [0, 1, 2]
        for i in range(3):
            assert writer.put(i, chunk_of(data, i)) is True
        # queued now: a copy is checked but not written; a corrupt one is still caught (its
        # sender is blamed), a good one is a duplicate
        with pytest.raises(ChunkMismatch):
            writer.put(1, corrupt)
        assert writer.put(1, chunk_of(data, 1)) is False
        assert target.writes == 4
        writer.flush()
        with pytest.raises(ChunkMismatch):  # committed (present) now: still checked
            writer.put(1, corrupt)
        assert writer.put(1, chunk_of(data, 1)) is False and target.writes == 4
        output.finish(store)
    finally:
        output.close()
    assert (tmp_path / "out.bin").read_bytes() == data
    assert store.verify(m.root).ok
    assert len(chunk_files(store_path)) == (0 if link else 3) and tmp_files(store_path) == []


@pytest.mark.parametrize(
    ("link", "failing"),
    [(True, "output"), (False, "output"), (False, "chunk file")],
    ids=["link-output", "copy-output", "copy-chunk-file"],
)
def test_a_write_that_fails_queues_nothing_and_the_chunk_can_be_put_again(
    store: Store,
    store_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    link: bool,
    failing: str,
) -> None:
    data, m, roots = content(tmp_path, 2 * CS)
    store.begin_partial(m, iter(roots))
    full = [True]

    def output_full(index: int, chunk: bytes) -> None:
        if full[0] and failing == "output":
            raise OSError(errno.ENOSPC, "No space left on device")

    real = store._files.write_temp

    def chunk_file_full(*args: object, **kwargs: object) -> Path:
        if full[0]:
            raise StoreFull("chunk: no space left on device")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    if failing == "chunk file":
        monkeypatch.setattr(store._files, "write_temp", chunk_file_full)
    output, _, writer = open_writer(store, tmp_path / "out.bin", m, link, output_full)
    try:
        with pytest.raises(OSError) as info:  # (StoreFull is one)
            writer.put(0, chunk_of(data, 0))
        assert info.value.errno == errno.ENOSPC or isinstance(info.value, StoreFull)
        assert writer.queued_chunks == 0 and not store._inflight
        assert chunk_files(store_path) == [] and tmp_files(store_path) == []
        full[0] = False
        assert writer.put(0, chunk_of(data, 0)) is True
        assert writer.put(1, chunk_of(data, 1)) is True
        writer.flush()
        output.finish(store)
    finally:
        output.close()
    assert (tmp_path / "out.bin").read_bytes() == data
    assert len(chunk_files(store_path)) == (0 if link else 2) and store.verify(m.root).ok


def test_a_fetch_without_link_written_while_hashed_reads_back(
    store: Store, store_path: Path, tmp_path: Path
) -> None:
    data, m, roots = content(tmp_path, 5 * CS + 777)
    store.begin_partial(m, iter(roots))
    output = OutputFile(tmp_path / "out.bin", m, durable=False, store=store, link=False)
    writer = store.partial_writer(m.root, copy=output)
    try:
        for i in reversed(range(m.chunk_count)):
            assert writer.put(i, chunk_of(data, i)) is True
        writer.flush()
        output.finish(store)
    finally:
        output.close()
    assert (tmp_path / "out.bin").read_bytes() == data
    assert len(chunk_files(store_path)) == m.chunk_count and tmp_files(store_path) == []
    assert store.info(m.root).state is State.COMPLETE and store.verify(m.root).ok
    assert not store._inflight  # every in-flight mark taken for a write was dropped
