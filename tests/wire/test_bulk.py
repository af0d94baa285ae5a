"""Bulk ChunkData (docs/protocol.md 5.14b), sans-IO: layout, header parsing, who gets it."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node import wire
from node.wire._codec import decode_bulk_header, encode_chunk_bulk
from node.wire._limits import MAX_CHUNK_SIZE

from .._hyp import examples
from .test_state import Pair

ROOT = b"\xab" * 32
PIECE = wire.MAX_CHUNK_PIECE
FULL = wire.NOISE_MAX_PLAINTEXT
BULK = wire.Capabilities(flags=int(wire.CapFlag.BULK))
_HEADER = struct.Struct(">IB32sIII")


def header(length: int, kind: int, offset: int, total: int, index: int = 3) -> bytes:
    return _HEADER.pack(length, kind, ROOT, index, offset, total)


@settings(max_examples=examples(40))
@given(
    total=st.one_of(
        st.integers(PIECE + 1, 4 * FULL + 1),
        st.sampled_from([PIECE + 1, FULL, FULL + 1, 1 << 20, MAX_CHUNK_SIZE]),
    ),
    index=st.integers(0, 2**32 - 1),
)
def test_layout_round_trip(total: int, index: int) -> None:
    data = bytes(range(256)) * (total // 256) + bytes(total % 256)
    parts = encode_chunk_bulk(ROOT, index, data)
    head, body = parts[0], parts[1:]
    assert len(head) == wire.BULK_HEADER_LEN == 49
    assert decode_bulk_header(head) == (ROOT, index, total)
    # the data: whole Noise plaintexts, the last one the rest, nothing joined or copied
    assert [len(p) for p in body[:-1]] == [FULL] * (len(body) - 1)
    assert 1 <= len(body[-1]) <= FULL
    assert len(body) == -(-total // FULL)
    assert b"".join(body) == data
    # the same bytes a general decoder would read as one ChunkData (length = 45 + total)
    length, kind, *_ = _HEADER.unpack(head)
    assert (length, kind) == (1 + 44 + total, wire.Kind.CHUNK_DATA)


@pytest.mark.parametrize("total", [0, 1, PIECE, MAX_CHUNK_SIZE + 1])
def test_encode_refuses_sizes_outside_bulk(total: int) -> None:
    with pytest.raises(wire.LocalProtocolError):
        encode_chunk_bulk(ROOT, 0, bytes(total))


@pytest.mark.parametrize(
    "raw",
    [
        header(45 + (1 << 20), wire.Kind.CHUNK_DATA_Z, 0, 1 << 20),  # compressed: never bulk
        header(45 + (1 << 20), wire.Kind.CHUNK_DATA, 1, 1 << 20),  # not offset 0
        header(45 + (1 << 20) - 1, wire.Kind.CHUNK_DATA, 0, 1 << 20),  # length lies
        header(45 + PIECE, wire.Kind.CHUNK_DATA, 0, PIECE),  # fits one piece
        header(45 + MAX_CHUNK_SIZE + 1, wire.Kind.CHUNK_DATA, 0, MAX_CHUNK_SIZE + 1),
        header(45 + (1 << 20), wire.Kind.CHUNK_DATA, 0, 1 << 20) + b"\x00",  # 50 bytes
        header(45 + (1 << 20), wire.Kind.CHUNK_DATA, 0, 1 << 20)[:-1],
        header(45 + (1 << 20), wire.Kind.CANCEL, 0, 1 << 20),
    ],
)
def test_not_a_bulk_header(raw: bytes) -> None:
    assert decode_bulk_header(raw) is None


def greeted(a_caps: wire.Capabilities | None, b_caps: wire.Capabilities | None) -> Pair:
    p = Pair(a_caps, b_caps)
    p.greet()
    return p


def test_sent_bulk_only_to_a_peer_with_the_flag() -> None:
    data = bytes(1 << 20)
    # B (the receiver) advertises BULK: one message, header alone first
    p = greeted(None, BULK)
    parts = p.a.send_chunk(ROOT, 0, data)
    assert len(parts[0]) == 49 and len(parts) == 1 + -(-len(data) // FULL)
    # compressed chunks and chunks of one piece are pieces even then
    assert all(len(x) <= FULL for x in p.a.send_chunk(ROOT, 1, bytes(1000), compressed=True))
    assert len(p.a.send_chunk(ROOT, 2, bytes(PIECE))) == 1
    # without the flag: pieces of <= 65519 bytes, each with its own header
    q = greeted(None, None)
    pieces = q.a.send_chunk(ROOT, 0, data)
    assert len(pieces) == -(-len(data) // PIECE) and all(len(x) <= FULL for x in pieces)


def test_receive_bulk_header_settles_the_request() -> None:
    p = greeted(BULK, None)  # A receives, B serves
    p.a_to_b(wire.Request(ROOT, 1, (5,)))
    assert p.a.state.outstanding(wire.Side.US) == 1
    parts = p.b.send_chunk(ROOT, 5, bytes(range(256)) * 4096)
    assert p.a.receive_bulk_header(parts[0]) == (ROOT, 5, 1 << 20)
    assert p.a.state.outstanding(wire.Side.US) == 0  # answered in full
    assert p.b.state.outstanding(wire.Side.THEM) == 0  # as the sender sees it


def test_receive_bulk_header_declines_what_it_must_not_take() -> None:
    head = encode_chunk_bulk(ROOT, 0, bytes(1 << 20))[0]
    # without BULK of our own: the general decoder's business (it refuses the length)
    p = greeted(None, None)
    assert p.a.receive_bulk_header(head) is None
    # before the peer's Hello, ChunkData breaks the state rules: declined, nothing changed
    q = wire.WireConnection(BULK)
    assert q.receive_bulk_header(head) is None
    assert q.state.phase[wire.Side.THEM] is wire.Phase.AWAIT_HELLO
    # with a message half-buffered in the general decoder: order first, declined
    r = greeted(BULK, None)
    r.a.receive_data(wire.encode(wire.Want(ROOT))[:10])
    assert r.a.receive_bulk_header(head) is None
