"""Hypothesis strategies producing valid instances of every wire message kind."""

from __future__ import annotations

import ipaddress

from eth_utils import to_checksum_address
from hypothesis import strategies as st

from node import wire
from node.receipt import Receipt, ReceiptDomain, SignedReceipt
from node.wire import _limits

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFF_FFFF)
u64 = st.integers(0, 0xFFFF_FFFF_FFFF_FFFF)
u128 = st.integers(0, (1 << 128) - 1)
roots = st.binary(min_size=32, max_size=32)
codes = st.one_of(st.sampled_from(wire.ErrorCode), st.integers(13, 0xFFFF))
addresses = st.binary(min_size=20, max_size=20).map(to_checksum_address)


def text(max_bytes: int) -> st.SearchStrategy[str]:
    return st.text(max_size=max_bytes // 4)


def index_lists(max_size: int = 64) -> st.SearchStrategy[tuple[int, ...]]:
    return st.lists(u32, min_size=1, max_size=max_size, unique=True).map(tuple)


capabilities = st.builds(
    wire.Capabilities,
    flags=u32,
    max_message_size=st.integers(wire.MAX_MESSAGE_LEN, 0xFFFF_FFFF),
    max_outstanding=st.integers(1, 0xFFFF),
)


@st.composite
def chunk_roots(draw: st.DrawFn) -> wire.ChunkRoots:
    n = draw(st.integers(0, 40))
    start = draw(st.integers(0, 1000))
    total = draw(st.integers(start + n, start + n + 1000))
    return wire.ChunkRoots(
        draw(roots), start, total, draw(st.binary(min_size=32 * n, max_size=32 * n))
    )


@st.composite
def chunk_data(draw: st.DrawFn, max_piece: int = 2048) -> wire.ChunkData:
    data = draw(st.binary(min_size=1, max_size=max_piece))
    total = draw(st.integers(len(data), _limits.MAX_CHUNK_SIZE))
    offset = draw(st.integers(0, total - len(data)))
    kind = draw(st.sampled_from([wire.ChunkData, wire.ChunkDataZ]))  # raw, or a zstd frame's
    return kind(draw(roots), draw(u32), offset, total, data)


receipt_domains = st.builds(
    ReceiptDomain, st.integers(1, (1 << 256) - 1) | st.sampled_from([1, 31337]), addresses
)


@st.composite
def peer_entries(draw: st.DrawFn) -> wire.PeerEntry:
    """A valid Peers entry (IPv4 or IPv6, not unspecified/multicast/broadcast, port >= 1)."""
    if draw(st.booleans()):
        ip = draw(st.ip_addresses(v=4).filter(lambda a: not (a.is_unspecified or a.is_multicast)))
        ip = ip if str(ip) != "255.255.255.255" else ipaddress.IPv4Address("10.0.0.1")
    else:
        ip = draw(
            st.ip_addresses(v=6).filter(
                lambda a: not (a.is_unspecified or a.is_multicast or a.ipv4_mapped)
            )
        )
    addr = draw(st.binary(min_size=20, max_size=20).filter(any))
    return wire.PeerEntry(str(ip), draw(st.integers(1, 0xFFFF)), to_checksum_address(addr))


@st.composite
def peers_messages(draw: st.DrawFn) -> wire.Peers:
    entries = draw(
        st.lists(peer_entries(), max_size=wire.MAX_PEERS_PER_MESSAGE, unique_by=lambda e: e.address)
    )
    return wire.Peers(draw(roots), tuple(entries))


signed_receipts = st.builds(
    SignedReceipt,
    receipt=st.builds(Receipt, roots, addresses, addresses, u64, u32, u128, u64, u64),
    signature=st.binary(min_size=64, max_size=64).flatmap(
        lambda rs: st.sampled_from([27, 28]).map(lambda v: rs + bytes([v]))
    ),
)

messages: st.SearchStrategy[wire.Message] = st.one_of(
    st.builds(
        wire.Hello, st.just(wire.PROTOCOL_VERSION), capabilities, text(_limits.MAX_AGENT_LEN)
    ),
    st.builds(wire.Goodbye, codes, text(_limits.MAX_GOODBYE_TEXT)),
    st.builds(wire.Ping, u64),
    st.builds(wire.Pong, u64),
    st.builds(wire.ErrorMsg, codes, u32, u32, u8, text(_limits.MAX_ERROR_TEXT)),
    st.builds(wire.Want, roots),
    st.builds(wire.ManifestMsg, roots, st.binary(min_size=2, max_size=600)),
    st.builds(wire.NotFound, roots),
    st.builds(wire.GetChunkRoots, roots, u32, st.integers(1, wire.MAX_ROOTS_PER_PAGE)),
    chunk_roots(),
    st.builds(wire.Have, roots, u32.map(lambda x: x & ~7), st.binary(min_size=1, max_size=300)),
    st.builds(wire.HaveAll, roots),
    st.builds(wire.Price, roots, u128, st.none() | receipt_domains),
    st.builds(wire.Request, roots, st.integers(1, 0xFFFF_FFFF), index_lists()),
    chunk_data(),
    st.builds(wire.Cancel, roots, index_lists()),
    st.builds(wire.Progress, roots, u32, u64),
    st.builds(wire.Complete, roots),
    st.builds(wire.ReceiptMsg, signed_receipts),
    st.builds(wire.ReceiptAck, roots, u64),
    st.builds(wire.Announce, roots, u16),
    st.builds(wire.GetPeers, roots),
    peers_messages(),
)
