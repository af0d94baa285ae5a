"""One end-to-end scenario over every contract path, run on py-evm and on a real anvil."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chain.client import Challenge, ChallengeStatus, FailReason
from chain.eip712 import ZERO_ADDRESS
from chain.errors import ChainRevert, revert_class
from chain.merkle import AllocationTree
from chain.tx import send_transaction
from node.content import draw_sample_indices

from .conftest import PARAMS, World, commit, make_content, paid_receipts, publish

FIXTURES = Path(__file__).parent / "fixtures"


def deploy_token(world: World, supply: int) -> str:
    art = json.loads((FIXTURES / "TestToken.json").read_text())
    factory = world.backend.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
    res = send_transaction(world.backend, world.accounts[0], factory.constructor(supply))
    assert res.contract_address
    return res.contract_address


def reveal(world: World, challenge_id: int) -> Challenge:
    """Mine the challenge's seed block and one more (calls run in the latest block, where
    BLOCKHASH reaches only earlier blocks); return the challenge with its samples drawn, checked
    against node.content's draw from the seed block's hash."""
    client = world.client(0)
    world.backend.mine(1)
    assert world.backend.block_number() == client.get_challenge(challenge_id).seed_block
    assert client.get_challenge(challenge_id).indices is None
    world.backend.mine(1)
    ch = client.get_challenge(challenge_id)
    assert ch.ready and ch.indices is not None
    seed_hash = bytes(world.backend.w3.eth.get_block(ch.seed_block)["hash"])
    rows = client.layout_of(ch.root).rows
    assert list(ch.indices) == draw_sample_indices(seed_hash, ch.id, PARAMS.samples, rows)
    return ch


def next_period(world: World) -> None:
    """Mine to the second block of the next proof period (one challenge per commitment per
    period; the period's start block must have a hash for isDue)."""
    client = world.client(0)
    start = client.period_start(client.current_period() + 1)
    world.backend.mine(max(1, start - world.backend.block_number()) + 1)


def run_scenario(world: World) -> dict[str, int]:
    """Register, escrow and paid receipts, slot commitments, challenges (pass, deletion, fault),
    storage payments, owed withdrawals, fee-capped rewards; returns gas used."""
    gas: dict[str, int] = {}
    owner, provider, receiver = world.client(0), world.client(1), world.client(2)
    host, host2, challenger = world.client(3), world.client(4), world.client(5)
    content = make_content(4096 * 9 + 123, seed=3)

    publish(owner, content, "ipfs://x")
    info = owner.get_content(content.root)
    assert (info.size, info.slot_count, info.slots_root) == (
        len(content.data),
        8,
        content.slots_root,
    )
    with pytest.raises(revert_class("AlreadyRegistered")):
        publish(owner, content)

    # Paid receipts: escrow, a batch, then a replay that is reconciled, not resent.
    receiver.deposit(10**16)
    batch = paid_receipts(world, content.root, 20, bytes_served=1024)
    report = provider.submit_receipts(batch)
    assert len(report.accepted) == 20 and not report.rejected and not report.deferred
    accepted = report.txs[0].events_named("ReceiptAccepted")
    assert len(accepted) == 20
    gas["receipt_batch20"] = report.gas_used
    epoch = accepted[0].args["epoch"]
    paid = sum(s.receipt.payment for s in batch)
    fees = sum(int(e.args["fee"]) for e in accepted)
    assert fees == sum(s.receipt.payment * PARAMS.receipt_fee_bps // 10_000 for s in batch)
    assert provider.served_bytes(provider.address, epoch) == 20 * 1024
    assert provider.fees_of(provider.address, epoch) == fees
    assert provider.earnings() == paid - fees
    assert receiver.escrow_of().balance == 10**16 - paid
    again = provider.submit_receipts(batch[:2])
    assert again.accepted == batch[:2] and again.tx_hash is None  # already on chain
    forced = provider.submit_receipts(batch[:1], precheck=False)
    assert [r.reason for r in forced.rejected] == ["NonceUsed"] and not forced.accepted
    before = provider.balance()
    res = provider.withdraw_earnings()
    assert provider.balance() == before + (paid - fees) - _fee(world, res.tx_hash)

    # Slots: two hosts, one slot each; a slot is held once, a host holds one slot per root.
    owner.fund_storage(content.root, 10**16)
    owner.fund_rewards(10**16)
    commit(host, content, 0)
    commit(host2, content, 1)
    with pytest.raises(revert_class("SlotTaken")):
        commit(challenger, content, 0)
    with pytest.raises(revert_class("HostHasSlot")):
        commit(host, content, 2)
    assert host.hosts_of(content.root)[:3] == [host.address, host2.address, ZERO_ADDRESS]
    world.backend.time_travel(86400)  # a day of storage to be paid for at the first pass
    next_period(world)  # the challenges below fit in one period
    assert {(r, s) for r, s, _ in challenger.due_commitments()} == {
        (content.root, 0),
        (content.root, 1),
    }

    # A scheduled challenge answered with the right samples.
    res, ch = challenger.challenge(content.root, 0)
    gas["challenge"] = res.gas_used
    assert ch.seed_block == res.block + 1 and ch.scheduled and ch.indices is None
    assert res.event("ChallengeIssued").args["seedBlock"] == ch.seed_block
    assert host.open_challenges_for(host.address) == []
    assert [c.id for c in host.open_challenges_for(host.address, include_pending=True)] == [ch.id]
    assert (content.root, 0) not in {(r, s) for r, s, _ in challenger.due_commitments()}
    segments, proofs = content.answer(0, [0] * PARAMS.samples)
    with pytest.raises(revert_class("SeedNotReady")) as early:
        host.respond(ch.id, segments, proofs)  # lands in the seed block
    assert early.value.args_["seedBlock"] == ch.seed_block
    ch = reveal(world, ch.id)
    assert [c.id for c in host.open_challenges_for(host.address)] == [ch.id]
    assert ch.indices is not None
    res = host.respond(ch.id, *content.answer(0, ch.indices))
    assert res.event("ChallengePassed").args["id"] == ch.id
    storage = res.event("StoragePaid").args
    assert storage["host"] == host.address and storage["amount"] > 0
    gas["respond_ok"] = res.gas_used
    assert host.get_challenge(ch.id).status is ChallengeStatus.PASSED
    assert host.commitment_of(content.root, 0).last_proven_at > 0
    assert host.is_available(content.root, 1, 3600)
    assert challenger.owed_to() == PARAMS.challenge_bond + PARAMS.challenge_reward
    with pytest.raises(revert_class("AlreadyChallengedThisPeriod")):
        challenger.challenge(content.root, 0)

    # Deletion evidence: samples that do not verify. Slashed proofSlashBps, terminated.
    _, ch = challenger.challenge(content.root, 1)
    ch = reveal(world, ch.id)
    assert ch.indices is not None
    segments, proofs = content.answer(1, ch.indices)
    res = host2.respond(ch.id, [bytes(4096)] * len(segments), proofs)
    failed = res.event("ChallengeFailed").args
    assert failed["reason"] == FailReason.INVALID_PROOF and failed["terminated"]
    assert failed["slashed"] == 10**17 * PARAMS.proof_slash_bps // 10_000
    assert host.availability(content.root).hosts == 1

    # A fault: no answer in time. Slashed faultSlashBps, kept.
    next_period(world)
    _, ch = challenger.challenge(content.root, 0)
    ch = reveal(world, ch.id)
    with pytest.raises(revert_class("ChallengeNotExpired")):
        owner.slash_expired(ch.id)
    world.backend.time_travel(PARAMS.response_window + 1)
    assert ch.id in challenger.expired_challenges()
    assert ch.indices is not None
    with pytest.raises(revert_class("ChallengeExpired")):
        host.respond(ch.id, *content.answer(0, ch.indices))
    res = world.client(9).slash_expired(ch.id)
    failed = res.event("ChallengeFailed").args
    assert failed["reason"] == FailReason.EXPIRED and not failed["terminated"]
    assert failed["slashed"] == 10**17 * PARAMS.fault_slash_bps // 10_000
    c = host.commitment_of(content.root, 0)
    assert c.faults == 1 and not c.terminated and c.host == host.address
    assert host.get_challenge(ch.id).status is ChallengeStatus.FAILED
    assert challenger.expired_challenges() == []

    owed = challenger.owed_to()
    before = challenger.balance()
    res = challenger.withdraw_owed()
    assert challenger.balance() == before + owed - _fee(world, res.tx_hash)
    assert challenger.owed_to() == 0

    # Rewards: fund, post with a 2-of-3 quorum, claim within the fee cap, double claim.
    cap = owner.fee_cap(provider.address, epoch)
    assert cap == fees * 5000 // 10_000 and cap > 0
    p = provider.address
    alloc = AllocationTree({p: cap, host2.address: 1})
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
    before = provider.balance(p)
    res = owner.claim(epoch, ZERO_ADDRESS, p, cap, alloc.proof_for(p))
    assert provider.balance(p) - before == cap
    gas["claim"] = res.gas_used
    with pytest.raises(revert_class("AlreadyClaimed")):
        owner.claim(epoch, ZERO_ADDRESS, p, cap, alloc.proof_for(p))
    h2 = host2.address
    with pytest.raises(revert_class("ExceedsFeeCap")):  # host2 burnt no fees this epoch
        owner.claim(epoch, ZERO_ADDRESS, h2, 1, alloc.proof_for(h2))
    with pytest.raises(ChainRevert) as err:
        owner.claim(epoch, ZERO_ADDRESS, h2, 2, alloc.proof_for(h2))
    assert err.value.name in ("InvalidProof", "ExceedsFeeCap")
    assert owner.paid(epoch) == cap
    return gas


def _fee(world: World, tx_hash: str) -> int:
    """Gas cost of a transaction (to check balances exactly)."""
    r = world.backend.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
    return int(r["gasUsed"]) * int(r["effectiveGasPrice"])
