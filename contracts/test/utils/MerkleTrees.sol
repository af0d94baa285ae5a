// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @notice Reference tree builders for tests: RFC 6962 (SHA-256, written straight from the RFC's
/// recursive definitions, independent of the assembly in RFC6962.sol) and OpenZeppelin's
/// StandardMerkleTree (sorted-pair keccak) for HostingRewards claims.
library MerkleTrees {
    function leaf(bytes memory data) internal pure returns (bytes32) {
        return sha256(abi.encodePacked(bytes1(0x00), data));
    }

    function node(bytes32 l, bytes32 r) internal pure returns (bytes32) {
        return sha256(abi.encodePacked(bytes1(0x01), l, r));
    }

    /// @dev Largest power of two strictly smaller than n (n > 1).
    function split(uint256 n) internal pure returns (uint256 k) {
        k = 1;
        while (k << 1 < n) k <<= 1;
    }

    /// @dev MTH(D[lo:hi]) over leaf hashes.
    function root(bytes32[] memory leaves, uint256 lo, uint256 hi) internal pure returns (bytes32) {
        uint256 n = hi - lo;
        if (n == 0) return sha256("");
        if (n == 1) return leaves[lo];
        uint256 k = split(n);
        return node(root(leaves, lo, lo + k), root(leaves, lo + k, hi));
    }

    function root(bytes32[] memory leaves) internal pure returns (bytes32) {
        return root(leaves, 0, leaves.length);
    }

    /// @dev PATH(m, D[lo:hi]) from RFC 6962 section 2.1.1.
    function path(bytes32[] memory leaves, uint256 m, uint256 lo, uint256 hi)
        internal
        pure
        returns (bytes32[] memory out)
    {
        uint256 n = hi - lo;
        if (n <= 1) return new bytes32[](0);
        uint256 k = split(n);
        bytes32[] memory sub;
        bytes32 sibling;
        if (m < k) {
            sub = path(leaves, m, lo, lo + k);
            sibling = root(leaves, lo + k, hi);
        } else {
            sub = path(leaves, m - k, lo + k, hi);
            sibling = root(leaves, lo, lo + k);
        }
        out = new bytes32[](sub.length + 1);
        for (uint256 i; i < sub.length; ++i) out[i] = sub[i];
        out[sub.length] = sibling;
    }

    function path(bytes32[] memory leaves, uint256 m) internal pure returns (bytes32[] memory) {
        return path(leaves, m, 0, leaves.length);
    }

    /// @dev Segments of `data` (4 KiB, last one shorter).
    function segment(bytes memory data, uint256 i) internal pure returns (bytes memory s) {
        uint256 start = i * 4096;
        uint256 end = start + 4096 > data.length ? data.length : start + 4096;
        s = new bytes(end - start);
        for (uint256 j; j < s.length; ++j) s[j] = data[start + j];
    }

    function segmentLeaves(bytes memory data) internal pure returns (bytes32[] memory leaves) {
        uint256 n = (data.length + 4095) / 4096;
        leaves = new bytes32[](n);
        for (uint256 i; i < n; ++i) leaves[i] = leaf(segment(data, i));
    }

    // ---- Trees whose full leaves are all equal (large sizes without building them) ----

    /// @dev Root of a tree of `k` (a power of two) leaves that all hash to `fullLeaf`.
    function pow2Root(bytes32 fullLeaf, uint256 k) internal pure returns (bytes32 h) {
        h = fullLeaf;
        while (k > 1) {
            h = node(h, h);
            k >>= 1;
        }
    }

    /// @dev Root and audit path of the last leaf of a tree of `n` leaves: n-1 leaves hashing to
    /// `fullLeaf`, then `lastLeaf` (RFC 6962: PATH(n-1, D[0:n]) = PATH(n-1-k, D[k:n]) : MTH(D[0:k])).
    function lastRootAndPath(bytes32 fullLeaf, bytes32 lastLeaf, uint256 n)
        internal
        pure
        returns (bytes32 r, bytes32[] memory p)
    {
        if (n == 1) return (lastLeaf, new bytes32[](0));
        uint256 k = split(n);
        (bytes32 right, bytes32[] memory sub) = lastRootAndPath(fullLeaf, lastLeaf, n - k);
        bytes32 left = pow2Root(fullLeaf, k);
        p = new bytes32[](sub.length + 1);
        for (uint256 i; i < sub.length; ++i) p[i] = sub[i];
        p[sub.length] = left;
        r = node(left, right);
    }

    /// @dev Root and path of leaf `index` in a tree of `2^depth` equal leaves.
    function pow2Path(bytes32 fullLeaf, uint256 depth) internal pure returns (bytes32[] memory p) {
        p = new bytes32[](depth);
        bytes32 h = fullLeaf;
        for (uint256 i; i < depth; ++i) {
            p[i] = h;
            h = node(h, h);
        }
    }

    /// @dev SHA256(0x00 || word): a slot root as a leaf of the slots tree.
    function wordLeaf(bytes32 word) internal pure returns (bytes32) {
        return sha256(abi.encodePacked(bytes1(0x00), word));
    }

    // ---- OpenZeppelin StandardMerkleTree (sorted pairs), leaves hashed by the caller ----

    function hashPair(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encode(a, b)) : keccak256(abi.encode(b, a));
    }

    /// @dev Root and the proof of `index` for a simple left-to-right pairing tree (odd node
    /// promoted); any binary tree with sorted-pair hashing verifies with OZ MerkleProof.
    function sortedRootAndProof(bytes32[] memory level, uint256 index)
        internal
        pure
        returns (bytes32, bytes32[] memory proof)
    {
        bytes32[] memory acc = new bytes32[](64);
        uint256 depth;
        while (level.length > 1) {
            uint256 sib = index ^ 1;
            if (sib < level.length) acc[depth++] = level[sib];
            bytes32[] memory next = new bytes32[]((level.length + 1) / 2);
            for (uint256 i; i < next.length; ++i) {
                next[i] = 2 * i + 1 < level.length
                    ? hashPair(level[2 * i], level[2 * i + 1])
                    : level[2 * i];
            }
            level = next;
            index >>= 1;
        }
        proof = new bytes32[](depth);
        for (uint256 i; i < depth; ++i) proof[i] = acc[i];
        return (level[0], proof);
    }

    function rewardLeaf(address host, uint256 amount) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(host, amount))));
    }
}
