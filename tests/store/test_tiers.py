"""The store's tiers on real LevelDB and real files: memory cache, cold directory, crash safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from node.store import CorruptStoredChunk, NotFound, Store

from .conftest import CS, chunk_of, flip_byte, rand, write_file

MiB = 1 << 20


def add(store: Store, tmp_path: Path, n: int, seed: int) -> tuple[bytes, bytes]:
    data = rand(n, seed)
    m = store.add_file(write_file(tmp_path / f"src{seed}", data), chunk_size=CS)
    return m.root, data


def cold_files(cold: Path) -> list[Path]:
    return sorted(p for p in (cold / "chunks").glob("*/*") if p.is_file())


def hot_files(store_path: Path) -> list[Path]:
    return sorted(p for p in (store_path / "chunks").glob("*/*") if p.is_file())


# -- memory tier -----------------------------------------------------------------------------


def test_repeated_reads_hit_memory_not_disk(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", durable=False, memory_cache=4 * MiB) as s:
        root, data = add(s, tmp_path, 2 * MiB, 1)  # 8 chunks
        base = s.tier_stats()["disk_reads"]
        for _ in range(5):
            for i in range(8):
                assert s.read_chunk(root, i, verify=False) == chunk_of(data, i)
        buf = bytearray(CS + 1)
        assert s.read_chunk_into(root, 3, buf) == CS and bytes(buf[:CS]) == chunk_of(data, 3)
        st = s.tier_stats()
        # two disk reads per chunk (the doorkeeper's unverified first read, then the verified
        # read that admits it), then memory
        assert st["disk_reads"] - base == 16
        mem = st["memory"]
        assert mem["misses"] == 16 and mem["hits"] == 25 and mem["bytes"] == 2 * MiB


def test_identical_chunks_of_two_contents_share_one_entry(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", durable=False, memory_cache=4 * MiB) as s:
        data = rand(CS, 5)
        r1 = s.add_bytes(data + rand(CS, 6), chunk_size=CS).root
        r2 = s.add_bytes(data + rand(CS, 7), chunk_size=CS).root
        s.read_chunk(r1, 0)
        s.read_chunk(r2, 0)
        assert s.tier_stats()["memory"]["hits"] == 1


def test_damaged_file_is_never_cached(tmp_path: Path) -> None:
    """A chunk's first unverified read is served as read and not admitted (the reader
    verifies, as without the tier); the read that would admit it verifies and refuses it."""
    path = tmp_path / "s"
    with Store.open(path, durable=False, memory_cache=4 * MiB) as s:
        root, data = add(s, tmp_path, 2 * MiB, 2)
        for f in hot_files(path):
            if f.name == s.chunk_root_at(root, 1).hex():
                flip_byte(f)
        first = s.read_chunk(root, 1, verify=False)
        assert len(first) == CS and first != chunk_of(data, 1)
        assert s.chunk_root_at(root, 1) not in s._cache  # type: ignore[operator]
        with pytest.raises(CorruptStoredChunk):
            s.read_chunk(root, 1, verify=False)
        assert s.chunk_root_at(root, 1) not in s._cache  # type: ignore[operator]
        with pytest.raises(CorruptStoredChunk):  # a verified read never passes the doorkeeper
            s.read_chunk(root, 1)


def test_a_single_pass_neither_hashes_nor_fills_the_memory_tier(tmp_path: Path) -> None:
    """One stream reading a root once (unverified: the peer verifies) leaves the cache empty;
    the doorkeeper's memory of keys is bounded."""
    with Store.open(tmp_path / "s", durable=False, memory_cache=4 * MiB) as s:
        root, data = add(s, tmp_path, 2 * MiB, 4)
        for i in range(8):
            assert s.read_chunk(root, i, verify=False) == chunk_of(data, i)
        mem = s.tier_stats()["memory"]
        assert mem["bytes"] == 0 and mem["misses"] == 8 and mem["hits"] == 0
        cache = s._cache
        assert cache is not None
        cache.seen_limit = 4
        root2, _ = add(s, tmp_path, 2 * MiB, 5)
        for i in range(8):
            s.read_chunk(root2, i, verify=False)
        assert len(cache._seen) == 4


def test_cached_chunk_found_bad_on_disk_is_dropped(tmp_path: Path) -> None:
    """verify() reads the disk, not memory; a chunk it finds bad leaves the memory tier, and a
    quarantined chunk is never read out again."""
    path = tmp_path / "s"
    with Store.open(path, durable=False, memory_cache=4 * MiB) as s:
        root, data = add(s, tmp_path, 2 * MiB, 3)
        cr1, cr2 = s.chunk_root_at(root, 1), s.chunk_root_at(root, 2)
        assert s.read_chunk(root, 1) == chunk_of(data, 1)
        assert s.read_chunk(root, 2) == chunk_of(data, 2)
        assert cr1 in s._cache and cr2 in s._cache  # type: ignore[operator]
        flip_byte(s._files.path(cr1))
        report = s.verify(root)
        assert report.bad == [1]
        assert cr1 not in s._cache  # type: ignore[operator]
        s.read_chunk(root, 1, verify=False)  # the doorkeeper's pass: as read, not admitted
        with pytest.raises(CorruptStoredChunk):
            s.read_chunk(root, 1, verify=False)
        assert s.quarantine(root, 2)
        assert cr2 not in s._cache  # type: ignore[operator]
        with pytest.raises(NotFound):
            s.read_chunk(root, 2)
        assert s.repair(root) == [1, 2]


def test_removal_drops_cached_chunks(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", durable=False, memory_cache=4 * MiB) as s:
        root, _ = add(s, tmp_path, MiB, 4)
        for i in range(4):
            s.read_chunk(root, i)
        assert s.tier_stats()["memory"]["entries"] == 4
        s.remove(root)
        assert s.tier_stats()["memory"]["entries"] == 0


def test_a_scan_uses_but_does_not_fill_the_memory_tier(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", durable=False, memory_cache=4 * MiB) as s:
        root, data = add(s, tmp_path, 2 * MiB, 8)
        s.read_chunk(root, 0)
        base = s.tier_stats()["disk_reads"]
        assert b"".join(s.iter_verified(root)) == data
        st = s.tier_stats()
        assert st["disk_reads"] - base == 7  # chunk 0 came from memory
        assert st["memory"]["entries"] == 1


# -- cold tier -------------------------------------------------------------------------------


def test_a_demote_drops_the_promotions_reads_asked_for_before_it(tmp_path: Path) -> None:
    # Reads from the cold tier queue promotions; an operator's demote after them wins (the
    # background mover used to bring the chunks back a moment later, and a remove racing that
    # move left a cold file behind for a while: it failed once in CI that way)
    path, cold = tmp_path / "s", tmp_path / "cold"
    with Store.open(path, cold_dir=cold) as s:
        root, data = add(s, tmp_path, 2 * MiB, 11)
        assert s.demote(root) == 2 * MiB
        # the mover waits on the tier lock while the reads ask for promotions and the
        # demote is called (a move takes the lock): the promotions are still to do then
        with s._tier_lock:
            assert b"".join(s.iter_verified(root)) == data  # 8 promotions asked for
            demote = threading.Thread(target=s.demote, args=(root,))
            demote.start()
            time.sleep(0.2)
        demote.join()
        time.sleep(1.5)  # more than the mover's interval (1 s): it has run its queue
        assert s.tier_stats()["cold_bytes"] == 2 * MiB and hot_files(path) == []
        s.remove(root)
        assert cold_files(cold) == [] and hot_files(path) == []


def test_demote_read_promote_verify_gc_remove(tmp_path: Path) -> None:
    path, cold = tmp_path / "s", tmp_path / "cold"
    with Store.open(path, cold_dir=cold) as s:
        root, data = add(s, tmp_path, 2 * MiB, 10)
        assert s.demote(root) == 2 * MiB
        assert hot_files(path) == [] and len(cold_files(cold)) == 8
        st = s.tier_stats()
        assert (st["cold_bytes"], st["hot_bytes"], st["demoted"]) == (2 * MiB, 0, 8)
        assert s.chunk_tier(s.chunk_root_at(root, 0)) == "cold"
        assert b"".join(s.iter_verified(root)) == data
        assert s.verify(root).ok
        assert s.gc().files_removed == 0
        assert s.tier_stats()["cold_reads"] >= 8
        # Reads queued promotions; the background mover brings them back.
        deadline = time.monotonic() + 10
        while s.tier_stats()["cold_bytes"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert s.tier_stats()["cold_bytes"] == 0 and len(hot_files(path)) == 8
        assert cold_files(cold) == []
        s.demote(root)
        s.remove(root)
        assert cold_files(cold) == [] and hot_files(path) == []
        assert s.tier_stats()["cold_bytes"] == 0 and s.used_bytes == 0


def test_the_cold_dir_is_recorded_so_plain_opens_find_it(tmp_path: Path) -> None:
    path, cold = tmp_path / "s", tmp_path / "cold"
    with Store.open(path, cold_dir=cold, durable=False) as s:
        root, data = add(s, tmp_path, MiB, 11)
        s.demote(root)
    with Store.open(path, durable=False) as s:  # e.g. `bcai verify` without the config
        assert s.verify(root).ok
        assert b"".join(s.iter_verified(root)) == data
        s.remove(root)
    assert cold_files(cold) == []


def test_hot_limit_demotes_least_recently_used_content(tmp_path: Path) -> None:
    path, cold = tmp_path / "s", tmp_path / "cold"
    with Store.open(path, cold_dir=cold, hot_limit=3 * MiB, durable=False) as s:
        old, _ = add(s, tmp_path, 2 * MiB, 12)
        s._touch(old, force=True)
        time.sleep(0.01)
        new, _ = add(s, tmp_path, 2 * MiB, 13)
        s._touch(new, force=True)
        s.rebalance_tiers()
        st = s.tier_stats()
        assert st["hot_bytes"] <= 0.9 * 3 * MiB
        assert all(s.chunk_tier(cr) == "hot" for cr in s.chunk_roots(new))
        assert s.chunk_tier(s.chunk_root_at(old, 0)) == "cold"


def test_hot_limit_needs_a_cold_dir(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cold"):
        Store.open(tmp_path / "s", hot_limit=MiB)


# -- crash safety of moves: a real process killed between the steps -----------------------

_KILL_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from node.store import Store, _tier, _files
    path, cold, root_hex, point, direction = sys.argv[1:6]
    root = bytes.fromhex(root_hex)
    s = Store.open(path, cold_dir=cold)
    n = {"copied": 0}
    real_copy = _files.ChunkFiles.copy_to_tier
    real_set = _tier._set_tier

    def copy(self, *a, **k):
        ok = real_copy(self, *a, **k)
        n["copied"] += 1
        if point == "after_copy" and n["copied"] == 3:
            os.kill(os.getpid(), 9)
        return ok

    def set_tier(*a, **k):
        real_set(*a, **k)
        if point == "after_index" and n["copied"] == 3:
            os.kill(os.getpid(), 9)

    _files.ChunkFiles.copy_to_tier = copy
    _tier._set_tier = set_tier
    if direction == "promote":
        s.promote(root)
    else:
        s.demote(root)
    os.kill(os.getpid(), 9)  # the move finished: still no clean close
    """
)


@pytest.mark.parametrize("point", ["after_copy", "after_index", "done"])
@pytest.mark.parametrize("direction", ["demote", "promote"])
def test_a_move_killed_between_steps_leaves_one_good_copy(
    tmp_path: Path, point: str, direction: str
) -> None:
    path, cold = tmp_path / "s", tmp_path / "cold"
    with Store.open(path, cold_dir=cold) as s:
        root, data = add(s, tmp_path, 2 * MiB, 20)
        if direction == "promote":
            s.demote(root)
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_SCRIPT, str(path), str(cold), root.hex(), point, direction],
        capture_output=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    with Store.open(path, cold_dir=cold) as s:  # unclean: recovery sweeps both tiers
        assert not list((path / "tmp").iterdir()) and not list((cold / "tmp").iterdir())
        hot = {p.name for p in hot_files(path)}
        cold_ = {p.name for p in cold_files(cold)}
        assert not hot & cold_, "a chunk kept two copies"
        assert len(hot | cold_) == 8
        for cr in set(s.chunk_roots(root)):
            tier = s.chunk_tier(cr)
            assert cr.hex() in (cold_ if tier == "cold" else hot), (cr.hex(), tier)
        st = s.tier_stats()
        assert st["cold_bytes"] == len(cold_) * CS
        assert st["hot_bytes"] == len(hot) * CS
        moved = {"after_copy": 2, "after_index": 3, "done": 8}[point]
        assert len(cold_ if direction == "demote" else hot) == moved
        assert s.verify(root).ok
        assert b"".join(s.iter_verified(root)) == data  # (reads cold chunks: promotions)
