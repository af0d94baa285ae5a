"""Two WireConnections paired in memory: the rules of ``_state.py``, from both ends."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node import wire

from .._hyp import examples
from .strategies import messages

ROOT = b"\xab" * 32


class Pair:
    """Two connections; ``a_to_b`` sends from A, returns what B decoded (h11 ConnectionPair)."""

    def __init__(
        self, a_caps: wire.Capabilities | None = None, b_caps: wire.Capabilities | None = None
    ) -> None:
        self.a = wire.WireConnection(a_caps, agent="a")
        self.b = wire.WireConnection(b_caps, agent="b")

    @staticmethod
    def pipe(src: wire.WireConnection, dst: wire.WireConnection, msg: wire.Message) -> wire.Message:
        dst.receive_data(src.send(msg))
        ev = dst.next_event()
        assert not isinstance(ev, wire.Sentinel)
        return ev

    def a_to_b(self, msg: wire.Message) -> wire.Message:
        return self.pipe(self.a, self.b, msg)

    def b_to_a(self, msg: wire.Message) -> wire.Message:
        return self.pipe(self.b, self.a, msg)

    def greet(self) -> None:
        assert self.a_to_b(self.a.hello()) == self.a.hello()
        assert self.b_to_a(self.b.hello()) == self.b.hello()


def remote_error(conn: wire.WireConnection, raw: bytes) -> wire.RemoteProtocolError:
    conn.receive_data(raw)
    with pytest.raises(wire.RemoteProtocolError) as info:
        conn.next_event()
    return info.value


def test_full_exchange() -> None:
    p = Pair(b_caps=wire.Capabilities(max_outstanding=4))
    p.greet()
    assert p.a.peer_capabilities == p.b.capabilities
    assert p.a_to_b(wire.Want(ROOT)) == wire.Want(ROOT)
    p.b_to_a(wire.ManifestMsg(ROOT, b'{"root":"..."}'))
    p.a_to_b(wire.GetChunkRoots(ROOT, 0, 2))
    p.b_to_a(wire.ChunkRoots(ROOT, 0, 2, b"\x01" * 64))
    p.b_to_a(wire.HaveAll(ROOT))
    p.a_to_b(wire.Request(ROOT, 1, (0, 1)))
    assert p.a.state.outstanding(wire.Side.US) == p.b.state.outstanding(wire.Side.THEM) == 2
    p.b_to_a(wire.ChunkData(ROOT, 0, 0, 6, b"abc"))
    p.b_to_a(wire.ChunkData(ROOT, 0, 3, 6, b"def"))  # last piece of chunk 0
    assert p.a.state.outstanding(wire.Side.US) == p.b.state.outstanding(wire.Side.THEM) == 1
    p.a_to_b(wire.Cancel(ROOT, (1,)))
    assert p.a.state.outstanding(wire.Side.US) == p.b.state.outstanding(wire.Side.THEM) == 0
    p.b_to_a(wire.ChunkData(ROOT, 1, 0, 6, b"abcdef"))  # crossed the Cancel: still legal
    p.a_to_b(wire.Progress(ROOT, 1, 6))
    p.a_to_b(wire.Complete(ROOT))
    p.a_to_b(wire.Ping(9))
    p.b_to_a(wire.Pong(9))
    p.a_to_b(wire.Goodbye())
    p.b_to_a(wire.Goodbye(wire.ErrorCode.SHUTTING_DOWN, "bye"))
    assert p.a.closed and p.b.closed


def test_nothing_but_error_or_goodbye_before_hello() -> None:
    p = Pair()
    with pytest.raises(wire.LocalProtocolError):
        p.a.send(wire.Ping(1))
    err = remote_error(p.b, wire.encode(wire.Ping(1)))
    assert err.code is wire.ErrorCode.PROTOCOL_VIOLATION and not err.recoverable
    p2 = Pair()
    p2.a_to_b(wire.ErrorMsg(wire.ErrorCode.UNSUPPORTED_VERSION))
    p2.a_to_b(wire.Goodbye(wire.ErrorCode.UNSUPPORTED_VERSION))


def test_requests_need_both_hellos() -> None:
    p = Pair()
    p.a_to_b(p.a.hello())
    with pytest.raises(wire.LocalProtocolError):  # A has not heard B's Hello
        p.a.send(wire.Want(ROOT))
    err = remote_error(p.b, wire.encode(wire.Want(ROOT)))  # B has not greeted yet
    assert err.code is wire.ErrorCode.PROTOCOL_VIOLATION
    p.b_to_a(p.b.hello())
    p.a_to_b(wire.Want(ROOT))


def test_hello_only_once_and_nothing_after_goodbye() -> None:
    p = Pair()
    p.greet()
    with pytest.raises(wire.LocalProtocolError):
        p.a.send(p.a.hello())
    assert remote_error(p.b, wire.encode(p.a.hello())).code is wire.ErrorCode.PROTOCOL_VIOLATION
    p.a_to_b(wire.Goodbye())
    with pytest.raises(wire.LocalProtocolError):
        p.a.send(wire.Ping(1))
    assert remote_error(p.b, wire.encode(wire.Ping(1))).code is wire.ErrorCode.PROTOCOL_VIOLATION


def test_outstanding_limit_is_rate_limited_and_recoverable() -> None:
    p = Pair(b_caps=wire.Capabilities(max_outstanding=3))
    p.greet()
    p.a_to_b(wire.Request(ROOT, 1, (0, 1)))
    with pytest.raises(wire.LocalProtocolError):
        p.a.send(wire.Request(ROOT, 2, (2, 3)))
    err = remote_error(p.b, wire.encode(wire.Request(ROOT, 2, (2, 3))))
    assert err.code is wire.ErrorCode.RATE_LIMITED and err.recoverable and err.request_id == 2
    # B refuses request 1 as a whole: both ends forget its indices
    p.b_to_a(wire.ErrorMsg(wire.ErrorCode.BUSY, retry_after_ms=50, request_id=1))
    assert p.a.state.outstanding(wire.Side.US) == p.b.state.outstanding(wire.Side.THEM) == 0
    p.a_to_b(wire.Request(ROOT, 2, (2, 3, 4)))
    p.b_to_a(wire.NotFound(ROOT))
    assert p.a.state.outstanding(wire.Side.US) == p.b.state.outstanding(wire.Side.THEM) == 0


def test_open_request_id_and_outstanding_index_cannot_be_reused() -> None:
    p = Pair()
    p.greet()
    p.a_to_b(wire.Request(ROOT, 1, (0,)))
    for again in (wire.Request(ROOT, 1, (5,)), wire.Request(ROOT, 2, (0,))):
        with pytest.raises(wire.LocalProtocolError):
            p.a.send(again)
        assert remote_error(p.b, wire.encode(again)).code is wire.ErrorCode.PROTOCOL_VIOLATION


@settings(max_examples=examples(150))
@given(st.lists(st.tuples(st.booleans(), messages), max_size=30), st.booleans())
def test_what_one_side_may_send_the_other_accepts(
    script: list[tuple[bool, wire.Message]], greet: bool
) -> None:
    """Local and remote checks agree: every message ``send`` lets through is decoded and
    accepted by the peer, and the peer's view of the state ends up mirrored."""
    p = Pair(wire.Capabilities(max_outstanding=40), wire.Capabilities(max_outstanding=40))
    if greet:
        p.greet()
    for from_a, msg in script:
        src, dst = (p.a, p.b) if from_a else (p.b, p.a)
        try:
            raw = src.send(msg)
        except wire.LocalProtocolError:
            continue
        dst.receive_data(raw)
        assert dst.next_event() == msg
    for x, y in ((p.a, p.b), (p.b, p.a)):
        assert x.state.phase[wire.Side.US] is y.state.phase[wire.Side.THEM]
        assert x.state.requested[wire.Side.US] == y.state.requested[wire.Side.THEM]


def test_no_requests_to_a_side_that_left_without_greeting() -> None:
    p = Pair()
    p.a_to_b(p.a.hello())
    p.b_to_a(wire.Goodbye(wire.ErrorCode.SHUTTING_DOWN))
    with pytest.raises(wire.LocalProtocolError):
        p.a.send(wire.Request(ROOT, 1, (0,)))


def test_chunk_piece_fast_path_keeps_the_state_rules_and_the_order() -> None:
    p = Pair()
    piece = wire.ChunkData(ROOT, 3, 0, 4, b"abcd")
    raw = wire.encode(piece)
    # Before Hello: declined, and the general path raises the violation.
    assert p.a.receive_chunk_piece(raw) is None
    p.greet()
    p.b.send(wire.Request(ROOT, 1, (3,)))
    assert p.b.state.outstanding(wire.Side.US) == 1
    assert p.b.receive_chunk_piece(raw) == piece
    assert p.b.state.outstanding(wire.Side.US) == 0  # the last piece answered the request
    # With bytes waiting in the decoder, declined (they must come out first, in order).
    p.b.receive_data(wire.encode(wire.Ping(7))[:3])
    assert p.b.receive_chunk_piece(raw) is None


@given(st.integers(1, 4 * 65470 + 3), st.booleans())
def test_send_chunk_is_its_pieces_sent_one_by_one(size: int, compressed: bool) -> None:
    """WireConnection.send_chunk: the same bytes as encoding each piece, the same state after
    (the request answered), and the receiver decodes each plaintext as that piece."""
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    caps = wire.Capabilities(max_outstanding=4)
    whole, pieces = Pair(b_caps=caps), Pair(b_caps=caps)
    for p in (whole, pieces):
        p.greet()
        p.a_to_b(wire.Request(ROOT, 1, (5,)))
    make = wire.ChunkDataZ if compressed else wire.ChunkData
    step = wire.MAX_CHUNK_PIECE
    one_by_one = [make(ROOT, 5, off, size, data[off : off + step]) for off in range(0, size, step)]
    expected = [pieces.b.send(m) for m in one_by_one]
    got = whole.b.send_chunk(ROOT, 5, memoryview(data), compressed=compressed)
    assert got == expected and all(len(g) <= wire.NOISE_MAX_PLAINTEXT for g in got)
    assert whole.b.state.requested == pieces.b.state.requested
    assert whole.b.state.outstanding(wire.Side.THEM) == 0
    for plaintext, msg in zip(got, one_by_one, strict=True):
        assert whole.a.receive_chunk_piece(plaintext) == msg
    assert whole.a.state.outstanding(wire.Side.US) == 0


def test_send_chunk_checks_the_state_and_fields_once() -> None:
    p = Pair()
    with pytest.raises(wire.LocalProtocolError):  # before Hello
        p.a.send_chunk(ROOT, 0, b"x")
    p.greet()
    assert p.a.send_chunk(ROOT, 0, b"") == []
    for bad in (
        dict(root=b"short", index=0, data=b"x"),
        dict(root=ROOT, index=2**32, data=b"x"),
        dict(root=ROOT, index=0, data=bytes(wire._limits.MAX_CHUNK_SIZE + 1)),
    ):
        with pytest.raises(wire.LocalProtocolError):
            p.a.send_chunk(**bad)  # type: ignore[arg-type]
