"""The early Request (node.transfer._fetch, module docstring item 2): the first chunks are
asked as soon as the first chunk-root page is in, before the list is stored and the plan made,
and the plan takes them over as that peer's requests. Real TCP on 127.0.0.1, real stores.

What would break if the hand-over were wrong: the plan asking an index again while the early
Request still holds it (the provider closes the connection: requesting an outstanding index
is a protocol violation), a chunk served or credited twice, a chunk that came before the plan
lost, an early chunk from a peer that is not used stored or paid for, a refusal of the early
Request counted against the peer."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from node.ledger import LocalLedger, open_ledger_db
from node.store import Store
from node.transfer import PeerAddr, Provider, fetch, serve_node
from node.transfer import _fetch as fetch_mod
from node.transfer._fetch import EARLY_BYTES
from node.transport import PeerConnection
from node.wire import ChunkRoots, ErrorCode, ErrorMsg, GetChunkRoots, Request

from .helpers import make_identity, read_all, store_with

CHUNK = 256 * 1024


class _Recording(Provider):
    """Records the index lists of the Requests it gets, in order; ``busy_first``: refuses the
    first Request with BUSY (after ``busy_delay`` seconds)."""

    def __init__(self, *args: Any, busy_first: bool = False, busy_delay: float = 0.0, **kw: Any):
        super().__init__(*args, **kw)
        self.requests: list[tuple[int, ...]] = []
        self.busy_first = busy_first
        self.busy_delay = busy_delay

    async def _on_request(self, conn: PeerConnection, queue: Any, msg: Request) -> None:
        self.requests.append(tuple(msg.indices))
        if self.busy_first and len(self.requests) == 1:
            await trio.sleep(self.busy_delay)
            await conn.send_soon(
                ErrorMsg(
                    ErrorCode.BUSY,
                    retry_after_ms=10,
                    request_id=msg.request_id,
                    ref_kind=int(Request.KIND),
                    message="provider busy",
                )
            )
            return
        await super()._on_request(conn, queue, msg)


class _LyingRoots(_Recording):
    """Offers the content honestly and serves its chunks, but its chunk-root list is forged."""

    async def _on_get_roots(self, conn: PeerConnection, msg: GetChunkRoots) -> None:
        root = bytes(msg.root)
        total = self.store.get_manifest(root).chunk_count
        count = min(msg.count, total - msg.start)
        await conn.send(ChunkRoots(root, msg.start, total, random.randbytes(32 * count)))


def _slow_plan(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """The receiver's chunk-root list takes ``seconds`` longer to store: the early chunks
    come whole before the plan exists."""
    real = Store.begin_partial

    def slow(self: Store, *args: Any, **kw: Any) -> Any:
        import time

        time.sleep(seconds)
        return real(self, *args, **kw)

    monkeypatch.setattr(Store, "begin_partial", slow)


def _watch_take(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[int], tuple[int, ...]]]:
    """What each ``_take_early`` returned: (indices that came whole before the plan, cancels)."""
    seen: list[tuple[list[int], tuple[int, ...]]] = []
    real = fetch_mod._Fetch._take_early

    def take(self: Any, peer: Any, now: float) -> Any:
        whole, cancel = real(self, peer, now)
        seen.append(([i for i, _ in whole], cancel))
        return whole, cancel

    monkeypatch.setattr(fetch_mod._Fetch, "_take_early", take)
    return seen


async def _get(
    tmp_path: Path, providers: list[tuple[Store, Any, Provider]], root: bytes, **kw: Any
) -> tuple[Store, Any]:
    me = make_identity()
    dst = Store.open(tmp_path / f"dst{random.randrange(1 << 30)}", durable=False)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            peers = []
            for store, ident, prov in providers:
                host, port = await nursery.start(
                    lambda task_status, s=store, i=ident, p=prov: serve_node(
                        s, i, provider=p, task_status=task_status
                    )
                )
                peers.append(PeerAddr(host, port, ident.address))
            result = await fetch(dst, me, root, peers, **kw)
            nursery.cancel_scope.cancel()
    return dst, result


@pytest.mark.parametrize("slow_plan", [False, True])
async def test_first_chunks_asked_early_and_taken_over_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slow_plan: bool
) -> None:
    n = 24
    src, root, data = store_with(tmp_path / "a", n * CHUNK - 5, chunk_size=CHUNK)
    ident = make_identity()
    prov = _Recording(src, ident.address)
    seen = _watch_take(monkeypatch)
    if slow_plan:
        _slow_plan(monkeypatch, 0.3)
    dst, result = await _get(tmp_path, [(src, ident, prov)], root, initial_window=32)
    assert read_all(dst, root) == data
    first = EARLY_BYTES // CHUNK
    assert prov.requests[0] == tuple(range(first))  # asked before the plan, from the front
    asked = [i for r in prov.requests for i in r]
    assert sorted(asked) == list(range(n))  # the plan asked none of them again
    assert prov.stats.chunks_served == n and result.duplicate_chunks == 0
    assert result.fetched_chunks == n and result.providers[ident.address].bytes == len(data)
    whole, cancel = seen[0]
    assert cancel == ()
    if slow_plan:  # all of them came before the plan: delivered from there, none lost
        assert whole == list(range(first))


async def test_early_request_off_asks_only_from_the_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, root, data = store_with(tmp_path / "a", 6 * CHUNK, chunk_size=CHUNK)
    ident = make_identity()
    prov = _Recording(src, ident.address)
    seen = _watch_take(monkeypatch)
    dst, result = await _get(tmp_path, [(src, ident, prov)], root, early=False)
    assert read_all(dst, root) == data and not seen
    assert prov.stats.chunks_served == 6 and result.fetched_chunks == 6


async def test_held_content_gets_no_early_request(tmp_path: Path) -> None:
    """A resume (part of the root held) is planned from what is missing: no early Request."""
    src, root, data = store_with(tmp_path / "a", 8 * CHUNK, chunk_size=CHUNK)
    ident = make_identity()
    dst = Store.open(tmp_path / "dst", durable=False)
    dst.begin_partial(src.get_manifest(root), list(src.chunk_roots(root)))
    dst.put_chunk(root, 0, src.read_chunk(root, 0))
    prov = _Recording(src, ident.address)
    me = make_identity()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(
                lambda task_status: serve_node(src, ident, provider=prov, task_status=task_status)
            )
            await fetch(dst, me, root, [PeerAddr(host, port, ident.address)])
            nursery.cancel_scope.cancel()
    assert read_all(dst, root) == data
    assert 0 not in [i for r in prov.requests for i in r]


@pytest.mark.parametrize("delay", [0.0, 0.4])
async def test_busy_early_request_is_asked_again_without_blame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, delay: float
) -> None:
    """BUSY for the early Request, before the plan (forgotten, the plan asks) or after it (the
    scheduler's refusal path, a retry): the get completes and every chunk is served once."""
    n = 10
    src, root, data = store_with(tmp_path / "a", n * CHUNK, chunk_size=CHUNK)
    ident = make_identity()
    prov = _Recording(src, ident.address, busy_first=True, busy_delay=delay)
    if not delay:
        _slow_plan(monkeypatch, 0.3)
    dst, result = await _get(tmp_path, [(src, ident, prov)], root)
    assert read_all(dst, root) == data
    assert prov.requests[0] == tuple(range(min(n, EARLY_BYTES // CHUNK)))
    assert prov.stats.chunks_served == n and result.fetched_chunks == n
    assert result.providers[ident.address].bytes == len(data)


async def test_early_chunks_of_a_peer_whose_roots_lie_are_neither_kept_nor_paid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The best-ranked peer gets the early Request with its Want answer in hand, then its
    chunk-root list fails: it is dropped, what it sent early is not stored or credited, and
    the honest peer serves everything."""
    n = 12
    good_src, root, data = store_with(tmp_path / "a", n * CHUNK, chunk_size=CHUNK)
    bad_src = Store.open(tmp_path / "bad", durable=False)
    bad_src.add_file(tmp_path / "a" / "src.bin", chunk_size=CHUNK)
    liar_id, good_id = make_identity(), make_identity()
    liar = _LyingRoots(bad_src, liar_id.address)
    good = _Recording(good_src, good_id.address)
    _slow_plan(monkeypatch, 0.2)  # the liar's early chunks are in before its list is judged
    db = open_ledger_db(str(tmp_path / "ledger"))
    try:
        ledger = LocalLedger(db)  # the liar has the better record: it is asked first
        ledger.record_chunk(liar_id.address, CHUNK, 0.01, time.time())
        dst, result = await _get(
            tmp_path,
            [(bad_src, liar_id, liar), (good_src, good_id, good)],
            root,
            offer_grace=0.5,
            ledger=ledger,
        )
    finally:
        db.close()
    assert read_all(dst, root) == data
    assert liar.requests and liar.requests[0] == (0,)  # several peers: the first chunk only
    assert liar_id.address in result.refused and liar_id.address not in result.providers
    assert result.providers[good_id.address].bytes == len(data)
    assert good.stats.chunks_served == n


async def test_swarm_early_request_is_one_chunk(tmp_path: Path) -> None:
    """In a swarm the early Request names one chunk from a random start, as the swarm
    scheduler would pick (receivers of one root do not all ask the origin for chunk 0)."""
    from node.transfer import SwarmOptions

    n = 32
    src, root, data = store_with(tmp_path / "a", n * CHUNK, chunk_size=CHUNK)
    firsts = set()
    for _ in range(4):
        ident = make_identity()
        prov = _Recording(src, ident.address)
        dst, _ = await _get(tmp_path, [(src, ident, prov)], root, swarm=SwarmOptions())
        assert read_all(dst, root) == data
        assert len(prov.requests[0]) == 1
        firsts.add(prov.requests[0][0])
        assert prov.stats.chunks_served == n
    assert len(firsts) > 1  # 4 draws of 32: all equal with probability 32**-3
