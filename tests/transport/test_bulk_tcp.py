"""Bulk ChunkData over real TCP (docs/protocol.md 5.14b): a whole chunk decrypted straight into
the receiver's buffer, in order with what came before it, and a sender that lays it out
wrong (or stops inside it) breaks the connection instead of hanging or corrupting it."""

from __future__ import annotations

import os
import struct

import pytest
import trio

from node.transport import (
    LocalPeer,
    PeerConnection,
    PeerDisconnected,
    TransportProtocolError,
    open_peer_connection,
)
from node.wire import NOISE_MAX_PLAINTEXT, Capabilities, CapFlag, ChunkData, NotFound, encode
from node.wire import Ping as PingMsg

from .helpers import Ident, make_ident
from .test_peer_tcp import start_server

ROOT = bytes(range(32))
MIB = 1 << 20
_HEADER = struct.Struct(">IB32sIII")  # length, kind, root, index, offset, total


def local(ident: Ident, flags: int) -> LocalPeer:
    return LocalPeer(ident.address, ident.static, ident.payload, Capabilities(flags=flags))


def bulk_header(total: int, index: int = 7) -> bytes:
    return _HEADER.pack(45 + total, 0x21, ROOT, index, 0, total)


async def test_bulk_chunk_lands_in_the_receivers_buffer_in_order() -> None:
    server, client = make_ident(), make_ident()
    big = os.urandom(MIB + 5)  # not a multiple of a Noise message: a short last one
    small = os.urandom(1000)

    async def handler(conn: PeerConnection) -> None:
        await conn.send_soon(NotFound(ROOT))  # goes out in the same write, before the chunk
        await conn.send_chunk(ROOT, 7, big)
        await conn.send_chunk(ROOT, 8, small)  # one piece: never bulk
        await conn.send_chunk(ROOT, 9, big[:100_000], compressed=True)  # never bulk either
        await conn.aclose()

    given: dict[int, bytearray] = {}

    def buffer_for(root: bytes, index: int, total: int) -> bytearray:
        assert root == ROOT
        return given.setdefault(index, bytearray(total))

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await start_server(nursery, server, handler)
            conn = await open_peer_connection("127.0.0.1", port, local(client, CapFlag.BULK))
            conn.set_bulk_buffer(buffer_for)
            assert await conn.receive() == NotFound(ROOT)
            msg = await conn.receive()
            assert isinstance(msg, ChunkData) and not msg.compressed
            assert (msg.index, msg.offset, msg.total_len) == (7, 0, len(big))
            assert isinstance(msg.data, memoryview) and msg.data.obj is given[7]  # no copy
            assert bytes(given[7]) == big
            msg = await conn.receive()
            assert (msg.index, bytes(msg.data)) == (8, small)  # type: ignore[union-attr]
            got = bytearray()
            with pytest.raises(PeerDisconnected) as info:
                while True:
                    msg = await conn.receive()
                    assert isinstance(msg, ChunkData) and msg.compressed and msg.index == 9
                    got += msg.data
            assert info.value.code == 0 and len(got) == 100_000
            assert list(given) == [7]
            nursery.cancel_scope.cancel()


async def test_with_no_buffer_given_a_bulk_chunk_comes_as_pieces() -> None:
    server, client = make_ident(), make_ident()
    data = os.urandom(MIB + 5)

    async def handler(conn: PeerConnection) -> None:
        await conn.send_chunk(ROOT, 7, data)  # bulk: the receiver has BULK
        await conn.send(NotFound(ROOT))
        await trio.sleep_forever()

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await start_server(nursery, server, handler)
            conn = await open_peer_connection("127.0.0.1", port, local(client, CapFlag.BULK))
            conn.set_bulk_buffer(lambda root, index, total: None)  # e.g. while a cap paces
            got = bytearray()
            while len(got) < len(data):
                msg = await conn.receive()
                assert isinstance(msg, ChunkData) and msg.index == 7
                assert msg.offset == len(got) and msg.total_len == len(data)
                assert len(msg.data) == min(NOISE_MAX_PLAINTEXT, len(data) - len(got))
                got += msg.data
            assert bytes(got) == data
            assert await conn.receive() == NotFound(ROOT)  # and the stream goes on after it
            nursery.cancel_scope.cancel()


FULL = NOISE_MAX_PLAINTEXT
LIES = {
    "a data message too short": [bulk_header(MIB), bytes(FULL), bytes(1000)],
    "a message in the middle": [bulk_header(MIB), bytes(FULL), encode(PingMsg(1))],
    "a last message too long": [bulk_header(FULL + 10), bytes(FULL), bytes(11)],
    "the stream ends inside it": [bulk_header(MIB), bytes(FULL)],
    "more than 4 MiB": [bulk_header(4 * MIB + 1), bytes(FULL)],
}


@pytest.mark.parametrize("lie", list(LIES))
async def test_bulk_laid_out_wrong_breaks_the_connection(lie: str) -> None:
    server, client = make_ident(), make_ident()

    async def handler(conn: PeerConnection) -> None:
        await conn.stream.send_plaintexts(LIES[lie])  # raw, past the sender's own checks
        if lie == "the stream ends inside it":
            await conn.stream.transport_stream.aclose()  # no Goodbye: the bytes end here
        await trio.sleep_forever()  # otherwise the lie alone must break it, not an EOF

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await start_server(nursery, server, handler)
            conn = await open_peer_connection("127.0.0.1", port, local(client, CapFlag.BULK))
            with pytest.raises(TransportProtocolError):
                while True:
                    await conn.receive()
            with pytest.raises(TransportProtocolError):  # broken for good, not resynced
                await conn.receive()
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize("whole", [True, False])  # into a given buffer, or as pieces
async def test_a_receive_cancelled_inside_bulk_data_breaks_the_connection(whole: bool) -> None:
    """The rest of the chunk is still to come on the stream: a later receive must not read
    it as messages (nor wait for it), and a pool must not take the connection back."""
    server, client = make_ident(), make_ident()

    async def handler(conn: PeerConnection) -> None:
        await conn.stream.send_plaintexts([bulk_header(MIB), bytes(FULL), bytes(FULL)])
        await trio.sleep_forever()  # the other 14 data messages never come

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await start_server(nursery, server, handler)
            conn = await open_peer_connection("127.0.0.1", port, local(client, CapFlag.BULK))
            if whole:
                conn.set_bulk_buffer(lambda root, index, total: bytearray(total))
            with trio.move_on_after(0.5) as scope:
                while True:  # pieces: the first two arrive, then it waits for the third
                    await conn.receive()
            assert scope.cancelled_caught
            with trio.fail_after(2), pytest.raises(TransportProtocolError):
                await conn.receive()
            nursery.cancel_scope.cancel()
