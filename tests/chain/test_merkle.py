"""The allocation tree against OpenZeppelin's StandardMerkleTree algorithm."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.merkle import AllocationTree, StandardMerkleTree, process_proof

from .._hyp import examples

# From OpenZeppelin/merkle-tree test/dumps/standard-v1.sorted.1_0_6.json (produced by the JS
# library): StandardMerkleTree.of([["a"],...,["f"]], ["string"]).
OZ_TREE = [
    "6deb52b5da8fd108f79fab00341f38d2587896634c646ee52e49f845680a70c8",
    "52426e0f1f65ff7e209a13b8c29cffe82e3acaf3dad0a9b9088f3b9a61a929c3",
    "fd3cf45654e88d1cc5d663578c82c76f4b5e3826bacaa1216441443504538f51",
    "8076923e76cf01a7c048400a2304c9a9c23bbbdac3a98ea3946340fdafbba34f",
    "965b92c6cf08303cc4feb7f3e0819c436c2cec17c6f0688a6af139c9a368707c",
    "eba909cf4bb90c6922771d7f126ad0fd11dfde93f3937a196274e1ac20fd2f5b",
    "c62a8cfa41edc0ef6f6ae27a2985b7d39c7fea770787d7e104696c6e81f64848",
    "9cf5a63718145ba968a01c1d557020181c5b252f665cf7386d370eddb176517b",
    "9c15a6a0eaeed500fd9eed4cbeab71f797cefcc67bfd46683e4d2e6ff7f06d1c",
    "9a4f64e953595df82d1b4f570d34c4f4f0cfaf729a61e9d60e83e579e1aa283e",
    "19ba6c6333e0e9a15bf67523e0676e2f23eb8e574092552d5e888c64a4bb3681",
]
OZ_INDEX = {"a": 8, "b": 10, "c": 7, "d": 5, "e": 9, "f": 6}


def test_matches_openzeppelin_js_dump() -> None:
    tree = StandardMerkleTree([[c] for c in "abcdef"], ["string"])
    assert [n.hex() for n in tree.tree] == OZ_TREE
    dump = tree.dump()
    assert dump["format"] == "standard-v1"
    assert {v["value"][0]: v["treeIndex"] for v in dump["values"]} == OZ_INDEX
    for i, c in enumerate("abcdef"):
        assert tree.verify([c], tree.proof(i))


def test_single_leaf_root_is_leaf() -> None:
    tree = AllocationTree({"0x" + "11" * 20: 5})
    host = next(iter(tree.allocation))
    assert tree.root == tree.leaf_hash((host, 5))
    assert tree.proof_for(host) == []


def test_empty_and_duplicate_rejected() -> None:
    with pytest.raises(ValueError):
        AllocationTree({})
    with pytest.raises(ValueError, match="duplicate"):
        AllocationTree({"0x" + "ab" * 20: 1, "0x" + "AB" * 20: 2})


@settings(max_examples=examples(30), deadline=None)
@given(
    st.dictionaries(
        st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex()),
        st.integers(0, 2**256 - 1),
        min_size=1,
        max_size=40,
    )
)
def test_every_proof_verifies_and_no_other(allocation: dict[str, int]) -> None:
    tree = AllocationTree(allocation)
    for host, amount in tree.allocation.items():
        proof = tree.proof_for(host)
        assert process_proof(tree.leaf_hash((host, amount)), proof) == tree.root
        assert process_proof(
            tree.leaf_hash((host, amount + 1 if amount < 2**255 else 0)), proof
        ) != (tree.root)
    assert tree.total == sum(allocation.values())
