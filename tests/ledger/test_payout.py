"""PayoutLedger on a real LevelDB: idempotent, crash-safe, unbounded, hostile-input-proof,
deterministic, and snapshotted per epoch."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import plyvel
import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.ledger import (
    Allocation,
    FailReason,
    HostEpoch,
    LedgerError,
    LedgerEvent,
    PayoutLedger,
    ProofFailed,
    ProofPassed,
    ReceiptPaid,
    Reputation,
    ReputationParams,
    RewardParams,
    StoragePaid,
    allocate_amounts,
    open_ledger_db,
    update_reputation,
)

from .._hyp import examples

A = "0x" + "aa" * 20
B = "0x" + "bb" * 20
C = "0x" + "cc" * 20
RX = "0x" + "ee" * 20
ROOT = b"\x01" * 32
GWEI = 10**9
U64 = 2**64 - 1
PARAMS = ReputationParams()
REPO = Path(__file__).resolve().parents[2]


def paid(
    key: str, provider: Any = A, epoch=1, nbytes=1 << 30, payment=10 * GWEI, fee=GWEI
) -> ReceiptPaid:
    return ReceiptPaid(key, epoch, provider, RX, ROOT, nbytes, payment, fee)


def storage(key, host=A, epoch=1, amount=10 * GWEI, fee=GWEI) -> StoragePaid:
    return StoragePaid(key, epoch, host, ROOT, 3, amount, fee)


def passed(key, host=A, epoch=1) -> ProofPassed:
    return ProofPassed(key, epoch, host, ROOT, 3, True)


def failed(key, host=A, epoch=1, reason="expired") -> ProofFailed:
    return ProofFailed(key, epoch, host, ROOT, 3, reason, reason == "invalid", 10**15)


@pytest.fixture
def db(tmp_path: Path):
    d = open_ledger_db(str(tmp_path / "ledger"))
    yield d
    d.close()


def dump(d: plyvel.DB) -> list[tuple[bytes, bytes]]:
    return list(d.iterator())


# -- tallies ---------------------------------------------------------------------------------


def test_each_event_kind_lands_in_its_tallies(db) -> None:
    led = PayoutLedger(db)
    assert led.apply(paid("r1", nbytes=100, payment=7, fee=2))
    assert led.apply(paid("r2", nbytes=50, payment=3, fee=1))
    assert led.apply(storage("s1", amount=11, fee=4))
    assert led.apply(passed("p1"))
    assert led.apply(failed("f1", reason="expired"))
    assert led.apply(failed("f2", reason="invalid"))
    assert led.apply(paid("r3", provider=B, epoch=2, nbytes=5, payment=1, fee=0))
    assert led.epoch_stats(1) == [
        HostEpoch(A, 150, 2, 10, 3, 11, 4, 1, 1, 1),
    ]
    assert led.epoch_stats(2) == [HostEpoch(B, 5, 1, 1, 0, 0, 0, 0, 0, 0)]
    assert led.epoch_stats(3) == []
    # the receiver is not credited with anything
    assert RX not in {s.host for s in led.epoch_stats(1)}


def test_addresses_are_case_insensitive(db) -> None:
    led = PayoutLedger(db)
    led.apply(paid("r1", provider="0x" + "AA" * 20))
    led.apply(paid("r2", provider=A))
    (stats,) = led.epoch_stats(1)
    assert stats.host == A and stats.receipts == 2


def test_events_apply_once_and_survive_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "l")
    d = open_ledger_db(path)
    led = PayoutLedger(d)
    evs: list[LedgerEvent] = [paid("tx1:0"), paid("tx1:1"), passed("tx2:0"), storage("tx3:0")]
    assert [led.apply(e) for e in evs] == [True] * 4
    assert not led.apply(paid("tx1:0"))  # replayed log: no double count
    before, alloc = led.epoch_stats(1), led.allocate(1, 10**18)
    d.close()
    d = plyvel.DB(path)
    led = PayoutLedger(d)
    assert [led.apply(e) for e in evs] == [False] * 4  # seen markers survived
    assert led.epoch_stats(1) == before
    assert led.allocate(1, 10**18) == alloc
    assert led.reputation(A).passes == 1
    d.close()


def test_a_key_seen_once_is_never_applied_again_even_with_other_content(db) -> None:
    led = PayoutLedger(db)
    assert led.apply(paid("k", nbytes=10))
    assert not led.apply(paid("k", nbytes=10**9))
    assert not led.apply(passed("k"))
    assert led.epoch_stats(1)[0].receipt_bytes == 10
    assert led.reputation(A) == Reputation.initial()


CRASH_SCRIPT = """
import sys
from node.ledger import PayoutLedger, ReceiptPaid, ProofPassed, open_ledger_db
led = PayoutLedger(open_ledger_db(sys.argv[1]))
A = "0x" + "aa" * 20
for i in range(100000):
    ev = (ReceiptPaid(f"r{i}", 1, A, A, b"\\1" * 32, 3, 2, 1) if i % 2
          else ProofPassed(f"p{i}", 1, A, b"\\1" * 32, 0, True))
    led.apply(ev)
    if i == 50:
        print("ready", flush=True)
"""


def test_a_crash_mid_stream_loses_or_doubles_nothing(tmp_path: Path) -> None:
    """SIGKILL a process applying events; a replay of the whole stream converges exactly."""
    path = str(tmp_path / "crash")
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASH_SCRIPT, path],
        cwd=REPO,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
    d = plyvel.DB(path)
    led = PayoutLedger(d, sync=False)
    (partial,) = led.epoch_stats(1)
    applied = partial.receipts + partial.passes
    assert applied > 50
    # every applied event has its tallies and its marker: a full replay adds only the rest
    n = applied + 40
    for i in range(n):
        ev = paid(f"r{i}", nbytes=3, payment=2, fee=1) if i % 2 else passed(f"p{i}")
        assert led.apply(ev) == (i >= applied)
    (full,) = led.epoch_stats(1)
    assert full.receipts == n // 2 and full.passes == n - n // 2
    assert full.receipt_bytes == 3 * full.receipts and full.fees == full.receipts
    rep = Reputation.initial()
    for _ in range(full.passes):
        rep = update_reputation(rep, "pass")
    assert led.reputation(A) == rep
    d.close()


# -- huge values -----------------------------------------------------------------------------


def test_huge_claims_neither_crash_nor_overflow_nor_skew_others(db) -> None:
    led = PayoutLedger(db)
    assert led.apply(paid("honest", provider=B, nbytes=30 << 40, payment=30 * 10**13, fee=10**13))
    assert led.apply(paid("x1", nbytes=U64, payment=U64, fee=U64))
    assert led.apply(paid("x2", nbytes=U64, payment=U64, fee=U64))  # used to raise struct.error
    assert led.apply(paid("x3", nbytes=2**200, payment=2**200, fee=2**199))
    assert led.apply(storage("x4", amount=2**255, fee=2**255))
    a, b = led.epoch_stats(1)
    assert a.receipt_bytes == 2 * U64 + 2**200
    assert a.payments == 2 * U64 + 2**200
    assert a.fees == 2 * U64 + 2**199
    assert a.storage_paid == a.storage_fees == 2**255
    assert b == HostEpoch(B, 30 << 40, 1, 30 * 10**13, 10**13)
    budget = 600 * 10**18
    alloc = led.allocate(1, budget)
    amounts = dict(alloc.amounts)
    assert alloc.total <= budget
    # the whale's fees dilute the honest host's share (never its tallies), and the whale gets
    # back less than it burnt
    assert amounts[A] < a.total_fees
    assert amounts.get(B, 0) == min(budget * 10**13 // (10**13 + a.total_fees), 10**13 // 2)


def test_values_wider_than_uint256_are_skipped(db) -> None:
    led = PayoutLedger(db)
    assert not led.apply(paid("x", nbytes=2**256))
    assert not led.apply(storage("y", amount=2**300, fee=1))
    assert led.epoch_stats(1) == []


# -- hostile input ---------------------------------------------------------------------------


def bad(event: Any, **changes: Any) -> Any:
    """``event`` with fields the chain could not have emitted (bypassing the type checker)."""
    return dataclasses.replace(event, **changes)


class Hostile:
    @property
    def key(self) -> str:
        raise RuntimeError("boom")


MALFORMED: list[Any] = [
    paid("m", provider="0x1234"),
    paid("m", provider="aa" * 20),  # no 0x
    paid("m", provider="0x" + "zz" * 20),
    paid("m", provider="0x" + "aa" * 19 + " a"),
    bad(paid("m"), receiver=None),
    paid("m", nbytes=-1),
    paid("m", payment=-5, fee=0),
    paid("m", fee=11 * GWEI),  # fee > payment
    paid("m", nbytes=1.5),
    paid("m", nbytes=True),
    paid("m", nbytes="100"),
    paid("m", epoch=-1),
    paid("m", epoch=2**64),
    paid("m", epoch=None),
    bad(paid("m"), content_root=b"short"),
    bad(paid("m"), content_root="01" * 32),
    bad(paid("m"), key=""),
    bad(paid("m"), key=b"m"),
    bad(paid("m"), key="k" * 5000),
    bad(paid("m"), key="\ud800"),
    storage("m", fee=11 * GWEI),
    storage("m", amount=None),
    failed("m", reason="slashed"),
    failed("m", reason=None),
    bad(failed("m"), terminated=1),
    bad(failed("m"), slashed=-1),
    bad(passed("m"), scheduled="yes"),
    bad(passed("m"), slot=-3),
    bad(passed("m"), host=12345),
    ("m", 1, A),
    None,
    Hostile(),
]


@pytest.mark.parametrize("event", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_events_are_skipped_with_one_warning(db, event) -> None:
    led = PayoutLedger(db)
    led.apply(paid("before", provider=C))
    state = dump(db)
    with structlog.testing.capture_logs() as logs:
        assert led.apply(event) is False
    assert [entry["log_level"] for entry in logs] == ["warning"]
    assert logs[0]["event"] == "ledger event skipped"
    assert dump(db) == state  # nothing written, not even a seen marker
    # the next good event (even one with the same key) still applies
    assert led.apply(paid("m"))


def test_out_of_order_proof_epochs_are_skipped(db) -> None:
    led = PayoutLedger(db)
    assert led.apply(passed("p1", epoch=5))
    assert led.apply(passed("p2", host=B, epoch=5))
    rep5 = led.reputation(A, 5)
    with structlog.testing.capture_logs() as logs:
        assert not led.apply(failed("late", epoch=4, reason="invalid"))
    assert len(logs) == 1
    assert led.reputation(A, 5) == rep5 and not rep5.disqualified
    # receipts carry their own epoch: an old one still counts
    assert led.apply(paid("r-old", epoch=2))


def test_allocate_refuses_bad_arguments(db) -> None:
    led = PayoutLedger(db)
    with pytest.raises(LedgerError):
        led.allocate(1, -1)
    with pytest.raises(LedgerError):
        led.allocate(-1, 10)
    with pytest.raises(LedgerError):
        led.reputation("not an address")


# -- allocation ------------------------------------------------------------------------------


def test_allocation_follows_section_4(db) -> None:
    led = PayoutLedger(db, reward=RewardParams(rebate_bps=5000))
    for i in range(3):
        led.apply(passed(f"pa{i}", host=A))
        led.apply(passed(f"pb{i}", host=B))
    led.apply(failed("fb", host=B, reason="expired"))
    led.apply(paid("ra", provider=A, fee=10_000, payment=10**5))
    led.apply(storage("sb", host=B, fee=10_000, amount=10**5))
    led.apply(paid("rc", provider=C, fee=10_000, payment=10**5))
    led.apply(failed("fc", host=C, reason="invalid"))  # disqualified
    led.apply(passed("pd", host=RX))  # proofs but no fees: nothing
    budget = 1000
    alloc = led.allocate(1, budget)
    ra, rb = led.reputation(A, 1), led.reputation(B, 1)
    assert rb.score < ra.score == 1
    wa, wb = 10_000 * ra.score, 10_000 * rb.score
    assert alloc == Allocation(
        1,
        budget,
        ((A, int(budget * wa / (wa + wb))), (B, int(budget * wb / (wa + wb)))),
        int(budget * wa / (wa + wb)) + int(budget * wb / (wa + wb)),
    )
    assert alloc.amounts[0][1] > alloc.amounts[1][1]
    # a big budget: every host is capped at half its fees
    assert dict(led.allocate(1, 10**18).amounts) == {A: 5000, B: 5000}
    assert led.allocate(2, 10**18) == Allocation(2, 10**18, (), 0)


def test_ledger_parameters_are_used(db) -> None:
    led = PayoutLedger(db, reputation=ReputationParams(vetting_passes=0), reward=RewardParams(0))
    led.apply(paid("r"))
    assert led.allocate(1, 10**18).amounts == ()  # rebate 0: nothing can be claimed
    assert not led.reputation(A).vetting(led.reputation_params)


# -- snapshots and determinism (hypothesis) --------------------------------------------------

HOSTS = [A, B, C]


@st.composite
def event_streams(draw):
    """Events in chain order: proof epochs never go back; receipt epochs may lag."""
    n = draw(st.integers(0, 40))
    epoch = 0
    out: list[Any] = []
    for i in range(n):
        epoch += draw(st.integers(0, 1))
        kind = draw(st.sampled_from(["r", "s", "p", "e", "i"]))
        host = draw(st.sampled_from(HOSTS))
        fee = draw(st.one_of(st.integers(0, 10**6), st.just(U64), st.just(2**200)))
        pay = fee + draw(st.integers(0, 10**6))
        if kind == "r":
            ev_epoch = max(0, epoch - draw(st.integers(0, 1)))
            out.append(ReceiptPaid(f"k{i}", ev_epoch, host, RX, ROOT, pay * 7, pay, fee))
        elif kind == "s":
            out.append(StoragePaid(f"k{i}", epoch, host, ROOT, 1, pay, fee))
        elif kind == "p":
            out.append(ProofPassed(f"k{i}", epoch, host, ROOT, 1, True))
        else:
            reason: FailReason = "expired" if kind == "e" else "invalid"
            out.append(ProofFailed(f"k{i}", epoch, host, ROOT, 1, reason, False, 0))
    return out


def model(events, params=PARAMS):
    """Independent replay: tallies by epoch and reputation timelines per host."""
    tallies: dict[tuple[int, str], dict[str, int]] = {}
    reps: dict[str, list[tuple[int, Reputation]]] = {}
    for ev in events:
        if isinstance(ev, ReceiptPaid):
            t = tallies.setdefault((ev.epoch, ev.provider), {})
            t["fees"] = t.get("fees", 0) + ev.fee
        elif isinstance(ev, StoragePaid):
            t = tallies.setdefault((ev.epoch, ev.host), {})
            t["fees"] = t.get("fees", 0) + ev.fee
        else:
            line = reps.setdefault(ev.host, [])
            cur = line[-1][1] if line else Reputation.initial(params)
            outcome: Any = "pass" if isinstance(ev, ProofPassed) else ev.reason
            line.append((ev.epoch, update_reputation(cur, outcome, params)))

    def rep_at(host, epoch):
        got = Reputation.initial(params)
        for e, r in reps.get(host, []):
            if e <= epoch:
                got = r
        return got

    return tallies, rep_at


budgets = st.one_of(st.integers(0, 10**6), st.integers(0, 2**256))


@settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(events=event_streams(), budget=budgets)
def test_ledger_matches_the_pure_rule_and_snapshots_hold(tmp_path_factory, events, budget):
    d = open_ledger_db(str(tmp_path_factory.mktemp("l")))
    led = PayoutLedger(d, sync=False)
    early: dict[int, tuple[int, Allocation, list[Reputation]]] = {}
    last_epoch = max((e.epoch for e in events), default=0)
    for i, ev in enumerate(events):
        assert led.apply(ev)
        nxt = events[i + 1].epoch if i + 1 < len(events) else None
        if nxt is None or nxt > ev.epoch:
            reps_now = [led.reputation(h, ev.epoch) for h in HOSTS]
            early[ev.epoch] = (i, led.allocate(ev.epoch, budget), reps_now)
    tallies, rep_at = model(events)
    for e in range(last_epoch + 1):
        fees = {h: t["fees"] for (ep, h), t in tallies.items() if ep == e and t["fees"]}
        reps = {h: rep_at(h, e) for h in fees}
        expect = allocate_amounts(fees, reps, budget)
        alloc = led.allocate(e, budget)
        assert dict(alloc.amounts) == expect
        assert alloc.total == sum(expect.values()) <= budget
        for h in HOSTS:
            assert led.reputation(h, e) == rep_at(h, e)
    # what epoch e looked like when the chain moved past it is unchanged by everything applied
    # later; only a receipt of epoch e arriving late (receipts carry their own epoch) may add
    # fees to it
    for e, (i, alloc, reps_then) in early.items():
        assert [led.reputation(h, e) for h in HOSTS] == reps_then
        if not any(ev.epoch == e for ev in events[i + 1 :]):
            assert led.allocate(e, budget) == alloc
    d.close()


@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(events=event_streams(), budget=budgets)
def test_two_ledgers_fed_the_same_events_agree_bit_for_bit(tmp_path_factory, events, budget):
    encoded = []
    for _ in range(2):
        d = open_ledger_db(str(tmp_path_factory.mktemp("l")))
        led = PayoutLedger(d, sync=False)
        for ev in events:
            led.apply(ev)
            led.apply(ev)  # duplicates change nothing
        last = max((e.epoch for e in events), default=0)
        encoded.append(b"".join(led.allocate(e, budget).encode() for e in range(last + 1)))
        d.close()
    assert encoded[0] == encoded[1]


def test_allocate_for_a_past_epoch_ignores_later_disqualification(db) -> None:
    led = PayoutLedger(db)
    for i in range(3):
        led.apply(passed(f"p{i}", epoch=1))
    led.apply(paid("r1", epoch=1))
    before = led.allocate(1, 10**9)
    assert before.total > 0
    led.apply(failed("f2", epoch=2, reason="invalid"))
    led.apply(paid("r2", epoch=2))
    assert led.reputation(A).disqualified
    assert not led.reputation(A, 1).disqualified
    assert led.allocate(1, 10**9) == before
    assert led.allocate(2, 10**9).amounts == ()
    # disqualification sticks in every later epoch, whatever follows
    for i in range(50):
        led.apply(passed(f"q{i}", epoch=3))
    led.apply(paid("r3", epoch=3))
    assert led.reputation(A, 3).disqualified
    assert led.allocate(3, 10**9).amounts == ()
