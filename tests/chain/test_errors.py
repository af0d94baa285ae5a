"""Error mapping at the edge: both backends' revert shapes, and the package's public names."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_tester.exceptions import TransactionFailed
from eth_utils import keccak
from web3.exceptions import ContractCustomError

import chain
from chain.errors import ChainRevert, ChainUnavailable, revert_class
from chain.reverts import translate

NONCE_USED = keccak(text="NonceUsed(uint256,address,uint64)")[:4] + encode(
    ["uint256", "address", "uint64"], [3, "0x" + "11" * 20, 9]
)


def test_pyevm_raw_revert_bytes() -> None:
    mapped = translate(TransactionFailed(f"execution reverted: {NONCE_USED!r}"))
    assert isinstance(mapped, revert_class("NonceUsed"))
    assert mapped.args_ == {"index": 3, "receiver": "0x" + "11" * 20, "nonce": 9}


def test_rpc_custom_error_hex() -> None:
    mapped = translate(ContractCustomError("0x" + NONCE_USED.hex(), data="0x" + NONCE_USED.hex()))
    assert isinstance(mapped, ChainRevert) and mapped.name == "NonceUsed"


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
