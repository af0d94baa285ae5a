"""Receipt submission duty: batches, per-receipt outcomes, no head-of-line blocking, crashes.

Real ReceiptBox (LevelDB) against the in-memory chain of ``fakes``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import plyvel
import pytest
from eth_account import Account

from chain import ChainUnavailable
from node.receipt import Receipt, ReceiptDomain, SignedReceipt, sign_receipt
from node.service import AnswerQueue, ChainDuties
from node.transfer import ReceiptBox

from .fakes import FakeChain, FakePort, SimulatedCrash

DOMAIN = ReceiptDomain(31337, "0x" + "ab" * 20)
ROOT = bytes(range(32))
PROVIDER = Account.create()
RECEIVERS = [Account.create() for _ in range(3)]
FAR_FUTURE = 10 * 365 * 86400


def signed(receiver: object, nonce: int, issued_at: float, root: bytes = ROOT) -> SignedReceipt:
    r = Receipt(
        content_root=root,
        provider=PROVIDER.address,
        receiver=receiver.address,  # type: ignore[attr-defined]
        bytes_served=4096,
        chunks=1,
        payment=10**12,
        nonce=nonce,
        issued_at=int(issued_at),
    )
    return sign_receipt(receiver, r, DOMAIN)  # type: ignore[arg-type]


class Node:
    """A provider's durable state (box + duties db) that can be closed and reopened."""

    def __init__(self, path: Path, port: FakePort) -> None:
        self.path = path
        self.port = port
        self.open()

    def open(self) -> None:
        self.box = ReceiptBox.open(self.path / "receipts")
        self.db = plyvel.DB(str(self.path / "duties"), create_if_missing=True)
        self.duties = ChainDuties(
            self.port, self.box, AnswerQueue(self.db), PROVIDER.address, batch_size=100
        )

    def restart(self, port: FakePort) -> None:
        self.box.close()
        self.db.close()
        self.port = port
        self.open()

    def close(self) -> None:
        self.box.close()
        self.db.close()


@pytest.fixture
def chain() -> FakeChain:
    c = FakeChain(now=time.time())
    c.registered.add(ROOT)
    return c


@pytest.fixture
def node(tmp_path: Path, chain: FakeChain) -> Iterator[Node]:
    n = Node(tmp_path, FakePort(chain, PROVIDER.address))
    yield n
    n.close()


def test_accepted_and_rejected_receipts_are_marked_per_receipt(
    node: Node, chain: FakeChain
) -> None:
    now = chain.now
    good = [signed(RECEIVERS[0], i, now - 5) for i in range(3)]
    bad = signed(RECEIVERS[1], 0, now - 5, root=b"\x77" * 32)  # never registered
    for s in [*good, bad]:
        assert node.box.add(s)
    out = node.duties.submit_receipts_once()
    assert out["submitted"] == 3 and out["rejected"] == 1
    counts = node.box.counts()
    assert counts["submitted"] == 3 and counts["rejected"] == 1 and counts["pending"] == 0
    rejected = list(node.box.list("rejected"))
    assert rejected[0].reason == "RootNotRegistered"
    assert chain.receipt_txs == 1


def test_far_future_receipts_do_not_block_a_legitimate_one(node: Node, chain: FakeChain) -> None:
    # One peer floods the box with 100 receipts "issued" ten years ahead, before a good one.
    for i in range(100):
        node.box.add(signed(RECEIVERS[0], i, chain.now + FAR_FUTURE))
    legit = signed(RECEIVERS[1], 0, chain.now - 5)
    node.box.add(legit)
    for _ in range(3):
        node.duties.submit_receipts_once()
        if node.port.receipt_on_chain(legit):
            break
    assert node.port.receipt_on_chain(legit), node.box.counts()
    counts = node.box.counts()
    assert counts["submitted"] == 1
    assert counts["rejected"] == 0  # deferred, not dropped: the chain may accept them later
    assert node.duties.status.receipts_deferred == 100
    # Deferred receipts are not re-sent every round: nothing more to do now.
    calls = len(node.port.calls)
    assert node.duties.submit_receipts_once() == {"submitted": 0}
    assert "submit_receipts" not in node.port.calls[calls:]


def test_crash_after_the_batch_is_mined_leaves_no_receipt_rejected(
    node: Node, chain: FakeChain, tmp_path: Path
) -> None:
    receipts = [signed(RECEIVERS[i % 3], i, chain.now - 5) for i in range(40)]
    for s in receipts:
        node.box.add(s)
    node.port.crash_after = "submit_receipts"  # mined on chain, then the process dies
    with pytest.raises(SimulatedCrash):
        node.duties.submit_receipts_once()
    assert len(chain.used_nonces) == 40

    node.restart(FakePort(chain, PROVIDER.address))
    assert len(node.box.inflight()) == 40  # what was being sent is known after the restart
    out = node.duties.reconcile_inflight()
    assert out == {"on_chain": 40, "pending": 0}
    counts = node.box.counts()
    assert counts["submitted"] == 40 and counts["rejected"] == 0 and counts["pending"] == 0
    assert node.duties.submit_receipts_once() == {"submitted": 0}
    assert chain.receipt_txs == 1  # nothing sent twice


def test_crash_before_the_send_puts_receipts_back_in_the_queue(
    node: Node, chain: FakeChain
) -> None:
    receipts = [signed(RECEIVERS[0], i, chain.now - 5) for i in range(5)]
    for s in receipts:
        node.box.add(s)
    node.port.crash_before = "submit_receipts"
    with pytest.raises(SimulatedCrash):
        node.duties.submit_receipts_once()
    assert not chain.used_nonces

    node.restart(FakePort(chain, PROVIDER.address))
    out = node.duties.submit_receipts_once()  # reconciles first, then submits
    assert out["submitted"] == 5
    assert node.box.counts()["submitted"] == 5 and not node.box.inflight()
    assert all(node.port.receipt_on_chain(s) for s in receipts)


def test_chain_down_mid_round_keeps_receipts_until_the_chain_can_tell(
    node: Node, chain: FakeChain
) -> None:
    s = signed(RECEIVERS[0], 7, chain.now - 5)
    node.box.add(s)
    node.duties.reconcile_inflight()
    chain.up = False
    with pytest.raises(ChainUnavailable):
        node.duties.submit_receipts_once()
    with pytest.raises(ChainUnavailable):
        node.duties.submit_receipts_once()  # cannot reconcile: nothing changes
    assert node.box.counts()["rejected"] == 0
    chain.up = True
    node.duties.submit_receipts_once()
    node.duties.submit_receipts_once()
    assert node.box.counts()["submitted"] == 1 and node.port.receipt_on_chain(s)


def test_nonce_used_by_our_own_receipt_counts_as_submitted(node: Node, chain: FakeChain) -> None:
    ours = signed(RECEIVERS[0], 1, chain.now - 5)
    FakePort(chain, PROVIDER.address).submit_receipts([ours])  # credited by an earlier send
    other = signed(RECEIVERS[0], 2, chain.now - 5)
    replay = signed(RECEIVERS[0], 2, chain.now - 4)  # same nonce, another receipt
    FakePort(chain, PROVIDER.address).submit_receipts([other])
    node.box.add(ours)
    node.box.add(replay)
    node.duties.submit_receipts_once()
    states = {r.receipt.receipt.nonce: (r.state, r.reason) for r in node.box.list()}
    assert states[1][0] == "submitted"
    assert states[2] == ("rejected", "NonceUsed")
