"""Delta fill: missing chunks of a partial content taken by reference from held chunks."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from node.content import Manifest, hash_file
from node.store import Store

from .conftest import CS, chunk_files, chunk_of, flip_byte, rand, write_file

REPO = Path(__file__).resolve().parents[2]


def versions(tmp_path: Path, n: int = 20) -> tuple[bytes, bytes, Manifest, list[bytes], set[int]]:
    """v1 (``n`` chunks) and v2: chunks 3 and 11 changed in place, 2.5 chunks appended.

    Returns v1, v2, v2's manifest and chunk roots, and the indices of v2 that v1 lacks.
    """
    v1 = rand(n * CS, 1)
    v2 = bytearray(v1)
    for i in (3, 11):
        v2[i * CS + 17] ^= 0xFF
    v2 += rand(2 * CS + CS // 2, 2)
    src = write_file(tmp_path / "v2", bytes(v2))
    res = hash_file(src, chunk_size=CS, collect_roots=True)
    assert res.chunk_roots is not None
    m = Manifest(root=res.root, size=len(v2), chunk_size=CS)
    new = {3, 11, n, n + 1, n + 2}
    return v1, bytes(v2), m, res.chunk_roots, new


def refcount(store: Store, cr: bytes) -> int:
    from node.store._index import ref_key, unpack_ref

    value = store._db.get(ref_key(cr))
    return 0 if value is None else unpack_ref(value)[0]


def test_adopts_exactly_the_shared_chunks_by_reference(store: Store, tmp_path: Path) -> None:
    v1, v2, m2, roots2, new = versions(tmp_path)
    m1 = store.add_bytes(v1, chunk_size=CS)
    used = store.used_bytes
    files = len(chunk_files(store.path))
    store.begin_partial(m2, roots2)
    assert store.holds_chunk(roots2[0]) and store.holds_chunk(roots2[0], CS)
    assert not store.holds_chunk(roots2[0], CS - 1) and not store.holds_chunk(roots2[3])

    report = store.adopt_held(m2.root)

    assert set(store.missing_chunks(m2.root)) == new
    assert report.chunks == m2.chunk_count - len(new)
    assert report.bytes == sum(m2.chunk_length(i) for i in range(m2.chunk_count) if i not in new)
    assert report.damaged == 0
    assert store.used_bytes == used and len(chunk_files(store.path)) == files  # no copy
    assert refcount(store, roots2[0]) == 2 and refcount(store, roots2[3]) == 0
    assert store.info(m2.root).present_chunks == report.chunks
    assert store.adopt_held(m2.root).chunks == 0  # idempotent

    store.put_chunks(m2.root, [(i, v2[i * CS : (i + 1) * CS]) for i in sorted(new)])
    assert store.is_complete(m2.root) and store.verify(m2.root).ok
    assert b"".join(store.iter_verified(m2.root)) == v2
    # v1 goes: v2 keeps every shared chunk (its own references), the changed ones of v1 go
    store.remove(m1.root)
    assert store.verify(m2.root).ok and b"".join(store.iter_verified(m2.root)) == v2
    assert store.used_bytes == len(v2)
    store.remove(m2.root)
    assert store.used_bytes == 0 and chunk_files(store.path) == []


def test_completes_content_when_every_chunk_is_held(store: Store, tmp_path: Path) -> None:
    data = rand(5 * CS + 3, 7)
    m = store.add_bytes(data, chunk_size=CS)
    prefix = data[: 4 * CS]  # another content made of v1's first four chunks
    res = hash_file(write_file(tmp_path / "p", prefix), chunk_size=CS, collect_roots=True)
    assert res.chunk_roots is not None
    store.begin_partial(Manifest(root=res.root, size=len(prefix), chunk_size=CS), res.chunk_roots)
    report = store.adopt_held(res.root)
    assert report.chunks == 4 and report.bytes == len(prefix)
    assert store.is_complete(res.root) and store.verify(res.root).ok
    assert b"".join(store.iter_verified(res.root)) == prefix
    assert store.adopt_held(m.root).chunks == 0  # complete content: nothing to do
    store.remove(m.root)
    assert b"".join(store.iter_verified(res.root)) == prefix


def test_damaged_or_quarantined_held_chunks_are_not_adopted(store: Store, tmp_path: Path) -> None:
    v1, v2, m2, roots2, new = versions(tmp_path)
    m1 = store.add_bytes(v1, chunk_size=CS)
    store.begin_partial(m2, roots2)
    flip_byte(store._files.path(roots2[5]))  # held, damaged on disk
    store.quarantine(m1.root, 7)  # held, known bad
    report = store.adopt_held(m2.root)
    assert report.damaged == 1
    assert set(store.missing_chunks(m2.root)) == new | {5, 7}
    # fetched instead: the right bytes replace nothing (the damaged file is v1's problem)
    assert store.put_chunk(m2.root, 7, chunk_of(v2, 7))


def test_trusting_mode_skips_the_read(store: Store, tmp_path: Path) -> None:
    v1, _v2, m2, roots2, new = versions(tmp_path)
    store.add_bytes(v1, chunk_size=CS)
    store.begin_partial(m2, roots2)
    reads = store._files.reads
    report = store.adopt_held(m2.root, verify=False)
    assert store._files.reads == reads  # an index update only
    assert set(store.missing_chunks(m2.root)) == new and report.damaged == 0


def test_removal_racing_adoption_keeps_the_invariant(store_path: Path, tmp_path: Path) -> None:
    """v1 is removed while v2 adopts its chunks: every adopted chunk keeps its file."""
    for attempt in range(4):
        path = store_path.with_name(f"race{attempt}")
        v1, v2, m2, roots2, new = versions(tmp_path, n=64)
        with Store.open(path, durable=False) as s:
            m1 = s.add_bytes(v1, chunk_size=CS)
            s.begin_partial(m2, roots2)
            t = threading.Thread(target=s.remove, args=(m1.root,))
            t.start()
            s.adopt_held(m2.root)
            t.join()
            missing = set(s.missing_chunks(m2.root))
            assert new <= missing
            assert s.verify(m2.root).ok  # every present chunk has its file and hashes right
            s.put_chunks(m2.root, [(i, v2[i * CS : (i + 1) * CS]) for i in sorted(missing)])
            assert s.is_complete(m2.root) and b"".join(s.iter_verified(m2.root)) == v2
            assert s.used_bytes == len(v2)
            s.remove(m2.root)
            assert s.used_bytes == 0 and chunk_files(path) == []


def test_adoption_from_the_cold_tier(tmp_path: Path) -> None:
    v1, v2, m2, roots2, new = versions(tmp_path)
    with Store.open(tmp_path / "store", cold_dir=tmp_path / "cold") as s:
        m1 = s.add_bytes(v1, chunk_size=CS)
        s.demote(m1.root)
        s.begin_partial(m2, roots2)
        assert s.adopt_held(m2.root).chunks == m2.chunk_count - len(new)
        s.put_chunks(m2.root, [(i, v2[i * CS : (i + 1) * CS]) for i in sorted(new)])
        assert b"".join(s.iter_verified(m2.root)) == v2


_KILLED_ADOPTER = """
import os, signal, sys
from node.content import hash_file, Manifest
from node.store import Store
v1, v2, store_path, cs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
s = Store.open(store_path)
s.add_file(v1, chunk_size=cs)
res = hash_file(v2, chunk_size=cs, collect_roots=True)
m = Manifest(root=res.root, size=os.path.getsize(v2), chunk_size=cs)
s.begin_partial(m, res.chunk_roots)
print(s.adopt_held(m.root).chunks, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_sigkill_after_adoption_leaves_a_consistent_store(tmp_path: Path) -> None:
    v1, v2, m2, _roots2, new = versions(tmp_path)
    write_file(tmp_path / "v1", v1)
    store_path = tmp_path / "store"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(_KILLED_ADOPTER),
            str(tmp_path / "v1"),
            str(tmp_path / "v2"),
            str(store_path),
            str(CS),
        ],
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == -9, proc.stderr.decode()
    assert int(proc.stdout) == m2.chunk_count - len(new)
    with Store.open(store_path) as s:  # unclean stop: recovery and the orphan sweep ran
        assert set(s.missing_chunks(m2.root)) == new
        assert s.verify(m2.root).ok
        s.put_chunks(m2.root, [(i, v2[i * CS : (i + 1) * CS]) for i in sorted(new)])
        assert b"".join(s.iter_verified(m2.root)) == v2
        for info in list(s.list_content()):
            s.remove(info.root)
        assert s.used_bytes == 0 and chunk_files(store_path) == []
