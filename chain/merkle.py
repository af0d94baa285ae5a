"""OpenZeppelin ``StandardMerkleTree``-compatible trees, for hosting-reward allocations.

There is no maintained Python port of ``@openzeppelin/merkle-tree``, so this is a short
re-implementation of its algorithm (``src/core.ts`` + ``src/standard.ts``), checked in
tests/chain/test_merkle.py against a dump produced by the JS library and, end to end, against
OpenZeppelin's ``MerkleProof`` inside ``HostingRewards.claim``:

- leaf = keccak256(keccak256(abi.encode(values...)))  (double hash: a leaf can never be
  mistaken for an inner node, whose preimage is 64 bytes)
- leaves sorted ascending by hash (``sortLeaves: true``, the default)
- the tree is a flat array of 2n-1 nodes; leaf i sits at index ``len-1-i``; node i has children
  2i+1 and 2i+2; inner node = keccak256(sort(a, b)) (commutative, as ``MerkleProof`` expects)
- proof = siblings from the leaf up to the root.

``dump()`` writes the JS library's ``standard-v1`` JSON, so OZ tooling can read our trees.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from node.identity import keccak256 as keccak
from node.identity import to_checksum_address

__all__ = [
    "ALLOCATION_ENCODING",
    "AllocationTree",
    "StandardMerkleTree",
    "hash_pair",
    "process_proof",
]

ALLOCATION_ENCODING = ("address", "uint256")


def hash_pair(a: bytes, b: bytes) -> bytes:
    return keccak(a + b if a <= b else b + a)


def process_proof(leaf: bytes, proof: Iterable[bytes]) -> bytes:
    """The root implied by ``leaf`` and ``proof`` (OZ ``MerkleProof.processProof``)."""
    node = leaf
    for sibling in proof:
        node = hash_pair(node, sibling)
    return node


def standard_leaf_hash(encoding: Sequence[str], value: Sequence[Any]) -> bytes:
    from eth_abi import encode as abi_encode

    return keccak(keccak(abi_encode(list(encoding), list(value))))


@dataclass(frozen=True)
class _Entry:
    value: tuple[Any, ...]
    tree_index: int


class StandardMerkleTree:
    """A ``StandardMerkleTree.of(values, encoding)`` twin. ``values`` must be non-empty."""

    def __init__(self, values: Sequence[Sequence[Any]], encoding: Sequence[str]) -> None:
        if not values:
            raise ValueError("a Merkle tree needs at least one leaf")
        self.encoding = tuple(encoding)
        hashed = sorted(
            ((standard_leaf_hash(self.encoding, v), i) for i, v in enumerate(values)),
            key=lambda pair: pair[0],
        )
        n = len(hashed)
        tree: list[bytes] = [b""] * (2 * n - 1)
        position = [0] * n
        for i, (leaf, original) in enumerate(hashed):
            tree[len(tree) - 1 - i] = leaf
            position[original] = len(tree) - 1 - i
        for i in range(len(tree) - 1 - n, -1, -1):
            tree[i] = hash_pair(tree[2 * i + 1], tree[2 * i + 2])
        self.tree = tree
        self.entries = [_Entry(tuple(v), position[i]) for i, v in enumerate(values)]

    @property
    def root(self) -> bytes:
        return self.tree[0]

    def leaf_hash(self, value: Sequence[Any]) -> bytes:
        return standard_leaf_hash(self.encoding, value)

    def proof_at(self, tree_index: int) -> list[bytes]:
        proof = []
        i = tree_index
        while i > 0:
            proof.append(self.tree[i + 1 if i % 2 else i - 1])
            i = (i - 1) // 2
        return proof

    def proof(self, value_index: int) -> list[bytes]:
        return self.proof_at(self.entries[value_index].tree_index)

    def verify(self, value: Sequence[Any], proof: Sequence[bytes]) -> bool:
        return process_proof(self.leaf_hash(value), proof) == self.root

    def dump(self) -> dict[str, Any]:
        """The JS library's ``standard-v1`` dump format."""
        return {
            "format": "standard-v1",
            "leafEncoding": list(self.encoding),
            "tree": ["0x" + node.hex() for node in self.tree],
            "values": [
                {"value": [_jsonable(x) for x in e.value], "treeIndex": e.tree_index}
                for e in self.entries
            ],
        }


def _jsonable(x: Any) -> Any:
    if isinstance(x, bytes):
        return "0x" + x.hex()
    if isinstance(x, int) and not isinstance(x, bool):
        return str(x)
    return x


class AllocationTree(StandardMerkleTree):
    """host -> amount, leaf ``(address host, uint256 amount)`` as ``HostingRewards`` expects."""

    def __init__(self, allocation: Mapping[str, int]) -> None:
        if not allocation:
            raise ValueError("an allocation needs at least one host")
        normalised: dict[str, int] = {}
        for host, amount in allocation.items():
            address = to_checksum_address(host)
            if address in normalised:
                raise ValueError(f"duplicate host {address}")
            if not isinstance(amount, int) or amount < 0 or amount >= 1 << 256:
                raise ValueError(f"bad amount for {address}: {amount!r}")
            normalised[address] = amount
        self.allocation = normalised
        self._index = {host: i for i, host in enumerate(normalised)}
        super().__init__([(h, a) for h, a in normalised.items()], ALLOCATION_ENCODING)

    @property
    def total(self) -> int:
        return sum(self.allocation.values())

    def proof_for(self, host: str) -> list[bytes]:
        return self.proof(self._index[to_checksum_address(host)])

    def amount_for(self, host: str) -> int:
        return self.allocation[to_checksum_address(host)]
