"""NoiseStream over trio memory streams: conformance, identity pinning, tampering, framing."""

from __future__ import annotations

import os

import pytest
import trio
import trio.testing

from node.transport import (
    ConnectionClosed,
    HandshakeTimeout,
    NoiseStream,
    PeerDisconnected,
    PeerIdentityMismatch,
    TransportProtocolError,
)

from .helpers import make_ident, noise_pair


async def test_two_way_stream_conformance() -> None:
    async def maker() -> tuple[NoiseStream, NoiseStream]:
        return noise_pair()

    async def clogged() -> tuple[NoiseStream, NoiseStream]:
        return noise_pair(lockstep=True)

    await trio.testing.check_two_way_stream(maker, clogged)


async def test_handshake_authenticates_addresses() -> None:
    a, b = make_ident(), make_ident()
    client, server = noise_pair(a, b, expected_by_a=b.address)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.do_handshake)
        peer = await client.do_handshake()
    assert peer.address == b.address
    assert server.peer.address == a.address
    assert peer.noise_static == b.static.public


async def test_pinned_address_mismatch_ends_before_application_data() -> None:
    a, b, other = make_ident(), make_ident(), make_ident()
    client, server = noise_pair(a, b, expected_by_a=other.address)
    got: list[bytes] = []

    async def server_side() -> None:
        with pytest.raises((PeerDisconnected, TransportProtocolError)):
            got.append(await server.receive_some())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server_side)
        with pytest.raises(PeerIdentityMismatch) as info:
            await client.send_all(b"secret request")
    assert info.value.actual == b.address
    assert got == []
    # The initiator never wrote message 3: the responder saw no application data.
    assert client.bytes_sent < 100


async def test_handshake_timeout() -> None:
    a, b = make_ident(), make_ident()
    client, _server = noise_pair(a, b, handshake_timeout=0.5)
    with pytest.raises(HandshakeTimeout):
        await client.do_handshake()


async def test_large_send_arrives_intact_in_max_size_messages() -> None:
    client, server = noise_pair()
    data = os.urandom(3 * 65519 + 17)
    received = bytearray()

    async def reader() -> None:
        while len(received) < len(data):
            for p in await server.receive_plaintexts():
                assert len(p) <= 65519
                received.extend(p)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await client.send_all(data)
    assert bytes(received) == data


async def test_tampered_ciphertext_breaks_the_stream() -> None:
    a, b = make_ident(), make_ident()
    ta, tb = trio.testing.memory_stream_pair()
    client = NoiseStream(ta, initiator=True, static=a.static, identity_payload=a.payload)

    # Flip one bit in the 4th frame from the client (first transport message).
    class Flipper(trio.abc.Stream):
        def __init__(self, inner: trio.abc.Stream) -> None:
            self.inner = inner
            self.seen = 0

        async def send_all(self, data: bytes | bytearray | memoryview) -> None:
            await self.inner.send_all(data)

        async def wait_send_all_might_not_block(self) -> None:
            await self.inner.wait_send_all_might_not_block()

        async def receive_some(self, max_bytes: int | None = None) -> bytes:
            data = bytearray(await self.inner.receive_some(max_bytes))
            self.seen += len(data)
            if self.seen > 300 and data:
                data[-1] ^= 1
            return bytes(data)

        async def aclose(self) -> None:
            await self.inner.aclose()

    server = NoiseStream(Flipper(tb), initiator=False, static=b.static, identity_payload=b.payload)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.do_handshake)
        await client.do_handshake()
    await client.send_all(b"x" * 1000)
    with pytest.raises(TransportProtocolError):
        await server.receive_some()
    with pytest.raises(TransportProtocolError):
        await server.receive_some()


async def test_use_after_close_is_local_error() -> None:
    client, server = noise_pair()
    await client.aclose()
    with pytest.raises(ConnectionClosed):
        await client.send_all(b"x")
    await server.aclose()


async def test_eof_mid_frame_is_protocol_error() -> None:
    a, b = make_ident(), make_ident()
    ta, tb = trio.testing.memory_stream_pair()
    client = NoiseStream(ta, initiator=True, static=a.static, identity_payload=a.payload)
    server = NoiseStream(tb, initiator=False, static=b.static, identity_payload=b.payload)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.do_handshake)
        await client.do_handshake()
    await ta.send_all(b"\x00\x40abc")  # a frame header promising 64 bytes, then 3
    await ta.aclose()
    with pytest.raises(TransportProtocolError):
        await server.receive_some()


class _LateReader(trio.abc.Stream):
    """Reads only once every other task is blocked, so back-to-back sends share one read."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.testing.wait_all_tasks_blocked()
        return bytes(await self.inner.receive_some(max_bytes))

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_first_transport_message_in_same_read_as_handshake_end() -> None:
    """The initiator's message 3 and its first data often share one TCP read."""
    a, b = make_ident(), make_ident()
    ta, tb = trio.testing.memory_stream_pair()
    client = NoiseStream(ta, initiator=True, static=a.static, identity_payload=a.payload)
    server = NoiseStream(
        _LateReader(tb), initiator=False, static=b.static, identity_payload=b.payload
    )

    async def client_side() -> None:
        await client.do_handshake()
        await client.send_all(b"hello right away")

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client_side)
            assert await server.receive_some() == b"hello right away"


async def test_plaintexts_held_by_the_caller_survive_later_receives() -> None:
    """The receive buffer is reused only when no plaintext view of it is alive: views kept
    across several batches still read what was sent, and dropped ones let it be reused."""
    client, server = noise_pair()
    batches = [[bytes([i, j]) * 20000 for j in range(3)] for i in range(6)]
    kept: list[tuple[bytes, bytes | memoryview]] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.do_handshake)
            await client.do_handshake()
            for i, batch in enumerate(batches):
                await client.send_plaintexts(batch)
                got: list[bytes | memoryview] = []
                while len(got) < len(batch):
                    got += await server.receive_plaintexts()
                assert [bytes(p) for p in got] == batch
                if i % 2 == 0:  # hold every other batch's views until the end
                    kept += list(zip(batch, got, strict=True))
                del got
    assert all(bytes(view) == sent for sent, view in kept)


async def test_receive_buffers_are_pooled_and_bounded() -> None:
    """Bulk refills take their buffer from one bounded, process-wide pool (reused across
    connections); small ones (keep-alives, control) never enter it, so idle connections hold
    no receive buffer."""
    from node.transport import _noise_stream as ns

    pairs = [noise_pair() for _ in range(12)]

    async def receive(server: NoiseStream, n: int) -> None:
        got = 0
        while got < n:
            got += sum(map(len, await server.receive_plaintexts()))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for client, server in pairs:
                nursery.start_soon(server.do_handshake)
                await client.do_handshake()
            ns._recv_pool.buffers.clear()
            for client, server in pairs:
                await client.send_plaintexts([b"ping"] * 3)
                await receive(server, 12)
            assert ns._recv_pool.buffers == []  # nothing pooled for control-sized refills
            for _ in range(3):
                for client, server in pairs:
                    await client.send_all(bytes(300_000))
                    await receive(server, 300_000)
            assert 1 <= len(ns._recv_pool.buffers) <= ns._recv_pool.keep
            # every refill's views were dropped: one pooled buffer served every connection
            assert len(ns._recv_pool.buffers) == 1
