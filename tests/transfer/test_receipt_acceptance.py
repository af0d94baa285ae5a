"""A provider acks receipts only for what it served on that connection (real TCP, LevelDB).

The issue measured a provider acknowledging receipts for 10x the bytes it served, for roots it
does not hold and on connections that carried nothing, with any issuedAt. Here a hand-driven
receiver connects to a real ``serve_node`` and tries each of those, and honest receipts.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import trio
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from node.identity import Identity
from node.receipt import Receipt, ReceiptDomain, SignedReceipt, payment_for, sign_receipt
from node.transfer import (
    ConnectionCredit,
    ReceiptBox,
    ReceiptPolicy,
    ReceiptRefused,
    default_receipt_domain,
    serve_node,
)
from node.transport import PeerConnection, open_peer_connection
from node.wire import (
    ChunkData,
    ErrorCode,
    ErrorMsg,
    HaveAll,
    Kind,
    ManifestMsg,
    Message,
    Price,
    ReceiptAck,
    ReceiptMsg,
    Request,
    Want,
)

from .._hyp import examples
from .helpers import make_identity, store_with

CHUNK = 256 * 1024
PRICE = 3 * 10**15
DOMAIN = default_receipt_domain()


@dataclass
class Served:
    host: str
    port: int
    provider: Identity
    receiver: Identity
    root: bytes
    other_root: bytes  # held by the provider, never sent on the test connections
    box: ReceiptBox


@asynccontextmanager
async def provider_node(tmp_path: Path) -> AsyncIterator[Served]:
    provider, receiver = make_identity(), make_identity()
    src, root, _ = store_with(tmp_path / "a", 4 * CHUNK, chunk_size=CHUNK)
    (tmp_path / "other.bin").write_bytes(b"x" * 1000)
    other = src.add_file(tmp_path / "other.bin", chunk_size=CHUNK).root
    box = ReceiptBox.open(tmp_path / "receipts")
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(
            lambda task_status: serve_node(
                src, provider, receipt_box=box, price_per_gib=PRICE, task_status=task_status
            )
        )
        yield Served(host, port, provider, receiver, root, other, box)
        nursery.cancel_scope.cancel()
    box.close()
    src.close()


async def connect(s: Served, who: Identity | None = None) -> PeerConnection:
    return await open_peer_connection(s.host, s.port, who or s.receiver, s.provider.address)


async def next_of(conn: PeerConnection, *kinds: type) -> Message:
    while True:
        msg = await conn.receive()
        if isinstance(msg, kinds):
            return msg


async def fetch_chunks(conn: PeerConnection, root: bytes, indices: tuple[int, ...]) -> int:
    """Want + Request ``indices``; returns the bytes received. Checks the Price comes first."""
    await conn.send(Want(root))
    assert isinstance(await conn.receive(), ManifestMsg)
    price = await conn.receive()
    assert isinstance(price, Price) and price.price_per_gib == PRICE
    assert isinstance(await conn.receive(), HaveAll)
    await conn.send(Request(root, 1, indices))
    got = 0
    done: set[int] = set()
    while len(done) < len(indices):
        msg = await next_of(conn, ChunkData)
        assert isinstance(msg, ChunkData)
        got += len(msg.data)
        if msg.is_last:
            done.add(msg.index)
    return got


def make(s: Served, who: Identity | None = None, **kw: object) -> SignedReceipt:
    signer = who or s.receiver
    fields: dict[str, object] = {
        "content_root": s.root,
        "provider": s.provider.address,
        "receiver": signer.address,
        "bytes_served": CHUNK,
        "chunks": 1,
        "payment": payment_for(CHUNK, PRICE),
        "nonce": time.time_ns(),
        "issued_at": int(time.time()),
    }
    fields.update(kw)
    if "payment" not in kw:
        nbytes = fields["bytes_served"]
        assert isinstance(nbytes, int)
        fields["payment"] = payment_for(nbytes, PRICE)
    return sign_receipt(signer.account, Receipt(**fields), DOMAIN)  # type: ignore[arg-type]


async def submit(conn: PeerConnection, signed: SignedReceipt) -> str:
    """``"ack"`` or the refusal reason from the provider's BAD_RECEIPT."""
    await conn.send(ReceiptMsg(signed))
    msg = await next_of(conn, ReceiptAck, ErrorMsg)
    if isinstance(msg, ReceiptAck):
        assert msg.nonce == signed.receipt.nonce and msg.root == signed.receipt.content_root
        return "ack"
    assert isinstance(msg, ErrorMsg)
    assert msg.code == ErrorCode.BAD_RECEIPT and msg.ref_kind == Kind.RECEIPT
    return ReceiptRefused.from_message(msg.message).reason


async def test_provider_refuses_dishonest_receipts_and_accepts_honest_ones(
    tmp_path: Path,
) -> None:
    with trio.fail_after(60):
        async with provider_node(tmp_path) as s:
            conn = await connect(s)
            served = await fetch_chunks(conn, s.root, (0, 1))
            assert served == 2 * CHUNK
            stranger = make_identity()
            now = int(time.time())
            cases = {
                "ten times the bytes": (make(s, bytes_served=10 * served), "exceeds-served"),
                "one byte too many": (make(s, bytes_served=served + 1), "exceeds-served"),
                "more chunks than sent": (make(s, bytes_served=CHUNK, chunks=3), "exceeds-served"),
                "root held, not sent here": (make(s, content_root=s.other_root), "root-not-served"),
                "root not held": (make(s, content_root=b"\x07" * 32), "root-not-served"),
                "someone else's receipt": (make(s, who=stranger), "wrong-receiver"),
                "for another provider": (
                    make(s, provider=stranger.address),
                    "not-provider",
                ),
                "stale": (make(s, issued_at=now - 3600), "clock-skew"),
                "from the future": (make(s, issued_at=now + 3600), "clock-skew"),
                "underpaid by one wei": (
                    make(s, payment=payment_for(CHUNK, PRICE) - 1),
                    "underpaid",
                ),
                "empty": (make(s, bytes_served=0, chunks=0, payment=0), "empty"),
            }
            for name, (receipt, reason) in cases.items():
                assert await submit(conn, receipt) == reason, name
            other_domain = ReceiptDomain(DOMAIN.chain_id + 1, DOMAIN.verifying_contract)
            r = make(s).receipt
            forged = sign_receipt(s.receiver.account, r, other_domain)
            assert await submit(conn, forged) == "signature"
            assert s.box.counts()["pending"] == 0, "nothing refused may reach the outbox"

            # Honest: less than served is fine, then the rest; then nothing is left.
            first = make(s, bytes_served=CHUNK // 2, chunks=0)
            assert await submit(conn, first) == "ack"
            rest = make(s, bytes_served=served - CHUNK // 2, chunks=2)
            assert await submit(conn, rest) == "ack"
            assert await submit(conn, make(s, bytes_served=1, chunks=0)) == "exceeds-served"
            assert s.box.pending() == [first, rest]
            await conn.aclose()

            # A connection that transferred nothing earns nothing.
            idle = await connect(s)
            assert await submit(idle, make(s)) == "root-not-served"

            # Replayed on a connection that did serve: refused by nonce, once ever.
            assert await fetch_chunks(idle, s.root, (2,)) == CHUNK
            assert await submit(idle, first) == "nonce-used"
            assert await submit(idle, make(s)) == "ack"
            await idle.aclose()
            assert s.box.counts()["pending"] == 3


def test_credit_is_per_root_and_not_cumulative() -> None:
    """Sans-IO: each receipt consumes what it claims; overpaying is fine, the check is >=."""
    receiver = Account.create()
    provider = Account.create().address
    credit = ConnectionCredit()
    policy = ReceiptPolicy(price_per_gib=PRICE, max_skew=5)
    root = b"\x01" * 32
    credit.record(root, 100)
    credit.record(root, 100)

    def rcpt(nbytes: int, chunks: int, payment: int | None = None) -> SignedReceipt:
        pay = payment_for(nbytes, PRICE) if payment is None else payment
        r = Receipt(root, provider, receiver.address, nbytes, chunks, pay, 1, 1000)
        return sign_receipt(receiver, r, DOMAIN)

    kw: dict[str, Any] = {
        "provider": provider,
        "peer": receiver.address,
        "domain": DOMAIN,
        "policy": policy,
    }
    a = rcpt(150, 1, payment=10**18)  # overpaying is the receiver's business
    credit.check(a, now=1004, **kw)
    credit.settle(a)
    assert credit.unreceipted(root) == (50, 1)
    with pytest.raises(ReceiptRefused) as info:
        credit.check(rcpt(51, 1), now=1000, **kw)
    assert info.value.reason == "exceeds-served"
    with pytest.raises(ReceiptRefused) as info:
        credit.check(rcpt(50, 1), now=1006, **kw)
    assert info.value.reason == "clock-skew"
    credit.check(rcpt(50, 1), now=995, **kw)
    assert replace(policy, price_per_gib=0).price_per_gib == 0
    with pytest.raises(ValueError):
        ReceiptPolicy(price_per_gib=1 << 128)


async def test_provider_without_box_refuses_every_receipt(tmp_path: Path) -> None:
    provider, receiver = make_identity(), make_identity()
    src, root, _ = store_with(tmp_path / "a", CHUNK, chunk_size=CHUNK)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(
                lambda task_status: serve_node(
                    src, provider, price_per_gib=PRICE, task_status=task_status
                )
            )
            s = Served(host, port, provider, receiver, root, root, None)  # type: ignore[arg-type]
            conn = await connect(s)
            assert await fetch_chunks(conn, root, (0,)) == CHUNK
            assert await submit(conn, make(s)) == "not-accepted"
            await conn.aclose()
            nursery.cancel_scope.cancel()
    src.close()


_RECEIVER = Account.from_key(b"\x44" * 32)
_PROVIDER = Account.from_key(b"\x55" * 32).address


@settings(max_examples=examples(30), deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("serve"), st.integers(1, 1 << 20), st.just(0)),
            st.tuples(st.just("claim"), st.integers(1, 3 << 20), st.integers(0, 4)),
        ),
        max_size=16,
    )
)
def test_accepted_never_exceeds_served(ops: list[tuple[str, int, int]]) -> None:
    """Whatever a receiver claims, in whatever order, the accepted receipts never add up to
    more than was sent, and every claim within what is left is accepted."""
    credit = ConnectionCredit()
    policy = ReceiptPolicy(price_per_gib=PRICE)
    root = b"\x09" * 32
    served = served_chunks = accepted = accepted_chunks = 0
    for nonce, (op, n, chunks) in enumerate(ops):
        if op == "serve":
            credit.record(root, n)
            served, served_chunks = served + n, served_chunks + 1
            continue
        r = Receipt(root, _PROVIDER, _RECEIVER.address, n, chunks, payment_for(n, PRICE), nonce, 50)
        signed = sign_receipt(_RECEIVER, r, DOMAIN)
        fits = served > 0 and n <= served - accepted and chunks <= served_chunks - accepted_chunks
        try:
            credit.check(
                signed, provider=_PROVIDER, peer=_RECEIVER.address, domain=DOMAIN,
                policy=policy, now=60,
            )  # fmt: skip
        except ReceiptRefused as exc:
            assert not fits, exc
            assert exc.reason in ("exceeds-served", "root-not-served")
            continue
        assert fits
        credit.settle(signed)
        accepted, accepted_chunks = accepted + n, accepted_chunks + chunks
        assert accepted <= served and accepted_chunks <= served_chunks
