// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {RFC6962} from "../RFC6962.sol";

/// @title RFC6962Harness
/// @notice Test-only wrapper exposing the RFC6962 library, so the Python suite can run the
/// transparency-dev vectors and random trees against the on-chain verifier. Not deployed in
/// production.
contract RFC6962Harness {
    /// @notice RFC6962.verifyInclusion as an external call.
    function verifyInclusion(
        bytes32 leaf,
        uint256 index,
        uint256 treeSize,
        bytes32[] calldata proof,
        bytes32 root
    ) external pure returns (bool) {
        return RFC6962.verifyInclusion(leaf, index, treeSize, proof, root);
    }

    /// @notice Like verifyInclusion, but takes every hash as raw bytes so vectors with hashes of
    /// the wrong length (empty, garbage) can be fed as they are: anything that is not 32 bytes is
    /// rejected, as transparency-dev's verifier does.
    function verifyInclusionRaw(
        bytes calldata leaf,
        uint256 index,
        uint256 treeSize,
        bytes[] calldata proof,
        bytes calldata root
    ) external view returns (bool) {
        if (leaf.length != 32 || root.length != 32) return false;
        bytes32[] memory path = new bytes32[](proof.length);
        for (uint256 i; i < proof.length; ++i) {
            if (proof[i].length != 32) return false;
            path[i] = bytes32(proof[i]);
        }
        return this.verifyInclusion(bytes32(leaf), index, treeSize, path, bytes32(root));
    }

    /// @notice SHA256(0x00 || data).
    function leafHash(bytes calldata data) external view returns (bytes32) {
        return RFC6962.leafHash(data);
    }

    /// @notice SHA256(0x01 || left || right).
    function nodeHash(bytes32 left, bytes32 right) external view returns (bytes32) {
        return RFC6962.nodeHash(left, right);
    }
}
