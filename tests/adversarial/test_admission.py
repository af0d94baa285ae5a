"""Admission control over real sockets on 127.0.0.1 (issue 9, "one client locks everyone out").

Linux routes all of 127.0.0.0/8 to loopback, so binding sockets to 127.0.1.x gives them their
own source IPs; the worst case, attackers on the honest client's IP (127.0.0.1), is covered too.
"""

from __future__ import annotations

import socket
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


async def test_honest_fetch_under_idle_flood_and_one_key_idlers(tmp_path: Path) -> None:
    """2,000 idle TCP sockets (1,200 from the honest client's IP, 800 from 100 others) plus 256
    authenticated idle connections from one key: the honest client still fetches in seconds."""
    provider_id, attacker_id = make_identity(), make_identity()
    src, root, data = store_with(tmp_path / "src", 4 * CHUNK + 7, chunk_size=CHUNK)
    policy = AdmissionPolicy(AdmissionLimits())
    lim = policy.limits
    sockets: list[trio.socket.SocketType] = []
    idlers: list[PeerConnection] = []
    with trio.fail_after(25):
        async with trio.open_nursery() as nursery:
            host, port = await _serve(nursery, src, provider_id, policy)
            peer = [PeerAddr(host, port, provider_id.address)]

            t0 = time.monotonic()
            await fetch(Store.open(tmp_path / "base", durable=False), make_identity(), root, peer)
            unloaded = time.monotonic() - t0

            one_ip = ["127.0.0.1"] * 1200  # the honest client's own IP
            spread = [f"127.0.1.{1 + i % 100}" for i in range(800)]
            await _idle_sockets(port, one_ip + spread, sockets)
            while policy.accepted < len(sockets) + 1:  # the server has seen the whole flood
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
            t0 = time.monotonic()
            with trio.fail_after(5):
                result = await fetch(dst, make_identity(), root, peer)
            loaded = time.monotonic() - t0
            nursery.cancel_scope.cancel()
    for s in sockets:
        s.close()
    assert read_all(dst, root) == data
    assert result.fetched_bytes == len(data)
    print(f"\nunloaded fetch {unloaded * 1000:.0f} ms, under flood {loaded * 1000:.0f} ms")


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
