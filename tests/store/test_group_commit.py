"""Group commit of received chunks: put_chunks, PartialWriter, read_chunk_into, crash bound."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

import pytest

from node.store import ChunkMismatch, CorruptStoredChunk, NotFound, Store

from .conftest import CS, chunk_files, chunk_of, content

REPO = Path(__file__).resolve().parents[2]


def test_put_chunks_reports_each_item_and_keeps_the_good_ones(store: Store, tmp_path: Path) -> None:
    data, m, roots = content(tmp_path, 4 * CS + 7)
    store.begin_partial(m, roots)
    bad = bytearray(chunk_of(data, 1))
    bad[5] ^= 1
    results = store.put_chunks(
        m.root,
        [
            (0, chunk_of(data, 0)),
            (1, bad),
            (2, memoryview(chunk_of(data, 2))),
            (0, chunk_of(data, 0)),
        ],
    )
    assert [(r.index, r.stored) for r in results] == [(0, True), (1, False), (2, True), (0, False)]
    assert isinstance(results[1].error, ChunkMismatch) and results[1].error.index == 1
    assert results[3].error is None  # a duplicate: not an error
    assert list(store.missing_chunks(m.root)) == [1, 3, 4]
    assert len(chunk_files(store.path)) == 2  # the bad chunk was never written
    store.put_chunks(m.root, [(i, chunk_of(data, i)) for i in (4, 3, 1)])
    assert store.is_complete(m.root) and store.verify(m.root).ok
    assert b"".join(store.iter_verified(m.root)) == data


def test_writer_commits_groups_not_chunks(store: Store, tmp_path: Path) -> None:
    data, m, roots = content(tmp_path, 6 * CS)
    store.begin_partial(m, roots)
    w = store.partial_writer(m.root, group_bytes=3 * CS, group_seconds=3600)
    assert w.put(0, chunk_of(data, 0)) and w.put(1, chunk_of(data, 1))
    assert w.put(1, chunk_of(data, 1)) is False  # queued already
    assert w.queued_chunks == 2
    assert list(store.missing_chunks(m.root)) == list(range(6))  # nothing committed yet
    assert w.put(2, chunk_of(data, 2))  # reaches group_bytes: one commit for three chunks
    assert w.queued_chunks == 0 and w.committed_chunks == 3
    assert list(store.missing_chunks(m.root)) == [3, 4, 5]
    with pytest.raises(ChunkMismatch):
        w.put(3, chunk_of(data, 4))
    assert w.put(5, chunk_of(data, 5))
    assert w.flush_if_due() == 0  # neither big nor old enough
    w.group_seconds = 0.0
    assert w.flush_if_due() == 1
    w.put(3, chunk_of(data, 3))
    w.put(4, chunk_of(data, 4))
    w.close()
    assert store.is_complete(m.root) and store.verify(m.root).ok


def test_writer_shared_by_threads(store: Store, tmp_path: Path) -> None:
    data, m, roots = content(tmp_path, 24 * CS + 1)
    store.begin_partial(m, roots)
    w = store.partial_writer(m.root, group_bytes=5 * CS)
    errors: list[BaseException] = []

    def work(indices: range) -> None:
        try:
            for i in indices:
                w.put(i, chunk_of(data, i))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(range(k, 25, 3),)) for k in range(3)]
    threads += [threading.Thread(target=work, args=(range(25),))]  # duplicates race
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.flush()
    assert not errors
    assert store.is_complete(m.root) and store.verify(m.root).ok
    assert store.used_bytes == len(data)


def test_read_chunk_into_reuses_a_buffer(store: Store, store_path: Path, tmp_path: Path) -> None:
    data, m, roots = content(tmp_path, 2 * CS + 99)
    store.begin_partial(m, roots)
    buf = bytearray(CS + 1)
    with pytest.raises(NotFound):
        store.read_chunk_into(m.root, 0, buf)
    store.put_chunks(m.root, [(i, chunk_of(data, i)) for i in range(3)])
    for i in range(3):
        n = store.read_chunk_into(m.root, i, buf, verify=True)
        assert bytes(buf[:n]) == chunk_of(data, i)
    with pytest.raises(ValueError):
        store.read_chunk_into(m.root, 0, bytearray(10))
    victim = store_path / "chunks" / roots[1].hex()[:2] / roots[1].hex()
    victim.write_bytes(chunk_of(data, 1)[:-1] + b"\x00")
    assert store.read_chunk_into(m.root, 1, buf) == CS  # unverified: same length passes
    with pytest.raises(CorruptStoredChunk):
        store.read_chunk_into(m.root, 1, buf, verify=True)
    victim.write_bytes(chunk_of(data, 1) + b"more")
    with pytest.raises(CorruptStoredChunk):
        store.read_chunk_into(m.root, 1, buf)  # grew: caught by the spare byte


_KILLED_WRITER = """
import os, signal, sys
from node.content import hash_file, Manifest
from node.store import Store
src, store_path, cs = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = open(src, "rb").read()
res = hash_file(src, chunk_size=cs, collect_roots=True)
m = Manifest(root=res.root, size=len(data), chunk_size=cs)
s = Store.open(store_path)
s.begin_partial(m, res.chunk_roots)
w = s.partial_writer(m.root, group_bytes=4 * cs, group_seconds=3600)
for i in range(7):  # one group of 4 commits; 3 chunks stay queued (files written)
    w.put(i, data[i * cs:(i + 1) * cs])
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_sigkill_loses_at_most_the_uncommitted_group(store_path: Path, tmp_path: Path) -> None:
    data, m, _ = content(tmp_path, 9 * CS)
    src = tmp_path / "src0"
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_KILLED_WRITER), str(src), str(store_path), str(CS)],
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == -9, proc.stderr.decode()
    with Store.open(store_path) as s:  # recovery sweeps the 3 uncommitted files
        assert list(s.missing_chunks(m.root)) == [4, 5, 6, 7, 8]
        assert len(chunk_files(store_path)) == 4
        assert s.verify(m.root).ok
        s.put_chunks(m.root, [(i, chunk_of(data, i)) for i in range(4, 9)])
        assert s.is_complete(m.root)
        assert b"".join(s.iter_verified(m.root)) == data


@pytest.mark.parametrize("direct", [True, False])
def test_direct_and_buffered_chunk_writes_read_back(
    store_path: Path, tmp_path: Path, direct: bool
) -> None:
    data, m, roots = content(tmp_path, 3 * CS + 5)  # the last chunk is not 4 KiB-aligned
    with Store.open(store_path) as s:
        s._files.direct = direct and s._files.direct
        s.begin_partial(m, roots)
        s.put_chunks(m.root, [(i, chunk_of(data, i)) for i in range(4)])
        assert s.verify(m.root).ok
    with Store.open(store_path) as s:
        assert b"".join(s.iter_verified(m.root)) == data


def test_chunk_writes_on_tmpfs(tmp_path: Path) -> None:
    """tmpfs: O_DIRECT is refused by older kernels (buffered fallback), accepted since 6.6."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        pytest.skip("no tmpfs at /dev/shm")
    data, m, roots = content(tmp_path, 2 * CS)
    path = Path(tempfile.mkdtemp(dir=shm)) / "store"
    try:
        with Store.open(path) as s:
            s.begin_partial(m, roots)
            s.put_chunks(m.root, [(0, chunk_of(data, 0)), (1, chunk_of(data, 1))])
            assert b"".join(s.iter_verified(m.root)) == data
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)
