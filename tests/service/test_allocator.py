"""The validator's epoch step on the real contracts (py-evm): a final, funded epoch is allocated
from the ledger and posted once; restarts and other validators never post it twice."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import plyvel
import pytest

from chain import ChainClient, DeployParams, EmbeddedChain, deploy_suite
from chain.eip712 import ZERO_ADDRESS
from node.receipt import Receipt, payment_for, sign_receipt
from node.service import EpochAllocator

EPOCH = 3600
SIZE = 3 * 4096 + 100


@pytest.fixture(scope="module")
def backend() -> Iterator[EmbeddedChain]:
    b = EmbeddedChain()
    yield b
    b.close()


def _posted(client: ChainClient, epoch: int) -> tuple[bool, int]:
    _, total, _, posted = client.rewards.functions.allocationOf(epoch, ZERO_ADDRESS).call()
    return bool(posted), int(total)


def test_final_funded_epoch_is_allocated_and_posted_once(
    backend: EmbeddedChain, tmp_path: Path
) -> None:
    deployer, validator, provider, receiver = backend.dev_accounts()[:4]
    params = DeployParams(epoch_length=EPOCH, validators=(validator.address,), quorum=1)
    deployment = deploy_suite(backend, deployer, params)
    prov = ChainClient(backend, deployment, provider)
    recv = ChainClient(backend, deployment, receiver)
    val = ChainClient(backend, deployment, validator)

    content = os.urandom(SIZE)
    res = prov.publish_content(lambda off, n: content[off : off + n], SIZE)
    root = bytes(res.event("ContentRegistered").args["root"])
    recv.deposit(10**16)
    r = Receipt(
        root,
        provider.address,
        receiver.address,
        SIZE,
        1,
        payment_for(SIZE, params.min_price_per_gib) * 1000,  # a generous receiver
        1,
        backend.timestamp() - 1,
    )
    report = prov.submit_receipts([sign_receipt(receiver, r, prov.receipt_domain)])
    assert len(report.accepted) == 1
    epoch = prov.current_epoch()
    cap = prov.fee_cap(provider.address, epoch)
    assert cap > 0

    db = plyvel.DB(str(tmp_path / "v"), create_if_missing=True)
    try:
        allocator = EpochAllocator(lambda: val, db)
        assert allocator.run_once() == []  # not final yet
        backend.time_travel(2 * EPOCH)
        assert allocator.run_once() == []  # final, but nobody funded it
        ChainClient(backend, deployment, deployer).fund_epoch(epoch, 10 * cap)
        assert allocator.run_once() == [epoch]
        posted, total = _posted(val, epoch)
        assert posted and total == cap  # the whole fee cap, no more: the rest stays funded
        assert allocator.posted[0]["epoch"] == epoch
        assert allocator.run_once() == []
    finally:
        db.close()
    db = plyvel.DB(str(tmp_path / "v"), create_if_missing=True)
    try:
        assert EpochAllocator(lambda: val, db).run_once() == []  # restart: recorded as done
    finally:
        db.close()
    other = plyvel.DB(str(tmp_path / "other"), create_if_missing=True)
    try:
        again = EpochAllocator(lambda: val, other)
        assert again.run_once() == []  # another validator sees it posted on chain
        assert again.posted == []
    finally:
        other.close()
