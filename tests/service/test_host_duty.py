"""Host duty: answer challenges on our slots from the real SlotStore, mine a dev chain whose
seed block would otherwise never come, never send an answer that cannot be right."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import plyvel
import pytest

from node.content import SlotLayout, merkle_root, segment_leaf_hashes
from node.service import AnswerQueue, ChainDuties, ValidatorDuty
from node.store import SlotStore
from node.transfer import ReceiptBox

from .fakes import Commitment, FakeChain, FakePort

HOST = "0x" + "aa" * 20
VALIDATOR = "0x" + "bb" * 20
SIZE = 9 * 4096 + 123
LAYOUT = SlotLayout(SIZE, 2, 3)
CONTENT = os.urandom(SIZE)
ROOT = merkle_root(segment_leaf_hashes(CONTENT))


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def content() -> bytes:
    return CONTENT


@pytest.fixture
def slots(tmp_path: Path, content: bytes) -> Iterator[SlotStore]:
    with SlotStore.open(tmp_path / "slots") as s:
        yield s


@pytest.fixture
def db(tmp_path: Path) -> Iterator[plyvel.DB]:
    d = plyvel.DB(str(tmp_path / "duties"), create_if_missing=True)
    yield d
    d.close()


@pytest.fixture
def vdb(db: plyvel.DB) -> plyvel.DB:
    return db.prefixed_db(b"v/")


def _setup(
    chain: FakeChain, slots: SlotStore, content: bytes, vdb: plyvel.DB, slot: int = 1
) -> ValidatorDuty:
    """Our slot built from the content, committed on chain; a validator to challenge it."""

    def read(offset: int, length: int) -> bytes:
        return content[offset : offset + length]

    slot_root = slots.build(ROOT, slot, LAYOUT, read)
    chain.commitments[(ROOT, slot)] = Commitment(ROOT, slot, HOST, slot_root, LAYOUT.rows)
    return ValidatorDuty(FakePort(chain, VALIDATOR), vdb, VALIDATOR)


def _duties(port: FakePort, slots: SlotStore, db: plyvel.DB, clock: Clock) -> ChainDuties:
    box = ReceiptBox(db.prefixed_db(b"r/"))  # a host that collected no receipts
    return ChainDuties(port, box, AnswerQueue(db), HOST, slots=slots, clock=clock, mine_after=3)


def test_honest_host_answers_once_drawn_and_mines_a_quiet_dev_chain(
    slots: SlotStore, content: bytes, db: plyvel.DB, vdb: plyvel.DB
) -> None:
    chain = FakeChain()
    chain.samples = 6
    validator = _setup(chain, slots, content, vdb)
    validator.run_once()
    (cid,) = chain.challenges
    clock = Clock()
    port = FakePort(chain, HOST)
    duties = _duties(port, slots, db, clock)

    assert duties.answer_challenges_once() == {"answered": 0}  # seed block not mined
    assert port.mined == 0
    clock.t += 1
    duties.answer_challenges_once()
    assert port.mined == 0  # not yet: a live chain mines on its own
    clock.t += 3
    duties.answer_challenges_once()
    assert port.mined == 2  # the chain only mines on transactions: ask it to
    out = duties.answer_challenges_once()
    assert out == {"answered": 1}
    assert chain.challenges[cid].status == "passed"
    rec = duties.answers.get(cid)
    assert rec is not None and rec.state == "sent"
    assert len(rec.segments) == 6 and rec.indices == chain.draw(chain.challenges[cid])
    assert duties.answer_challenges_once() == {"answered": 0}  # answered once


def test_undrawn_challenge_on_a_live_chain_is_never_answered_early(
    slots: SlotStore, content: bytes, db: plyvel.DB, vdb: plyvel.DB
) -> None:
    chain = FakeChain()
    validator = _setup(chain, slots, content, vdb)
    validator.run_once()
    clock = Clock()
    port = FakePort(chain, HOST, dev=False)  # mine_if_dev is a no-op there
    duties = _duties(port, slots, db, clock)
    for _ in range(5):
        clock.t += 5
        duties.answer_challenges_once()
    assert "respond" not in port.calls
    chain.block += 2  # the live chain moves on
    assert duties.answer_challenges_once() == {"answered": 1}


def test_host_without_its_slot_data_lets_the_challenge_expire(
    slots: SlotStore, content: bytes, db: plyvel.DB, vdb: plyvel.DB
) -> None:
    chain = FakeChain()
    validator = _setup(chain, slots, content, vdb)
    slots.remove(ROOT, 1)  # deleted its slot (kept nothing it could prove from)
    validator.run_once()
    chain.block += 2
    port = FakePort(chain, HOST)
    duties = _duties(port, slots, db, Clock())
    assert duties.answer_challenges_once() == {"answered": 0}
    assert "respond" not in port.calls  # no garbage answer (that would be deletion evidence)
    (rec,) = list(duties.answers.all())
    assert rec.state == "failed" and "cannot prove" in rec.error
    assert duties.answer_challenges_once() == {"answered": 0}
    chain.now += chain.response_window + 1
    assert validator.run_once()["slashed"] == [rec.challenge_id]
    assert chain.commitments[(ROOT, 1)].slashed == 1


def test_owed_payments_are_withdrawn_periodically(
    slots: SlotStore, content: bytes, db: plyvel.DB
) -> None:
    chain = FakeChain()
    clock = Clock()
    port = FakePort(chain, HOST)
    box = ReceiptBox(db.prefixed_db(b"r/"))
    duties = ChainDuties(
        port, box, AnswerQueue(db), HOST, slots=slots, clock=clock, withdraw_every=60
    )
    chain.owed[HOST] = 123
    assert duties.run_once()["withdrawn"] == 0  # a fake TxResult has no decoded event
    assert port.calls.count("withdraw_owed") == 1 and HOST not in chain.owed
    chain.owed[HOST] = 5
    duties.run_once()
    assert port.calls.count("withdraw_owed") == 1  # not before withdraw_every
    clock.t += 61
    duties.run_once()
    assert port.calls.count("withdraw_owed") == 2 and HOST not in chain.owed
