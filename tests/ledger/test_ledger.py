"""The local part of the ledger, and its coexistence with the payout part in one database."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.ledger import LocalLedger, PayoutLedger, ReceiptPaid, open_ledger_db

A = "0x" + "aa" * 20
B = "0x" + "bb" * 20


@pytest.fixture
def db(tmp_path: Path):
    d = open_ledger_db(str(tmp_path / "ledger"))
    yield d
    d.close()


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


def test_local_and_payout_parts_share_a_database(db) -> None:
    loc = LocalLedger(db)
    led = PayoutLedger(db)
    loc.record_timeout(A, now=1.0)
    assert led.apply(ReceiptPaid("r", 1, A, B, b"\x01" * 32, 10, 10, 1))
    assert [r.address for r in loc.all()] == [A]
    assert [s.host for s in led.epoch_stats(1)] == [A]
    assert {k[:2] for k, _ in db.iterator()} == {b"l/", b"p/"}


def test_chunk_samples_are_written_back_once_a_second(tmp_path: Path) -> None:
    d = open_ledger_db(str(tmp_path / "wb"))
    loc = LocalLedger(d)
    loc.record_chunk(A, 1 << 20, 0.01, now=10.0)  # a peer's first sample: written at once
    for i in range(100):  # the next second's samples: in memory only
        loc.record_chunk(A, 1 << 20, 0.01, now=10.0 + i / 200)
    assert LocalLedger(d).get(A).chunks_ok == 1  # what another reader of the db sees
    assert loc.get(A).chunks_ok == 101  # this ledger's own view is current
    loc.record_chunk(A, 1 << 20, 0.01, now=11.5)  # a second later: written back
    assert LocalLedger(d).get(A).chunks_ok == 102
    loc.record_chunk(A, 1 << 20, 0.01, now=11.6)
    loc.record_bad_chunk(A, now=11.7)  # conduct is written at once (with what it carries)
    assert LocalLedger(d).get(A).bad_chunks == 1
    loc.record_chunk(A, 1 << 20, 0.01, now=11.8)
    loc.flush()
    d.close()
    d = open_ledger_db(str(tmp_path / "wb"))
    assert LocalLedger(d).get(A).chunks_ok == 104
    d.close()
