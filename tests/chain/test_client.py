"""Every contract path from Python on py-evm (the embedded chain), against the real contracts."""

from __future__ import annotations

import pickle
import random
from typing import Any

import pytest
from eth_account import Account

from chain.client import BLOCKHASH_WINDOW, ChainClient, ChallengeStatus, FailReason
from chain.eip712 import ZERO_ADDRESS, allocation_digest
from chain.errors import ChainRevert, ChainUsageError, RegistrationMismatch, revert_class
from chain.merkle import AllocationTree
from chain.port import ChainPort, ClientPort
from node.content import (
    EMPTY_ROOT,
    Manifest,
    SizeProof,
    SlotLayout,
    draw_sample_indices,
    size_proof,
)
from node.receipt import SECP256K1_N, Receipt, SignedReceipt, receipt_digest, sign_receipt

from .conftest import PARAMS, PRICE, Content, World, commit, make_content, paid_receipts, publish
from .scenario import deploy_token, next_period, reveal, run_scenario

U64 = (1 << 64) - 1


def test_full_scenario_on_pyevm(world: World) -> None:
    run_scenario(world)


# -- registration ---------------------------------------------------------------------------


def test_register_proves_the_size(world: World) -> None:
    owner, other = world.client(0), world.client(1)
    c = make_content(5000)
    proof = size_proof(c.read, 5000)
    common: dict[str, Any] = {
        "data_shards": 4,
        "slot_count": 8,
        "slots_root": c.slots_root,
        "chunk_size": 1 << 20,
    }
    # The front-runner's trick: the right root with a wrong size. No proof fits another size.
    for size in (5001, 4999, 4096, 8192, U64):
        with pytest.raises(revert_class("SizeProofInvalid")):
            owner.register(c.root, size, size_proof=proof, **common)
    with pytest.raises(revert_class("SizeProofInvalid")):
        owner.register(b"\x01" * 32, 5000, size_proof=proof, **common)
    # The old proof (the last segment's audit path) read as another size: refused too.
    two = make_content(2 * 4096, seed=3)
    forged = SizeProof((two.data[:4096],), (_leaf(two.data[4096:]),), two.data[4096:])
    with pytest.raises(revert_class("SizeProofInvalid")):
        owner.register(two.root, 3 * 4096, size_proof=forged, **common)
    for k, n in ((33, 40), (1, 8), (4, 3)):
        with pytest.raises(revert_class("InvalidSlots")):
            owner.register(
                c.root, 5000, size_proof=proof, **{**common, "data_shards": k, "slot_count": n}
            )
    res = owner.register(c.root, 5000, size_proof=proof, metadata_uri="meta", **common)
    assert res.event("ContentRegistered").args["slotsRoot"] == c.slots_root
    info = owner.get_content(c.root)
    assert (info.owner, info.size, info.chunk_size, info.metadata_uri, info.data_shards) == (
        owner.address,
        5000,
        1 << 20,
        "meta",
        4,
    )
    layout = owner.layout_of(c.root)
    assert (layout.size, layout.rows, layout.slots_root) == (5000, 1, c.slots_root)
    assert owner.segment_count(c.root) == 2 and owner.registered_size(c.root) == 5000
    assert owner.registered_size(b"\x09" * 32) is None
    with pytest.raises(revert_class("NotRegistered")):
        owner.get_content(b"\x09" * 32)
    with pytest.raises(revert_class("NotRegistered")):
        owner.layout_of(b"\x09" * 32)
    with pytest.raises(revert_class("NotContentOwner")):
        other.set_metadata_uri(c.root, "x")
    with pytest.raises(revert_class("AlreadyRegistered")):
        other.register(c.root, 5000, size_proof=proof, **common)
    empty = owner.register(
        EMPTY_ROOT,
        0,
        data_shards=4,
        slot_count=0,
        slots_root=bytes(32),
        size_proof=SizeProof((), (), b""),
    )
    assert empty.event("ContentRegistered")


def test_register_needs_an_earlier_commitment(world: World) -> None:
    """A front-runner who copies a pending register (own layout or the same) has no commitment
    from an earlier block: the contract refuses it."""
    owner, attacker = world.client(0), world.client(1)
    c = make_content(3 * 4096 + 9, seed=4)
    proof = size_proof(c.read, len(c.data))
    reg = (c.root, len(c.data), 1 << 20, 4096, 4, 8, c.slots_root, "")
    fn = attacker.registry.functions.register(
        reg, list(proof.left_segments), list(proof.edge_hashes), proof.last_segment
    )
    with pytest.raises(revert_class("NotCommitted")):
        attacker._tx(fn)
    owner.register(
        c.root, len(c.data), data_shards=4, slot_count=8, slots_root=c.slots_root, size_proof=proof
    )
    assert owner.get_content(c.root).owner == owner.address


def _leaf(segment: bytes) -> bytes:
    import hashlib

    return hashlib.sha256(b"\x00" + segment).digest()


def test_port_publish_refuses_a_different_registration(world: World) -> None:
    port = ClientPort(world.client(0))
    assert isinstance(port, ChainPort)
    c = make_content(4096 * 6 + 7, seed=9)
    manifest = Manifest(c.root, len(c.data), 1 << 18)
    proof = size_proof(c.read, len(c.data))
    assert port.publish(manifest, c.layout, c.slot_roots, proof) is not None
    assert port.publish(manifest, c.layout, c.slot_roots, proof) is None  # same: fine
    other = Content(c.data, c.root, data_shards=2, slot_count=8)
    with pytest.raises(RegistrationMismatch) as info:
        port.publish(manifest, other.layout, other.slot_roots, proof)
    assert info.value.theirs[1] == 4 and info.value.ours[1] == 2


# -- receipts -------------------------------------------------------------------------------


def test_receipt_digest_matches_contract(world: World) -> None:
    signed = paid_receipts(world, b"\x01" * 32, 1)[0]
    client = world.client(1)
    assert client.hash_receipt(signed) == receipt_digest(signed.receipt, client.receipt_domain)


def _registered(world: World, size: int = 4096 * 9 + 123, seed: int = 3) -> Content:
    c = make_content(size, seed=seed)
    publish(world.client(0), c)
    return c


def _forged(world: World, root: bytes, bytes_served: int) -> SignedReceipt:
    """A receipt the provider signs for itself with a fresh key as 'receiver' (no escrow)."""
    sybil = Account.create()
    provider = world.accounts[1].address
    r = Receipt(root, provider, sybil.address, bytes_served, 1, 0, 7, world.backend.timestamp())
    return sign_receipt(sybil, r, world.client(1).receipt_domain)


@pytest.mark.parametrize("precheck", [True, False])
def test_forged_and_oversized_receipts_earn_nothing_and_block_nothing(
    world: World, precheck: bool
) -> None:
    """The issue's attack: a self-signed 2^64-1 byte receipt for a root nobody registered, and
    a 2^64-1 byte one for a real root; valid receipts in the same batch still go through."""
    c = _registered(world)
    provider, receiver = world.client(1), world.client(2)
    receiver.deposit(10**16)
    good = paid_receipts(world, c.root, 3, bytes_served=2048)
    unregistered = _forged(world, b"\x66" * 32, U64)
    oversized = sign_receipt(
        world.accounts[2],
        Receipt(
            c.root,
            provider.address,
            receiver.address,
            U64,
            1,
            2**127,
            50,
            good[0].receipt.issued_at,
        ),
        provider.receipt_domain,
    )
    batch = [good[0], unregistered, good[1], oversized, good[2]]
    report = provider.submit_receipts(batch, precheck=precheck)
    assert report.accepted == good and not report.deferred
    assert [(r.receipt, r.reason) for r in report.rejected] == [
        (unregistered, "RootNotRegistered"),
        (oversized, "ExceedsSize"),
    ]
    assert len(report.txs) == 1  # the valid ones were sent in one batch either way
    rejected_on_chain = report.txs[0].events_named("ReceiptRejected")
    assert len(rejected_on_chain) == (0 if precheck else 2)
    epoch = provider.current_epoch()
    assert provider.served_bytes(provider.address, epoch) == 3 * 2048
    assert provider.receipt_count(provider.address, epoch) == 3
    assert not provider.is_nonce_used(unregistered.receipt.receiver, 7)


def _malleate(s: SignedReceipt) -> SignedReceipt:
    sig = s.signature
    high_s = (SECP256K1_N - int.from_bytes(sig[32:64], "big")).to_bytes(32, "big")
    return SignedReceipt(s.receipt, sig[:32] + high_s + bytes([55 - sig[64]]))


def _with(world: World, s: SignedReceipt, signer: int = 2, **changes: Any) -> SignedReceipt:
    r = s.receipt
    fields: dict[str, Any] = {
        "content_root": r.content_root,
        "provider": r.provider,
        "receiver": r.receiver,
        "bytes_served": r.bytes_served,
        "chunks": r.chunks,
        "payment": r.payment,
        "nonce": r.nonce,
        "issued_at": r.issued_at,
        **changes,
    }
    return sign_receipt(
        world.accounts[signer],
        Receipt(**fields),
        world.client(1).receipt_domain,
    )


def test_precheck_agrees_with_the_contract(world: World) -> None:
    """Each kind of bad receipt: the local verdict equals the contract's ReceiptRejected."""
    c = _registered(world)
    provider, receiver = world.client(1), world.client(2)
    receiver.deposit(10**15)
    world.backend.time_travel(3 * PARAMS.epoch_length)
    base = paid_receipts(world, c.root, 1, bytes_served=1000, first_nonce=100)[0]
    r0 = base.receipt
    provider.submit_receipts([base])
    size = len(c.data)
    cases = {
        "NotProvider": _with(world, base, provider=world.accounts[4].address, nonce=1),
        "InvalidSignature": SignedReceipt(
            Receipt(c.root, r0.provider, r0.receiver, 999, 1, r0.payment, 2, r0.issued_at),
            base.signature,
        ),
        "NonceUsed": _with(world, base, bytes_served=10),
        "Stale": _with(world, base, nonce=4, issued_at=r0.issued_at - 3 * PARAMS.epoch_length),
        "RootNotRegistered": _with(world, base, nonce=5, content_root=b"\x42" * 32),
        "Empty": _with(world, base, nonce=6, bytes_served=0, payment=0),
        "ExceedsSize": _with(world, base, nonce=7, bytes_served=size, payment=10**12),
        "Underpaid": _with(world, base, nonce=8, payment=r0.payment - 1),
    }
    malleated = _malleate(_with(world, base, nonce=3))
    for expected, bad in [*cases.items(), ("InvalidSignature", malleated)]:
        local = provider.submit_receipts([bad])
        on_chain = provider.submit_receipts([bad], precheck=False)
        assert [x.reason for x in local.rejected] == [expected], expected
        assert not local.txs
        assert [x.reason for x in on_chain.rejected] == [expected], expected
        assert on_chain.txs[0].event("ReceiptRejected").args["index"] == 0
    # Deferrable: they may pass later.
    future = _with(world, base, nonce=9, issued_at=world.backend.timestamp() + 10_000)
    broke = _with(world, base, nonce=10, payment=10**15)
    for expected, bad in (("IssuedInFuture", future), ("InsufficientEscrow", broke)):
        local = provider.submit_receipts([bad])
        on_chain = provider.submit_receipts([bad], precheck=False)
        assert [x.reason for x in local.deferred] == [expected]
        assert [x.reason for x in on_chain.deferred] == [expected]
    assert not provider.is_nonce_used(r0.receiver, 10)


def test_deferred_receipts_pass_once_they_can(world: World) -> None:
    c = _registered(world)
    provider, receiver = world.client(1), world.client(2)
    receiver.deposit(2 * 10**12)
    now = world.backend.timestamp()
    ok = paid_receipts(world, c.root, 2, bytes_served=1024)
    future = paid_receipts(world, c.root, 1, bytes_served=1024, first_nonce=10, issued_at=now + 50)
    pricey = paid_receipts(world, c.root, 1, bytes_served=1024, first_nonce=20, payment=10**13)
    report = provider.submit_receipts([future[0], pricey[0], *ok])
    assert report.accepted == ok
    assert {(d.receipt, d.reason) for d in report.deferred} == {
        (future[0], "IssuedInFuture"),
        (pricey[0], "InsufficientEscrow"),
    }
    world.backend.time_travel(60)
    receiver.deposit(10**13)
    again = provider.submit_receipts([future[0], pricey[0]])
    assert again.accepted == [future[0], pricey[0]] and not again.deferred


def test_duplicate_nonce_in_one_batch(world: World) -> None:
    c = _registered(world)
    world.client(2).deposit(10**15)
    a = paid_receipts(world, c.root, 1, bytes_served=100)[0]
    b = paid_receipts(world, c.root, 1, bytes_served=200)[0]  # same nonce 0, other bytes
    report = world.client(1).submit_receipts([a, b])
    assert report.accepted == [a] and [r.reason for r in report.rejected] == ["DuplicateNonce"]


def test_receipt_on_chain_reconciles_a_lost_batch(world: World) -> None:
    c = _registered(world)
    provider = world.client(1)
    world.client(2).deposit(10**15)
    batch = paid_receipts(world, c.root, 3, bytes_served=512)
    assert not any(provider.receipt_on_chain(s) for s in batch)
    provider.submit_receipts(batch[:2])
    assert [provider.receipt_on_chain(s) for s in batch] == [True, True, False]
    # Another receipt with a used nonce (not the one credited) is not "on chain".
    twin = _with(world, batch[0], bytes_served=500)
    assert provider.is_nonce_used(twin.receipt.receiver, twin.receipt.nonce)
    assert not provider.receipt_on_chain(twin)
    # After a crash the outbox resubmits everything: the credited ones come back accepted.
    report = provider.submit_receipts(batch)
    assert report.accepted == batch and len(report.txs) == 1
    assert len(report.txs[0].events_named("ReceiptAccepted")) == 1


def test_batch_of_100_gas_per_receipt(world: World) -> None:
    c = _registered(world, size=1 << 18, seed=5)
    world.client(2).deposit(10**16)
    provider = world.client(1)
    report = provider.submit_receipts(paid_receipts(world, c.root, 100, bytes_served=1024))
    assert len(report.txs) == 1 and len(report.accepted) == 100
    per_receipt = report.gas_used / 100
    assert per_receipt <= 20_000, per_receipt


def test_escrow_withdrawal(world: World) -> None:
    receiver = world.client(2)
    with pytest.raises(revert_class("NoWithdrawalRequested")):
        receiver.withdraw_escrow()
    receiver.deposit(10**15)
    world.client(3).deposit(10**15, receiver.address)  # anyone may fund a receiver
    assert receiver.escrow_of().balance == 2 * 10**15
    res = receiver.request_withdrawal(3 * 10**15)
    unlock = receiver.escrow_of().unlock_at
    assert unlock >= world.backend.timestamp() + PARAMS.escrow_withdraw_delay - 1
    assert res.events_named("WithdrawalRequested")
    with pytest.raises(revert_class("WithdrawalLocked")):
        receiver.withdraw_escrow()
    world.backend.time_travel(PARAMS.escrow_withdraw_delay + 1)
    before = receiver.balance()
    res = receiver.withdraw_escrow()
    assert res.event("EscrowWithdrawn").args["amount"] == 2 * 10**15  # min(requested, balance)
    assert receiver.escrow_of().balance == 0
    assert receiver.balance() > before
    with pytest.raises(revert_class("NothingToWithdraw")):
        receiver.withdraw_earnings()


# -- slots, challenges ----------------------------------------------------------------------


def test_contract_draw_equals_python_draw(world: World) -> None:
    client = world.client(0)
    rng = random.Random(8)
    for _ in range(25):
        seed = rng.randbytes(32)
        cid = rng.choice([1, rng.randrange(1 << 64), rng.randrange(1 << 256)])
        samples = rng.randrange(1, 40)
        rows = rng.choice([1, 2, 3, rng.randrange(1, 1 << 20), rng.randrange(1, 1 << 64)])
        assert client.draw_sample_indices(seed, cid, samples, rows) == draw_sample_indices(
            seed, cid, samples, rows
        )
    with pytest.raises(revert_class("ZeroRows")):
        client.draw_sample_indices(b"\x00" * 32, 1, 3, 0)


def test_challenge_samples_follow_the_seed_block(world: World) -> None:
    """Same challenge on different seed blocks: samples drawn from each block's hash, equal to
    node.content's draw over the content's row count (several sizes)."""
    challenger = world.client(5)
    drawn = []
    for seed, size in ((21, 4096 * 3), (22, 4096 * 40 + 1), (23, 4096 * 97)):
        c = _registered(world, size=size, seed=seed)
        commit(world.client(3), c, 5)
        snap = world.backend.snapshot()
        for extra in range(3):
            world.backend.revert(snap)
            world.backend.mine(extra)
            _, ch = challenger.challenge(c.root, 5)
            assert ch.indices is None
            drawn.append(reveal(world, ch.id).indices)
        world.backend.revert(snap)
    assert len(set(drawn)) > 1


def test_commit_errors_and_views(world: World) -> None:
    host, other = world.client(3), world.client(4)
    c = make_content(4096 * 10, seed=4)
    with pytest.raises(revert_class("RootNotRegistered")):
        commit(host, c, 0)
    publish(world.client(0), c)
    with pytest.raises(revert_class("InvalidSlot")):
        host.commit(c.root, 8, c.slot_roots[0], c.slot_proof(0), 10**17)
    with pytest.raises(revert_class("InvalidSlotProof")):
        host.commit(c.root, 1, c.slot_roots[0], c.slot_proof(0), 10**17)  # slot 0's root
    with pytest.raises(revert_class("InvalidSlotProof")):
        host.commit(c.root, 0, b"\x01" * 32, c.slot_proof(0), 10**17)
    with pytest.raises(revert_class("InsufficientStake")):
        commit(host, c, 0, stake=PARAMS.min_stake - 1)
    commit(host, c, 0, stake=PARAMS.min_stake)
    host.top_up(c.root, 0, PARAMS.min_stake)
    cm = host.commitment_of(c.root, 0)
    assert (cm.host, cm.stake, cm.slot_root, cm.last_proven_at) == (
        host.address,
        2 * PARAMS.min_stake,
        c.slot_roots[0],
        0,
    )
    assert [x.slot for x in host.commitments_of(host.address)] == [0]
    assert host.availability(c.root).hosts == 1
    assert not host.is_available(c.root, 1, 3600)
    with pytest.raises(revert_class("WrongBond")):
        other._tx(other.da.functions.challenge(c.root, 0), value=1)
    _, ch = other.challenge(c.root, 0)
    with pytest.raises(revert_class("ChallengeAlreadyOpen")):
        other.challenge(c.root, 0)
    assert host.open_challenge(c.root, 0) == ch.id
    ch = reveal(world, ch.id)
    assert ch.indices is not None
    segments, proofs = c.answer(0, ch.indices)
    with pytest.raises(revert_class("NotChallengedHost")):
        other.respond(ch.id, segments, proofs)
    with pytest.raises(revert_class("SampleCountMismatch")):
        host.respond(ch.id, segments[:-1], proofs[:-1])
    # A wrong-length segment: deletion evidence, not a revert.
    res = host.respond(ch.id, [b"\x00" * 10, *segments[1:]], proofs)
    failed = res.event("ChallengeFailed").args
    assert failed["reason"] == FailReason.WRONG_LENGTH and failed["terminated"]
    assert host.get_challenge(ch.id).status is ChallengeStatus.FAILED
    assert host.open_challenges_for(host.address) == []
    assert host.commitment_of(c.root, 0).terminated


def test_exit_and_withdraw(world: World) -> None:
    host = world.client(3)
    c = _registered(world, seed=6)
    commit(host, c, 2)
    with pytest.raises(revert_class("ExitNotRequested")):
        host.withdraw(c.root, 2)
    res = host.request_exit(c.root, 2)
    ready = int(res.event("ExitRequested").args["readyAt"])
    with pytest.raises(revert_class("ExitDelayNotElapsed")):
        host.withdraw(c.root, 2)
    world.backend.time_travel(PARAMS.exit_delay + 1)
    assert world.backend.timestamp() > ready
    res = host.withdraw(c.root, 2)
    assert res.event("Withdrawn").args["amount"] == 10**17
    assert host.hosts_of(c.root)[2] == ZERO_ADDRESS
    commit(world.client(4), c, 2)  # the slot is free again


def test_consecutive_faults_terminate(world: World) -> None:
    host, challenger = world.client(3), world.client(5)
    c = _registered(world, seed=7)
    commit(host, c, 0)
    slashed = []
    for _ in range(PARAMS.max_faults):
        _, ch = challenger.challenge(c.root, 0)
        world.backend.time_travel(PARAMS.response_window + 1)
        failed = challenger.slash_expired(ch.id).event("ChallengeFailed").args
        assert failed["reason"] == FailReason.EXPIRED
        slashed.append((int(failed["slashed"]), bool(failed["terminated"])))
        next_period(world)
    fault = 10**17 * PARAMS.fault_slash_bps // 10_000
    assert slashed[0] == (fault, False) and slashed[1][1] is False
    assert slashed[-1][1] is True and slashed[-1][0] > fault  # deletion-sized slash at the end
    assert host.commitment_of(c.root, 0).terminated


def test_respond_voids_once_seed_hash_is_gone(world: World) -> None:
    host = world.client(3)
    c = _registered(world, seed=8)
    commit(host, c, 0)
    _, ch = world.client(5).challenge(c.root, 0)
    world.backend.mine(BLOCKHASH_WINDOW + 2)  # calls run in the latest block: 257 past seed
    ch = host.get_challenge(ch.id)
    assert ch.indices is None and ch.status is ChallengeStatus.OPEN
    assert host.open_challenges_for(host.address) == []
    res = host.respond(ch.id, [b""] * PARAMS.samples, [[]] * PARAMS.samples)
    assert res.event("ChallengeVoided").args["id"] == ch.id
    assert host.get_challenge(ch.id).status is ChallengeStatus.VOID
    assert host.commitment_of(c.root, 0).stake == 10**17


def test_due_commitments_skip_challenged_and_free_slots(world: World) -> None:
    c = _registered(world, seed=10)
    validator = world.client(5)
    port = ClientPort(validator)
    assert port.due_commitments() == []
    commit(world.client(3), c, 0)
    commit(world.client(4), c, 3)
    due = port.due_commitments()
    assert due == [
        (c.root, 0, world.accounts[3].address),
        (c.root, 3, world.accounts[4].address),
    ]
    _, ch = port.challenge(c.root, 3)
    assert port.due_commitments() == [(c.root, 0, world.accounts[3].address)]
    assert [x.id for x in port.open_challenges(world.accounts[4].address)] == [ch.id]
    world.backend.time_travel(PARAMS.response_window + 1)
    assert port.expired_challenges() == [ch.id]
    port.slash_expired(ch.id)
    next_period(world)
    port.mine_if_dev(2)  # the period's start block hash must be readable
    assert len(port.due_commitments()) == 2
    assert port.withdraw_owed() is not None  # bond back + half the fault slash
    assert port.withdraw_owed() is None


# -- rewards --------------------------------------------------------------------------------


def test_rewards_limits_token_and_rollover(world: World) -> None:
    owner = world.client(0)
    alloc = AllocationTree({world.accounts[3].address: 700, world.accounts[4].address: 300})
    v = world.accounts[6:9]
    sigs = [owner.sign_allocation(5, ZERO_ADDRESS, alloc.root, alloc.total, a) for a in v[:2]]
    with pytest.raises(revert_class("AllocationExceedsFunding")):
        owner.post_allocation(5, ZERO_ADDRESS, alloc.root, alloc.total, sigs)
    with pytest.raises(revert_class("NoAllocation")):
        owner.claim(5, ZERO_ADDRESS, v[0].address, 1, [])
    digest = owner._view(owner.rewards.functions.hashAllocation(5, ZERO_ADDRESS, alloc.root, 1000))
    assert bytes(digest) == allocation_digest(
        owner.rewards_domain, 5, ZERO_ADDRESS, alloc.root, 1000
    )

    # An epoch never posted: the owner moves its funds on; the epoch is closed afterwards.
    owner.fund_epoch(5, 1000)
    res = owner.rollover(5, 9)
    assert res.events_named("RolledOver")
    assert owner.funded(9) == 1000
    with pytest.raises(revert_class("EpochClosed")):
        owner.post_allocation(5, ZERO_ADDRESS, alloc.root, alloc.total, sigs)
    with pytest.raises(revert_class("InvalidRolloverTarget")):
        owner.rollover(9, 8)

    # Tokens are not fee-capped (the cap is on ETH rewards).
    token = deploy_token(world, 10**24)
    txs = owner.fund_epoch(6, 1000, token)
    assert txs[-1].event("EpochFunded").args["amount"] == 1000
    assert owner.funded(6, token) == 1000
    sigs = [owner.sign_allocation(6, token, alloc.root, alloc.total, a) for a in v]
    owner.post_allocation(6, token, alloc.root, alloc.total, sigs)
    with pytest.raises(revert_class("AllocationExists")):
        owner.post_allocation(6, token, alloc.root, alloc.total, sigs)
    for host, amount in alloc.allocation.items():
        world.client(9).claim(6, token, host, amount, alloc.proof_for(host))
        assert owner.claimed(6, token, host)
    assert owner.paid(6, token) == 1000


# -- misc -----------------------------------------------------------------------------------


def test_revert_errors_pickle(world: World) -> None:
    with pytest.raises(ChainRevert) as info:
        world.client(0).get_content(b"\x07" * 32)
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is type(info.value) and again.args_ == info.value.args_


def test_client_refuses_wrong_chain(world: World) -> None:
    from dataclasses import replace

    with pytest.raises(ChainUsageError):
        ChainClient(world.backend, replace(world.deployment, chain_id=1), world.accounts[0])


def test_deployment_round_trips_through_toml(world: World) -> None:
    import tomllib

    import tomli_w

    from chain.deploy import Deployment

    d = world.deployment
    text = tomli_w.dumps({"deployment": d.to_dict()})
    again = Deployment.from_dict(tomllib.loads(text)["deployment"])
    assert again == d
    assert again.params.validators == tuple(a.address for a in world.accounts[6:9])
    assert world.client(0).quorum() == 2
    assert world.client(0).min_price_per_gib == PRICE
    assert SlotLayout(1, 4, 8).rows == 1
