"""Noise framing: u16 length + message; fuzzed and split arbitrarily."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node import wire

frames = st.lists(st.binary(min_size=16, max_size=3000), max_size=6)


def _reads(stream: bytes, cuts: list[int]) -> list[bytes]:
    """``stream`` cut at ``cuts`` (taken modulo its length + 1): the reads a socket gave."""
    points = sorted({c % (len(stream) + 1) for c in cuts})
    return [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]


@given(frames, st.lists(st.integers(0, 20000), max_size=10))
def test_split_stream_yields_the_same_frames(msgs: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(wire.encode_frame(m) for m in msgs)
    dec = wire.FrameDecoder()
    got: list[bytes] = []
    for read in _reads(stream, cuts):
        dec.receive_data(read)
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


@given(frames, st.lists(st.integers(0, 20000), max_size=10), st.booleans())
def test_frame_views_split_like_next_frame(msgs: list[bytes], cuts: list[int], eof: bool) -> None:
    """The batch splitter returns exactly the messages next_frame would, in order, however
    the stream is cut into reads (messages inside a read and across reads)."""
    stream = b"".join(wire.encode_frame(m) for m in msgs)
    dec = wire.FrameDecoder()
    got: list[bytes] = []
    for read in _reads(stream, cuts):
        dec.receive_data(read)
        views = dec.frame_views()
        assert all(isinstance(v, memoryview) and v.readonly for v in views)
        got += [bytes(v) for v in views]
        assert dec.frame_views() == []  # nothing whole is left behind
        assert dec.next_frame() is wire.NEED_DATA
    assert got == msgs
    if eof:
        dec.receive_eof()
        assert dec.frame_views() == [] and dec.next_frame() is wire.PEER_CLOSED


@given(frames, st.integers(0, 15), st.integers(0, 20000))
def test_frame_views_stop_at_a_short_frame(msgs: list[bytes], bad: int, cut: int) -> None:
    """A length below 16 after whole messages: those are returned first, or the error is
    raised (and keeps being raised), never a message past it."""
    stream = b"".join(wire.encode_frame(m) for m in msgs) + bad.to_bytes(2, "big") + bytes(64)
    cut %= len(stream) + 1
    dec = wire.FrameDecoder()
    got: list[bytes] = []
    with pytest.raises(wire.MalformedFrame):
        for part in (stream[:cut], stream[cut:]):
            dec.receive_data(part)
            got += [bytes(v) for v in dec.frame_views()]
        got += [bytes(v) for v in dec.frame_views()]
    assert got == msgs[: len(got)]
    with pytest.raises(wire.MalformedFrame):
        dec.frame_views()
