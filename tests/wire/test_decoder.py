"""MessageDecoder under arbitrary input: only typed errors, bounded memory, any split works."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node import wire

from .._hyp import examples
from .strategies import messages

HEADER = struct.Struct(">IB")


def drain(dec: wire.MessageDecoder) -> list[wire.Message]:
    out: list[wire.Message] = []
    while True:
        ev = dec.next_event()
        if isinstance(ev, wire.Sentinel):
            return out
        out.append(ev)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@settings(max_examples=examples(150), suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messages, min_size=1, max_size=8), st.lists(st.integers(0, 1 << 20), max_size=12))
def test_any_split_of_a_valid_stream_decodes_the_same(
    msgs: list[wire.Message], cuts: list[int]
) -> None:
    stream = b"".join(wire.encode(m) for m in msgs)
    dec = wire.MessageDecoder()
    got: list[wire.Message] = []
    for piece in split(stream, cuts):
        dec.receive_data(piece)
        got += drain(dec)
        # after draining, less than one whole message remains
        assert dec.buffered < 4 + wire.MAX_MESSAGE_LEN
    assert got == msgs
    dec.receive_eof()
    assert dec.next_event() is wire.PEER_CLOSED


@settings(max_examples=examples(300))
@given(st.binary(max_size=3000), st.lists(st.integers(0, 4000), max_size=6))
def test_random_bytes_raise_only_typed_errors(data: bytes, cuts: list[int]) -> None:
    dec = wire.MessageDecoder()
    for piece in split(data, cuts):
        dec.receive_data(piece)
        try:
            drain(dec)
        except wire.RemoteProtocolError as exc:
            assert isinstance(exc.code, wire.ErrorCode)
            if not exc.recoverable:
                with pytest.raises(type(exc)):  # fatal errors are sticky
                    dec.next_event()
                return
        assert dec.buffered <= 4 + wire.MAX_MESSAGE_LEN + len(piece)


@settings(max_examples=examples(200))
@given(st.sampled_from(list(wire.Kind)), st.integers(0, 0xFFFF_FFFF))
def test_length_header_is_judged_before_the_body_arrives(kind: wire.Kind, length: int) -> None:
    lo, hi = wire.BODY_BOUNDS[kind]
    dec = wire.MessageDecoder()
    dec.receive_data(HEADER.pack(length, kind))
    if length == 0:
        with pytest.raises(wire.MalformedMessage):
            dec.next_event()
    elif length - 1 > hi:
        with pytest.raises(wire.MessageTooLarge) as info:
            dec.next_event()
        assert info.value.code is wire.ErrorCode.TOO_LARGE
        assert not info.value.recoverable
        assert dec.buffered == 5  # nothing was allocated for the announced body
    elif length == 1 and lo > 0:
        with pytest.raises(wire.MalformedMessage) as bad:  # empty body, complete, too short
            dec.next_event()
        assert bad.value.recoverable
    else:
        assert dec.next_event() is wire.NEED_DATA


@settings(max_examples=examples(200))
@given(messages, st.data())
def test_truncated_messages_wait_then_fail_at_eof(msg: wire.Message, data: st.DataObject) -> None:
    raw = wire.encode(msg)
    cut = data.draw(st.integers(1, len(raw) - 1))
    dec = wire.MessageDecoder()
    dec.receive_data(raw[:cut])
    assert dec.next_event() is wire.NEED_DATA
    dec.receive_eof()
    with pytest.raises(wire.MalformedMessage) as info:
        dec.next_event()
    assert not info.value.recoverable


@given(
    st.integers(0x40, 0xFF).filter(lambda k: k not in set(wire.Kind)),
    st.binary(max_size=100),
    messages,
)
def test_unknown_kind_is_skipped_and_the_stream_continues(
    kind: int, body: bytes, after: wire.Message
) -> None:
    dec = wire.MessageDecoder()
    dec.receive_data(HEADER.pack(1 + len(body), kind) + body + wire.encode(after))
    with pytest.raises(wire.UnknownKind) as info:
        dec.next_event()
    assert info.value.recoverable and info.value.kind == kind
    assert info.value.code is wire.ErrorCode.UNKNOWN_KIND
    assert dec.next_event() == after


def test_unknown_kind_longer_than_advertised_is_too_large() -> None:
    dec = wire.MessageDecoder()
    dec.receive_data(HEADER.pack(wire.MAX_MESSAGE_LEN + 1, 0x7F))
    with pytest.raises(wire.MessageTooLarge):
        dec.next_event()


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        (wire.Kind.PING, b"\x00" * 7),  # below minimum
        (wire.Kind.REQUEST, b"\x00" * 32 + b"\x00\x00\x00\x00" + b"\x00" * 4),  # request_id 0
        (wire.Kind.REQUEST, b"\x00" * 32 + b"\x00\x00\x00\x01" + b"\x00" * 8),  # dup index
        (wire.Kind.REQUEST, b"\x00" * 32 + b"\x00\x00\x00\x01" + b"\x00" * 5),  # ragged
        (wire.Kind.GET_CHUNK_ROOTS, b"\x00" * 32 + b"\x00" * 8),  # count 0
        (wire.Kind.CHUNK_ROOTS, b"\x00" * 32 + b"\x00\x00\x00\x00\x00\x00\x00\x01" + b"\x00" * 33),
        (wire.Kind.CHUNK_ROOTS, b"\x00" * 40 + b"\x00" * 32),  # page past total 0
        (wire.Kind.HAVE, b"\x00" * 32 + b"\x00\x00\x00\x03" + b"\xff"),
        (wire.Kind.CHUNK_DATA, b"\x00" * 32 + struct.pack(">III", 0, 9, 10) + b"ab"),
        (wire.Kind.CHUNK_DATA, b"\x00" * 32 + struct.pack(">III", 0, 0, (4 << 20) + 1) + b"a"),
        (wire.Kind.ERROR, b"\x00" * 11 + b"\xff\xfe"),  # bad UTF-8
        (wire.Kind.HELLO, b"\x00\x01" + struct.pack(">IIH", 0, 10, 1)),  # max_message_size small
        (wire.Kind.RECEIPT, b"\x01" + b"\x00" * 181),  # receipt format 1 is retired
    ],
)
def test_bad_bodies_are_malformed_and_recoverable(kind: wire.Kind, body: bytes) -> None:
    dec = wire.MessageDecoder()
    dec.receive_data(HEADER.pack(1 + len(body), kind) + body + wire.encode(wire.Ping(5)))
    with pytest.raises(wire.MalformedMessage) as info:
        dec.next_event()
    assert info.value.recoverable and info.value.code is wire.ErrorCode.MALFORMED
    assert info.value.kind == kind
    assert dec.next_event() == wire.Ping(5)


def test_hello_with_unknown_version_is_unsupported() -> None:
    body = b"\x00\x02" + b"anything a future version wants"
    dec = wire.MessageDecoder()
    dec.receive_data(HEADER.pack(1 + len(body), wire.Kind.HELLO) + body)
    with pytest.raises(wire.UnsupportedVersion) as info:
        dec.next_event()
    assert info.value.code is wire.ErrorCode.UNSUPPORTED_VERSION


def test_unsupported_version_is_sticky_like_every_fatal_error() -> None:
    """Fuzzing finding O1 (docs/fuzzing.md): the Hello of an unknown version was consumed
    and the decoder read on (the next call gave PEER_CLOSED or the next message)."""
    reproducer = bytes.fromhex("000000000d01005b00020000000100290001")[1:]  # first byte: split
    dec = wire.MessageDecoder()
    dec.receive_data(reproducer + wire.encode(wire.Ping(7)))
    dec.receive_eof()
    with pytest.raises(wire.UnsupportedVersion) as first:
        dec.next_event()
    assert not first.value.recoverable and first.value.kind == wire.Kind.HELLO
    for _ in range(2):  # neither the Ping after it nor the EOF is ever delivered
        with pytest.raises(wire.UnsupportedVersion) as again:
            dec.next_event()
        assert again.value is first.value
    assert not dec.idle


def test_mutable_input_is_copied() -> None:
    raw = bytearray(wire.encode(wire.Ping(1)))
    dec = wire.MessageDecoder()
    dec.receive_data(raw)
    raw[:] = bytes(len(raw))
    assert dec.next_event() == wire.Ping(1)


def test_feeding_after_eof_is_a_local_error() -> None:
    dec = wire.MessageDecoder()
    dec.receive_eof()
    with pytest.raises(wire.LocalProtocolError):
        dec.receive_data(b"x")
