"""Indexer: idempotent replay, restart, confirmation depth, and a reorg built from snapshots."""

from __future__ import annotations

from pathlib import Path

import plyvel
import pytest

from chain.errors import ReorgTooDeep
from chain.indexer import Indexer
from node.ledger import PayoutLedger, ProofFailed, ProofPassed, ReceiptPaid, StoragePaid

from .conftest import PARAMS, World, commit, make_content, paid_receipts, publish
from .scenario import next_period, reveal


def _names(ix: Indexer, confirmed: bool = False) -> list[str]:
    return [e.name for e in ix.events(confirmed=confirmed)]


def _roots(ix: Indexer) -> list[bytes]:
    return [e.args["root"] for e in ix.events("ContentRegistered", confirmed=False)]


_CONTENT = {n: make_content(4096 + n, seed=n) for n in range(1, 16)}


def _register(world: World, n: int) -> bytes:
    """Register small content number ``n`` (distinct roots, real size proofs); its root."""
    publish(world.client(0), _CONTENT[n])
    return _CONTENT[n].root


def test_replay_is_idempotent_and_restart_safe(world: World, tmp_path: Path) -> None:
    _register(world, 0x01)
    db = plyvel.DB(str(tmp_path / "ix"), create_if_missing=True)
    ix = Indexer(db, world.backend, world.deployment, confirmations=0)
    first = ix.sync()
    assert first.events > 0 and "ContentRegistered" in _names(ix)
    assert ix.sync().events == 0  # nothing new
    before = [(e.block_number, e.log_index, e.args) for e in ix.events()]

    # Forget the cursor and replay everything: same keys, same content, no duplicates.
    db.prefixed_db(b"ix/").delete(b"c")
    ix2 = Indexer(db, world.backend, world.deployment, confirmations=0)
    ix2.sync()
    assert [(e.block_number, e.log_index, e.args) for e in ix2.events()] == before
    db.close()

    # Restart: a new process reopens the DB and continues from the cursor.
    _register(world, 0x02)
    ix3 = Indexer.open(str(tmp_path / "ix"), world.backend, world.deployment, confirmations=0)
    assert ix3.sync().events == 2  # RegistrationCommitted, then ContentRegistered
    assert _roots(ix3) == [_CONTENT[0x01].root, _CONTENT[0x02].root]


def test_confirmation_depth(world: World, tmp_path: Path) -> None:
    ix = Indexer.open(str(tmp_path / "ix"), world.backend, world.deployment, confirmations=3)
    ix.sync()
    _register(world, 0x03)
    ix.sync()
    assert "ContentRegistered" in _names(ix, confirmed=False)
    assert [e.args["root"] for e in ix.events("ContentRegistered")] == []
    world.backend.mine(3)
    ix.sync()
    assert [e.args["root"] for e in ix.events("ContentRegistered")] == [_CONTENT[0x03].root]


def test_reorg_rolls_back_to_fork_and_replays(world: World, tmp_path: Path) -> None:
    ix = Indexer.open(
        str(tmp_path / "ix"), world.backend, world.deployment, confirmations=2, keep=16
    )
    _register(world, 0x0A)
    ix.sync()
    fork = world.backend.block_number()
    snap = world.backend.snapshot()
    _register(world, 0x0B)  # on the branch that will vanish
    world.backend.mine(1)
    ix.sync()
    assert _roots(ix) == [_CONTENT[0x0A].root, _CONTENT[0x0B].root]

    world.backend.revert(snap)
    world.backend.time_travel(5)  # a different block at the same height
    _register(world, 0x0C)
    world.backend.mine(2)
    result = ix.sync()
    assert result.rolled_back_to is not None and result.rolled_back_to <= fork
    assert _roots(ix) == [_CONTENT[0x0A].root, _CONTENT[0x0C].root]
    stored = {e.block_number: e.block_hash for e in ix.events(confirmed=False)}
    for number, block_hash in stored.items():
        assert bytes(world.backend.w3.eth.get_block(number)["hash"]) == block_hash


def test_reorg_deeper_than_kept_window(world: World, tmp_path: Path) -> None:
    ix = Indexer.open(
        str(tmp_path / "ix"), world.backend, world.deployment, confirmations=1, keep=2
    )
    world.backend.mine(4)
    ix.sync()
    snap = world.backend.snapshot()
    world.backend.mine(4)
    ix.sync()
    world.backend.revert(snap)
    world.backend.time_travel(5)
    world.backend.mine(6)
    with pytest.raises(ReorgTooDeep):
        ix.sync()


def test_ledger_events_feed_the_payout_ledger(world: World, tmp_path: Path) -> None:
    """Paid receipts, storage payments, a scheduled pass, deletion evidence and a fault become
    the ledger's events, with the proof events' epochs from TransferReceipts.epochOf."""
    c = make_content(4096 * 9 + 123, seed=3)
    provider, challenger = world.client(1), world.client(5)
    publish(world.client(0), c)
    world.client(2).deposit(10**16)
    provider.submit_receipts(paid_receipts(world, c.root, 3, bytes_served=1000))
    world.client(0).fund_storage(c.root, 10**16)
    commit(world.client(3), c, 0)
    commit(world.client(4), c, 1)
    world.backend.time_travel(3600)
    _, ch = challenger.challenge(c.root, 0)
    ch = reveal(world, ch.id)
    assert ch.indices is not None
    pass_tx = world.client(3).respond(ch.id, *c.answer(0, ch.indices))
    _, ch = challenger.challenge(c.root, 1)
    ch = reveal(world, ch.id)
    assert ch.indices is not None
    segs, proofs = c.answer(1, ch.indices)
    world.client(4).respond(ch.id, [bytes(4096)] * len(segs), proofs)
    next_period(world)
    _, ch = challenger.challenge(c.root, 0)
    world.backend.time_travel(PARAMS.response_window + 1)
    challenger.slash_expired(ch.id)

    ix = Indexer.open(str(tmp_path / "ix"), world.backend, world.deployment, confirmations=0)
    ix.sync()
    events = list(ix.ledger_events())
    paid = [e for e in events if isinstance(e, ReceiptPaid)]
    assert len(paid) == 3 and {e.provider for e in paid} == {provider.address}
    assert all(e.fee == e.payment * PARAMS.receipt_fee_bps // 10_000 for e in paid)
    assert all(e.content_root == c.root and e.bytes_served == 1000 for e in paid)
    storage = [e for e in events if isinstance(e, StoragePaid)]
    assert [(e.host, e.slot) for e in storage] == [(world.accounts[3].address, 0)]
    assert storage[0].amount == int(pass_tx.event("StoragePaid").args["amount"]) > 0
    passed = [e for e in events if isinstance(e, ProofPassed)]
    assert [(e.host, e.slot, e.scheduled) for e in passed] == [(world.accounts[3].address, 0, True)]
    block_ts = world.backend.w3.eth.get_block(pass_tx.block)["timestamp"]
    assert passed[0].epoch == provider.epoch_of(int(block_ts))
    failed = [e for e in events if isinstance(e, ProofFailed)]
    assert [(e.host, e.reason, e.terminated) for e in failed] == [
        (world.accounts[4].address, "invalid", True),
        (world.accounts[3].address, "expired", False),
    ]
    assert failed[0].slashed == 10**17 * PARAMS.proof_slash_bps // 10_000
    assert failed[1].slashed == 10**17 * PARAMS.fault_slash_bps // 10_000
    # In chain order, and the ledger takes each once.
    ledger = PayoutLedger(plyvel.DB(str(tmp_path / "ledger"), create_if_missing=True))
    assert [ledger.apply(e) for e in events] == [True] * len(events)
    assert [ledger.apply(e) for e in events] == [False] * len(events)
    # A later replay from a block after the ChallengeIssued still knows it was scheduled.
    again = [e for e in ix.ledger_events(from_block=pass_tx.block) if isinstance(e, ProofPassed)]
    assert [e.scheduled for e in again] == [True]


def test_undecodable_stored_event_is_skipped(world: World, tmp_path: Path) -> None:
    import json

    c = make_content(5000, seed=4)
    publish(world.client(0), c)
    world.client(2).deposit(10**16)
    world.client(1).submit_receipts(paid_receipts(world, c.root, 2, bytes_served=100))
    db = plyvel.DB(str(tmp_path / "ix"), create_if_missing=True)
    ix = Indexer(db, world.backend, world.deployment, confirmations=0)
    ix.sync()
    raw = db.prefixed_db(b"ix/")
    keys = [k for k, v in raw.iterator(prefix=b"e") if json.loads(v)["name"] == "ReceiptAccepted"]
    bad = json.loads(raw.get(keys[0]))
    bad["args"]["payment"] = "not a number"
    raw.put(keys[0], json.dumps(bad).encode())
    raw.put(keys[1], b"{not json")
    assert [e for e in ix.ledger_events() if isinstance(e, ReceiptPaid)] == []
