"""Admission control over real sockets on 127.0.0.1 (issue 9, "one client locks everyone out").

Linux routes all of 127.0.0.0/8 to loopback, so binding sockets to 127.0.1.x gives them their
own source IPs; the worst case, attackers on the honest client's IP (127.0.0.1), is covered too.
"""

from __future__ import annotations

import contextlib
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from node.store import Store
from node.transfer import PeerAddr, Provider, default_receipt_domain, fetch
from node.transport import (
    AdmissionLimits,
    AdmissionPolicy,
    LocalPeer,
    PeerConnection,
    PeerDisconnected,
    open_peer_connection,
    serve_peers,
)
from node.wire import ErrorCode, ErrorMsg

from ..transfer.helpers import make_identity, read_all, store_with

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs 127.0.0.0/8 on lo")

CHUNK = 256 * 1024


async def _serve(
    nursery: trio.Nursery, store: Store, ident: Any, policy: AdmissionPolicy
) -> tuple[str, int]:
    """What ``serve_node`` runs, with a policy the test can inspect."""
    me = LocalPeer.from_identity(ident)
    prov = Provider(store, me.address, receipt_domain=default_receipt_domain())
    listeners = await nursery.start(
        lambda task_status: serve_peers(
            prov.handle, 0, me, host="127.0.0.1", policy=policy, task_status=task_status
        )
    )
    host, port = listeners[0].socket.getsockname()[:2]
    return host, port


async def _idle_sockets(port: int, sources: list[str], out: list[trio.socket.SocketType]) -> None:
    """One raw TCP connection per entry of ``sources`` (source IP), never sending a byte."""
    for ip in sources:
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        await sock.bind((ip, 0))
        await sock.connect(("127.0.0.1", port))
        out.append(sock)


def _best(times: list[float], k: int = 3) -> float:
    """The mean of the ``k`` fastest: other work on the machine only ever slows a fetch (one
    side's medians of 9 read 40-72 ms beside two test suites), while a flood that slows the
    server slows all of its fetches, the fastest too."""
    return statistics.mean(sorted(times)[:k])


async def _timed_fetches(tmp: Path, root: bytes, peer: list[PeerAddr], tag: str, n: int) -> float:
    """Wall time of ``n`` fetches of ``root`` into fresh stores (one honest key): the mean of
    the best three (``_best``)."""
    ident = make_identity()
    me = LocalPeer.from_identity(ident)
    times = []
    for i in range(n):
        dst = Store.open(tmp / f"{tag}{i}", durable=False)
        t0 = time.monotonic()
        with trio.fail_after(5):
            result = await fetch(dst, ident, root, peer, local_peer=me)
        times.append(time.monotonic() - t0)
        assert result.fetched_bytes == result.manifest.size
        dst.close()
    return _best(times)


async def test_honest_fetch_under_idle_flood_and_one_key_idlers(tmp_path: Path) -> None:
    """2,000 idle TCP sockets (1,200 from the honest client's IP, 800 from 100 others) plus 256
    authenticated idle connections from one key: the honest client still fetches at >= 80% of
    its unloaded speed. The best three of 9 short fetches under the flood against 9 before it
    and 9 after it is torn down (so drift in the machine's own load hits both sides alike)."""
    provider_id, attacker_id = make_identity(), make_identity()
    src, root, data = store_with(tmp_path / "src", 16 * CHUNK + 7, chunk_size=CHUNK)
    policy = AdmissionPolicy(AdmissionLimits())
    lim = policy.limits
    sockets: list[trio.socket.SocketType] = []
    idlers: list[PeerConnection] = []
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            host, port = await _serve(nursery, src, provider_id, policy)
            peer = [PeerAddr(host, port, provider_id.address)]
            before = await _timed_fetches(tmp_path, root, peer, "before", 9)

            one_ip = ["127.0.0.1"] * 1200  # the honest client's own IP
            spread = [f"127.0.1.{1 + i % 100}" for i in range(800)]
            await _idle_sockets(port, one_ip + spread, sockets)
            while policy.accepted < len(sockets) + 5:  # the server has seen the whole flood
                await trio.sleep(0.05)
            # Within handshake_grace of a burst newcomers on a full budget are refused; once
            # the flood is that old, each newcomer evicts its oldest idle socket.
            await trio.sleep(lim.handshake_grace + 0.1)
            attacker = LocalPeer.from_identity(attacker_id)
            for _ in range(256):
                idlers.append(await open_peer_connection("127.0.0.1", port, attacker))
            assert policy.handshakes <= lim.max_handshakes
            assert policy.refused >= 256 - lim.max_connections_per_peer
            assert policy.handshakes_from("127.0.0.1") <= lim.max_handshakes_per_ip
            assert policy.connections_of(attacker_id.address) == lim.max_connections_per_peer

            dst = Store.open(tmp_path / "dst", durable=False)
            with trio.fail_after(5):
                result = await fetch(dst, make_identity(), root, peer)
            assert read_all(dst, root) == data
            assert result.fetched_bytes == len(data)
            loaded = await _timed_fetches(tmp_path, root, peer, "loaded", 9)

            for s in sockets:
                s.close()
            for c in idlers:
                await c.aclose()
            await trio.sleep(0.5)
            after = await _timed_fetches(tmp_path, root, peer, "after", 9)
            nursery.cancel_scope.cancel()
    unloaded = statistics.median([before, after])
    print(
        f"\nfetch best-3: before {before * 1000:.0f} ms, under flood {loaded * 1000:.0f} ms, "
        f"after {after * 1000:.0f} ms; ratio {unloaded / loaded:.2f}"
    )
    assert unloaded / loaded >= 0.8


async def test_honest_client_gets_in_during_a_burst_from_few_ips(tmp_path: Path) -> None:
    """500 idle sockets from 10 IPs, and at once (no grace period waited) an honest fetch:
    the busiest IPs give up their oldest handshakes to the newcomer."""
    provider_id = make_identity()
    src, root, data = store_with(tmp_path / "src", 2 * CHUNK, chunk_size=CHUNK)
    policy = AdmissionPolicy(AdmissionLimits())
    sockets: list[trio.socket.SocketType] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            host, port = await _serve(nursery, src, provider_id, policy)
            await _idle_sockets(port, [f"127.0.2.{1 + i % 10}" for i in range(500)], sockets)
            dst = Store.open(tmp_path / "dst", durable=False)
            with trio.fail_after(5):
                await fetch(dst, make_identity(), root, [PeerAddr(host, port, None)])
            assert policy.handshakes <= policy.limits.max_handshakes
            nursery.cancel_scope.cancel()
    for s in sockets:
        s.close()
    assert read_all(dst, root) == data


async def test_identity_cap_refuses_with_busy_and_retry_after(tmp_path: Path) -> None:
    """The (cap + 1)-th connection of one identity gets Error(BUSY, retry_after_ms) and
    Goodbye(BUSY); the first ones stay usable."""
    provider_id, client_id = make_identity(), make_identity()
    src, _root, _data = store_with(tmp_path / "src", CHUNK, chunk_size=CHUNK)
    lim = AdmissionLimits(max_connections_per_peer=2, retry_after_ms=1234)
    policy = AdmissionPolicy(lim)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            _host, port = await _serve(nursery, src, provider_id, policy)
            me = LocalPeer.from_identity(client_id)
            kept = [await open_peer_connection("127.0.0.1", port, me) for _ in range(2)]
            extra = await open_peer_connection("127.0.0.1", port, me)
            msg = await extra.receive()
            assert isinstance(msg, ErrorMsg)
            assert msg.code == ErrorCode.BUSY and msg.retry_after_ms == 1234
            with pytest.raises(PeerDisconnected) as info:
                await extra.receive()
            assert info.value.code == ErrorCode.BUSY
            assert policy.connections_of(client_id.address) == 2
            await kept[0].ping()  # still open
            for c in kept:
                await c.aclose()
            nursery.cancel_scope.cancel()


async def test_over_high_watermark_the_idle_are_trimmed_not_the_newcomer(tmp_path: Path) -> None:
    provider_id = make_identity()
    src, root, data = store_with(tmp_path / "src", CHUNK, chunk_size=CHUNK)
    lim = AdmissionLimits(connections_high=4, connections_low=2)
    policy = AdmissionPolicy(lim)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            host, port = await _serve(nursery, src, provider_id, policy)
            idle = [
                await open_peer_connection("127.0.0.1", port, make_identity()) for _ in range(4)
            ]
            dst = Store.open(tmp_path / "dst", durable=False)
            # The 5th peer pushes the count over 4: three idle ones go, the fetch completes.
            await fetch(dst, make_identity(), root, [PeerAddr(host, port, provider_id.address)])
            goodbyes = 0
            for c in idle:
                with trio.move_on_after(2):
                    try:
                        await c.receive()
                    except PeerDisconnected as exc:
                        goodbyes += exc.code == ErrorCode.BUSY
            assert goodbyes == 3
            assert policy.established <= lim.connections_high
            nursery.cancel_scope.cancel()
    assert read_all(dst, root) == data


async def test_handshake_churn_from_one_key_keeps_honest_fetches_fast(tmp_path: Path) -> None:
    """One key re-handshaking 20 times a second (the "256 authenticated idlers" attacker whose
    refused connections come back), while an honest client fetches: the best of short fetches
    with the churn on and off, interleaved (so the machine's own load hits both alike), must
    stay within 80%. Before, each handshake recovered a secp256k1 signature in pure Python
    (~17 ms) on the event loop, on the server and on the attacker's side alike: the churn took
    the loop whole. Now a (payload, key) pair verified once is remembered, and a new one is
    verified in a worker thread."""
    provider_id, attacker_id, honest_id = make_identity(), make_identity(), make_identity()
    src, root, data = store_with(tmp_path / "src", 24 * CHUNK, chunk_size=CHUNK)
    policy = AdmissionPolicy(AdmissionLimits())
    churn_on = trio.Event()
    handshakes = 0
    times: dict[bool, list[float]] = {False: [], True: []}
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            host, port = await _serve(nursery, src, provider_id, policy)
            peer = [PeerAddr(host, port, provider_id.address)]
            attacker = LocalPeer.from_identity(attacker_id)

            async def churn() -> None:
                nonlocal handshakes
                while True:
                    await churn_on.wait()
                    with trio.move_on_after(1):
                        conn = await open_peer_connection("127.0.0.1", port, attacker)
                        handshakes += 1
                        await conn.aclose()
                    await trio.sleep(1 / 20)

            nursery.start_soon(churn)
            me = LocalPeer.from_identity(honest_id)
            # 30 each: a median of 12 was noisy under CI's two workers, and so was the best 5
            # of 20 once (0.75 there; 0.89-0.93 beside a CPU hog here)
            for i in range(60):
                loaded = i % 2 == 1
                if loaded:
                    churn_on.set()
                    await trio.sleep(0.3)  # the churn is running
                dst = Store.open(tmp_path / f"dst{i}", durable=False)
                t0 = time.monotonic()
                await fetch(dst, honest_id, root, peer, local_peer=me)
                times[loaded].append(time.monotonic() - t0)
                assert read_all(dst, root) == data
                dst.close()
                if loaded:
                    churn_on = trio.Event()
            nursery.cancel_scope.cancel()
    calm, busy = _best(times[False], 5), _best(times[True], 5)
    print(
        f"\nchurn: {handshakes} handshakes; fetch best-5 calm {calm * 1000:.0f} ms, "
        f"under churn {busy * 1000:.0f} ms, ratio {calm / busy:.2f}"
    )
    assert handshakes >= 100
    assert calm / busy >= 0.8, (times, handshakes)


async def test_fetch_tries_again_when_closed_in_the_handshake(tmp_path: Path) -> None:
    """Admission control closes sockets bare during a handshake burst (nothing can be said
    before the handshake): the fetch makes two more attempts instead of giving up the peer.
    A proxy closes the first two connections at once and forwards the third."""
    provider_id = make_identity()
    src, root, data = store_with(tmp_path / "src", 2 * CHUNK, chunk_size=CHUNK)
    seen = 0

    async def pipe(a: trio.SocketStream, b: trio.SocketStream) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            async for block in a:
                await b.send_all(block)
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await b.send_eof()

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            _host, port = await _serve(nursery, src, provider_id, AdmissionPolicy())

            async def proxy(client: trio.SocketStream) -> None:
                nonlocal seen
                seen += 1
                if seen <= 2:
                    await trio.aclose_forcefully(client)
                    return
                upstream = await trio.open_tcp_stream("127.0.0.1", port)
                async with client, upstream, trio.open_nursery() as both:
                    both.start_soon(pipe, client, upstream)
                    both.start_soon(pipe, upstream, client)

            listeners = await nursery.start(
                lambda task_status: trio.serve_tcp(
                    proxy, 0, host="127.0.0.1", task_status=task_status
                )
            )
            pport = listeners[0].socket.getsockname()[1]
            dst = Store.open(tmp_path / "dst", durable=False)
            await fetch(dst, make_identity(), root, [PeerAddr("127.0.0.1", pport, None)])
            nursery.cancel_scope.cancel()
    assert seen == 3
    assert read_all(dst, root) == data
