"""Shared chain fixtures: one embedded py-evm chain with the suite deployed per test session,
and a snapshot/revert around every test so tests stay independent and fast."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

import pytest
from eth_account.signers.local import LocalAccount

from chain.backend import ChainBackend, EmbeddedChain
from chain.client import ChainClient
from chain.deploy import Deployment, DeployParams, deploy_suite
from node.content import (
    SlotLayout,
    encode_slot_roots,
    inclusion_proof,
    iter_slot_segments,
    leaf_hash,
    slot_root_proof,
    tree_hash,
)
from node.receipt import Receipt, SignedReceipt, payment_for, sign_receipt

#: Small, test-friendly parameters: every commitment is due every period, periods are short.
PARAMS = DeployParams(
    epoch_length=3600,
    escrow_withdraw_delay=7200,
    min_stake=10**16,
    challenge_bond=10**15,
    challenge_reward=5 * 10**14,
    response_window=600,
    exit_delay=3600,
    period_blocks=20,
    due_bps=10_000,
    samples=6,
    fault_slash_bps=100,
    proof_slash_bps=5000,
    max_faults=3,
)
PRICE = PARAMS.min_price_per_gib


@dataclass
class World:
    backend: ChainBackend
    deployment: Deployment
    accounts: list[LocalAccount]

    def client(self, index: int) -> ChainClient:
        return ChainClient(self.backend, self.deployment, self.accounts[index])

    @property
    def owner(self) -> ChainClient:
        return self.client(0)


@dataclass(frozen=True)
class Content:
    """Content and everything a publisher and a host derive from it."""

    data: bytes
    root: bytes
    data_shards: int = 4
    slot_count: int = 8
    _cache: dict[int, list[bytes]] = field(default_factory=dict, compare=False, repr=False)

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]

    @property
    def layout(self) -> SlotLayout:
        return SlotLayout(len(self.data), self.data_shards, self.slot_count)

    @cached_property
    def encoded(self) -> tuple[list[bytes], bytes]:
        return encode_slot_roots(self.read, self.layout)

    @property
    def slot_roots(self) -> list[bytes]:
        return self.encoded[0]

    @property
    def slots_root(self) -> bytes:
        return self.encoded[1]

    def slot_proof(self, slot: int) -> list[bytes]:
        return slot_root_proof(self.slot_roots, slot)

    def slot_segments(self, slot: int) -> list[bytes]:
        if slot not in self._cache:
            self._cache[slot] = list(iter_slot_segments(self.read, self.layout, slot))
        return self._cache[slot]

    def answer(
        self, slot: int, indices: tuple[int, ...] | list[int]
    ) -> tuple[list[bytes], list[list[bytes]]]:
        """The segments and audit paths a host holding ``slot`` sends for ``indices``."""
        segs = self.slot_segments(slot)
        leaves = [leaf_hash(s) for s in segs]
        return [segs[i] for i in indices], [inclusion_proof(leaves, i) for i in indices]


def make_content(size: int, seed: int = 1, data_shards: int = 4, slot_count: int = 8) -> Content:
    data = (bytes([seed]) * 7 + os.urandom(1))[:8] * (size // 8 + 1)
    data = bytes((b + i * seed) & 0xFF for i, b in enumerate(data[:size]))
    return Content(data, tree_hash(data), data_shards, slot_count)


def publish(client: ChainClient, content: Content, metadata_uri: str = "") -> None:
    client.publish_content(
        content.read,
        len(content.data),
        data_shards=content.data_shards,
        slot_count=content.slot_count,
        chunk_size=1 << 18,
        metadata_uri=metadata_uri,
    )


def commit(client: ChainClient, content: Content, slot: int, stake: int = 10**17) -> None:
    client.commit(content.root, slot, content.slot_roots[slot], content.slot_proof(slot), stake)


def paid_receipts(
    world: World,
    root: bytes,
    n: int,
    *,
    provider: int = 1,
    receiver: int = 2,
    bytes_served: int = 4096,
    first_nonce: int = 0,
    issued_at: int | None = None,
    payment: int | None = None,
) -> list[SignedReceipt]:
    """``n`` receipts from ``receiver`` to ``provider``, paying the floor price."""
    p, r = world.accounts[provider], world.accounts[receiver]
    domain = world.client(provider).receipt_domain
    when = world.backend.timestamp() - 1 if issued_at is None else issued_at
    pay = payment_for(bytes_served, PRICE) if payment is None else payment
    return [
        sign_receipt(
            r,
            Receipt(root, p.address, r.address, bytes_served, 1, pay, first_nonce + i, when),
            domain,
        )
        for i in range(n)
    ]


def build_world(backend: ChainBackend) -> World:
    accounts = backend.dev_accounts()
    validators = tuple(a.address for a in accounts[6:9])
    params = DeployParams(**{**PARAMS.__dict__, "validators": validators, "quorum": 2})
    deployment = deploy_suite(backend, accounts[0], params)
    return World(backend, deployment, accounts)


@pytest.fixture(scope="session")
def embedded_world() -> World:
    return build_world(EmbeddedChain())


@pytest.fixture
def world(embedded_world: World) -> Iterator[World]:
    snap = embedded_world.backend.snapshot()
    yield embedded_world
    embedded_world.backend.revert(snap)
