"""The provider's node-wide chunk-buffer budget (issue 11): bounded, FIFO-fair, never leaked.

Unit tests of ``ChunkBudget`` under trio, then real TCP on 127.0.0.1: many peers fetching at
once through a small budget (bytes held never above it, shares fair), a peer that stops
reading (dropped by the node's sweeper, its buffers handed back) and the queue caps.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import trio

from node.store import Store
from node.transfer import Provider, default_receipt_domain
from node.transfer._budget import DEFAULT_UPLOAD_BUFFERS, ChunkBudget
from node.transport import (
    AdmissionPolicy,
    LocalPeer,
    PeerConnection,
    TransportError,
    open_peer_connection,
    serve_peers,
)
from node.wire import ChunkData, ErrorCode, ErrorMsg, Request

from .helpers import make_identity, store_with

CHUNK = 256 * 1024

# -- ChunkBudget ------------------------------------------------------------------------------


async def test_budget_grants_in_arrival_order_and_never_overspends() -> None:
    budget = ChunkBudget(100)
    granted: dict[str, int] = {}
    holds: dict[str, trio.Event] = {}
    first = await budget.acquire(60)
    assert (first, budget.used) == (60, 60)

    async def take(name: str, n: int) -> None:
        holds[name] = trio.Event()
        got = await budget.acquire(n)
        granted[name] = got
        assert budget.used <= budget.limit
        await holds[name].wait()
        budget.release(got)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(take, "b", 60)
        await trio.testing.wait_all_tasks_blocked()
        # 30 would fit beside the 60 held, but b (60) asked first: c must not overtake it,
        # or a stream of small chunks would starve a large one for ever
        nursery.start_soon(take, "c", 30)
        await trio.testing.wait_all_tasks_blocked()
        assert granted == {} and budget.waiting == 2
        budget.release(first)  # b and c both fit now
        await trio.testing.wait_all_tasks_blocked()
        assert granted == {"b": 60, "c": 30} and budget.used == 90
        nursery.start_soon(take, "d", 70)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(take, "e", 5)  # fits (95), but behind d
        await trio.testing.wait_all_tasks_blocked()
        assert "e" not in granted and budget.waiting == 2
        holds["b"].set()  # 30 held: d (70) fits exactly, e (5) must wait for room
        await trio.testing.wait_all_tasks_blocked()
        assert granted.get("d") == 70 and "e" not in granted and budget.used == 100
        holds["c"].set()
        await trio.testing.wait_all_tasks_blocked()
        assert granted.get("e") == 5 and budget.used == 75
        for e in holds.values():
            e.set()
    assert budget.used == 0 and budget.peak <= 100 and budget.waits == 4


async def test_cancelled_head_waiter_lets_the_next_one_in() -> None:
    budget = ChunkBudget(100)
    held = await budget.acquire(50)
    got: list[int] = []
    head = trio.CancelScope()

    async def big() -> None:
        with head:
            await budget.acquire(80)
            raise AssertionError("granted past the limit")

    async def small() -> None:
        got.append(await budget.acquire(40))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(big)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(small)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []  # behind the head
        head.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert got == [40] and budget.used == 90 and budget.waiting == 0
    budget.release(held)
    budget.release(40)
    assert budget.used == 0


async def test_oversize_chunk_gets_the_whole_budget_alone() -> None:
    budget = ChunkBudget(100)
    assert await budget.acquire(500) == 100
    with pytest.raises(trio.TooSlowError), trio.fail_after(0.05):
        await budget.acquire(1)
    budget.release(100)
    with pytest.raises(RuntimeError):
        budget.release(1)
    with pytest.raises(ValueError):
        ChunkBudget(0)
    assert DEFAULT_UPLOAD_BUFFERS == 64 << 20


# -- over real TCP ----------------------------------------------------------------------------


async def _serve(
    nursery: trio.Nursery, store: Store, prov: Provider, **kw: Any
) -> tuple[int, AdmissionPolicy]:
    me = LocalPeer.from_identity(make_identity(), prov.capabilities)
    prov.address = me.address
    policy = AdmissionPolicy()
    listeners = await nursery.start(
        lambda task_status: serve_peers(
            prov.handle, 0, me, host="127.0.0.1", policy=policy, task_status=task_status, **kw
        )
    )
    return listeners[0].socket.getsockname()[1], policy


class _Fetcher:
    """A peer keeping ``k`` one-index Requests in flight; counts whole chunks received."""

    def __init__(self, conn: PeerConnection, root: bytes, nchunks: int, k: int) -> None:
        self.conn, self.root, self.nchunks, self.k = conn, root, nchunks, k
        self.chunks = 0
        self.bytes = 0
        self.busy = 0
        self.ids = itertools.count(1)

    async def request(self, index: int) -> None:
        await self.conn.send(Request(self.root, next(self.ids), (index % self.nchunks,)))

    async def run(self, stop: trio.Event) -> None:
        for i in range(self.k):
            await self.request(i)
        i = self.k
        while True:
            msg = await self.conn.receive()
            if isinstance(msg, ChunkData) and msg.offset + len(msg.data) == msg.total_len:
                self.chunks += 1
                self.bytes += msg.total_len
                if not stop.is_set():
                    await self.request(i)
                    i += 1
            elif isinstance(msg, ErrorMsg):
                assert msg.code == ErrorCode.BUSY, msg
                self.busy += 1


async def test_many_peers_share_a_small_budget_fairly_and_memory_stays_under_it(
    tmp_path: Path,
) -> None:
    src, root, _ = store_with(tmp_path / "src", 16 * CHUNK, chunk_size=CHUNK)
    limit = 4 * CHUNK  # 1 MiB for 16 peers: most of them wait for a buffer at any moment
    prov = Provider(src, "", receipt_domain=default_receipt_domain(), budget=limit)
    peers: list[_Fetcher] = []
    stop = trio.Event()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port, _ = await _serve(nursery, src, prov)
            for _ in range(16):
                conn = await open_peer_connection("127.0.0.1", port, make_identity())
                peers.append(_Fetcher(conn, root, 16, k=4))
            for p in peers:
                nursery.start_soon(p.run, stop)
            held_samples = []
            for _ in range(60):  # ~1.2 s of sampling what the provider holds
                await trio.sleep(0.02)
                held_samples.append(prov.budget.used)
            stop.set()
            await trio.sleep(0.3)
            nursery.cancel_scope.cancel()
    src.close()
    assert prov.budget.peak <= limit  # what the budget is for
    assert max(held_samples) <= limit
    assert prov.budget.waits > 0  # the budget did bind: peers queued for buffers
    counts = [p.chunks for p in peers]
    assert min(counts) > 0, counts
    assert max(counts) / min(counts) <= 2.0, counts  # FIFO grants: no peer starves
    assert all(p.busy == 0 for p in peers)


async def test_a_peer_that_stops_reading_is_dropped_and_its_buffers_come_back(
    tmp_path: Path,
) -> None:
    src, root, _ = store_with(tmp_path / "src", 64 * CHUNK, chunk_size=CHUNK)
    limit = 4 * CHUNK
    prov = Provider(src, "", receipt_domain=default_receipt_domain(), budget=limit)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port, policy = await _serve(nursery, src, prov, send_timeout=1.0)
            stuck = await open_peer_connection("127.0.0.1", port, make_identity())
            # 48 chunks (12 MiB) asked for and never read: the socket buffers fill, a send
            # blocks, and the stuck connection holds buffers until the sweeper drops it
            for i in range(0, 48, 8):
                await stuck.send(Request(root, i + 1, tuple(range(i, i + 8))))
            with trio.fail_after(5):
                while prov.budget.used == 0 or prov.stats.chunks_served < 4:
                    await trio.sleep(0.02)
            honest = _Fetcher(
                await open_peer_connection("127.0.0.1", port, make_identity()), root, 64, k=2
            )
            stop = trio.Event()
            nursery.start_soon(honest.run, stop)
            with trio.fail_after(8):
                while policy.idle_closed < 1:
                    await trio.sleep(0.05)
            served_at_drop = honest.chunks
            await trio.sleep(0.5)
            assert honest.chunks > served_at_drop  # the honest peer keeps being served
            stop.set()
            await trio.sleep(0.3)
            assert prov.budget.used <= 2 * CHUNK  # only the honest peer's (at most 2)
            nursery.cancel_scope.cancel()
    with pytest.raises((TransportError, trio.BrokenResourceError, trio.ClosedResourceError)):
        for _ in range(10_000):  # drain what was buffered, then the Goodbye / EOF
            await stuck.receive()
    src.close()


async def test_one_peer_cannot_take_the_whole_queue(tmp_path: Path) -> None:
    src, root, _ = store_with(tmp_path / "src", 32 * CHUNK, chunk_size=CHUNK)
    prov = Provider(
        src, "", receipt_domain=default_receipt_domain(), max_queued=64, max_queued_per_peer=16
    )
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port, _ = await _serve(nursery, src, prov)
            greedy = await open_peer_connection("127.0.0.1", port, make_identity())
            other = await open_peer_connection("127.0.0.1", port, make_identity())
            # one Noise message: the node reads both before its sender takes any index
            await greedy.send(Request(root, 1, tuple(range(16))), Request(root, 2, (16,)))
            got_busy = False
            while not got_busy:
                msg = await greedy.receive()
                if isinstance(msg, ErrorMsg):
                    assert msg.code == ErrorCode.BUSY and msg.request_id == 2
                    assert msg.retry_after_ms > 0
                    got_busy = True
            await other.send(Request(root, 1, (3,)))  # another peer still gets its chunk
            while True:
                msg = await other.receive()
                if isinstance(msg, ChunkData) and msg.offset + len(msg.data) == msg.total_len:
                    assert msg.index == 3
                    break
                assert not isinstance(msg, ErrorMsg), msg
            nursery.cancel_scope.cancel()
    src.close()
