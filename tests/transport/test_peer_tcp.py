"""PeerConnection over real TCP on 127.0.0.1 (port 0): Hello, messages, chunks, Goodbye."""

from __future__ import annotations

import os

import pytest
import trio

from node.transport import (
    ConnectionManager,
    LocalPeer,
    PeerConnection,
    PeerDisconnected,
    PeerIdentityMismatch,
    open_peer_connection,
    serve_peers,
)
from node.wire import Capabilities, ChunkData, NotFound, Want

from .helpers import Ident, make_ident

ROOT = bytes(range(32))


def local(ident: Ident) -> LocalPeer:
    return LocalPeer(ident.address, ident.static, ident.payload, Capabilities())


async def start_server(nursery: trio.Nursery, ident: Ident, handler) -> int:  # type: ignore[no-untyped-def]
    listeners = await nursery.start(serve_peers, handler, 0, local(ident))
    return int(listeners[0].socket.getsockname()[1])


async def not_found_server(conn: PeerConnection) -> None:
    while True:
        msg = await conn.receive()
        if isinstance(msg, Want):
            await conn.send(NotFound(msg.root))


async def test_want_not_found_roundtrip_and_identity() -> None:
    server, client = make_ident(), make_ident()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await start_server(nursery, server, not_found_server)
            conn = await open_peer_connection("127.0.0.1", port, local(client), server.address)
            assert conn.address == server.address
            await conn.send(Want(ROOT))
            assert await conn.receive() == NotFound(ROOT)
            await conn.ping()  # answered by the server's receive loop, never surfaced
            await conn.send(Want(ROOT))
            assert await conn.receive() == NotFound(ROOT)
            await conn.aclose()
            nursery.cancel_scope.cancel()


async def test_pinned_mismatch_over_tcp() -> None:
    server, client, other = make_ident(), make_ident(), make_ident()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await start_server(nursery, server, not_found_server)
            with pytest.raises(PeerIdentityMismatch):
                await open_peer_connection("127.0.0.1", port, local(client), other.address)
            nursery.cancel_scope.cancel()


async def test_chunk_pieces_and_goodbye() -> None:
    server, client = make_ident(), make_ident()
    data = os.urandom(1 << 20)

    async def handler(conn: PeerConnection) -> None:
        await conn.send_chunk(ROOT, 7, data)
        await conn.aclose()

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await start_server(nursery, server, handler)
            conn = await open_peer_connection("127.0.0.1", port, local(client))
            got = bytearray()
            with pytest.raises(PeerDisconnected) as info:
                while True:
                    msg = await conn.receive()
                    assert isinstance(msg, ChunkData) and msg.index == 7
                    assert msg.offset == len(got)
                    got += msg.data
            assert info.value.code == 0  # Goodbye OK, not a broken pipe
            assert bytes(got) == data
            nursery.cancel_scope.cancel()


async def test_manager_reuses_connection() -> None:
    server, client = make_ident(), make_ident()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await start_server(nursery, server, not_found_server)
            manager = ConnectionManager(local(client), nursery, low=1, high=1)
            a = await manager.connect("127.0.0.1", port)
            b = await manager.connect("127.0.0.1", port, server.address)
            assert a is b and len(manager) == 1
            await manager.aclose()
            nursery.cancel_scope.cancel()
