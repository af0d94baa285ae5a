"""ReceiptBox outbox on a real LevelDB: states, no head-of-line blocking, crash reconciliation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import plyvel
import pytest
from eth_account import Account

from node.receipt import Receipt, ReceiptDomain, SignedReceipt, sign_receipt
from node.transfer import ReceiptBox, ReceiptBoxError
from node.transfer._receipts import NONCE_BLOCK

RECEIVERS = [Account.from_key(bytes([i + 1]) * 32) for i in range(2)]
PROVIDER = Account.from_key(b"\x33" * 32).address
DOMAIN = ReceiptDomain(1, "0x" + "ab" * 20)
T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def signed(nonce: int, *, receiver: int = 0, nbytes: int = 1000) -> SignedReceipt:
    acct = RECEIVERS[receiver]
    r = Receipt(b"\x01" * 32, PROVIDER, acct.address, nbytes, 1, nbytes, nonce, int(T0))
    return sign_receipt(acct, r, DOMAIN)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def box(tmp_path: Path, clock: Clock) -> Iterator[ReceiptBox]:
    b = ReceiptBox.open(tmp_path / "box", clock=clock)
    yield b
    b.close()


def test_add_is_idempotent_per_receiver_nonce(box: ReceiptBox) -> None:
    assert box.add(signed(1))
    assert not box.add(signed(1))
    assert box.add(signed(1, receiver=1))  # same nonce, other receiver
    assert box.has(RECEIVERS[0].address, 1) and not box.has(RECEIVERS[0].address, 2)
    assert box.counts()["pending"] == 2


def test_far_future_deferred_receipts_do_not_block_a_valid_one(
    box: ReceiptBox, clock: Clock
) -> None:
    """The issue's attack: 100 receipts the chain keeps deferring used to be re-read every
    round ahead of a legitimate one (101 pending, 0 on chain)."""
    bad = [signed(i) for i in range(100)]
    for s in bad:
        box.add(s)
    box.defer(bad, until=T0 + 10**9, reason="IssuedInFuture")
    clock.now += 1
    good = signed(1000, receiver=1)
    box.add(good)
    assert box.pending(100) == [good]
    assert box.pending(1) == [good]
    c = box.counts()
    assert c["deferred"] == 100 and c["pending"] == 1
    box.mark_submitted([good], "0xaa")
    assert box.pending(100) == []
    # Their time comes: they are handed out again, in order.
    assert box.pending(5, now=T0 + 10**9) == bad[:5]


def test_pending_orders_by_retry_time_then_sequence(box: ReceiptBox, clock: Clock) -> None:
    a, b, c = signed(1), signed(2), signed(3)
    for s in (a, b, c):
        box.add(s)
        clock.now += 1
    box.defer([a], until=clock.now + 5, reason="InsufficientEscrow")
    assert box.pending() == [b, c]
    clock.now += 10
    d = signed(4)
    box.add(d)  # queued at its arrival time, after a's retry time
    assert box.pending() == [b, c, a, d]
    rec = box.get(a)
    assert rec is not None and rec.state == "deferred" and rec.reason == "InsufficientEscrow"


def test_inflight_survives_reopen_and_reconciles(tmp_path: Path, clock: Clock) -> None:
    """mark_inflight is written before the tx; after a crash the box says which receipts
    went in which tx instead of leaving them pending (resubmitted: NonceUsed -> 'rejected')."""
    path = tmp_path / "box"
    items = [signed(i) for i in range(6)]
    with ReceiptBox.open(path, clock=clock) as box:
        for s in items:
            box.add(s)
        assert box.mark_inflight(items[:4], "0xfeed") == 4
        assert box.pending() == items[4:]
        # crash here: the batch was mined, mark_submitted never ran
    with ReceiptBox.open(path, clock=clock) as box:
        assert box.inflight() == [(s, "0xfeed") for s in items[:4]]
        assert box.pending() == items[4:]
        c = box.counts()
        assert c["inflight"] == 4 and c["pending"] == 2
        assert c["bytes_pending"] == 6000 and c["payment_pending"] == 6000
        # reconcile: 0..2 are on chain, 3 is not
        box.mark_submitted(items[:3], "0xfeed")
        clock.now += 1
        box.requeue(items[3:4])  # queued again now: behind what was already waiting
        assert box.inflight() == []
        assert box.pending() == [*items[4:], items[3]]
        # a late, wrong verdict does not undo what the chain credited
        assert box.mark_rejected(items[:1], "NonceUsed") == 0
        got = box.get(items[0])
        assert got is not None and got.state == "submitted" and got.tx == "0xfeed"
        assert box.counts() == {
            "pending": 3,
            "deferred": 0,
            "inflight": 0,
            "submitted": 3,
            "rejected": 0,
            "bytes_pending": 3000,
            "payment_pending": 3000,
        }


def test_counts_match_states_after_mixed_transitions(box: ReceiptBox) -> None:
    items = [signed(i) for i in range(10)]
    for s in items:
        box.add(s)
    box.mark_inflight(items[:6], "0x1")
    box.mark_submitted(items[:3], "0x1")
    box.mark_rejected(items[3:4], "Underpaid")
    box.defer(items[4:6], until=T0 + 60, reason="IssuedInFuture")
    box.defer(items[6:7] * 2, until=T0 + 60, reason="IssuedInFuture")  # duplicate in a batch
    by_state: dict[str, int] = {}
    for rec in box.list():
        by_state[rec.state] = by_state.get(rec.state, 0) + 1
    counts = box.counts()
    for state in ("pending", "deferred", "inflight", "submitted", "rejected"):
        assert counts[state] == by_state.get(state, 0), state
    assert counts["deferred"] == 3 and counts["pending"] == 3
    open_recs = [r for r in box.list() if r.state in ("pending", "deferred", "inflight")]
    assert counts["bytes_pending"] == sum(r.receipt.receipt.bytes_served for r in open_recs)
    assert counts["payment_pending"] == sum(r.receipt.receipt.payment for r in open_recs) == 6000


def test_v1_box_is_refused_not_misread(tmp_path: Path) -> None:
    path = tmp_path / "old"
    db = plyvel.DB(str(path), create_if_missing=True)
    db.put(b"m/seq", (1).to_bytes(8, "big"))
    db.put(b"r/" + (1).to_bytes(8, "big"), json.dumps({"state": "pending"}).encode())
    db.close()
    with pytest.raises(ReceiptBoxError, match="v1"):
        ReceiptBox.open(path)


def test_next_nonce_is_unique_and_persistent(tmp_path: Path) -> None:
    """Consecutive within a run; a reopened box (or a killed process: the reservation is
    written before any nonce of its block is handed out) never hands out one seen before."""
    with ReceiptBox.open(tmp_path / "b") as box:
        first = [box.next_nonce() for _ in range(3)]
        assert first == list(range(first[0], first[0] + 3))
    with ReceiptBox.open(tmp_path / "b") as box:
        second = [box.next_nonce() for _ in range(NONCE_BLOCK + 5)]  # crosses a block
    with ReceiptBox.open(tmp_path / "b") as box:
        third = box.next_nonce()
    assert second[0] == first[0] + NONCE_BLOCK  # the rest of the first block is skipped
    assert second == list(range(second[0], second[0] + NONCE_BLOCK + 5))
    assert third > second[-1]
    assert len(set(first + second + [third])) == 3 + NONCE_BLOCK + 5 + 1
