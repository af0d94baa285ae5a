// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "./utils/Test.sol";
import {MerkleTrees} from "./utils/MerkleTrees.sol";
import {RFC6962Harness} from "../src/harness/RFC6962Harness.sol";

contract RFC6962Test is Test {
    RFC6962Harness internal h;

    function setUp() public {
        h = new RFC6962Harness();
    }

    function _leaves(uint256 seed, uint256 n) internal pure returns (bytes32[] memory leaves) {
        leaves = new bytes32[](n);
        for (uint256 i; i < n; ++i) leaves[i] = MerkleTrees.leaf(abi.encode(seed, i));
    }

    function _copyWithout(bytes32[] memory a, uint256 skip) internal pure returns (bytes32[] memory b) {
        b = new bytes32[](a.length - 1);
        for (uint256 i; i < b.length; ++i) b[i] = a[i < skip ? i : i + 1];
    }

    function _copyWith(bytes32[] memory a, uint256 pos, bytes32 extra)
        internal
        pure
        returns (bytes32[] memory b)
    {
        b = new bytes32[](a.length + 1);
        for (uint256 i; i < b.length; ++i) {
            b[i] = i < pos ? a[i] : i == pos ? extra : a[i - 1];
        }
    }

    function testFuzz_leafHash_matchesReference(bytes calldata data) public view {
        assertEq(h.leafHash(data), MerkleTrees.leaf(data), "leaf hash");
    }

    function testFuzz_nodeHash_matchesReference(bytes32 l, bytes32 r) public view {
        assertEq(h.nodeHash(l, r), MerkleTrees.node(l, r), "node hash");
    }

    function testFuzz_verifyInclusion_acceptsValidPath(uint256 seed, uint256 n, uint256 index)
        public
        view
    {
        n = bound(n, 1, 70);
        index = bound(index, 0, n - 1);
        bytes32[] memory leaves = _leaves(seed, n);
        bytes32 root = MerkleTrees.root(leaves);
        bytes32[] memory proof = MerkleTrees.path(leaves, index);
        assertTrue(h.verifyInclusion(leaves[index], index, n, proof, root), "valid path");
    }

    function testFuzz_verifyInclusion_rejectsTamperedPath(
        uint256 seed,
        uint256 n,
        uint256 index,
        uint256 which,
        uint8 bit
    ) public view {
        n = bound(n, 2, 70);
        index = bound(index, 0, n - 1);
        bytes32[] memory leaves = _leaves(seed, n);
        bytes32 root = MerkleTrees.root(leaves);
        bytes32[] memory proof = MerkleTrees.path(leaves, index);
        which = bound(which, 0, proof.length - 1);

        bytes32[] memory flipped = MerkleTrees.path(leaves, index);
        flipped[which] ^= bytes32(uint256(1) << bit);
        assertFalse(h.verifyInclusion(leaves[index], index, n, flipped, root), "flipped bit");
        assertFalse(
            h.verifyInclusion(leaves[index], index, n, _copyWithout(proof, which), root),
            "removed component"
        );
        assertFalse(
            h.verifyInclusion(leaves[index], index, n, _copyWith(proof, which, root), root),
            "inserted component"
        );
        assertFalse(
            h.verifyInclusion(leaves[index], index, n, _copyWith(proof, proof.length, root), root),
            "trailing root"
        );
        assertFalse(
            h.verifyInclusion(leaves[(index + 1) % n], index, n, proof, root), "wrong leaf"
        );
        assertFalse(h.verifyInclusion(leaves[index], index ^ 1, n, proof, root), "index xor 1");
        assertFalse(h.verifyInclusion(leaves[index], index, n, proof, root ^ bytes32(uint256(1))), "root");
        assertFalse(h.verifyInclusion(leaves[index], index, n * 2, proof, root), "size * 2");
        assertFalse(h.verifyInclusion(leaves[index], index, n / 2, proof, root), "size / 2");
    }

    function test_verifyInclusion_rejectsIndexOutOfRange() public view {
        bytes32[] memory leaves = _leaves(1, 4);
        bytes32[] memory proof = MerkleTrees.path(leaves, 3);
        bytes32 root = MerkleTrees.root(leaves);
        assertTrue(h.verifyInclusion(leaves[3], 3, 4, proof, root), "baseline");
        assertFalse(h.verifyInclusion(leaves[3], 4, 4, proof, root), "index == size");
        assertFalse(h.verifyInclusion(leaves[3], type(uint256).max, 4, proof, root), "huge index");
    }

    function test_verifyInclusion_rejectsEmptyTree() public view {
        bytes32[] memory none = new bytes32[](0);
        assertFalse(h.verifyInclusion(sha256(""), 0, 0, none, sha256("")), "size 0");
    }

    function test_verifyInclusion_singleLeafNeedsEmptyPath() public view {
        bytes32 leaf = MerkleTrees.leaf("x");
        bytes32[] memory none = new bytes32[](0);
        bytes32[] memory one = new bytes32[](1);
        one[0] = leaf;
        assertTrue(h.verifyInclusion(leaf, 0, 1, none, leaf), "empty path");
        assertFalse(h.verifyInclusion(leaf, 0, 1, one, leaf), "extra component");
    }

    /// @dev A 1 TiB content has 2^28 segments: a synthetic 28-hash path with a root computed by
    /// the reference hasher; also measures the verifier's gas.
    function testFuzz_verifyInclusion_tebibyteTree(uint256 seed, uint256 index) public view {
        uint256 size = 1 << 28;
        index = bound(index, 0, size - 1);
        bytes32 leaf = MerkleTrees.leaf(abi.encode(seed));
        bytes32[] memory proof = new bytes32[](28);
        bytes32 acc = leaf;
        for (uint256 i; i < 28; ++i) {
            proof[i] = keccak256(abi.encode(seed, i));
            acc = (index >> i) & 1 == 0 ? MerkleTrees.node(acc, proof[i]) : MerkleTrees.node(proof[i], acc);
        }
        uint256 before = gasleft();
        bool ok = h.verifyInclusion(leaf, index, size, proof, acc);
        uint256 used = before - gasleft();
        assertTrue(ok, "2^28 tree");
        assertLe(used, 25_000, "verifier gas for 28 levels, incl. the external call");
        assertFalse(h.verifyInclusion(leaf, index, size + 1, proof, acc), "size + 1 changes shape");
    }

    function test_verifyInclusionRaw_rejectsWrongLengths() public view {
        bytes32 leaf = MerkleTrees.leaf("x");
        bytes[] memory none = new bytes[](0);
        assertTrue(h.verifyInclusionRaw(abi.encode(leaf), 0, 1, none, abi.encode(leaf)), "ok");
        assertFalse(h.verifyInclusionRaw("", 0, 1, none, abi.encode(leaf)), "empty leaf");
        assertFalse(h.verifyInclusionRaw(abi.encode(leaf), 0, 1, none, ""), "empty root");
    }
}
