"""Indexer: idempotent replay, restart, confirmation depth, and a reorg built from snapshots."""

from __future__ import annotations

from pathlib import Path

import plyvel
import pytest

from chain.errors import ReorgTooDeep
from chain.indexer import Indexer
from node.ledger import PayoutLedger, ReceiptCredited

from .conftest import World
from .scenario import signed_receipts


def _names(ix: Indexer, confirmed: bool = False) -> list[str]:
    return [e.name for e in ix.events(confirmed=confirmed)]


def _roots(ix: Indexer) -> list[bytes]:
    return [e.args["root"] for e in ix.events("ContentRegistered", confirmed=False)]


def test_replay_is_idempotent_and_restart_safe(world: World, tmp_path: Path) -> None:
    owner = world.client(0)
    owner.register_content(b"\x01" * 32, 4096, 1 << 18)
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
    owner.register_content(b"\x02" * 32, 4096, 1 << 18)
    ix3 = Indexer.open(str(tmp_path / "ix"), world.backend, world.deployment, confirmations=0)
    assert ix3.sync().events == 1
    assert _roots(ix3) == [b"\x01" * 32, b"\x02" * 32]


def test_confirmation_depth(world: World, tmp_path: Path) -> None:
    ix = Indexer.open(str(tmp_path / "ix"), world.backend, world.deployment, confirmations=3)
    ix.sync()
    world.client(0).register_content(b"\x03" * 32, 4096, 1 << 18)
    ix.sync()
    assert "ContentRegistered" in _names(ix, confirmed=False)
    assert [e.args["root"] for e in ix.events("ContentRegistered")] == []
    world.backend.mine(3)
    ix.sync()
    assert [e.args["root"] for e in ix.events("ContentRegistered")] == [b"\x03" * 32]


def test_reorg_rolls_back_to_fork_and_replays(world: World, tmp_path: Path) -> None:
    owner = world.client(0)
    ix = Indexer.open(
        str(tmp_path / "ix"), world.backend, world.deployment, confirmations=2, keep=16
    )
    owner.register_content(b"\x0a" * 32, 4096, 1 << 18)
    ix.sync()
    fork = world.backend.block_number()
    snap = world.backend.snapshot()
    owner.register_content(b"\x0b" * 32, 4096, 1 << 18)  # on the branch that will vanish
    world.backend.mine(1)
    ix.sync()
    assert _roots(ix) == [b"\x0a" * 32, b"\x0b" * 32]

    world.backend.revert(snap)
    world.backend.time_travel(5)  # a different block at the same height
    owner.register_content(b"\x0c" * 32, 4096, 1 << 18)
    world.backend.mine(2)
    result = ix.sync()
    assert result.rolled_back_to is not None and result.rolled_back_to <= fork
    assert _roots(ix) == [b"\x0a" * 32, b"\x0c" * 32]
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
    provider = world.client(1)
    provider.submit_receipts(signed_receipts(world, b"\x05" * 32, 3))
    ix = Indexer.open(str(tmp_path / "ix"), world.backend, world.deployment, confirmations=0)
    ix.sync()
    events = list(ix.ledger_events())
    credited = [e for e in events if isinstance(e, ReceiptCredited)]
    assert len(credited) == 3 and {e.provider for e in credited} == {provider.address}
    ledger = PayoutLedger(plyvel.DB(str(tmp_path / "ledger"), create_if_missing=True))
    assert [ledger.apply(e) for e in credited] == [True] * 3
    assert [ledger.apply(e) for e in credited] == [False] * 3
