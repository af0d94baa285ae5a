"""One end-to-end scenario over every contract path, run on py-evm and on a real anvil."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chain.client import Challenge, ChallengeStatus, FailReason, draw_segment_index
from chain.eip712 import ZERO_ADDRESS
from chain.errors import ChainRevert, revert_class
from chain.merkle import AllocationTree
from chain.tx import send_transaction
from node.receipt import Receipt, SignedReceipt, sign_receipt

from .conftest import World, make_content

FIXTURES = Path(__file__).parent / "fixtures"


def signed_receipts(world: World, root: bytes, n: int, first_nonce: int = 0) -> list[SignedReceipt]:
    provider, receiver = world.accounts[1], world.accounts[2]
    domain = world.client(1).receipt_domain
    now = world.backend.timestamp()
    return [
        sign_receipt(
            receiver,
            Receipt(root, provider.address, receiver.address, 1 << 20, 1, first_nonce + i, now - 1),
            domain,
        )
        for i in range(n)
    ]


def deploy_token(world: World, supply: int) -> str:
    art = json.loads((FIXTURES / "TestToken.json").read_text())
    factory = world.backend.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
    res = send_transaction(world.backend, world.accounts[0], factory.constructor(supply))
    assert res.contract_address
    return res.contract_address


def reveal(world: World, challenge_id: int) -> Challenge:
    """Mine the challenge's seed block and one more (calls run in the latest block, where
    BLOCKHASH reaches only earlier blocks); return the challenge with its segment drawn, checked
    against the seed block's hash."""
    client = world.client(0)
    world.backend.mine(1)
    assert world.backend.block_number() == client.get_challenge(challenge_id).seed_block
    world.backend.mine(1)
    ch = client.get_challenge(challenge_id)
    assert ch.ready and client.segment_index_of(challenge_id) == (True, ch.index)
    seed_hash = bytes(world.backend.w3.eth.get_block(ch.seed_block)["hash"])
    size = client.get_content(ch.root).size
    assert ch.index == draw_segment_index(seed_hash, ch.host, ch.root, ch.id, size)
    return ch


def run_scenario(world: World) -> dict[str, int]:
    """Register, receipts, challenges (right, wrong, expired), rewards; returns gas used."""
    gas: dict[str, int] = {}
    owner, provider, host = world.client(0), world.client(1), world.client(3)
    content = make_content(4096 * 9 + 123, seed=3)

    reg = owner.register_content(content.root, len(content.data), 1 << 18, 4096, "ipfs://x")
    assert reg.event("ContentRegistered").args["root"] == content.root
    with pytest.raises(revert_class("AlreadyRegistered")):
        owner.register_content(content.root, len(content.data), 1 << 18)

    # Receipts: a batch, then a replay that the pre-check drops and the chain refuses.
    batch = signed_receipts(world, content.root, 20)
    report = provider.submit_receipts(batch)
    assert len(report.accepted) == 20 and not report.rejected
    assert len(report.txs[0].events_named("ReceiptAccepted")) == 20
    gas["receipt_batch20"] = report.gas_used
    epoch = report.txs[0].events[0].args["epoch"]
    assert provider.served_bytes(provider.address, epoch) == 20 << 20
    again = provider.submit_receipts(batch[:2])
    assert [r.reason for r in again.rejected] == ["NonceUsed", "NonceUsed"] and not again.txs
    with pytest.raises(revert_class("NonceUsed")) as info:
        provider.submit_receipts(batch[:1], precheck=False)
    assert info.value.args_["nonce"] == 0

    # Data availability: too early, right answer, wrong answer, no answer.
    host.commit(content.root, 10**17)
    res, ch = owner.challenge(host.address, content.root)
    assert ch.seed_block == res.block + 1
    assert res.event("ChallengeIssued").args["seedBlock"] == ch.seed_block
    assert not ch.ready and ch.index is None
    assert host.open_challenges_for(host.address) == []
    assert [c.id for c in host.open_challenges_for(host.address, include_pending=True)] == [ch.id]
    with pytest.raises(revert_class("SeedNotReady")) as early:
        host.respond(ch.id, content.segments[0], content.proof(0))  # lands in the seed block
    assert early.value.args_["seedBlock"] == ch.seed_block
    ch = reveal(world, ch.id)
    assert [c.id for c in host.open_challenges_for(host.address)] == [ch.id]
    i = ch.segment_index
    res = host.respond(ch.id, content.segments[i], content.proof(i))
    assert res.event("ChallengePassed").args["id"] == ch.id
    gas["respond_ok"] = res.gas_used
    assert host.get_challenge(ch.id).status is ChallengeStatus.PASSED
    assert host.availability(content.root).hosts == 1
    assert host.is_available(content.root, 1, 3600)

    _, ch = owner.challenge(host.address, content.root)
    ch = reveal(world, ch.id)
    wrong = bytes(len(content.segments[ch.segment_index]))
    res = host.respond(ch.id, wrong, content.proof(ch.segment_index))
    failed = res.event("ChallengeFailed")
    assert failed.args["reason"] == FailReason.INVALID_PROOF
    assert res.event("HostSlashed").args["amount"] == 10**17 // 2
    assert host.availability(content.root).hosts == 0

    host.commit(content.root, 10**17)
    _, ch = owner.challenge(host.address, content.root)
    ch = reveal(world, ch.id)
    with pytest.raises(revert_class("ChallengeNotExpired")):
        owner.slash_expired(ch.id)
    world.backend.time_travel(601)
    with pytest.raises(revert_class("ChallengeExpired")):
        host.respond(ch.id, content.segments[ch.segment_index], content.proof(ch.segment_index))
    res = world.client(4).slash_expired(ch.id)
    assert res.event("ChallengeFailed").args["reason"] == FailReason.EXPIRED
    assert host.get_challenge(ch.id).status is ChallengeStatus.FAILED

    # Rewards: fund, post with a 2-of-3 quorum, claim, double claim.
    alloc = AllocationTree(
        {world.accounts[1].address: 3 * 10**15, world.accounts[3].address: 10**15}
    )
    owner.fund_epoch(epoch, alloc.total)
    v = world.accounts[6:9]
    sigs = [owner.sign_allocation(epoch, ZERO_ADDRESS, alloc.root, alloc.total, a) for a in v]
    with pytest.raises(revert_class("QuorumNotMet")):
        owner.post_allocation(epoch, ZERO_ADDRESS, alloc.root, alloc.total, sigs[:1])
    outsider = owner.sign_allocation(
        epoch, ZERO_ADDRESS, alloc.root, alloc.total, world.accounts[5]
    )
    with pytest.raises(revert_class("NotValidator")):
        owner.post_allocation(epoch, ZERO_ADDRESS, alloc.root, alloc.total, [sigs[0], outsider])
    with pytest.raises(revert_class("SignersNotSorted")):
        owner.post_allocation(epoch, ZERO_ADDRESS, alloc.root, alloc.total, [sigs[0], sigs[0]])
    res = owner.post_allocation(epoch, ZERO_ADDRESS, alloc.root, alloc.total, sigs[1:])
    assert res.event("AllocationPosted").args["merkleRoot"] == alloc.root
    gas["post_allocation"] = res.gas_used
    h = world.accounts[3].address
    before = host.balance(h)
    res = owner.claim(epoch, ZERO_ADDRESS, h, alloc.amount_for(h), alloc.proof_for(h))
    assert host.balance(h) - before == 10**15
    gas["claim"] = res.gas_used
    with pytest.raises(revert_class("AlreadyClaimed")):
        owner.claim(epoch, ZERO_ADDRESS, h, alloc.amount_for(h), alloc.proof_for(h))
    with pytest.raises(ChainRevert) as err:
        p = world.accounts[1].address
        owner.claim(epoch, ZERO_ADDRESS, p, alloc.amount_for(p) + 1, alloc.proof_for(p))
    assert err.value.name == "InvalidProof"
    assert owner.paid(epoch) == 10**15
    return gas
