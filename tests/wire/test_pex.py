"""The swarm extension's messages (docs/protocol.md 5.20-5.22): layouts, limits, hostile input.

Round trips of every kind (these included) are in ``test_codec.py``; here are the byte layouts
the doc states and the decoders' refusals: each malformed body is a recoverable, typed
``MalformedMessage`` naming the kind, never another exception.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node import wire
from node.wire import _limits

from .._hyp import examples
from .strategies import peers_messages

ROOT = bytes(range(32))
ADDR = "0x" + "ab" * 20


def _frame(kind: wire.Kind, body: bytes) -> bytes:
    return struct.pack(">IB", 1 + len(body), kind) + body


def _decode(data: bytes) -> wire.Message:
    dec = wire.MessageDecoder()
    dec.receive_data(data)
    ev = dec.next_event()
    assert not isinstance(ev, wire.Sentinel)
    return ev


def test_announce_layout() -> None:
    data = wire.encode(wire.Announce(ROOT, 7070))
    assert data == _frame(wire.Kind.ANNOUNCE, ROOT + bytes.fromhex("1b9e"))
    assert _decode(data) == wire.Announce(ROOT, 7070)


def test_peers_entry_layout_ipv4_is_mapped_into_ipv6() -> None:
    entry = wire.PeerEntry("127.0.0.1", 7070, ADDR)
    data = wire.encode(wire.Peers(ROOT, (entry,)))
    body = data[5:]
    assert len(body) == 32 + _limits.PEER_ENTRY_LEN == 70
    assert body[32:48] == bytes(10) + b"\xff\xff" + bytes([127, 0, 0, 1])
    assert body[48:50] == (7070).to_bytes(2, "big")
    assert body[50:70] == bytes.fromhex("ab" * 20)
    got = _decode(data)
    assert isinstance(got, wire.Peers)
    assert got.peers[0].host == "127.0.0.1" and got.peers[0].port == 7070
    assert got.peers[0].address.lower() == ADDR
    assert str(got.peers[0]).startswith("127.0.0.1:7070/0x")
    assert str(wire.PeerEntry("::1", 1, ADDR)) == f"[::1]:1/{ADDR}"


def test_empty_peers_and_the_cap() -> None:
    assert _decode(wire.encode(wire.Peers(ROOT, ()))) == wire.Peers(ROOT, ())
    full = tuple(
        wire.PeerEntry("10.0.0.1", 1 + i, "0x" + f"{i + 1:040x}")
        for i in range(wire.MAX_PEERS_PER_MESSAGE)
    )
    assert len(_decode(wire.encode(wire.Peers(ROOT, full))).peers) == 50  # type: ignore[attr-defined]
    with pytest.raises(wire.LocalProtocolError):
        wire.encode(wire.Peers(ROOT, (*full, wire.PeerEntry("10.0.0.2", 1, ADDR))))
    # 51 entries on the wire: the body is over the kind's cap, fatal before it is buffered
    body = ROOT + b"".join(
        bytes(10) + b"\xff\xff" + bytes([10, 0, 0, 1]) + struct.pack(">H", 1) + bytes([i + 1]) * 20
        for i in range(51)
    )
    dec = wire.MessageDecoder()
    dec.receive_data(_frame(wire.Kind.PEERS, body)[:5])
    with pytest.raises(wire.MessageTooLarge):
        dec.next_event()


@pytest.mark.parametrize(
    "bad",
    [
        wire.Announce(ROOT, 65536),
        wire.Announce(ROOT, -1),
        wire.Announce(b"short", 1),
        wire.GetPeers(b"x" * 31),
        wire.Peers(ROOT, (wire.PeerEntry("host.example", 1, ADDR),)),
        wire.Peers(ROOT, (wire.PeerEntry("10.0.0.1", 0, ADDR),)),
        wire.Peers(ROOT, (wire.PeerEntry("10.0.0.1", 1, "0x1234"),)),
        wire.Peers(ROOT, (wire.PeerEntry("10.0.0.1", 1, "0x" + "zz" * 20),)),
        wire.Peers(
            ROOT, (wire.PeerEntry("10.0.0.1", 1, ADDR), wire.PeerEntry("10.0.0.2", 2, ADDR))
        ),
    ],
)
def test_encode_refuses_bad_fields(bad: wire.Message) -> None:
    with pytest.raises(wire.LocalProtocolError):
        wire.encode(bad)


def _entry(ip: bytes, port: int = 1, address: bytes = b"\x11" * 20) -> bytes:
    return ip + struct.pack(">H", port) + address


V4 = bytes(10) + b"\xff\xff"


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (ROOT + b"\x00" * 37, "38 bytes each"),
        (ROOT + _entry(V4 + bytes(4)), "unusable IP"),
        (ROOT + _entry(bytes(16)), "unusable IP"),
        (ROOT + _entry(V4 + bytes([224, 0, 0, 1])), "unusable IP"),
        (ROOT + _entry(V4 + b"\xff" * 4), "unusable IP"),
        (ROOT + _entry(b"\xff\x02" + bytes(13) + b"\x01"), "unusable IP"),
        (ROOT + _entry(V4 + bytes([10, 0, 0, 1]), port=0), "port 0"),
        (ROOT + _entry(V4 + bytes([10, 0, 0, 1]), address=bytes(20)), "zero address"),
        (
            ROOT + _entry(V4 + bytes([10, 0, 0, 1])) + _entry(V4 + bytes([10, 0, 0, 2]), 2),
            "distinct",
        ),
    ],
)
def test_malformed_peers_is_recoverable_and_typed(body: bytes, why: str) -> None:
    dec = wire.MessageDecoder()
    dec.receive_data(_frame(wire.Kind.PEERS, body) + wire.encode(wire.GetPeers(ROOT)))
    with pytest.raises(wire.MalformedMessage, match=why) as info:
        dec.next_event()
    assert info.value.recoverable and info.value.kind == wire.Kind.PEERS
    assert dec.next_event() == wire.GetPeers(ROOT)  # the stream is still in sync


@pytest.mark.parametrize(
    ("kind", "size"),
    [
        (wire.Kind.ANNOUNCE, 33),
        (wire.Kind.ANNOUNCE, 35),
        (wire.Kind.GET_PEERS, 31),
        (wire.Kind.PEERS, 31),
    ],
)
def test_wrong_sizes_are_refused_from_the_header(kind: wire.Kind, size: int) -> None:
    dec = wire.MessageDecoder()
    dec.receive_data(_frame(kind, b"\x01" * size))
    with pytest.raises(wire.RemoteProtocolError):
        dec.next_event()


@settings(max_examples=examples(200))
@given(peers_messages(), st.data())
def test_any_truncation_or_bitflip_is_a_typed_error_or_a_valid_message(
    msg: wire.Peers, data: st.DataObject
) -> None:
    raw = bytearray(wire.encode(msg))
    if len(raw) > 5 + 32:
        i = data.draw(st.integers(5 + 32, len(raw) - 1))
        raw[i] ^= 1 << data.draw(st.integers(0, 7))
    cut = data.draw(st.integers(5 + 32, len(raw)))
    body = bytes(raw[5:cut])
    dec = wire.MessageDecoder()
    dec.receive_data(_frame(wire.Kind.PEERS, body))
    try:
        got = dec.next_event()
    except wire.MalformedMessage as exc:
        assert exc.recoverable
        return
    assert isinstance(got, wire.Peers)
    assert len({e.address for e in got.peers}) == len(got.peers)
    assert all(e.port >= 1 for e in got.peers)
    assert wire.decode_body(wire.Kind.PEERS, memoryview(wire.encode(got)[5:])) == got
