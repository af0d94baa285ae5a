"""Compiled contract artifacts and the custom-error table built from their ABIs.

Artifacts ship as package data in ``chain/artifacts/<Name>.json`` (keys ``abi``, ``bytecode``,
``deployedBytecode``, ``sourceHash``), produced by ``python -m chain.build_artifacts``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from node.identity import keccak256

from .errors import ArtifactMissing, ChainRevert, revert_class

__all__ = [
    "SUITE",
    "Artifact",
    "decode_revert",
    "error_table",
    "load_artifact",
]

#: The contracts of the suite, in deployment order.
SUITE = (
    "ContentRegistry",
    "TransferReceipts",
    "DataAvailability",
    "HostingRewards",
    "HostDirectory",
)

_ERROR_STRING = bytes.fromhex("08c379a0")  # Error(string)
_PANIC = bytes.fromhex("4e487b71")  # Panic(uint256)


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    source_hash: str | None = None


def _artifact_dir() -> Path:
    return Path(str(resources.files("chain"))) / "artifacts"


@cache
def load_artifact(name: str) -> Artifact:
    """Load ``chain/artifacts/<name>.json``; raises ``ArtifactMissing``."""
    path = _artifact_dir() / f"{name}.json"
    try:
        data = json.loads(path.read_text())
        return Artifact(name, data["abi"], data["bytecode"], data.get("sourceHash"))
    except (OSError, ValueError, KeyError) as exc:
        raise ArtifactMissing(
            f"artifact {path} unusable ({exc}); run `python -m chain.build_artifacts`"
        ) from None


def _type_string(param: dict[str, Any]) -> str:
    t = str(param["type"])
    if t.startswith("tuple"):
        inner = ",".join(_type_string(c) for c in param["components"])
        return f"({inner}){t[5:]}"
    return t


@dataclass(frozen=True)
class ErrorSpec:
    name: str
    names: tuple[str, ...]
    types: tuple[str, ...]


@cache
def error_table(names: tuple[str, ...] = SUITE) -> dict[bytes, ErrorSpec]:
    """selector -> custom error spec, over every error declared in the named ABIs."""
    table: dict[bytes, ErrorSpec] = {}
    for contract in names:
        try:
            abi = load_artifact(contract).abi
        except ArtifactMissing:
            continue
        for item in abi:
            if item.get("type") != "error":
                continue
            types = tuple(_type_string(p) for p in item["inputs"])
            sig = f"{item['name']}({','.join(types)})"
            names_ = tuple(p.get("name") or f"arg{i}" for i, p in enumerate(item["inputs"]))
            table[keccak256(sig.encode())[:4]] = ErrorSpec(item["name"], names_, types)
    return table


def decode_revert(data: bytes, extra_abis: tuple[str, ...] = ()) -> ChainRevert:
    """Turn raw revert data into a ``ChainRevert`` subclass named after the error."""
    from eth_abi import decode as abi_decode
    from eth_abi.exceptions import DecodingError

    selector, body = data[:4], data[4:]
    try:
        if selector == _ERROR_STRING:
            (reason,) = abi_decode(["string"], body)
            return revert_class("Error")("Error", {"reason": reason}, data, f"reverted: {reason}")
        if selector == _PANIC:
            (code,) = abi_decode(["uint256"], body)
            return revert_class("Panic")("Panic", {"code": code}, data, f"panic 0x{code:02x}")
        spec = error_table(SUITE + extra_abis).get(selector)
        if spec is not None:
            values = abi_decode(list(spec.types), body)
            return revert_class(spec.name)(
                spec.name, dict(zip(spec.names, values, strict=True)), data
            )
    except DecodingError:
        pass
    if not data:
        return revert_class("Unknown")("Unknown", {}, data, "reverted without data")
    return revert_class("Unknown")("Unknown", {"selector": selector}, data)
