"""Silent, stalling and slow providers beside an honest one (issue 9 leftovers), in process over
real TCP on 127.0.0.1 with real LevelDB stores and ledger, at the default timers.

- A silent peer (never answers Want) used to delay every get by the 20 s control timeout: now
  the transfer starts ``offer_grace`` after the first offer and the silent peer is dropped as a
  timeout when the transfer is done.
- A stalling peer (takes Requests, never answers them) used to go unrecorded when the honest
  peer finished before the 20 s stall timer: now it is "overtaken" in the endgame, judged
  stalled (no byte for 2 s), recorded as a timeout, and asked last next time.
- An honest peer that is slow to answer (first byte after 0.8 s) is overtaken too, but
  judged slow: a small mark in the ledger, not a timeout.
- A provider that answers Want late (after the grace) joins the running transfer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from node.ledger import LocalLedger, open_ledger_db
from node.store import Store
from node.transfer import PeerAddr, Provider, Scheduler, fetch, serve_node
from node.transfer._bitmap import Bitmap
from node.transport import PeerConnection
from node.wire import Want

from ..transfer.helpers import make_identity, read_all, store_with

CHUNK = 256 * 1024


class _Silent(Provider):
    async def _on_want(self, conn: PeerConnection, msg: Want) -> None:
        await trio.sleep_forever()


class _Stalling(Provider):
    async def _sender(self, conn: PeerConnection, queue: Any) -> None:
        await trio.sleep_forever()


class _Late(Provider):
    """Answers Want honestly, but only after ``delay`` seconds."""

    delay = 1.5

    async def _on_want(self, conn: PeerConnection, msg: Want) -> None:
        await trio.sleep(self.delay)
        await super()._on_want(conn, msg)


async def _two(
    tmp_path: Path, bad_cls: type[Provider], n_chunks: int = 24
) -> tuple[Store, Store, bytes, bytes, Any, Any]:
    bad_id, good_id = make_identity(), make_identity()
    good, root, data = store_with(tmp_path / "a", n_chunks * CHUNK + 5, chunk_size=CHUNK)
    bad = Store.open(tmp_path / "bad", durable=False)
    bad.add_file(tmp_path / "a" / "src.bin", chunk_size=CHUNK)
    return good, bad, root, data, good_id, bad_id


async def test_silent_peer_no_longer_delays_the_get(tmp_path: Path) -> None:
    good, bad, root, data, good_id, bad_id = await _two(tmp_path, _Silent)
    me = make_identity()
    db = open_ledger_db(str(tmp_path / "ledger"))
    ledger = LocalLedger(db)
    try:
        with trio.fail_after(15):  # the old behaviour needed > 20 s (the control timeout)
            async with trio.open_nursery() as nursery:
                bh, bp = await nursery.start(
                    lambda task_status: serve_node(
                        bad, bad_id, provider=_Silent(bad, bad_id.address), task_status=task_status
                    )
                )
                gh, gp = await nursery.start(
                    lambda task_status: serve_node(good, good_id, task_status=task_status)
                )
                dst = Store.open(tmp_path / "dst", durable=False)
                t0 = trio.current_time()
                result = await fetch(
                    dst,
                    me,
                    root,
                    [PeerAddr(bh, bp, bad_id.address), PeerAddr(gh, gp, good_id.address)],
                    ledger=ledger,
                )
                took = trio.current_time() - t0
                nursery.cancel_scope.cancel()
        assert read_all(dst, root) == data
        assert list(result.providers) == [good_id.address]
        assert "no answer to Want" in result.refused[bad_id.address]
        assert ledger.get(bad_id.address).timeouts >= 1
        assert ledger.score(bad_id.address) < ledger.score(good_id.address)
        print(f"silent beside honest: get took {took:.2f}s (control timeout 20 s)")
        assert took < 10
    finally:
        db.close()


async def test_stalling_peer_is_recorded_when_the_honest_one_finishes_first(
    tmp_path: Path,
) -> None:
    good, bad, root, data, good_id, bad_id = await _two(tmp_path, _Stalling)
    me = make_identity()
    db = open_ledger_db(str(tmp_path / "ledger"))
    ledger = LocalLedger(db)
    try:
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                bh, bp = await nursery.start(
                    lambda task_status: serve_node(
                        bad,
                        bad_id,
                        provider=_Stalling(bad, bad_id.address),
                        task_status=task_status,
                    )
                )
                gh, gp = await nursery.start(
                    lambda task_status: serve_node(good, good_id, task_status=task_status)
                )
                peers = [PeerAddr(bh, bp, bad_id.address), PeerAddr(gh, gp, good_id.address)]
                results = []
                for run in ("dst1", "dst2"):
                    dst = Store.open(tmp_path / run, durable=False)
                    t0 = trio.current_time()
                    results.append(await fetch(dst, me, root, peers, ledger=ledger))
                    assert trio.current_time() - t0 < 15  # long before the 20 s stall timer
                    assert read_all(dst, root) == data
                nursery.cancel_scope.cancel()
        first, second = results
        assert first.providers[bad_id.address].bytes == 0
        assert first.providers[good_id.address].bytes == len(data)
        assert ledger.get(bad_id.address).timeouts >= 1  # before: 0, nothing was recorded
        assert ledger.score(bad_id.address) < ledger.score(good_id.address)
        assert second.ranking[0] == good_id.address
    finally:
        db.close()


async def test_provider_answering_after_the_grace_joins_the_transfer(tmp_path: Path) -> None:
    good, late, root, data, good_id, late_id = await _two(tmp_path, _Late, n_chunks=40)
    me = make_identity()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            lh, lp = await nursery.start(
                lambda task_status: serve_node(
                    late, late_id, provider=_Late(late, late_id.address), task_status=task_status
                )
            )
            gh, gp = await nursery.start(
                lambda task_status: serve_node(good, good_id, task_status=task_status)
            )
            dst = Store.open(tmp_path / "dst", durable=False)
            result = await fetch(
                dst,
                me,
                root,
                [PeerAddr(lh, lp, late_id.address), PeerAddr(gh, gp, good_id.address)],
                offer_grace=0.2,
                limit_rate=2 * 1024 * 1024,  # ~5 s: the late offer (1.5 s) comes in mid-way
            )
            nursery.cancel_scope.cancel()
    assert read_all(dst, root) == data
    assert result.providers[late_id.address].bytes > 0  # it joined and served
    assert result.providers[good_id.address].bytes > 0
    assert late_id.address not in result.refused


def test_scheduler_counts_a_peer_passed_by_while_it_delivers_nothing() -> None:
    """Sans-IO: a peer sitting on requests while another delivers 8 chunks is overtaken once;
    one that delivers in between is not (its count starts again)."""
    n = 40
    sched = Scheduler(
        chunk_count=n, chunk_size=CHUNK, total_size=n * CHUNK, need=Bitmap(n, fill=True)
    )
    for p in ("slow", "busy", "fast"):
        sched.add_peer(p, 0.0)
    sched.peers["slow"].outstanding[30] = 0.0
    sched.peers["busy"].outstanding[31] = 0.0
    sched.peers["busy"].outstanding[32] = 0.0
    for i in range(12):
        sched.peers["fast"].outstanding[i] = 0.0
        sched.on_chunk("fast", i, True, 1.0 + i)
        if i == 5:
            sched.on_chunk("busy", 31, True, 6.5)  # it delivered: not sitting on its requests
    assert sched.peers["slow"].overtaken == 1  # once, after 8 chunks passed it
    assert sched.peers["busy"].overtaken == 0  # 6 before and 6 after its delivery: never 8
    assert sched.peers["fast"].overtaken == 0


class _FarAway(Provider):
    """Honest but slow to answer (far away, or busy): each chunk read takes ``delay``."""

    delay = 0.8

    async def _read(self, root: bytes, index: int, after: Sequence[int] = ()) -> bytes | Exception:
        await trio.sleep(self.delay)
        return await super()._read(root, index, after)


async def test_an_honest_slow_peer_overtaken_is_slow_not_a_staller(tmp_path: Path) -> None:
    """Beside a fast peer that finishes first, a peer whose first byte comes after 0.8 s is
    overtaken but answers: the ledger marks it slow (asked after the fast one next time), not
    timed out like the staller above (before: a timeout, as for a staller)."""
    good, far, root, data, good_id, far_id = await _two(tmp_path, _FarAway, n_chunks=40)
    me = make_identity()
    db = open_ledger_db(str(tmp_path / "ledger"))
    ledger = LocalLedger(db)
    try:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                fh, fp = await nursery.start(
                    lambda task_status: serve_node(
                        far, far_id, provider=_FarAway(far, far_id.address), task_status=task_status
                    )
                )
                gh, gp = await nursery.start(
                    lambda task_status: serve_node(good, good_id, task_status=task_status)
                )
                peers = [PeerAddr(fh, fp, far_id.address), PeerAddr(gh, gp, good_id.address)]
                dst = Store.open(tmp_path / "dst", durable=False)
                t0 = trio.current_time()
                await fetch(dst, me, root, peers, ledger=ledger)
                took = trio.current_time() - t0
                nursery.cancel_scope.cancel()
        assert read_all(dst, root) == data
        rec = ledger.get(far_id.address)
        print(f"far peer: {rec}; get took {took:.2f}s")
        assert rec.timeouts == 0, rec  # before: 1 (overtaken = timeout)
        assert rec.slow >= 1, rec
        assert ledger.score(far_id.address) < ledger.score(good_id.address)
        assert took < 5
    finally:
        db.close()


def _pair(n: int = 40) -> Scheduler:
    sched = Scheduler(
        chunk_count=n, chunk_size=CHUNK, total_size=n * CHUNK, need=Bitmap(n, fill=True)
    )
    for p in ("far", "fast"):
        sched.add_peer(p, 0.0)
    sched.peers["far"].outstanding[30] = 0.0
    for i in range(8):  # the fast peer: 0.05 s per chunk, passes "far" 8 times
        sched.peers["fast"].outstanding[i] = 0.5 + i * 0.05
        sched.on_chunk("fast", i, True, 0.55 + i * 0.05)
    return sched


def test_scheduler_verdict_slow_when_an_overtaken_peer_answers() -> None:
    sched = _pair()
    far = sched.peers["far"]
    assert far.overtaken == 1 and far.suspect_since == 0.0 and sched.suspects() == ["far"]
    assert sched.stalled_after("far") == 2.0  # max(2 s, 4 x 0.05 s)
    assert sched.verdicts_due() == 2.0
    assert sched.on_bytes("far", 1.5)  # its first piece: it answers
    sched.poll(10.0)
    assert (far.slow, far.timeouts, sched.suspects()) == (1, 0, [])


def test_scheduler_verdict_stalled_when_nothing_comes() -> None:
    sched = _pair()
    far = sched.peers["far"]
    sched.poll(1.99)
    assert far.timeouts == 0 and sched.suspects() == ["far"]
    sched.poll(2.0)  # no byte from it for 2 s since its request
    assert (far.slow, far.timeouts, sched.suspects()) == (0, 1, [])
    assert 30 not in far.outstanding  # its request went back to the pool


def test_scheduler_stalled_after_scales_with_the_fast_peers() -> None:
    sched = _pair()
    sched.peers["fast"].chunk_time = 1.5  # slow links: 1.5 s per chunk at the fast peer
    assert sched.stalled_after("far") == 6.0
    sched.poll(5.9)
    assert sched.peers["far"].timeouts == 0
    assert sched.resolve_open() == ["far"]  # given up on: the benefit of the doubt
    assert sched.peers["far"].slow == 1
