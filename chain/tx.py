"""Send one contract transaction: estimate (surfacing reverts), sign locally, send raw, wait.

Every transaction returns a ``TxResult`` with the gas actually used (from the receipt, not the
estimate) and the suite events it emitted. A transaction mined with status 0 is replayed with
``eth_call`` at its block to recover the revert reason.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .backend import ChainBackend
from .errors import ChainRevert, InsufficientFunds, revert_class
from .events import ChainEvent, EventDecoder
from .reverts import map_errors

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

__all__ = ["TxResult", "send_transaction"]

#: Gas head-room over the estimate (the 63/64 rule bites calls into precompiles).
GAS_MARGIN = 1.25
RECEIPT_TIMEOUT = 120.0


@dataclass(frozen=True)
class TxResult:
    """A mined transaction: its hash, gas used, block and decoded suite events."""

    tx_hash: str
    gas_used: int
    block: int
    events: list[ChainEvent] = field(default_factory=list)
    contract_address: str | None = None

    def event(self, name: str) -> ChainEvent:
        for e in self.events:
            if e.name == name:
                return e
        raise KeyError(f"no {name} event in {self.tx_hash}")

    def events_named(self, name: str) -> list[ChainEvent]:
        return [e for e in self.events if e.name == name]

    def to_json(self) -> dict[str, Any]:
        return {
            "tx": self.tx_hash,
            "gas_used": self.gas_used,
            "block": self.block,
            "events": [e.name for e in self.events],
            **({"contract": self.contract_address} if self.contract_address else {}),
        }


_SENDER_LOCKS: dict[str, threading.Lock] = {}
_SENDER_LOCKS_GUARD = threading.Lock()


def _sender_lock(address: str) -> threading.Lock:
    with _SENDER_LOCKS_GUARD:
        return _SENDER_LOCKS.setdefault(address.lower(), threading.Lock())


def send_transaction(
    backend: ChainBackend,
    account: LocalAccount,
    fn: Any,
    *,
    value: int = 0,
    decoder: EventDecoder | None = None,
) -> TxResult:
    """Run ``fn`` (a web3 ``ContractFunction`` or ``ContractConstructor``) as ``account``."""
    w3 = backend.w3
    with map_errors():
        balance = int(w3.eth.get_balance(account.address))
        if balance < value:  # before the estimate, which would fail with a node's raw message
            raise InsufficientFunds(account.address, balance, value)
        params: dict[str, Any] = {"from": account.address, "value": value}
        params.update(gas=_gas_limit(backend, fn, params), chainId=backend.chain_id)
        # One sender at a time per account in this process (a daemon's chain duties and an
        # operator's `host commit` through its API share the node's account): the "pending"
        # nonce is read and used under the lock, so two threads never sign the same nonce.
        with _sender_lock(account.address):
            params["nonce"] = w3.eth.get_transaction_count(account.address, "pending")
            tx = fn.build_transaction(params)
            _check_funds(account.address, balance, tx)
            signed = account.sign_transaction(tx)
            tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT)
        if receipt["status"] != 1:
            _raise_replayed(w3, tx, int(receipt["blockNumber"]))
    events = decoder.decode_all(receipt["logs"]) if decoder is not None else []
    address = receipt.get("contractAddress")
    return TxResult(
        tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
        gas_used=int(receipt["gasUsed"]),
        block=int(receipt["blockNumber"]),
        events=events,
        contract_address=str(address) if address else None,
    )


def _check_funds(address: str, balance: int, tx: dict[str, Any]) -> None:
    """Raise ``InsufficientFunds`` if ``balance`` cannot cover value + gas x fee cap (a node
    would refuse the transaction with a raw RPC error)."""
    price = int(tx.get("maxFeePerGas", tx.get("gasPrice", 0)))
    needed = int(tx.get("value", 0)) + int(tx.get("gas", 0)) * price
    if balance < needed:
        raise InsufficientFunds(address, balance, needed)


def _gas_limit(backend: ChainBackend, fn: Any, params: dict[str, Any]) -> int:
    """Gas limit for the transaction; raises the contract's error if it would revert.

    On the embedded chain eth-tester's ``estimate_gas`` is a binary search over full py-evm
    executions (13 s for a 100-receipt batch), so there one ``eth_call`` surfaces reverts and the
    limit is simply what the sender can afford, up to half a block: gas *used* (what we report)
    is unaffected. Elsewhere: the node's estimate plus a margin.
    """
    w3 = backend.w3
    block_limit = int(w3.eth.get_block("latest")["gasLimit"])
    if backend.kind == "embedded" and hasattr(fn, "call"):  # constructors: estimate below
        fn.call(params)
        price = int(w3.eth.gas_price) * 2 + 1
        affordable = (
            int(w3.eth.get_balance(params["from"])) - int(params.get("value", 0))
        ) // price
        if affordable >= 1_000_000:
            return min(block_limit // 2, affordable)
    # Estimate against the pending block: its timestamp is "now", as the including block's will
    # be. Against "latest" a quiet chain (or one restored from a state file) has an old
    # timestamp and time checks such as TransferReceipts' IssuedInFuture would fail spuriously.
    # (eth-tester only estimates against "latest"; its blocks carry the wall-clock time.)
    block = "latest" if backend.kind == "embedded" else "pending"
    estimate = int(fn.estimate_gas(params, block_identifier=block))
    return min(int(estimate * GAS_MARGIN) + 10_000, block_limit)


def _raise_replayed(w3: Any, tx: dict[str, Any], block: int) -> None:
    call = {k: tx[k] for k in ("from", "to", "data", "value") if k in tx}
    with map_errors():
        w3.eth.call(call, block - 1 if block > 0 else "latest")
    # The replay succeeded: the failure was gas or state-dependent ordering.
    cls: type[ChainRevert] = revert_class("Unknown")
    raise cls("Unknown", {}, b"", "transaction failed on chain (out of gas?)")


def send_value(backend: ChainBackend, account: LocalAccount, to: str, value: int) -> TxResult:
    """A plain ETH transfer from ``account`` to ``to`` (funding node accounts in dev/demo)."""
    w3 = backend.w3
    with map_errors():
        tx: dict[str, Any] = {
            "from": account.address,
            "to": w3.to_checksum_address(to),
            "value": value,
            "gas": 21_000,
            "nonce": w3.eth.get_transaction_count(account.address, "pending"),
            "chainId": backend.chain_id,
            "maxFeePerGas": w3.eth.gas_price * 2 + 1,
            "maxPriorityFeePerGas": 1,
        }
        _check_funds(account.address, int(w3.eth.get_balance(account.address)), tx)
        signed = account.sign_transaction(tx)
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT)
    return TxResult(
        tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
        gas_used=int(receipt["gasUsed"]),
        block=int(receipt["blockNumber"]),
    )
