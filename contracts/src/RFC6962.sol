// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title RFC6962
/// @notice RFC 6962 (Certificate Transparency) Merkle inclusion proofs over SHA-256, the tree that
/// bcai-transfer builds over 4 KiB segments: leaf = SHA256(0x00 || segment),
/// node = SHA256(0x01 || left || right), a tree of n > 1 leaves splits at the largest power of two
/// smaller than n.
/// @dev Verification follows transparency-dev/merkle `proof.VerifyInclusion`: the audit path has
/// exactly `inner + border` hashes, where `inner` is the bit length of `index ^ (treeSize - 1)`
/// (the levels where the path may turn either way) and `border` is the number of set bits of
/// `index >> inner` (the levels on the right border of the tree, where the sibling is always on
/// the left). Any other length, `index >= treeSize`, or `treeSize == 0` is rejected.
/// Hashing calls the SHA-256 precompile (address 2) from assembly over one 65-byte scratch buffer
/// at the free memory pointer (never allocated, so memory does not grow per level).
library RFC6962 {
    /// @dev Address of the SHA-256 precompile.
    uint256 private constant SHA256_PRECOMPILE = 0x02;

    /// @notice SHA256(0x00 || data): the RFC 6962 hash of a leaf.
    /// @param data the leaf contents (a segment of at most 4096 bytes in bcai-transfer).
    function leafHash(bytes calldata data) internal view returns (bytes32 h) {
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore8(m, 0x00)
            calldatacopy(add(m, 1), data.offset, data.length)
            if iszero(staticcall(gas(), SHA256_PRECOMPILE, m, add(data.length, 1), 0x00, 0x20)) {
                revert(0, 0)
            }
            h := mload(0x00)
        }
    }

    /// @notice SHA256(0x00 || word): the RFC 6962 hash of a 32-byte leaf (a slot root as a leaf
    /// of the slots tree).
    function wordLeafHash(bytes32 word) internal pure returns (bytes32) {
        return sha256(abi.encodePacked(bytes1(0x00), word));
    }

    /// @notice SHA256(0x01 || left || right): the RFC 6962 hash of an interior node.
    function nodeHash(bytes32 left, bytes32 right) internal view returns (bytes32 h) {
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore8(m, 0x01)
            mstore(add(m, 1), left)
            mstore(add(m, 33), right)
            if iszero(staticcall(gas(), SHA256_PRECOMPILE, m, 65, 0x00, 0x20)) { revert(0, 0) }
            h := mload(0x00)
        }
    }

    /// @notice The number of hashes a valid audit path for leaf `index` of a tree of `treeSize`
    /// leaves has, split into the inner part and the right-border part.
    /// @dev Requires index < treeSize (callers check).
    function proofShape(uint256 index, uint256 treeSize)
        internal
        pure
        returns (uint256 inner, uint256 border)
    {
        uint256 x = index ^ (treeSize - 1);
        while (x != 0) {
            x >>= 1;
            ++inner;
        }
        uint256 y = index >> inner;
        while (y != 0) {
            y &= y - 1;
            ++border;
        }
    }

    /// @notice True iff `proof` is the RFC 6962 audit path that proves the leaf with hash
    /// `leafHash_` sits at `index` in the tree of `treeSize` leaves whose root is `root`.
    /// @dev Never reverts on bad input: a malformed proof is simply not valid.
    /// WARNING: `leafHash_` must be a leaf hash (0x00-prefixed), never raw data, or interior nodes
    /// could be passed off as leaves.
    function verifyInclusion(
        bytes32 leafHash_,
        uint256 index,
        uint256 treeSize,
        bytes32[] calldata proof,
        bytes32 root
    ) internal pure returns (bool) {
        // `pure` for callers: the only "environment access" is the SHA-256 precompile, which is a
        // pure function. Solidity cannot tell, so cast the view implementation to pure.
        function(bytes32, uint256, uint256, bytes32[] calldata, bytes32) internal view returns (bool)
            impl = _verifyInclusion;
        function(bytes32, uint256, uint256, bytes32[] calldata, bytes32) internal pure returns (bool)
            asPure;
        assembly ("memory-safe") {
            asPure := impl
        }
        return asPure(leafHash_, index, treeSize, proof, root);
    }

    /// @notice The root that `proof` implies for leaf `leafHash_` at `index` in a tree of `treeSize`
    /// leaves, and whether the proof has the right shape at all.
    function rootFromProof(
        bytes32 leafHash_,
        uint256 index,
        uint256 treeSize,
        bytes32[] calldata proof
    ) internal view returns (bool wellFormed, bytes32 computed) {
        if (index >= treeSize) return (false, bytes32(0));
        (uint256 inner, uint256 border) = proofShape(index, treeSize);
        if (proof.length != inner + border) return (false, bytes32(0));
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore8(m, 0x01)
            let h := leafHash_
            let p := proof.offset
            // Inner levels: bit i of index says whether we are the right (1) or left (0) child.
            for { let i := 0 } lt(i, inner) { i := add(i, 1) } {
                let right := shl(5, and(shr(i, index), 1)) // 32 if we are the right child
                mstore(add(add(m, 1), right), h)
                mstore(sub(add(m, 33), right), calldataload(add(p, shl(5, i))))
                if iszero(staticcall(gas(), SHA256_PRECOMPILE, m, 65, 0x00, 0x20)) { revert(0, 0) }
                h := mload(0x00)
            }
            // Right border: the sibling is always on the left.
            let end := add(p, shl(5, add(inner, border)))
            for { let q := add(p, shl(5, inner)) } lt(q, end) { q := add(q, 0x20) } {
                mstore(add(m, 1), calldataload(q))
                mstore(add(m, 33), h)
                if iszero(staticcall(gas(), SHA256_PRECOMPILE, m, 65, 0x00, 0x20)) { revert(0, 0) }
                h := mload(0x00)
            }
            computed := h
        }
        wellFormed = true;
    }

    function _verifyInclusion(
        bytes32 leafHash_,
        uint256 index,
        uint256 treeSize,
        bytes32[] calldata proof,
        bytes32 root
    ) private view returns (bool) {
        (bool wellFormed, bytes32 computed) = rootFromProof(leafHash_, index, treeSize, proof);
        return wellFormed && computed == root;
    }
}
