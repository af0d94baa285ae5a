"""Every message kind round-trips; encoding checks fields; the data path does not copy."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node import wire
from node.receipt import ReceiptDomain
from node.wire import _limits

from .._hyp import examples
from .strategies import chunk_data, messages, roots


def decode_one(data: bytes) -> wire.Message:
    dec = wire.MessageDecoder()
    dec.receive_data(data)
    ev = dec.next_event()
    assert dec.next_event() is wire.NEED_DATA
    assert dec.buffered == 0
    assert not isinstance(ev, wire.Sentinel)
    return ev


@settings(max_examples=examples(400))
@given(messages)
def test_roundtrip_every_kind(msg: wire.Message) -> None:
    data = wire.encode(msg)
    length, kind = struct.unpack_from(">IB", data)
    assert length == len(data) - 4
    assert kind == msg.KIND
    lo, hi = wire.BODY_BOUNDS[msg.KIND]
    assert lo <= length - 1 <= hi
    assert decode_one(data) == msg
    assert b"".join(bytes(p) for p in wire.encode_parts(msg)) == data


def test_kind_numbers_are_stable() -> None:
    assert {k.name: int(k) for k in wire.Kind} == {
        "HELLO": 0x01, "GOODBYE": 0x02, "PING": 0x03, "PONG": 0x04, "ERROR": 0x05,
        "WANT": 0x10, "MANIFEST": 0x11, "NOT_FOUND": 0x12, "GET_CHUNK_ROOTS": 0x13,
        "CHUNK_ROOTS": 0x14, "HAVE": 0x15, "HAVE_ALL": 0x16, "PRICE": 0x17,
        "REQUEST": 0x20,
        "CHUNK_DATA": 0x21, "CANCEL": 0x22, "PROGRESS": 0x23, "COMPLETE": 0x24,
        "CHUNK_DATA_Z": 0x25,
        "RECEIPT": 0x30, "RECEIPT_ACK": 0x31,
        "ANNOUNCE": 0x40, "GET_PEERS": 0x41, "PEERS": 0x42,
    }  # fmt: skip
    assert [int(c) for c in wire.ErrorCode] == list(range(14))  # 13: OUT_OF_RANGE (issue 9)
    assert {t.KIND for t in wire.MESSAGE_TYPES} == set(wire.Kind)


def test_worked_request_example_matches_spec() -> None:
    """The hex example in docs/protocol.md section 'Worked example'."""
    msg = wire.Request(bytes(range(32)), 7, (0, 1, 513))
    expected = bytes.fromhex(
        "00000031" "20"
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        "00000007" "00000000" "00000001" "00000201"
    )  # fmt: skip
    assert wire.encode(msg) == expected
    assert decode_one(expected) == msg


def test_price_with_receipt_domain_layout_matches_spec() -> None:
    """docs/protocol.md section 5.12a: the 100-byte form adds chainId u256 and
    verifyingContract (20 bytes) after the price."""
    contract = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    msg = wire.Price(bytes(range(32)), 10**15, ReceiptDomain(31337, contract))
    expected = bytes.fromhex(
        "00000065" "17"
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        "000000000000000000038d7ea4c68000"
        "0000000000000000000000000000000000000000000000000000000000007a69"
        "5fbdb2315678afecb367f032d93f642f64180aa3"
    )  # fmt: skip
    assert wire.encode(msg) == expected
    back = decode_one(expected)
    assert back == msg and isinstance(back, wire.Price) and back.domain is not None
    assert back.domain.separator() == ReceiptDomain(31337, contract).separator()


@pytest.mark.parametrize(
    "tail",
    [b"\x01", bytes(51), bytes(32) + bytes(20), bytes(31) + b"\x01" + bytes(19)],
    ids=["1 byte", "51 bytes", "chainId 0", "52 bytes short by one"],
)
def test_malformed_price_domain_is_a_recoverable_typed_error(tail: bytes) -> None:
    body = bytes(32) + (10**15).to_bytes(16, "big") + tail
    dec = wire.MessageDecoder()
    dec.receive_data(struct.pack(">IB", 1 + len(body), wire.Kind.PRICE) + body)
    dec.receive_data(wire.encode(wire.Ping(3)))
    with pytest.raises(wire.MalformedMessage) as info:
        dec.next_event()
    assert info.value.recoverable and info.value.kind == wire.Kind.PRICE
    assert dec.next_event() == wire.Ping(3)  # the stream is still in sync


def test_price_layout_matches_spec() -> None:
    """docs/protocol.md section 5.12a: root(32) | price_per_gib u128 big-endian."""
    msg = wire.Price(bytes(range(32)), 10**15)
    expected = bytes.fromhex(
        "00000031" "17"
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        "000000000000000000038d7ea4c68000"
    )  # fmt: skip
    assert wire.encode(msg) == expected
    assert decode_one(expected) == msg


def test_chunk_data_is_not_copied_either_way() -> None:
    payload = bytes(range(256)) * 200
    msg = wire.ChunkData(b"\x07" * 32, 3, 0, 1 << 20, payload)
    header, body = wire.encode_parts(msg)
    assert body is payload
    assert len(header) == 49
    wire_bytes = bytes(header) + body
    dec = wire.MessageDecoder()
    dec.receive_data(wire_bytes)
    ev = dec.next_event()
    assert isinstance(ev, wire.ChunkData)
    assert isinstance(ev.data, memoryview)
    assert ev.data.obj is wire_bytes  # a view into what was fed, not a copy
    assert ev.data == payload


def test_max_chunk_piece_fills_exactly_one_noise_message() -> None:
    msg = wire.ChunkData(b"\x00" * 32, 0, 0, 1 << 20, bytes(wire.MAX_CHUNK_PIECE))
    assert len(wire.encode(msg)) == wire.NOISE_MAX_PLAINTEXT
    with pytest.raises(wire.LocalProtocolError):
        wire.encode(wire.ChunkData(b"\x00" * 32, 0, 0, 1 << 20, bytes(wire.MAX_CHUNK_PIECE + 1)))


@given(chunk_data(max_piece=64))
def test_chunk_data_header_alone_matches_encode(msg: wire.ChunkData) -> None:
    hdr = wire.chunk_data_header(
        msg.root, msg.index, msg.offset, msg.total_len, len(msg.data), compressed=msg.compressed
    )
    assert hdr + msg.data == wire.encode(msg)


R = b"\x01" * 32


@pytest.mark.parametrize(
    "bad",
    [
        wire.Want(b"short"),
        wire.Request(R, 0, (1,)),
        wire.Request(R, 1, ()),
        wire.Request(R, 1, (1, 1)),
        wire.Request(R, 1, tuple(range(wire.MAX_REQUEST_INDICES + 1))),
        wire.Request(R, 1, (1 << 32,)),
        wire.Cancel(R, ()),
        wire.GetChunkRoots(R, 0, 0),
        wire.GetChunkRoots(R, 0, wire.MAX_ROOTS_PER_PAGE + 1),
        wire.ChunkRoots(R, 0, 1, b"\x00" * 33),
        wire.ChunkRoots(R, 5, 5, b"\x00" * 32),
        wire.Have(R, 3, b"\xff"),
        wire.Have(R, 0, b""),
        wire.ChunkData(R, 0, 0, 10, b""),
        wire.ChunkData(R, 0, 8, 10, b"abc"),
        wire.ChunkData(R, 0, 0, _limits.MAX_CHUNK_SIZE + 1, b"abc"),
        wire.ChunkData(R, 0, -1, 10, b"abc"),
        wire.Ping(-1),
        wire.Ping(1 << 64),
        wire.ErrorMsg(1 << 16),
        wire.ErrorMsg(1, message="x" * (_limits.MAX_ERROR_TEXT + 1)),
        wire.Hello(version=2),
        wire.Hello(agent="a" * (_limits.MAX_AGENT_LEN + 1)),
        wire.ManifestMsg(R, b"{"),
        wire.ManifestMsg(R, b" " * (_limits.MAX_MANIFEST_LEN + 1)),
        wire.Price(R, -1),
        wire.Price(R, 1 << 128),
        wire.Price(R, 1, ReceiptDomain(0, "0x" + "00" * 20)),
        wire.Price(R, 1, ReceiptDomain(1, "0x" + "00" * 20, name="Other")),
        wire.Price(R, 1, ("chain", 1)),  # type: ignore[arg-type]
    ],
    ids=repr,
)
def test_encode_rejects_invalid_fields(bad: wire.Message) -> None:
    with pytest.raises(wire.LocalProtocolError):
        wire.encode(bad)


def test_encode_rejects_non_messages() -> None:
    with pytest.raises(wire.LocalProtocolError):
        wire.encode(object())  # type: ignore[arg-type]


@given(roots, st.integers(14, 0xFFFF))
def test_unknown_error_codes_survive_as_ints(root: bytes, code: int) -> None:
    got = decode_one(wire.encode(wire.ErrorMsg(code, request_id=1)))
    assert isinstance(got, wire.ErrorMsg)
    assert got.code == code
    assert not isinstance(got.code, wire.ErrorCode)


def test_chunk_roots_root_list() -> None:
    rs = [bytes([i]) * 32 for i in range(3)]
    msg = wire.ChunkRoots(R, 4, 10, b"".join(rs))
    got = decode_one(wire.encode(msg))
    assert isinstance(got, wire.ChunkRoots)
    assert got.root_list() == rs


@settings(max_examples=examples(300))
@given(messages)
def test_chunk_piece_fast_path_agrees_with_the_general_decoder(msg: wire.Message) -> None:
    data = wire.encode(msg)
    fast = wire.decode_chunk_piece(memoryview(data))
    if isinstance(msg, wire.ChunkData):
        assert fast == decode_one(data) == msg
        assert isinstance(fast.data, memoryview) and fast.data.readonly
    else:
        assert fast is None


@given(chunk_data(max_piece=64), st.data())
def test_chunk_piece_fast_path_declines_anything_but_one_whole_message(
    msg: wire.ChunkData, data: st.DataObject
) -> None:
    raw = wire.encode(msg)
    assert wire.decode_chunk_piece(raw[:-1]) is None  # partial
    assert wire.decode_chunk_piece(raw + raw) is None  # two messages
    assert wire.decode_chunk_piece(raw + b"\x00") is None  # trailing byte
    # total_len below the piece's end: declined here, MALFORMED from the general decoder.
    bad = bytearray(raw)
    struct.pack_into(">I", bad, 45, msg.offset + len(msg.data) - 1)
    assert wire.decode_chunk_piece(bytes(bad)) is None
    with pytest.raises(wire.MalformedMessage):
        decode_one(bytes(bad))
