"""Keep-alive at scale (issue 11: a new peer at full speed while 10,000 idle connections are
held), over real sockets on 127.0.0.1: the node-wide sweep writes its Pings itself (no task per
Ping), each idle connection gets at most one Ping per keep-alive interval, a connection with
traffic gets none, and a Ping the socket takes only in part is finished before anything else.
"""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from node.transfer import Provider, default_receipt_domain
from node.transport import (
    AdmissionPolicy,
    LocalPeer,
    PeerConnection,
    TransportError,
    _peer,
    serve_peers,
)
from node.transport._connect import _tune
from node.transport._noise_stream import NoiseStream
from node.wire import Message, Ping, Pong, Want

from ..transfer.helpers import make_identity, store_with

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs 127.0.0.0/8 on lo")

CHUNK = 256 * 1024
KEEPALIVE = 0.3


class _Counting(PeerConnection):
    """A peer that counts the node's Pings and Pongs (``receive`` answers and swallows them)."""

    pings = 0
    pongs = 0

    def _buffered_message(self) -> Message | None:
        msg = super()._buffered_message()
        if type(msg) is Ping:
            self.pings += 1
        elif type(msg) is Pong:
            self.pongs += 1
        return msg


async def _connect(ip: str, port: int) -> _Counting:
    me = LocalPeer.from_identity(make_identity())
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    await sock.bind((ip, 0))
    await sock.connect(("127.0.0.1", port))
    tcp = trio.SocketStream(sock)
    _tune(tcp)
    stream = NoiseStream(tcp, initiator=True, static=me.static, identity_payload=me.payload)
    conn = _Counting(stream, capabilities=me.capabilities)
    await conn.start()
    return conn


class _Spawns(trio.abc.Instrument):
    def __init__(self) -> None:
        self.count = 0

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.count += 1


async def serve_provider(
    nursery: trio.Nursery,
    src: Any,
    policy: AdmissionPolicy,
    *,
    idle_timeout: float = 10.0,
    keepalive: float = KEEPALIVE,
) -> int:
    """A provider of ``src`` on 127.0.0.1 with the given idle timeout and keep-alive; returns
    its port."""
    me = LocalPeer.from_identity(make_identity())
    prov = Provider(src, me.address, receipt_domain=default_receipt_domain())
    listeners = await nursery.start(
        lambda task_status: serve_peers(
            prov.handle,
            0,
            me,
            policy=policy,
            idle_timeout=idle_timeout,
            keepalive_interval=keepalive,
            task_status=task_status,
        )
    )
    return int(listeners[0].socket.getsockname()[1])


async def _answer(c: PeerConnection) -> None:
    with contextlib.suppress(TransportError):
        await c.receive()  # answers the node's Pings until the connection ends


async def test_sweep_writes_pings_itself_at_most_one_per_interval(tmp_path: Path) -> None:
    """20 idle peers answering Pings for 2 s with a 0.3 s keep-alive: each gets 5-7 Pings
    (one per interval, never more), every one written by the sweep itself: no task is
    started on the node meanwhile (a task per Ping before), and the sweep looks at each
    connection about once per Ping, not at each of its ~27 rounds (20 x 27 looks before)."""
    src, _root, _ = store_with(tmp_path / "src", CHUNK, chunk_size=CHUNK)
    policy = AdmissionPolicy()
    spawns = _Spawns()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await serve_provider(nursery, src, policy)
            idle = [await _connect("127.0.9.1", port) for _ in range(20)]
            for c in idle:
                nursery.start_soon(_answer, c)
            await trio.testing.wait_all_tasks_blocked()
            for c in idle:
                c.pings = 0
            pings_before, tasks_before = policy.keepalive_pings, policy.keepalive_tasks
            looked_before, sweeps_before = policy.looked, policy.sweeps
            trio.lowlevel.add_instrument(spawns)
            try:
                await trio.sleep(2.0)
            finally:
                trio.lowlevel.remove_instrument(spawns)
            await trio.sleep(0.05)  # the last Pings written reach their peers
            got = [c.pings for c in idle]
            assert all(5 <= n <= 2.0 / KEEPALIVE + 1 for n in got), got
            assert policy.keepalive_pings - pings_before >= sum(got) - len(idle)
            assert policy.keepalive_tasks == tasks_before  # all written by the sweep
            assert spawns.count == 0, spawns.count
            # looked at when a Ping is due, not at every round (a round every 0.075 s here)
            rounds, looked = policy.sweeps - sweeps_before, policy.looked - looked_before
            assert rounds >= 20 and looked <= sum(got) + 2 * len(idle), (rounds, looked)
            assert policy.established == 20 and policy.idle_closed == 0
            nursery.cancel_scope.cancel()
    src.close()


async def test_a_connection_with_traffic_gets_no_keepalive_ping(tmp_path: Path) -> None:
    """A peer that talks every 0.1 s (its Pings, answered by Pongs) gets no Ping from the node
    over 2 s (answers are traffic); an idle one beside it gets its Pings."""
    src, _root, _ = store_with(tmp_path / "src", CHUNK, chunk_size=CHUNK)
    policy = AdmissionPolicy()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await serve_provider(nursery, src, policy)
            chatty = await _connect("127.0.9.2", port)
            quiet = await _connect("127.0.9.3", port)
            for c in (chatty, quiet):
                nursery.start_soon(_answer, c)

            async def talk() -> None:
                while True:
                    await chatty.ping()
                    await trio.sleep(0.1)

            nursery.start_soon(talk)
            await trio.sleep(2.0)
            assert chatty.pongs >= 10  # the node answered its Pings all along
            assert chatty.pings == 0, chatty.pings
            assert quiet.pings >= 5, quiet.pings
            nursery.cancel_scope.cancel()
    src.close()


@contextlib.asynccontextmanager
async def _pair() -> AsyncIterator[tuple[PeerConnection, _Counting]]:
    """Two connected PeerConnections over TCP on 127.0.0.1: ours, and a counting peer."""
    ours = LocalPeer.from_identity(make_identity())
    theirs = LocalPeer.from_identity(make_identity())
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    accepted: list[_Counting] = []

    async def accept() -> None:
        tcp = await listeners[0].accept()
        stream = NoiseStream(
            tcp, initiator=False, static=theirs.static, identity_payload=theirs.payload
        )
        conn = _Counting(stream, capabilities=theirs.capabilities)
        await conn.start()
        accepted.append(conn)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(accept)
            tcp = await trio.open_tcp_stream("127.0.0.1", port)
            stream = NoiseStream(
                tcp, initiator=True, static=ours.static, identity_payload=ours.payload
            )
            conn = PeerConnection(stream, capabilities=ours.capabilities)
            await conn.start()
        (peer,) = accepted
        try:
            yield conn, peer
        finally:
            await conn.aclose()
            await peer.aclose()
    finally:
        for listener in listeners:
            await listener.aclose()


def _short(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The socket takes 7 bytes of each write made at once (what a full send buffer does);
    returns the sizes asked, one per such write."""
    asked: list[int] = []

    def send(sock: socket.socket, data: bytes) -> int:
        asked.append(len(data))
        return sock.send(data[:7])

    monkeypatch.setattr(_peer, "_send_nowait", send)
    return asked


async def test_a_ping_written_in_part_is_finished_before_anything_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An inline Ping the socket takes only in part: the rest is written first by the next
    write, so the peer reads that Ping, then a Want, intact; then inline Pings work again."""
    with trio.fail_after(10):
        async with _pair() as (conn, peer):
            _short(monkeypatch)
            sent_before = conn.last_sent
            assert conn.ping_nowait() is False  # not whole: the caller falls back
            assert conn.last_sent == sent_before
            assert conn.ping_nowait() is False  # nothing more while a tail is pending
            monkeypatch.undo()

            await conn.ping()  # the fallback: writes the tail (and nothing else is needed)
            assert conn.last_sent > sent_before
            await conn.send(Want(b"\x01" * 32))
            msg = await peer.receive()  # the Ping is answered and swallowed
            assert isinstance(msg, Want) and peer.pings == 1
            assert conn.ping_nowait() is True  # the stream is in order: inline works again
            await conn.send(Want(b"\x02" * 32))
            msg = await peer.receive()
            assert msg == Want(b"\x02" * 32) and peer.pings == 2


async def test_pongs_written_in_part_are_finished_before_the_receiver_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three Pings read at once are answered by three Pongs in one write made at once; when
    the socket takes only part of it, the rest goes out before the receiver waits again, and
    the peer reads the three Pongs, then a Want, intact."""
    with trio.fail_after(10):
        async with _pair() as (conn, peer), trio.open_nursery() as nursery:
            asked = _short(monkeypatch)
            nursery.start_soon(_answer, conn)
            await peer.send(Ping(11), Ping(12), Ping(13))
            await trio.testing.wait_all_tasks_blocked()
            monkeypatch.undo()
            assert len(asked) == 1 and asked[0] > 7  # the three Pongs, in one write
            assert not conn._soon and not conn._unsent  # all of it written
            await conn.send(Want(b"\x03" * 32))
            msg = await peer.receive()
            assert msg == Want(b"\x03" * 32) and peer.pongs == 3 and peer.pings == 0
            nursery.cancel_scope.cancel()
