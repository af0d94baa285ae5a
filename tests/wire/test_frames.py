"""Noise framing: u16 length + message; fuzzed and split arbitrarily."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node import wire

frames = st.lists(st.binary(min_size=16, max_size=3000), max_size=6)


@given(frames, st.lists(st.integers(0, 20000), max_size=10))
def test_split_stream_yields_the_same_frames(msgs: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(wire.encode_frame(m) for m in msgs)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    dec = wire.FrameDecoder()
    got: list[bytes] = []
    for a, b in zip([0, *points], [*points, len(stream)], strict=True):
        dec.receive_data(stream[a:b])
        while isinstance(f := dec.next_frame(), bytes):
            got.append(f)
        assert dec.buffered < 2 + wire.NOISE_MAX_MESSAGE
    assert got == msgs
    dec.receive_eof()
    assert dec.next_frame() is wire.PEER_CLOSED


@given(st.binary(max_size=5000))
def test_random_bytes_raise_only_malformed_frame(data: bytes) -> None:
    dec = wire.FrameDecoder()
    dec.receive_data(data)
    dec.receive_eof()
    try:
        while isinstance(dec.next_frame(), bytes):
            pass
    except wire.MalformedFrame as exc:
        assert exc.code is wire.ErrorCode.MALFORMED and not exc.recoverable
        with pytest.raises(wire.MalformedFrame):
            dec.next_frame()


def test_limits() -> None:
    assert wire.frame_header(65535) == b"\xff\xff"
    for n in (15, 65536):
        with pytest.raises(wire.LocalProtocolError):
            wire.frame_header(n)
    dec = wire.FrameDecoder()
    dec.receive_data(b"\x00\x0f" + bytes(15))
    with pytest.raises(wire.MalformedFrame):
        dec.next_frame()
