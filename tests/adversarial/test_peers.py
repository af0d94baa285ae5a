"""Hostile peers (issue 9) over real TCP on 127.0.0.1 with real LevelDB stores and ledger.

Provider side: out-of-range requests get typed, recoverable Errors; fatal protocol errors get
Error (code, ref_kind = the offending kind) then Goodbye with that code and a reason. Receiver
side: a lying, unparseable, silent or corrupting provider beside an honest one never fails the
fetch; a corrupting one is disconnected, never paid for the bad chunk, recorded in the
LocalLedger and not asked first next time; with no usable peer left the error names them all.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
import trio

from node.content import Manifest
from node.ledger import LocalLedger, open_ledger_db
from node.store import Store
from node.transfer import PeerAddr, Provider, ReceiptBox, default_receipt_domain, fetch, serve_node
from node.transfer._fetch import NoUsablePeer
from node.transport import LocalPeer, NoiseStream, PeerConnection, open_peer_connection
from node.wire import (
    NEED_DATA,
    ErrorCode,
    ErrorMsg,
    GetChunkRoots,
    Goodbye,
    HaveAll,
    Kind,
    ManifestMsg,
    MessageDecoder,
    Price,
    Request,
    Want,
    encode,
)

from ..transfer.helpers import make_identity, read_all, store_with

CHUNK = 256 * 1024


async def _served(nursery: trio.Nursery, store: Store, ident: Any, **kw: Any) -> tuple[str, int]:
    return await nursery.start(
        lambda task_status: serve_node(store, ident, task_status=task_status, **kw)
    )


async def _answers(stream: NoiseStream, seconds: float = 5.0) -> list[Any]:
    """Every message the server sends until it closes (decoded without a state machine)."""
    dec = MessageDecoder()
    out: list[Any] = []
    with trio.move_on_after(seconds):
        while True:
            try:
                plaintexts = await stream.receive_plaintexts()
            except Exception:
                break
            if not plaintexts:
                break
            for p in plaintexts:
                dec.receive_data(p)
            while (ev := dec.next_event()) is not NEED_DATA:
                out.append(ev)
    return out


# -- provider: typed errors -------------------------------------------------------------------


async def test_out_of_range_requests_get_typed_errors_and_connection_survives(
    tmp_path: Path,
) -> None:
    server, client = make_identity(), make_identity()
    src, root, _ = store_with(tmp_path / "a", 3 * CHUNK, chunk_size=CHUNK)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            host, port = await _served(nursery, src, server)
            conn = await open_peer_connection(host, port, client, server.address)
            await conn.send(Request(root, 7, (10**9,)))
            err = await conn.receive()
            assert isinstance(err, ErrorMsg)
            assert err.code == ErrorCode.OUT_OF_RANGE and err.request_id == 7
            assert err.ref_kind == Kind.REQUEST and "1000000000" in err.message
            await conn.send(GetChunkRoots(root, 10**6, 16))
            err = await conn.receive()
            assert isinstance(err, ErrorMsg) and err.code == ErrorCode.OUT_OF_RANGE
            assert err.ref_kind == Kind.GET_CHUNK_ROOTS
            await conn.send(Want(root))  # still open and serving
            assert isinstance(await conn.receive(), ManifestMsg)
            await conn.aclose()
            nursery.cancel_scope.cancel()


async def test_recoverable_errors_carry_the_offending_kind(tmp_path: Path) -> None:
    server, client = make_identity(), make_identity()
    src, root, _ = store_with(tmp_path / "a", CHUNK, chunk_size=CHUNK)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            host, port = await _served(nursery, src, server)
            conn = await open_peer_connection(host, port, client, server.address)
            short_want = struct.pack(">IB", 32, 0x10) + bytes(31)  # body 31 < 32
            unknown = struct.pack(">IB", 3, 0x7E) + b"zz"
            await conn.stream.send_plaintexts([short_want + unknown])
            first, second = await conn.receive(), await conn.receive()
            await conn.send(Want(root))
            assert isinstance(await conn.receive(), ManifestMsg)  # still open
            await conn.aclose()
            nursery.cancel_scope.cancel()
    assert isinstance(first, ErrorMsg) and first.code == ErrorCode.MALFORMED
    assert first.ref_kind == Kind.WANT
    assert isinstance(second, ErrorMsg) and second.code == ErrorCode.UNKNOWN_KIND
    assert second.ref_kind == 0x7E


FATAL = [
    ("length 0", b"\x00\x00\x00\x00\x00", ErrorCode.MALFORMED, 0),
    ("oversize Want", struct.pack(">IB", 34, 0x10) + bytes(33), ErrorCode.TOO_LARGE, Kind.WANT),
    ("second Hello", None, ErrorCode.PROTOCOL_VIOLATION, Kind.HELLO),
]


@pytest.mark.parametrize(("what", "raw", "code", "kind"), FATAL, ids=[f[0] for f in FATAL])
async def test_fatal_errors_answered_with_error_then_goodbye(
    tmp_path: Path, what: str, raw: bytes | None, code: ErrorCode, kind: int
) -> None:
    server, client = make_identity(), make_identity()
    src, _, _ = store_with(tmp_path / "a", CHUNK, chunk_size=CHUNK)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            host, port = await _served(nursery, src, server)
            conn = await open_peer_connection(host, port, client, server.address)
            payload = raw if raw is not None else encode(conn.wire.hello())
            await conn.stream.send_plaintexts([payload])
            got = await _answers(conn.stream)
            nursery.cancel_scope.cancel()
    errors = [m for m in got if isinstance(m, ErrorMsg)]
    goodbyes = [m for m in got if isinstance(m, Goodbye)]
    assert errors and errors[-1].code == code and errors[-1].ref_kind == kind, got
    assert goodbyes and goodbyes[-1].code == code and goodbyes[-1].reason, got
    assert got[-1] is goodbyes[-1]


async def test_want_before_hello_is_answered_not_a_bare_close(tmp_path: Path) -> None:
    server, client = make_identity(), make_identity()
    src, root, _ = store_with(tmp_path / "a", CHUNK, chunk_size=CHUNK)
    me = LocalPeer.from_identity(client)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            host, port = await _served(nursery, src, server)
            tcp = await trio.open_tcp_stream(host, port)
            stream = NoiseStream(tcp, initiator=True, static=me.static, identity_payload=me.payload)
            await stream.do_handshake()
            await stream.send_plaintexts([encode(Want(root))])
            got = await _answers(stream)
            nursery.cancel_scope.cancel()
    kinds = [type(m).__name__ for m in got]
    assert kinds[-2:] == ["ErrorMsg", "Goodbye"], kinds
    assert got[-2].code == ErrorCode.PROTOCOL_VIOLATION and got[-2].ref_kind == Kind.WANT
    assert got[-1].code == ErrorCode.PROTOCOL_VIOLATION and got[-1].reason


async def test_unknown_kind_before_hello_is_refused_and_server_survives(tmp_path: Path) -> None:
    """Before the fix a recoverable error before Hello escaped the connection task (it is no
    TransportError) and took the whole listener down."""
    server, client = make_identity(), make_identity()
    src, root, _ = store_with(tmp_path / "a", CHUNK, chunk_size=CHUNK)
    me = LocalPeer.from_identity(client)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            host, port = await _served(nursery, src, server)
            tcp = await trio.open_tcp_stream(host, port)
            stream = NoiseStream(tcp, initiator=True, static=me.static, identity_payload=me.payload)
            await stream.do_handshake()
            await stream.send_plaintexts([struct.pack(">IB", 3, 0x7F) + b"xy"])
            got = await _answers(stream)
            conn = await open_peer_connection(host, port, client, server.address)
            await conn.send(Want(root))
            assert isinstance(await conn.receive(), ManifestMsg)
            await conn.aclose()
            nursery.cancel_scope.cancel()
    kinds = [type(m).__name__ for m in got]
    assert kinds[-2:] == ["ErrorMsg", "Goodbye"], kinds
    assert got[-2].code == ErrorCode.UNKNOWN_KIND and got[-2].ref_kind == 0x7F
    assert got[-1].code == ErrorCode.UNKNOWN_KIND


# -- receiver: one bad peer never aborts the fetch ---------------------------------------------


class _LyingProvider(Provider):
    """Answers Want with a forged manifest (``forge(real) -> bytes``), then Price and HaveAll."""

    def __init__(self, *args: Any, forge: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.forge = forge

    async def _on_want(self, conn: PeerConnection, msg: Want) -> None:
        root = bytes(msg.root)
        real = self.store.get_manifest(root)
        await conn.send(
            ManifestMsg(root, self.forge(real)),
            Price(root, self.policy.price_per_gib),
            HaveAll(root),
        )


class _SilentProvider(Provider):
    async def _on_want(self, conn: PeerConnection, msg: Want) -> None:
        await trio.sleep_forever()


class _StallingProvider(Provider):
    """Offers the content honestly, takes Requests, never sends a chunk."""

    async def _sender(self, conn: PeerConnection, queue: Any) -> None:
        await trio.sleep_forever()


def _bigger(m: Manifest) -> bytes:
    d = m.to_dict()
    d["size"] = m.size + 3 * m.chunk_size
    return Manifest.from_dict(d).to_bytes()


def _garbage(m: Manifest) -> bytes:
    return b"{not a manifest"


def _bad_provider(kind: str, store: Store, address: str) -> Provider:
    if kind == "silent":
        return _SilentProvider(store, address)
    if kind == "stalling":
        return _StallingProvider(store, address)
    forge = {"bigger": _bigger, "garbage": _garbage}[kind]
    return _LyingProvider(store, address, forge=forge)


@pytest.mark.parametrize("kind", ["bigger", "garbage", "silent", "stalling"])
@pytest.mark.parametrize("bad_first", [True, False])
async def test_bad_provider_beside_honest_one_is_dropped_and_ranked_last(
    tmp_path: Path, kind: str, bad_first: bool
) -> None:
    bad_id, good_id, me = make_identity(), make_identity(), make_identity()
    good, root, data = store_with(tmp_path / "a", 12 * CHUNK + 17, chunk_size=CHUNK)
    bad = Store.open(tmp_path / "bad", durable=False)
    bad.add_file(tmp_path / "a" / "src.bin", chunk_size=CHUNK)
    db = open_ledger_db(str(tmp_path / "ledger"))
    ledger = LocalLedger(db)
    # the stall timer must fire before the honest peer has fetched everything
    slow = {"limit_rate": 2 * 1024 * 1024} if kind == "stalling" else {}
    try:
        with trio.fail_after(40):
            async with trio.open_nursery() as nursery:
                bh, bp = await _served(
                    nursery, bad, bad_id, provider=_bad_provider(kind, bad, bad_id.address)
                )
                gh, gp = await _served(nursery, good, good_id)
                peers = [PeerAddr(bh, bp, bad_id.address), PeerAddr(gh, gp, good_id.address)]
                if not bad_first:
                    peers.reverse()
                results = []
                for run in ("dst1", "dst2"):
                    dst = Store.open(tmp_path / run, durable=False)
                    t0 = trio.current_time()
                    results.append(
                        await fetch(
                            dst,
                            me,
                            root,
                            peers,
                            control_timeout=1.0,
                            stall_timeout=0.5,
                            initial_window=2,
                            ledger=ledger,
                            **slow,  # type: ignore[arg-type]
                        )
                    )
                    elapsed = trio.current_time() - t0
                    assert read_all(dst, root) == data
                    assert dst.get_manifest(root).size == len(data)
                nursery.cancel_scope.cancel()
        first, second = results
        assert first.providers[good_id.address].bytes >= 1
        if kind == "stalling":
            assert first.providers[bad_id.address].bytes == 0
            assert ledger.get(bad_id.address).timeouts >= 1
        else:
            assert bad_id.address in first.refused and bad_id.address not in first.providers
            assert first.providers[good_id.address].bytes == len(data)
        if kind == "silent":
            assert "no answer" in first.refused[bad_id.address] and elapsed < 10
            assert ledger.get(bad_id.address).timeouts >= 1
        if kind in ("bigger", "garbage"):
            assert ledger.get(bad_id.address).bad_chunks >= 1
        assert ledger.score(bad_id.address) < ledger.score(good_id.address)
        assert second.ranking[0] == good_id.address  # the known-bad peer is not asked first
    finally:
        db.close()


@pytest.mark.parametrize("kind", ["bigger", "garbage", "silent"])
async def test_only_bad_peers_fail_typed_naming_each(tmp_path: Path, kind: str) -> None:
    bad_id, me = make_identity(), make_identity()
    bad, root, _ = store_with(tmp_path / "a", 2 * CHUNK, chunk_size=CHUNK)
    dst = Store.open(tmp_path / "dst", durable=False)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            h, p = await _served(
                nursery, bad, bad_id, provider=_bad_provider(kind, bad, bad_id.address)
            )
            with pytest.raises(NoUsablePeer) as info:
                await fetch(dst, me, root, [PeerAddr(h, p, bad_id.address)], control_timeout=1.0)
            nursery.cancel_scope.cancel()
    assert bad_id.address in str(info.value) and bad_id.address in info.value.dropped
    assert info.value.retryable is (kind == "silent")
    assert not dst.has_content(root, partial=True)  # a lying manifest was never stored


class _WatchedProvider(Provider):
    """Remembers the Goodbye each connection ended with."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.goodbyes: list[Goodbye | None] = []

    async def handle(self, conn: PeerConnection) -> None:
        try:
            await super().handle(conn)
        finally:
            self.goodbyes.append(conn.goodbye)


def _corrupt_chunk_file(store: Store, root: bytes, index: int) -> None:
    cr = store.chunk_root_at(root, index)
    path = store._files.path(cr)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


async def test_corrupting_peer_disconnected_unpaid_for_it_and_ranked_last_next_time(
    tmp_path: Path,
) -> None:
    bad_id, good_id, me = make_identity(), make_identity(), make_identity()
    good, root, data = store_with(tmp_path / "a", 12 * CHUNK, chunk_size=CHUNK)
    bad = Store.open(tmp_path / "bad", durable=False)
    bad.add_file(tmp_path / "a" / "src.bin", chunk_size=CHUNK)
    for i in range(12):
        _corrupt_chunk_file(bad, root, i)
    bad_box = ReceiptBox.open(tmp_path / "bad-receipts")
    domain = default_receipt_domain()
    watched = _WatchedProvider(bad, bad_id.address, receipt_box=bad_box, receipt_domain=domain)
    db = open_ledger_db(str(tmp_path / "ledger"))
    try:
        ledger = LocalLedger(db)
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                bh, bp = await _served(nursery, bad, bad_id, provider=watched)
                gh, gp = await _served(nursery, good, good_id)
                peers = [PeerAddr(bh, bp, bad_id.address), PeerAddr(gh, gp, good_id.address)]
                first = await fetch(
                    Store.open(tmp_path / "dst1", durable=False),
                    me,
                    root,
                    peers,
                    receipt_domain=domain,
                    initial_window=2,
                    ledger=ledger,
                )
                with trio.fail_after(5):
                    while not watched.goodbyes:
                        await trio.sleep(0.05)
                dst2 = Store.open(tmp_path / "dst2", durable=False)
                second = await fetch(dst2, me, root, peers, initial_window=2, ledger=ledger)
                nursery.cancel_scope.cancel()
        report = first.providers[bad_id.address]
        assert report.corrupt_chunks >= 1 and report.bytes == 0
        assert report.receipts == [] and bad_box.pending() == []  # nothing for bad bytes
        gb = watched.goodbyes[0]
        assert gb is not None and gb.code == ErrorCode.BAD_CHUNK and "verification" in gb.reason
        # the provider heard the report, re-verified its copy and stopped serving it
        assert watched.stats.bad_chunk_reports >= 1 and watched.stats.quarantined >= 1
        assert all(r == root for r, _ in watched.quarantine)
        assert ledger.get(bad_id.address).bad_chunks >= 1
        assert ledger.get(good_id.address).chunks_ok >= 1
        assert ledger.score(bad_id.address) < ledger.score(good_id.address)
        assert second.ranking[0] == good_id.address
        assert read_all(dst2, root) == data
    finally:
        db.close()


class _NewerProvider(Provider):
    """Sends a message kind this version does not know before each Manifest."""

    async def _on_want(self, conn: PeerConnection, msg: Want) -> None:
        await conn.stream.send_plaintexts([struct.pack(">IB", 5, 0x7D) + b"news"])
        await super()._on_want(conn, msg)


async def test_unknown_kind_from_a_provider_is_skipped_not_fatal(tmp_path: Path) -> None:
    prov_id, me = make_identity(), make_identity()
    src, root, data = store_with(tmp_path / "a", 3 * CHUNK, chunk_size=CHUNK)
    dst = Store.open(tmp_path / "dst", durable=False)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            h, p = await _served(
                nursery, src, prov_id, provider=_NewerProvider(src, prov_id.address)
            )
            result = await fetch(dst, me, root, [PeerAddr(h, p, prov_id.address)])
            nursery.cancel_scope.cancel()
    assert read_all(dst, root) == data and result.providers[prov_id.address].bytes == len(data)
