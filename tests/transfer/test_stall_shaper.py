"""The stall clock does not count time a piece waits on our own rate limit (the shaper's lane or
``limit_rate``'s bucket): that wait is ours, not the peer's.

Before, a bulk transfer beside a critical one under a low download cap had its peer declared
stalled (its share left it without a whole chunk for longer than ``stall_timeout``): requests
cancelled, window halved, backoff, a timeout in the ledger, and after enough of them
``PeerFailed``. Real TCP on 127.0.0.1 and real LevelDB stores, plus the sans-IO rule."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import trio

from node.ledger import LocalLedger, open_ledger_db
from node.store import Store
from node.transfer import PeerAddr, Scheduler, Shaper, fetch, serve_node
from node.transfer._bitmap import Bitmap
from node.transfer._scheduler import CancelChunks

from .helpers import make_identity, read_all

KiB, MiB = 1024, 1024 * 1024
CHUNK = 256 * KiB


class _Rejections:
    """A TransferObserver counting ``chunk_rejected`` reasons."""

    def __init__(self) -> None:
        self.reasons: Counter[str] = Counter()

    def chunk_rejected(self, peer: str, reason: str) -> None:
        self.reasons[reason] += 1

    def chunk_received(self, *a: Any) -> None: ...
    def requests_outstanding(self, *a: Any) -> None: ...
    def chunk_served(self, *a: Any) -> None: ...
    def connection_opened(self, *a: Any) -> None: ...
    def connection_closed(self, *a: Any) -> None: ...


async def test_bulk_beside_critical_under_a_low_cap_is_not_a_stall(tmp_path: Path) -> None:
    src = Store.open(tmp_path / "src", durable=False)
    blobs, roots = [], []
    for name, size in (("critical", 1 * MiB), ("bulk", 512 * KiB + 3)):
        path = tmp_path / name
        blobs.append(os.urandom(size))
        path.write_bytes(blobs[-1])
        roots.append(src.add_file(path, chunk_size=CHUNK).root)
    provider, me = make_identity(), make_identity()
    # 256 KiB/s shared 8:1: the bulk lane gets ~28 KiB/s while the critical one runs (~4 s),
    # so its first 256 KiB chunk cannot be whole before the critical transfer ends; a stall
    # timeout of 1 s fired several times there before.
    shaper = Shaper(download=256 * KiB)
    seen = {"critical": _Rejections(), "bulk": _Rejections()}
    ended: dict[str, float] = {}
    db = open_ledger_db(str(tmp_path / "ledger"))
    ledger = LocalLedger(db)
    try:
        with trio.fail_after(40):
            async with trio.open_nursery() as nursery:
                host, port = await nursery.start(
                    lambda task_status: serve_node(src, provider, task_status=task_status)
                )
                peer = PeerAddr(host, port, provider.address)
                dsts = {p: Store.open(tmp_path / f"dst-{p}", durable=False) for p in seen}
                t0 = trio.current_time()

                async def one(priority: str, root: bytes) -> None:
                    with shaper.lane("download", priority) as lane:
                        await fetch(
                            dsts[priority],
                            me,
                            root,
                            [peer],
                            lane=lane,
                            stall_timeout=1.0,
                            ledger=ledger,
                            observer=seen[priority],
                        )
                    ended[priority] = trio.current_time() - t0

                async with trio.open_nursery() as both:
                    both.start_soon(one, "critical", roots[0])
                    both.start_soon(one, "bulk", roots[1])
                nursery.cancel_scope.cancel()
        for priority, root, blob in zip(("critical", "bulk"), roots, blobs, strict=True):
            assert read_all(dsts[priority], root) == blob
        print(f"ended (s): {ended}; rejections: { {p: dict(o.reasons) for p, o in seen.items()} }")
        assert ended["critical"] < ended["bulk"]  # the bulk one did wait for its share
        assert ended["critical"] > 2.5  # ... for longer than the stall timeout
        assert seen["bulk"].reasons["timeout"] == 0
        assert seen["critical"].reasons["timeout"] == 0
        assert ledger.get(provider.address).timeouts == 0
    finally:
        db.close()


def _sched() -> Scheduler:
    n = 8
    s = Scheduler(
        chunk_count=n,
        chunk_size=CHUNK,
        total_size=n * CHUNK,
        need=Bitmap(n, fill=True),
        stall_timeout=5.0,
        request_batch=1,
        initial_window=1,  # one request at a time
    )
    s.add_peer("p", 0.0)
    return s


def test_a_held_peer_does_not_stall_and_its_clock_resumes_where_it_stopped() -> None:
    s = _sched()
    s.poll(0.0)  # requests out at t=0: the stall clock starts
    s.hold("p", 3.0)
    assert s.next_deadline(3.0) is None  # held: no stall deadline
    assert not [a for a in s.poll(100.0) if isinstance(a, CancelChunks)]
    assert s.peers["p"].timeouts == 0
    s.release("p", 100.0)  # 3 s ran before the hold: 2 s are left
    assert s.next_deadline(100.0) == 102.0
    s.poll(101.9)
    assert s.peers["p"].timeouts == 0
    s.poll(102.0)
    assert s.peers["p"].timeouts == 1


def test_request_age_leaves_out_the_held_time() -> None:
    s = _sched()
    s.poll(0.0)
    s.hold("p", 1.0)
    s.hold("p", 1.5)  # nested
    s.release("p", 2.0)
    assert s.held_seconds("p", 5.0) == 4.0  # still held from 1.0
    s.release("p", 9.0)
    assert s.request_age("p", 0, 10.0) == 2.0  # 10 s since the request, 8 of them held
    s.on_chunk("p", 0, True, 10.0)
    s.poll(10.0)  # the next request, asked after those holds
    new = min(s.peers["p"].outstanding)
    s.hold("p", 11.0)
    s.release("p", 12.0)
    assert s.request_age("p", new, 13.0) == 2.0
    assert s.request_age("p", 99, 13.0) is None
