from __future__ import annotations

from pathlib import Path

import plyvel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.ledger import (
    LedgerError,
    LocalLedger,
    PayoutLedger,
    ProofFailed,
    ProofPassed,
    ReceiptCredited,
    open_ledger_db,
)

A = "0x" + "aa" * 20
B = "0x" + "bb" * 20
C = "0x" + "cc" * 20
ROOT = b"\x01" * 32


def receipt(key: str, provider: str, nbytes: int, epoch: int = 1) -> ReceiptCredited:
    return ReceiptCredited(key, epoch, provider, C, ROOT, nbytes, 1)


@pytest.fixture
def db(tmp_path: Path):
    d = open_ledger_db(str(tmp_path / "ledger"))
    yield d
    d.close()


def test_events_apply_once_and_survive_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "l")
    d = open_ledger_db(path)
    led = PayoutLedger(d)
    assert led.apply(receipt("tx1:0", A, 100))
    assert not led.apply(receipt("tx1:0", A, 100))  # replayed log: no double count
    assert led.apply(receipt("tx1:1", A, 50))
    assert led.apply(ProofPassed("tx2:0", 1, A, ROOT))
    d.close()
    d = plyvel.DB(path)
    (stats,) = PayoutLedger(d).epoch_stats(1)
    assert (stats.host, stats.served, stats.receipts, stats.passed, stats.failed) == (
        A,
        150,
        2,
        1,
        0,
    )
    d.close()


def test_allocation_rewards_served_bytes_and_penalises_failures(db) -> None:
    led = PayoutLedger(db)
    led.apply(receipt("r1", A, 1000))
    led.apply(receipt("r2", B, 1000))
    led.apply(ProofPassed("p1", 1, A, ROOT))
    led.apply(ProofFailed("f1", 1, B, ROOT))
    alloc = led.allocate(1, 10**18)
    amounts = dict(alloc.amounts)
    assert amounts[A] > amounts[B] > 0
    assert alloc.total <= 10**18
    assert led.allocate(2, 10**18).amounts == ()  # nothing served in epoch 2


def test_epochs_are_separate(db) -> None:
    led = PayoutLedger(db)
    led.apply(receipt("r1", A, 10, epoch=1))
    led.apply(receipt("r2", B, 10, epoch=2))
    assert [s.host for s in led.epoch_stats(1)] == [A]
    assert [s.host for s in led.epoch_stats(2)] == [B]


def test_rejects_bad_input(db) -> None:
    led = PayoutLedger(db)
    with pytest.raises(LedgerError):
        led.apply(receipt("r", "0x1234", 1))
    with pytest.raises(LedgerError):
        led.allocate(1, -1)


events = st.lists(
    st.tuples(
        st.sampled_from(["r", "p", "f"]),
        st.sampled_from([A, B, C]),
        st.integers(min_value=0, max_value=10**12),
    ),
    max_size=30,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(evs=events, budget=st.integers(min_value=0, max_value=10**24))
def test_allocation_never_exceeds_budget_and_is_order_independent(tmp_path_factory, evs, budget):
    def build(order):
        d = open_ledger_db(str(tmp_path_factory.mktemp("l")))
        led = PayoutLedger(d)
        for i in order:
            kind, who, n = evs[i]
            key = f"k{i}"
            if kind == "r":
                led.apply(receipt(key, who, n))
            elif kind == "p":
                led.apply(ProofPassed(key, 1, who, ROOT))
            else:
                led.apply(ProofFailed(key, 1, who, ROOT))
        alloc = led.allocate(1, budget)
        d.close()
        return alloc

    fwd = build(range(len(evs)))
    rev = build(reversed(range(len(evs))))
    assert fwd == rev
    assert fwd.total <= budget
    assert all(a > 0 for _, a in fwd.amounts)


def test_local_ledger_scores(db) -> None:
    loc = LocalLedger(db)
    for _ in range(5):
        loc.record_chunk(A, 1 << 20, 0.01, now=1.0)
        loc.record_chunk(B, 1 << 20, 0.01, now=1.0)
    loc.record_bad_chunk(B, now=2.0)
    assert loc.score(A) > loc.score(B)
    rec = loc.get(A)
    assert rec.chunks_ok == 5 and rec.bad_chunks == 0
    assert rec.throughput_bps == pytest.approx(100 * (1 << 20))
    assert {r.address for r in loc.all()} == {A, B}
