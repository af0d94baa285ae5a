"""Every contract path from Python on py-evm (the embedded chain)."""

from __future__ import annotations

import pickle

import pytest

from chain.client import BLOCKHASH_WINDOW, ChainClient, ChallengeStatus, draw_segment_index
from chain.eip712 import ZERO_ADDRESS, allocation_digest
from chain.errors import ChainRevert, ChainUsageError, revert_class
from chain.merkle import AllocationTree
from node.content import EMPTY_ROOT
from node.receipt import SECP256K1_N, Receipt, SignedReceipt, receipt_digest, sign_receipt

from .conftest import World, make_content
from .scenario import deploy_token, reveal, run_scenario, signed_receipts


def test_full_scenario_on_pyevm(world: World) -> None:
    run_scenario(world)


def test_register_paths(world: World) -> None:
    owner, other = world.client(0), world.client(1)
    c = make_content(5000)
    owner.register_content(c.root, 5000, 1 << 20, 4096, "meta")
    info = owner.get_content(c.root)
    assert (info.owner, info.size, info.chunk_size, info.metadata_uri) == (
        owner.address,
        5000,
        1 << 20,
        "meta",
    )
    assert owner.segment_count(c.root) == 2
    with pytest.raises(revert_class("NotRegistered")):
        owner.get_content(b"\x09" * 32)
    with pytest.raises(revert_class("InvalidGeometry")) as info_:
        owner.register_content(b"\x08" * 32, 10, 1000, 4096)
    assert info_.value.args_ == {"size": 10, "chunkSize": 1000, "segmentSize": 4096}
    with pytest.raises(revert_class("NotContentOwner")):
        other.set_metadata_uri(c.root, "x")
    assert owner.register_content(EMPTY_ROOT, 0).event("ContentRegistered")


def test_receipt_digest_matches_contract(world: World) -> None:
    signed = signed_receipts(world, b"\x01" * 32, 1)[0]
    client = world.client(1)
    assert client.hash_receipt(signed) == receipt_digest(signed.receipt, client.receipt_domain)


def test_batch_of_100_gas_per_receipt(world: World) -> None:
    provider = world.client(1)
    report = provider.submit_receipts(signed_receipts(world, b"\x01" * 32, 100))
    assert len(report.txs) == 1
    per_receipt = report.gas_used / 100
    assert per_receipt <= 15_000, per_receipt


def _malleate(s: SignedReceipt) -> SignedReceipt:
    sig = s.signature
    high_s = (SECP256K1_N - int.from_bytes(sig[32:64], "big")).to_bytes(32, "big")
    return SignedReceipt(s.receipt, sig[:32] + high_s + bytes([55 - sig[64]]))


def test_bad_receipts_dropped_by_precheck_and_refused_on_chain(world: World) -> None:
    provider = world.client(1)
    good = signed_receipts(world, b"\x01" * 32, 6)
    r0 = good[0].receipt
    altered = SignedReceipt(
        Receipt(
            r0.content_root, r0.provider, r0.receiver, r0.bytes_served * 10, 1, 100, r0.issued_at
        ),
        good[0].signature,
    )
    malleated = _malleate(good[1])
    future = sign_receipt(
        world.accounts[2],
        Receipt(r0.content_root, r0.provider, r0.receiver, 1, 1, 200, r0.issued_at + 10_000),
        provider.receipt_domain,
    )
    not_mine = sign_receipt(
        world.accounts[2],
        Receipt(r0.content_root, world.accounts[4].address, r0.receiver, 1, 1, 300, r0.issued_at),
        provider.receipt_domain,
    )
    report = provider.submit_receipts([*good[2:], altered, malleated, future, not_mine, good[2]])
    assert len(report.accepted) == 4
    assert [r.reason for r in report.rejected] == [
        "InvalidSignature",
        "InvalidSignature",
        "IssuedInFuture",
        "NotProvider",
        "DuplicateNonce",
    ]
    # Forced past the pre-check, the contract names each fault.
    cases = [
        (altered, "InvalidSignature"),
        (malleated, "InvalidSignature"),
        (future, "IssuedInFuture"),
        (not_mine, "NotProvider"),
        (good[2], "NonceUsed"),
    ]
    for bad, name in cases:
        with pytest.raises(ChainRevert) as info:
            provider.submit_receipts([good[0], bad], precheck=False)
        assert info.value.name == name
        assert info.value.args_["index"] == 1
    assert not provider.is_nonce_used(good[0].receipt.receiver, good[0].receipt.nonce)


def test_revert_errors_pickle(world: World) -> None:
    with pytest.raises(ChainRevert) as info:
        world.client(0).get_content(b"\x07" * 32)
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is type(info.value) and again.args_ == info.value.args_


def test_commit_errors_and_views(world: World) -> None:
    host = world.client(3)
    c = make_content(4096 * 3)
    with pytest.raises(revert_class("RootNotRegistered")):
        host.commit(c.root, 10**17)
    host.register_content(c.root, len(c.data), 1 << 18)
    with pytest.raises(revert_class("InsufficientStake")):
        host.commit(c.root, 1)
    host.commit(c.root, 10**16)
    host.commit(c.root, 10**16)  # top-up
    assert host.stake_of(host.address, c.root) == 2 * 10**16
    assert host.hosts_of(c.root) == [host.address]
    assert host.availability(c.root).last_proven_at == 0
    assert not host.is_available(c.root, 1, 3600)
    _, ch = world.client(5).challenge(host.address, c.root)
    with pytest.raises(revert_class("ChallengeAlreadyOpen")):
        world.client(5).challenge(host.address, c.root)
    with pytest.raises(revert_class("NotChallengedHost")):
        world.client(5).respond(ch.id, c.segments[0], c.proof(0))
    assert host.open_challenge(host.address, c.root) == ch.id
    with pytest.raises(ChainUsageError):
        _ = ch.segment_index  # not drawn before the seed block
    ch = reveal(world, ch.id)
    # Wrong length: a failure, not a revert.
    res = host.respond(ch.id, b"\x00" * 10, c.proof(ch.segment_index))
    assert res.event("ChallengeFailed").args["reason"] == 2
    assert host.get_challenge(ch.id).status is ChallengeStatus.FAILED
    assert host.open_challenges_for(host.address) == []


def test_rewards_limits_and_token(world: World) -> None:
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

    token = deploy_token(world, 10**24)
    txs = owner.fund_epoch(5, 1000, token)
    assert txs[-1].event("EpochFunded").args["amount"] == 1000
    assert owner.funded(5, token) == 1000
    sigs = [owner.sign_allocation(5, token, alloc.root, alloc.total, a) for a in v]
    owner.post_allocation(5, token, alloc.root, alloc.total, sigs)
    with pytest.raises(revert_class("AllocationExists")):
        owner.post_allocation(5, token, alloc.root, alloc.total, sigs)
    for host, amount in alloc.allocation.items():
        world.client(9).claim(5, token, host, amount, alloc.proof_for(host))
        assert owner.claimed(5, token, host)
    assert owner.paid(5, token) == 1000


def test_client_refuses_wrong_chain(world: World) -> None:
    from dataclasses import replace

    from chain.client import ChainClient

    with pytest.raises(ChainUsageError):
        ChainClient(world.backend, replace(world.deployment, chain_id=1), world.accounts[0])


def _committed_host(world: World) -> tuple[ChainClient, bytes]:
    host = world.client(3)
    c = make_content(4096 * 7 + 5, seed=5)
    host.register_content(c.root, len(c.data), 1 << 18)
    host.commit(c.root, 10**16)
    return host, c.root


def test_challenge_index_unknown_until_seed_block(world: World) -> None:
    """The challenge fixes no segment: the same challenge, mined on different seed blocks,
    asks for segments drawn from each block's hash."""
    host, root = _committed_host(world)
    snap = world.backend.snapshot()
    drawn = []
    for extra in range(6):
        world.backend.revert(snap)
        world.backend.mine(extra)  # a different seed block (number and hash) per round
        _, ch = world.client(5).challenge(host.address, root)
        assert ch.index is None and host.segment_index_of(ch.id) == (False, 0)
        world.backend.mine(1)  # the seed block: its hash exists, calls in it cannot read it
        assert host.get_challenge(ch.id).index is None
        world.backend.mine(1)
        ch = host.get_challenge(ch.id)
        seed_hash = bytes(world.backend.w3.eth.get_block(ch.seed_block)["hash"])
        assert ch.index == draw_segment_index(seed_hash, host.address, root, ch.id, 4096 * 7 + 5)
        assert host.segment_index_of(ch.id) == (True, ch.index)
        drawn.append(ch.index)
    assert len(set(drawn)) > 1, drawn


def test_respond_voids_once_seed_hash_is_gone(world: World) -> None:
    host, root = _committed_host(world)
    _, ch = world.client(5).challenge(host.address, root)
    world.backend.mine(BLOCKHASH_WINDOW + 2)  # calls run in the latest block: 257 past seed
    ch = host.get_challenge(ch.id)
    assert ch.index is None and ch.status is ChallengeStatus.OPEN
    assert host.open_challenges_for(host.address) == []
    res = host.respond(ch.id, b"", [])
    assert res.event("ChallengeVoided").args["id"] == ch.id
    assert host.get_challenge(ch.id).status is ChallengeStatus.VOID
    assert host.stake_of(host.address, root) == 10**16
    assert host.availability(root).last_proven_at == 0
