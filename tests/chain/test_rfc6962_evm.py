"""The Solidity RFC 6962 verifier (contracts/src/RFC6962.sol) on a real EVM (py-evm).

Runs every transparency-dev inclusion vector in tests/content/vectors/rfc6962/inclusion through the
RFC6962Harness artifact and checks it accepts exactly the ones with ``wantErr: false``, then checks
the on-chain verifier against the Python one in ``node.content`` on random trees (differential,
including tampered proofs) and on a synthetic 2^28-leaf (1 TiB) tree.
"""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path
from typing import Any

import pytest
from eth_tester import EthereumTester, PyEVMBackend
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider

from node.content import (
    InvalidProof,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    node_hash,
    root_from_inclusion,
    verify_inclusion,
)

from .._hyp import examples

REPO = Path(__file__).resolve().parents[2]
ARTIFACT = REPO / "chain" / "artifacts" / "RFC6962Harness.json"
VECTORS = REPO / "tests" / "content" / "vectors" / "rfc6962" / "inclusion"
VECTOR_FILES = sorted(VECTORS.rglob("*.json")) if VECTORS.is_dir() else []


@pytest.fixture(scope="module")
def harness() -> Any:
    w3 = Web3(EthereumTesterProvider(EthereumTester(PyEVMBackend())))
    artifact = json.loads(ARTIFACT.read_text())
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx = factory.constructor().transact({"from": w3.eth.accounts[0]})
    address = w3.eth.wait_for_transaction_receipt(tx)["contractAddress"]
    return w3.eth.contract(address=address, abi=artifact["abi"])


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


def _on_chain(
    harness: Any, leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes
) -> bool:
    return bool(harness.functions.verifyInclusion(leaf, index, size, proof, root).call())


def _python(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    try:
        verify_inclusion(leaf, index, size, proof, root)
    except InvalidProof:
        return False
    return True


def test_vectors_present() -> None:
    assert len(VECTOR_FILES) >= 90, f"expected the transparency-dev vectors under {VECTORS}"


@pytest.mark.parametrize("path", VECTOR_FILES, ids=lambda p: str(p.relative_to(VECTORS)))
def test_vector(harness: Any, path: Path) -> None:
    v = json.loads(path.read_text())
    proof = [_b64(p) for p in v["proof"] or []]
    leaf, root = _b64(v["leafHash"]), _b64(v["root"])
    # Hashes of the wrong length (empty, garbage) cannot be bytes32: the raw entry point takes
    # them as bytes and must reject them, like the Go verifier.
    accepted = harness.functions.verifyInclusionRaw(
        leaf, v["leafIdx"], v["treeSize"], proof, root
    ).call()
    assert accepted is (not v["wantErr"]), v["desc"]


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(size=st.integers(1, 300), data=st.data())
def test_random_trees_match_python(harness: Any, size: int, data: st.DataObject) -> None:
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    leaves = [leaf_hash(rng.randbytes(rng.randrange(0, 64))) for _ in range(size)]
    root = merkle_root(leaves)
    index = data.draw(st.integers(0, size - 1))
    proof = inclusion_proof(leaves, index)
    assert _on_chain(harness, leaves[index], index, size, proof, root)

    # Tampered variants: the EVM must agree with the Python verifier on every one.
    variants: list[tuple[bytes, int, int, list[bytes], bytes]] = [
        (leaves[index], index, size + 1, proof, root),
        (leaves[index], index ^ 1, size, proof, root),
        (leaves[index], index, size, [*proof, root], root),
        (leaves[index], index, size, proof[:-1], root),
        (leaf_hash(b"other"), index, size, proof, root),
    ]
    if proof:
        k = rng.randrange(len(proof))
        flipped = list(proof)
        flipped[k] = bytes([flipped[k][0] ^ 1]) + flipped[k][1:]
        variants.append((leaves[index], index, size, flipped, root))
    for leaf, i, n, p, r in variants:
        want = _python(leaf, i, n, p, r) if i >= 0 else False
        assert _on_chain(harness, leaf, i, n, p, r) is want


@pytest.mark.parametrize("seed", range(4))
def test_tebibyte_tree(harness: Any, seed: int) -> None:
    """2^28 segments of 4 KiB = 1 TiB: a random 28-hash audit path and the root it implies."""
    rng = random.Random(seed)
    size = 1 << 28
    index = rng.randrange(size)
    leaf = leaf_hash(rng.randbytes(4096))
    proof = [rng.randbytes(32) for _ in range(28)]
    root = root_from_inclusion(leaf, index, size, proof)
    assert _on_chain(harness, leaf, index, size, proof, root)
    assert not _on_chain(harness, leaf, index ^ 1, size, proof, root)
    assert not _on_chain(harness, leaf, index, size, proof[:-1], root)
    assert not _on_chain(harness, leaf, index, size - 1, proof, root) or _python(
        leaf, index, size - 1, proof, root
    )


def test_leaf_and_node_hash_match_python(harness: Any) -> None:
    segment = bytes(range(256)) * 16
    assert harness.functions.leafHash(segment).call() == leaf_hash(segment)
    left, right = leaf_hash(b"l"), leaf_hash(b"r")
    assert harness.functions.nodeHash(left, right).call() == node_hash(left, right)
