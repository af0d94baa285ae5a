"""The receipt domain on the wire (Price) and the Hello capability flags, honoured end to end.

Real ``serve_node`` and ``fetch`` over TCP on 127.0.0.1 with real LevelDB stores (issue 9:
"the receipt domain is never sent on the wire", "capability bits are never read").
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio

from node.receipt import Receipt, ReceiptDomain, payment_for, sign_receipt, verify_receipt
from node.store import Store
from node.transfer import (
    PeerAddr,
    Provider,
    ReceiptBox,
    ReceiptDomainMismatch,
    default_receipt_domain,
    fetch,
    serve_node,
)
from node.transport import LocalPeer, PeerConnection, open_peer_connection
from node.wire import (
    Capabilities,
    CapFlag,
    ChunkData,
    HaveAll,
    ManifestMsg,
    Price,
    ReceiptAck,
    ReceiptMsg,
    Request,
    Want,
)

from .helpers import make_identity, read_all, store_with

CHUNK = 256 * 1024
ANVIL = ReceiptDomain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")


async def test_independent_client_signs_under_the_domain_stated_in_price(tmp_path: Path) -> None:
    """A client that knows nothing of the provider's chain learns the domain from Price, and
    the receipt it signs under it is accepted (before: out of band only, else `signature`)."""
    provider, receiver = make_identity(), make_identity()
    src, root, _ = store_with(tmp_path / "a", 2 * CHUNK, chunk_size=CHUNK)
    box = ReceiptBox.open(tmp_path / "receipts")
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(
                lambda task_status: serve_node(
                    src, provider, receipt_box=box, receipt_domain=ANVIL, task_status=task_status
                )
            )
            conn = await open_peer_connection(host, port, receiver, provider.address)
            assert conn.peer_hello is not None
            base = CapFlag.PROVIDER | CapFlag.PARTIAL | CapFlag.RECEIPTS
            assert conn.peer_hello.capabilities.flags & 0x7 == int(base)
            await conn.send(Want(root))
            assert isinstance(await conn.receive(), ManifestMsg)
            price = await conn.receive()
            assert isinstance(price, Price) and price.domain == ANVIL
            assert isinstance(await conn.receive(), HaveAll)
            await conn.send(Request(root, 1, (0,)))
            got = 0
            while got < CHUNK:
                msg = await conn.receive()
                if isinstance(msg, ChunkData):
                    got += len(msg.data)
            receipt = Receipt(
                content_root=root,
                provider=provider.address,
                receiver=receiver.address,
                bytes_served=CHUNK,
                chunks=1,
                payment=payment_for(CHUNK, price.price_per_gib),
                nonce=7,
                issued_at=int(time.time()),
            )
            await conn.send(ReceiptMsg(sign_receipt(receiver.account, receipt, price.domain)))
            while not isinstance(ack := await conn.receive(), ReceiptAck):
                pass
            assert ack.nonce == 7
            await conn.aclose()
            nursery.cancel_scope.cancel()
    (stored,) = box.pending()
    assert verify_receipt(stored, ANVIL, expected_provider=provider.address)
    box.close()


async def test_provider_without_receipts_states_no_domain_and_gets_none(tmp_path: Path) -> None:
    """No receipt box: no RECEIPTS flag, a 48-byte Price; the receiver sends it no receipt and
    no Complete (before: every receipt was sent and refused as `not-accepted`)."""
    provider, receiver = make_identity(), make_identity()
    src, root, data = store_with(tmp_path / "a", 3 * CHUNK + 9, chunk_size=CHUNK)
    dst = Store.open(tmp_path / "b", durable=False)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:

            async def run(task_status: trio.TaskStatus[tuple[str, int]]) -> None:
                await serve_node(src, provider, task_status=task_status)

            host, port = await nursery.start(run)
            result = await fetch(
                dst,
                receiver,
                root,
                [PeerAddr(host, port, provider.address)],
                receipt_domain=default_receipt_domain(),
            )
            nursery.cancel_scope.cancel()
    assert read_all(dst, root) == data
    report = result.providers[provider.address]
    assert report.bytes == len(data)
    assert report.receipts == [] and report.receipts_refused == []


async def test_provider_stating_another_domain_is_not_used(tmp_path: Path) -> None:
    a, b, receiver = make_identity(), make_identity(), make_identity()
    src_a, root, data = store_with(tmp_path / "a", 3 * CHUNK, chunk_size=CHUNK)
    src_b = Store.open(tmp_path / "bstore", durable=False)
    src_b.add_file(tmp_path / "a" / "src.bin", chunk_size=CHUNK)
    box_a, box_b = ReceiptBox.open(tmp_path / "ra"), ReceiptBox.open(tmp_path / "rb")
    mine = default_receipt_domain()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            ha, pa = await nursery.start(
                lambda task_status: serve_node(
                    src_a, a, receipt_box=box_a, receipt_domain=ANVIL, task_status=task_status
                )
            )
            hb, pb = await nursery.start(
                lambda task_status: serve_node(
                    src_b, b, receipt_box=box_b, receipt_domain=mine, task_status=task_status
                )
            )
            with pytest.raises(ReceiptDomainMismatch, match="31337"):
                await fetch(
                    Store.open(tmp_path / "x", durable=False),
                    receiver,
                    root,
                    [(ha, pa, a.address)],
                    receipt_domain=mine,
                )
            dst = Store.open(tmp_path / "dst", durable=False)
            result = await fetch(
                dst, receiver, root, [(ha, pa, a.address), (hb, pb, b.address)], receipt_domain=mine
            )
            nursery.cancel_scope.cancel()
    assert read_all(dst, root) == data
    assert list(result.providers) == [b.address]
    assert "ReceiptDomainMismatch" in result.refused[a.address]
    assert box_a.pending() == [] and sum(r.receipt.bytes_served for r in box_b.pending()) == len(
        data
    )


async def test_peer_without_provider_flag_is_not_asked(tmp_path: Path) -> None:
    """A node whose Hello lacks PROVIDER gets no Want (before: it was asked and used)."""
    shy, honest, receiver = make_identity(), make_identity(), make_identity()
    src_s, root, data = store_with(tmp_path / "s", 4 * CHUNK, chunk_size=CHUNK)
    src_h = Store.open(tmp_path / "hstore", durable=False)
    src_h.add_file(tmp_path / "s" / "src.bin", chunk_size=CHUNK)
    receive_only = LocalPeer.from_identity(shy, Capabilities(flags=int(CapFlag.RECEIPTS)))
    dst = Store.open(tmp_path / "dst", durable=False)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            hs, ps = await nursery.start(
                lambda task_status: serve_node(src_s, receive_only, task_status=task_status)
            )
            hh, ph = await nursery.start(
                lambda task_status: serve_node(src_h, honest, task_status=task_status)
            )
            result = await fetch(
                dst, receiver, root, [(hs, ps, shy.address), (hh, ph, honest.address)]
            )
            nursery.cancel_scope.cancel()
    assert read_all(dst, root) == data
    assert list(result.providers) == [honest.address]
    assert result.refused[shy.address].startswith("not a provider")
    assert result.providers[honest.address].bytes == len(data)


async def test_fetch_advertises_receive_only_flags(tmp_path: Path) -> None:
    """`get` advertises BULK, RECEIPTS when it signs receipts, and COMPRESS unless told not to
    (never PROVIDER)."""
    provider = make_identity()
    src, root, _ = store_with(tmp_path / "a", CHUNK, chunk_size=CHUNK)
    seen: list[int] = []

    class Recording(Provider):
        async def handle(self, conn: PeerConnection) -> None:
            assert conn.peer_hello is not None
            seen.append(conn.peer_hello.capabilities.flags)
            await super().handle(conn)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(
                lambda task_status: serve_node(
                    src,
                    provider,
                    provider=Recording(src, provider.address),
                    task_status=task_status,
                )
            )
            for i, (domain, compress) in enumerate(
                [(None, False), (default_receipt_domain(), False), (None, True)]
            ):
                await fetch(
                    Store.open(tmp_path / f"d{i}", durable=False),
                    make_identity(),
                    root,
                    [(host, port, None)],
                    receipt_domain=domain,
                    compress=compress,
                )
            nursery.cancel_scope.cancel()
    bulk = int(CapFlag.BULK)  # every fetch takes bulk chunks (docs/protocol.md 5.14b)
    assert seen == [bulk, bulk | CapFlag.RECEIPTS, bulk | CapFlag.COMPRESS]
