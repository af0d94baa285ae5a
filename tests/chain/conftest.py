"""Shared chain fixtures: one embedded py-evm chain with the suite deployed per test session,
and a snapshot/revert around every test so tests stay independent and fast."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_account.signers.local import LocalAccount

from chain.backend import ChainBackend, EmbeddedChain
from chain.client import ChainClient
from chain.deploy import Deployment, DeployParams, deploy_suite
from node.content import inclusion_proof, segment_leaf_hashes, tree_hash

PARAMS = DeployParams(
    epoch_length=3600,
    min_stake=10**16,
    response_window=600,
    slash_bps=5000,
    exit_delay=3600,
)


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
    data: bytes
    root: bytes

    @property
    def segments(self) -> list[bytes]:
        return [self.data[i : i + 4096] for i in range(0, len(self.data), 4096)]

    def proof(self, index: int) -> list[bytes]:
        return inclusion_proof(segment_leaf_hashes(self.data), index)


def make_content(size: int, seed: int = 1) -> Content:
    data = (bytes([seed]) * 7 + os.urandom(1))[:8] * (size // 8 + 1)
    data = bytes((b + i * seed) & 0xFF for i, b in enumerate(data[:size]))
    return Content(data, tree_hash(data))


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
