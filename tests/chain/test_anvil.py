"""The same scenario against a real anvil process (JSON-RPC, web3's ContractCustomError path)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

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
def anvil_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with start_anvil(hardfork="prague", log_dir=tmp_path_factory.mktemp("anvil")) as proc:
        yield build_world(RpcChain(proc.url))


@pytest.fixture
def anvil_world(anvil_module: World) -> Iterator[World]:
    """The module's anvil, rolled back after each test (evm_snapshot / evm_revert)."""
    snap = anvil_module.backend.snapshot()
    yield anvil_module
    anvil_module.backend.revert(snap)


def test_scenario_on_anvil(anvil_world: World) -> None:
    assert anvil_world.backend.chain_id == ANVIL_CHAIN_ID
    gas = run_scenario(anvil_world)
    # 6 samples of 4 KiB: Prague's calldata floor (40 gas per byte) dominates.
    assert gas["respond_ok"] < 1_200_000


@pytest.mark.parametrize("precheck", [True, False])
def test_forged_receipts_on_anvil(anvil_world: World, precheck: bool) -> None:
    """Per-receipt outcomes decoded from logs fetched over JSON-RPC."""
    from .test_client import test_forged_and_oversized_receipts_earn_nothing_and_block_nothing

    test_forged_and_oversized_receipts_earn_nothing_and_block_nothing(anvil_world, precheck)


def test_indexer_on_anvil(anvil_world: World, tmp_path: Path) -> None:
    from .test_indexer import test_ledger_events_feed_the_payout_ledger

    test_ledger_events_feed_the_payout_ledger(anvil_world, tmp_path)


def test_stopped_anvil_is_unavailable() -> None:
    proc = start_anvil()
    backend = RpcChain(proc.url, timeout=2)
    assert backend.is_up()
    world = build_world(backend)
    client = world.client(0)
    made = proc.log_path.parent  # start_anvil's own log directory (no log_dir given)
    proc.stop()
    assert not made.exists()  # not left behind in /tmp
    assert not backend.is_up()
    with pytest.raises(ChainUnavailable):
        backend.block_number()
    with pytest.raises(ChainUnavailable):
        client.deposit(10**15)
    with pytest.raises(ChainUnavailable):
        client.is_registered(b"\x01" * 32)


def test_block_time_mines_without_transactions(tmp_path: Path) -> None:
    """`chain up --anvil` runs anvil with a block time: a challenge's seed block and the next
    one arrive although nobody sends a transaction (the honest host is not left waiting)."""
    with start_anvil(block_time=1, log_dir=tmp_path) as proc:
        backend = RpcChain(proc.url)
        first = backend.block_number()
        deadline = time.monotonic() + 15
        while backend.block_number() < first + 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert backend.block_number() >= first + 2


def test_pyevm_and_anvil_map_the_same_revert(anvil_world: World) -> None:
    """A custom error arrives as the same named class from both backends."""
    from chain.backend import EmbeddedChain
    from chain.errors import SizeProofInvalid
    from node.content import size_proof

    from .conftest import build_world, make_content

    c = make_content(5000, seed=2)
    for world in (anvil_world, build_world(EmbeddedChain())):
        with pytest.raises(SizeProofInvalid) as info:
            world.client(0).register(
                c.root,
                5001,
                data_shards=4,
                slot_count=8,
                slots_root=c.slots_root,
                size_proof=size_proof(c.read, 5000),
            )
        assert info.value.args_["size"] == 5001


def test_directory_on_anvil(anvil_world: World) -> None:
    """Endpoint records and providers over JSON-RPC (reverts as ContractCustomError)."""
    from . import test_directory

    test_directory.test_announce_and_read_back(anvil_world)
    test_directory.test_announce_length_cap(anvil_world)
    test_directory.test_providers_lists_holders_with_their_records(anvil_world)
