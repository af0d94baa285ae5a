"""HostDirectory through ``ChainClient``/``ClientPort``: endpoint records and the providers of a
root, on the embedded py-evm chain (and on anvil in test_anvil.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chain.client import MAX_ENDPOINT_LENGTH, ChainClient
from chain.deploy import Deployment
from chain.errors import ChainUsageError, revert_class
from chain.port import ChainPort, ClientPort

from .conftest import World, commit, make_content, publish


def test_announce_and_read_back(world: World) -> None:
    host, other = world.client(1), world.client(2)
    assert host.endpoint_of(host.address) is None
    res = host.announce_endpoint("127.0.0.1:7420")
    event = res.event("EndpointAnnounced")
    assert event.args["host"] == host.address and event.args["endpoint"] == "127.0.0.1:7420"
    assert other.endpoint_of(host.address) == "127.0.0.1:7420"
    assert other.endpoint_of(other.address) is None
    host.announce_endpoint("[::1]:7421")
    assert other.endpoint_of(host.address) == "[::1]:7421"
    host.announce_endpoint("")
    assert other.endpoint_of(host.address) is None


def test_announce_length_cap(world: World) -> None:
    host = world.client(1)
    host.announce_endpoint("a" * MAX_ENDPOINT_LENGTH)
    assert host.endpoint_of(host.address) == "a" * MAX_ENDPOINT_LENGTH
    with pytest.raises(ChainUsageError, match="129 bytes"):
        host.announce_endpoint("a" * (MAX_ENDPOINT_LENGTH + 1))
    # Multi-byte characters count as bytes: 43 x 3 = 129.
    with pytest.raises(ChainUsageError):
        host.announce_endpoint("\u20ac" * 43)
    # The contract enforces it too (a client that skips the check pays for a revert).
    assert host.directory is not None
    with pytest.raises(revert_class("EndpointTooLong")) as info:
        host._tx(host.directory.functions.announce("b" * 200))
    assert info.value.args_ == {"length": 200, "max": MAX_ENDPOINT_LENGTH}


def test_providers_lists_holders_with_their_records(world: World) -> None:
    owner = world.client(0)
    c = make_content(4 * 4096 * 3, seed=21)
    publish(owner, c)
    assert owner.providers(c.root) == []
    a, b, d = world.client(3), world.client(4), world.client(5)
    commit(a, c, 2)
    commit(b, c, 0)
    commit(d, c, 5)
    a.announce_endpoint("10.0.0.3:7420")
    b.announce_endpoint("10.0.0.4:7420")
    world.client(2).announce_endpoint("10.0.0.2:7420")  # holds nothing: not listed
    assert owner.providers(c.root) == [
        (b.address, "10.0.0.4:7420"),
        (a.address, "10.0.0.3:7420"),
        (d.address, None),
    ]
    port: ChainPort = ClientPort(owner)
    assert port.providers(c.root) == owner.providers(c.root)
    assert port.endpoint_of(a.address) == "10.0.0.3:7420"
    # An exit past readyAt drops the host.
    b.request_exit(c.root, 0)
    assert b.address in dict(owner.providers(c.root))
    world.backend.time_travel(world.deployment.params.exit_delay + 1)
    assert b.address not in dict(owner.providers(c.root))
    assert owner.providers(bytes(32)) == []


def test_hostile_record_bytes_do_not_break_lookups(world: World) -> None:
    """A record that is not UTF-8 (written past the client's checks) comes back with
    replacement characters instead of failing every caller's providers() call."""
    owner, evil = world.client(0), world.client(1)
    c = make_content(4 * 4096, seed=22)
    publish(owner, c)
    commit(evil, c, 1)
    assert evil.directory is not None
    calldata = evil.directory.encode_abi("announce", args=["x" * 4])
    # Same ABI encoding for string and bytes: patch the 4 payload bytes to invalid UTF-8.
    raw = bytes.fromhex(calldata[2:]).replace(b"xxxx", b"\xff\xfe:1")
    from chain.tx import send_transaction

    class Raw:
        """A prepared call (what web3's ContractFunction offers send_transaction)."""

        def estimate_gas(self, params: dict[str, object], block_identifier: str) -> int:
            return 100_000

        def call(self, params: dict[str, object]) -> None:
            return None

        def build_transaction(self, params: dict[str, object]) -> dict[str, object]:
            price = int(world.backend.w3.eth.gas_price)
            return {
                **params,
                "to": evil.directory.address,  # type: ignore[union-attr]
                "data": "0x" + raw.hex(),
                "maxFeePerGas": price * 2 + 1,
                "maxPriorityFeePerGas": 1,
            }

    send_transaction(world.backend, evil.account, Raw())
    endpoint = owner.endpoint_of(evil.address)
    assert endpoint is not None and "\ufffd" in endpoint
    assert owner.providers(c.root) == [(evil.address, endpoint)]


def test_deployment_without_directory(world: World) -> None:
    """A deployment recorded before HostDirectory existed still loads; discovery degrades to the
    holders without endpoints and announcing says why it cannot."""
    d = world.deployment.to_dict()
    del d["host_directory"]
    old = Deployment.from_dict(d)
    assert old.host_directory is None and "HostDirectory" not in old.contracts()
    client = ChainClient(world.backend, old, world.accounts[1])
    c = make_content(4 * 4096 * 2, seed=23)
    publish(world.client(0), c)
    commit(world.client(1), c, 3)
    assert client.providers(c.root) == [(world.accounts[1].address, None)]
    assert client.endpoint_of(world.accounts[1].address) is None
    with pytest.raises(ChainUsageError, match="no HostDirectory"):
        client.announce_endpoint("1.2.3.4:5")
    again = Deployment.from_dict(replace(old, host_directory=None).to_dict())
    assert again == old
