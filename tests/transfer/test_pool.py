"""Connection reuse (node.transfer._pool) over real TCP on 127.0.0.1, real LevelDB stores."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import trio

from node.store import Store
from node.transfer import PeerAddr, ReceiptBox, default_receipt_domain, fetch, serve_node
from node.transfer._observer import _NullObserver
from node.transfer._pool import ConnectionPool
from node.transfer._provider import Provider

from .helpers import make_identity, read_all

CHUNK = 256 * 1024


class Conns(_NullObserver):
    """Counts the provider's inbound connections opened and closed."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    def connection_opened(self, peer: str, inbound: bool) -> None:
        self.seen["opened"] += 1

    def connection_closed(self, peer: str, inbound: bool) -> None:
        self.seen["closed"] += 1


def _contents(path: Path, store: Store, n: int, size: int) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(n):
        data = os.urandom(size)
        src = path / f"src{i}.bin"
        src.write_bytes(data)
        out.append((store.add_file(src, chunk_size=CHUNK).root, data))
    return out


async def _serve(nursery: trio.Nursery, store: Store, ident: Any, **kw: Any) -> tuple[str, int]:
    host, port = await nursery.start(
        lambda task_status: serve_node(store, ident, task_status=task_status, **kw)
    )
    return host, port


async def test_second_fetch_reuses_the_connection(tmp_path: Path) -> None:
    """Two roots from one provider through one pool: one TCP connection, both receipts taken."""
    prov_id, recv_id = make_identity(), make_identity()
    (tmp_path / "a").mkdir()
    src = Store.open(tmp_path / "a" / "store", durable=False)
    contents = _contents(tmp_path / "a", src, 2, 3 * CHUNK + 5)
    dst = Store.open(tmp_path / "b", durable=False)
    box = ReceiptBox.open(tmp_path / "receipts")
    conns = Conns()
    domain = default_receipt_domain()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            host, port = await _serve(nursery, src, prov_id, receipt_box=box, observer=conns)
            pool = ConnectionPool(nursery)
            peer = PeerAddr(host, port, prov_id.address)
            results = []
            for root, _ in contents:
                results.append(
                    await fetch(dst, recv_id, root, [peer], receipt_domain=domain, dial=pool.dial)
                )
            assert pool.idle_count() == 1
            await pool.aclose()
            nursery.cancel_scope.cancel()
    for (root, data), result in zip(contents, results, strict=True):
        assert read_all(dst, root) == data
        assert result.providers[prov_id.address].receipt_acked  # waited for (the default)
    assert conns.seen["opened"] == 1
    assert (pool.stats.dials, pool.stats.reuses, pool.stats.returned) == (1, 1, 2)
    assert box.counts()["pending"] == 2


async def test_last_receipt_answer_taken_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """wait_receipts=False: the fetch returns before the provider's ReceiptAck (delayed here
    by 0.5 s); the pool records the ack in the report later, and the connection is lent again
    only once it is in."""
    slow = Provider._on_receipt

    async def delayed(self: Provider, *args: Any) -> None:
        await trio.sleep(0.5)
        await slow(self, *args)

    monkeypatch.setattr(Provider, "_on_receipt", delayed)
    prov_id, recv_id = make_identity(), make_identity()
    (tmp_path / "a").mkdir()
    src = Store.open(tmp_path / "a" / "store", durable=False)
    contents = _contents(tmp_path / "a", src, 2, CHUNK)
    dst = Store.open(tmp_path / "b", durable=False)
    box = ReceiptBox.open(tmp_path / "receipts")
    answered = []
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            host, port = await _serve(nursery, src, prov_id, receipt_box=box)
            pool = ConnectionPool(nursery, on_answer=lambda: answered.append(1))
            peer = PeerAddr(host, port, prov_id.address)
            kw: dict[str, Any] = {
                "receipt_domain": default_receipt_domain(),
                "dial": pool.dial,
                "wait_receipts": False,
            }
            t0 = trio.current_time()
            first = await fetch(dst, recv_id, contents[0][0], [peer], **kw)
            assert trio.current_time() - t0 < 0.5  # did not wait for the ack
            report = first.providers[prov_id.address]
            assert not report.receipt_acked and len(report.receipts) == 1
            assert box.counts().get("pending", 0) == 0  # the provider has not booked it yet
            # the next fetch from this provider waits (SETTLE_WAIT) for that answer, then
            # dials a new connection rather than take one with an answer still due
            second = await fetch(dst, recv_id, contents[1][0], [peer], **kw)
            with trio.fail_after(5):
                while not (
                    report.receipt_acked and second.providers[prov_id.address].receipt_acked
                ):
                    await trio.sleep(0.02)
            await pool.aclose()
            nursery.cancel_scope.cancel()
    assert report.receipts_acked == 1 and answered
    assert pool.stats.late_answers == 2 and pool.stats.dials == 2
    assert box.counts()["pending"] == 2


async def test_connection_the_provider_closed_is_redialled(tmp_path: Path) -> None:
    """The provider restarts (same port) while a connection is idle in the pool: the pool sees
    it go, and the next fetch dials a new one instead of failing."""
    prov_id, recv_id = make_identity(), make_identity()
    (tmp_path / "a").mkdir()
    src = Store.open(tmp_path / "a" / "store", durable=False)
    contents = _contents(tmp_path / "a", src, 2, CHUNK + 1)
    dst = Store.open(tmp_path / "b", durable=False)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            pool = ConnectionPool(nursery)
            async with trio.open_nursery() as first:
                host, port = await _serve(first, src, prov_id)
                peer = PeerAddr(host, port, prov_id.address)
                await fetch(dst, recv_id, contents[0][0], [peer], dial=pool.dial)
                assert pool.idle_count() == 1
                first.cancel_scope.cancel()  # the provider goes away
            with trio.fail_after(5):
                while pool.idle_count():
                    await trio.sleep(0.01)
            assert pool.stats.lost == 1
            async with trio.open_nursery() as second:
                await _serve(second, src, prov_id, listen=(host, port))
                result = await fetch(dst, recv_id, contents[1][0], [peer], dial=pool.dial)
                second.cancel_scope.cancel()
            await pool.aclose()
            nursery.cancel_scope.cancel()
    assert result.fetched_chunks == 2 and read_all(dst, contents[1][0]) == contents[1][1]
    assert (pool.stats.dials, pool.stats.reuses) == (2, 0)


async def test_idle_timeout_and_cap(tmp_path: Path) -> None:
    """At most ``max_idle`` idle connections (the oldest goes first), each closed after
    ``idle_timeout``; the providers see them closed."""
    ids = [make_identity() for _ in range(2)]
    recv_id = make_identity()
    dst = Store.open(tmp_path / "b", durable=False)
    conns = [Conns(), Conns()]
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            pool = ConnectionPool(nursery, max_idle=1, idle_timeout=0.3)
            peers, roots = [], []
            for i, ident in enumerate(ids):
                (tmp_path / f"p{i}").mkdir()
                store = Store.open(tmp_path / f"p{i}" / "store", durable=False)
                [(root, _)] = _contents(tmp_path / f"p{i}", store, 1, CHUNK)
                host, port = await _serve(nursery, store, ident, observer=conns[i])
                peers.append(PeerAddr(host, port, ident.address))
                roots.append(root)
            for root, peer in zip(roots, peers, strict=True):
                await fetch(dst, recv_id, root, [peer], dial=pool.dial)
            assert pool.idle_count() == 1  # the first provider's was closed for the second's
            with trio.fail_after(5):
                while conns[0].seen["closed"] < 1:
                    await trio.sleep(0.01)
                while pool.idle_count() or conns[1].seen["closed"] < 1:
                    await trio.sleep(0.01)  # the idle timeout
            await pool.aclose()
            nursery.cancel_scope.cancel()
    assert [c.seen["opened"] for c in conns] == [1, 1]
    assert pool.stats.dials == 2 and pool.stats.reuses == 0


async def test_only_clean_connections_go_back(tmp_path: Path) -> None:
    """A lease that sent a Cancel, or said Goodbye, is closed, not kept; one over the
    per-peer cap is closed too; a clean one is kept and lent again."""
    from node.transport import LocalPeer
    from node.wire import Cancel, ErrorCode

    prov_id = make_identity()
    (tmp_path / "a").mkdir()
    src = Store.open(tmp_path / "a" / "store", durable=False)
    conns = Conns()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            host, port = await _serve(nursery, src, prov_id, observer=conns)
            pool = ConnectionPool(nursery, max_per_peer=1)
            peer = PeerAddr(host, port, prov_id.address)
            me = LocalPeer.from_identity(make_identity())
            a, b, c = [await pool.dial(peer, me) for _ in range(3)]
            await a.send(Cancel(b"\x01" * 32, (0,)))
            await a.aclose()  # a Cancel went out: closed
            await b.aclose(ErrorCode.MALFORMED, "bad")  # a Goodbye with a code: closed
            await c.aclose()  # clean: kept
            assert pool.idle_count() == 1
            d, e = await pool.dial(peer, me), await pool.dial(peer, me)
            assert d.conn is c.conn and e.conn is not c.conn  # type: ignore[attr-defined]
            await d.aclose()
            await e.aclose()  # the peer has one idle already (max_per_peer=1): closed
            assert pool.idle_count() == 1
            with trio.fail_after(5):
                while conns.seen["closed"] < 3:
                    await trio.sleep(0.01)
            await pool.aclose()
            nursery.cancel_scope.cancel()
    assert (pool.stats.dials, pool.stats.reuses, pool.stats.returned) == (4, 1, 2)
    assert conns.seen["opened"] == 4


async def test_a_connection_carries_at_most_max_uses_fetches(tmp_path: Path) -> None:
    """The provider keeps receipt credit per root served on a connection until it ends: a
    kept connection is retired after ``max_uses`` fetches (here 2), then a new one is dialled."""
    prov_id, recv_id = make_identity(), make_identity()
    (tmp_path / "a").mkdir()
    src = Store.open(tmp_path / "a" / "store", durable=False)
    contents = _contents(tmp_path / "a", src, 3, CHUNK)
    dst = Store.open(tmp_path / "b", durable=False)
    conns = Conns()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            host, port = await _serve(nursery, src, prov_id, observer=conns)
            pool = ConnectionPool(nursery, max_uses=2)
            peer = PeerAddr(host, port, prov_id.address)
            for root, _ in contents:
                await fetch(dst, recv_id, root, [peer], dial=pool.dial)
            await pool.aclose()
            nursery.cancel_scope.cancel()
    assert (pool.stats.dials, pool.stats.reuses, pool.stats.returned) == (2, 1, 2)
    assert conns.seen["opened"] == 2
    for root, data in contents:
        assert read_all(dst, root) == data
