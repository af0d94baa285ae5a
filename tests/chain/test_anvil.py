"""The same scenario against a real anvil process (JSON-RPC, web3's ContractCustomError path)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chain.anvil import anvil_binary, start_anvil
from chain.backend import ANVIL_CHAIN_ID, RpcChain
from chain.errors import ChainUnavailable

from .conftest import World, build_world
from .scenario import run_scenario

pytestmark = [
    pytest.mark.anvil,
    pytest.mark.skipif(anvil_binary() is None, reason="anvil binary not installed (npm ci)"),
]


@pytest.fixture(scope="module")
def anvil_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with start_anvil(hardfork="prague", log_dir=tmp_path_factory.mktemp("anvil")) as proc:
        yield build_world(RpcChain(proc.url))


def test_scenario_on_anvil(anvil_world: World) -> None:
    assert anvil_world.backend.chain_id == ANVIL_CHAIN_ID
    gas = run_scenario(anvil_world)
    assert gas["respond_ok"] < 250_000


def test_stopped_anvil_is_unavailable() -> None:
    proc = start_anvil()
    backend = RpcChain(proc.url, timeout=2)
    assert backend.is_up()
    world = build_world(backend)
    client = world.client(0)
    proc.stop()
    assert not backend.is_up()
    with pytest.raises(ChainUnavailable):
        backend.block_number()
    with pytest.raises(ChainUnavailable):
        client.register_content(b"\x01" * 32, 4096, 1 << 18)
    with pytest.raises(ChainUnavailable):
        client.is_registered(b"\x01" * 32)
