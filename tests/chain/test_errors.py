"""Error mapping at the edge: both backends' revert shapes, and the package's public names."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_tester.exceptions import TransactionFailed
from eth_utils import keccak
from web3.exceptions import ContractCustomError

import chain
import chain.errors
from chain.contracts import SUITE, load_artifact
from chain.errors import KNOWN_REVERTS, ChainRevert, ChainUnavailable, revert_class
from chain.reverts import translate

SLOT_TAKEN = keccak(text="SlotTaken(bytes32,uint8,address)")[:4] + encode(
    ["bytes32", "uint8", "address"], [b"\x05" * 32, 3, "0x" + "11" * 20]
)


def test_pyevm_raw_revert_bytes() -> None:
    mapped = translate(TransactionFailed(f"execution reverted: {SLOT_TAKEN!r}"))
    assert isinstance(mapped, chain.errors.SlotTaken)
    assert mapped.args_ == {"root": b"\x05" * 32, "slot": 3, "host": "0x" + "11" * 20}


def test_rpc_custom_error_hex() -> None:
    mapped = translate(ContractCustomError("0x" + SLOT_TAKEN.hex(), data="0x" + SLOT_TAKEN.hex()))
    assert isinstance(mapped, chain.errors.SlotTaken) and mapped.name == "SlotTaken"


def test_every_abi_error_has_a_named_exception() -> None:
    """Each custom error of the four contracts is importable from chain.errors by name."""
    declared = {
        item["name"]
        for name in SUITE
        for item in load_artifact(name).abi
        if item.get("type") == "error"
    }
    assert declared <= set(KNOWN_REVERTS)
    for name in declared:
        cls = getattr(chain.errors, name)
        assert cls is revert_class(name) and issubclass(cls, ChainRevert)
        assert name in chain.errors.__all__


def test_error_string_and_unknown_selector() -> None:
    mapped = translate(TransactionFailed("execution reverted: nope"))
    assert isinstance(mapped, ChainRevert) and mapped.name == "Error"
    assert mapped.args_ == {"reason": "nope"}
    unknown = translate(TransactionFailed("execution reverted: b'\\xde\\xad\\xbe\\xef'"))
    assert isinstance(unknown, ChainRevert) and unknown.name == "Unknown"


def test_connection_errors_are_unavailable() -> None:
    assert isinstance(translate(ConnectionRefusedError()), ChainUnavailable)
    assert translate(KeyError("x")) is None


def test_public_names() -> None:
    assert set(chain.__all__) == {
        "ChainBackend",
        "ChainClient",
        "ChainError",
        "ChainRevert",
        "ChainUnavailable",
        "ChainUsageError",
        "DeployParams",
        "Deployment",
        "EmbeddedChain",
        "RpcChain",
        "TxResult",
        "deploy_suite",
        "revert_class",
    }
    for name in chain.__all__:
        assert getattr(chain, name).__module__.startswith("chain.")


def test_revert_class_is_cached() -> None:
    assert revert_class("X") is revert_class("X")
    with pytest.raises(revert_class("X")):
        raise revert_class("X")("X", {})
