"""Decode the suite's logs into ``ChainEvent`` records (used by the client and the indexer)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from node.identity import keccak256, to_checksum_address
from node.log import get_logger

from .contracts import load_artifact

if TYPE_CHECKING:
    from web3 import Web3

__all__ = ["ChainEvent", "EventDecoder", "args_from_json", "args_to_json"]

_log = get_logger("chain.events")


@dataclass(frozen=True)
class ChainEvent:
    """One decoded log of a suite contract."""

    name: str
    contract: str
    address: str
    block_number: int
    block_hash: bytes
    tx_hash: bytes
    log_index: int
    args: dict[str, Any] = field(hash=False)

    @property
    def key(self) -> str:
        """Unique per log: ``"0x<tx hash>:<log index>"`` (the ledger's idempotency key)."""
        return f"0x{self.tx_hash.hex()}:{self.log_index}"


def _topic(item: Mapping[str, Any]) -> bytes:
    types = ",".join(_type(p) for p in item["inputs"])
    return keccak256(f"{item['name']}({types})".encode())


def _type(p: Mapping[str, Any]) -> str:
    t = str(p["type"])
    if t.startswith("tuple"):
        return "(" + ",".join(_type(c) for c in p["components"]) + ")" + t[5:]
    return t


def _jsonable(v: Any) -> Any:
    if isinstance(v, bytes):
        return "0x" + v.hex()
    if isinstance(v, Mapping):  # a struct argument (web3 AttributeDict), e.g. ParamsUpdated
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return v


def args_to_json(args: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _jsonable(v) for k, v in args.items()}


def args_from_json(types: Mapping[str, str], args: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in args.items():
        if types.get(k, "").startswith("bytes") and isinstance(v, str):
            out[k] = bytes.fromhex(v[2:])
        else:
            out[k] = v
    return out


class EventDecoder:
    """Knows every event of the deployed suite, keyed by (address, topic0)."""

    def __init__(self, w3: Web3, contracts: Mapping[str, str]) -> None:
        """``contracts`` maps contract name -> deployed address."""
        self._events: dict[tuple[str, bytes], tuple[str, Any]] = {}
        self.types: dict[str, dict[str, str]] = {}
        self.addresses = [to_checksum_address(a) for a in contracts.values()]
        for name, address in contracts.items():
            abi = load_artifact(name).abi
            contract = w3.eth.contract(address=to_checksum_address(address), abi=abi)
            for item in abi:
                if item.get("type") != "event" or item.get("anonymous"):
                    continue
                event = contract.events[item["name"]]()
                self._events[(to_checksum_address(address), _topic(item))] = (name, event)
                self.types[item["name"]] = {p["name"]: _type(p) for p in item["inputs"]}

    def decode(self, log: Mapping[str, Any]) -> ChainEvent | None:
        topics = log.get("topics") or []
        if not topics:
            return None
        key = (to_checksum_address(log["address"]), bytes(topics[0]))
        found = self._events.get(key)
        if found is None:
            return None
        contract, event = found
        try:
            decoded = event.process_log(log)
        except Exception as exc:  # web3 raises several unrelated types for undecodable data
            _log.warning("log skipped: does not decode", address=key[0], error=repr(exc))
            return None
        return ChainEvent(
            name=decoded["event"],
            contract=contract,
            address=key[0],
            block_number=int(log["blockNumber"]),
            block_hash=bytes(log["blockHash"]),
            tx_hash=bytes(log["transactionHash"]),
            log_index=int(log["logIndex"]),
            args=dict(decoded["args"]),
        )

    def decode_all(self, logs: Iterable[Mapping[str, Any]]) -> list[ChainEvent]:
        return [e for e in (self.decode(log) for log in logs) if e is not None]
