// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {RFC6962} from "./RFC6962.sol";

/// @title SizeProof
/// @notice Proves that the content of an RFC 6962 root (4096-byte segments) is exactly `size`
/// bytes long. The last segment's audit path alone does not: its siblings are opaque hashes and
/// a leaf hash cannot be told from a subtree root, so the path of the last of n segments also
/// verifies for any n' with popcount(n' - 1) == popcount(n - 1).
/// @dev The spine proof (node/content/_sizeproof.py is the reference): the last segment's
/// siblings are the perfect subtrees of the binary decomposition of n - 1, one of 2^a leaves
/// for each one bit a, lowest bit first (bottom-up). For each, the proof gives its leftmost
/// segment (4096 bytes) and the a right-hand siblings of its left edge (bottom-up); the
/// verifier rebuilds each subtree root from a real leaf hash (0x00 prefix) through exactly a
/// node hashes (0x01 prefix), then the root along the right spine. Walking down from the root,
/// preimages are unique and a leaf hash never equals a node hash, so the heights (hence n) and
/// the last segment's length (hence size) must be the true ones.
library SizeProof {
    uint256 internal constant SEGMENT_SIZE = 4096;
    /// @notice SHA256(""): the root of the empty content.
    bytes32 internal constant EMPTY_ROOT =
        0xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855;

    /// @notice Whether the proof shows `root` is the tree of a `size`-byte content. Never reverts
    /// on malformed proofs (returns false).
    /// @param leftSegments leftmost segment of each spine subtree, bottom-up.
    /// @param edgeHashes each spine subtree's left-edge siblings, bottom-up, concatenated.
    /// @param lastSegment the content's last segment (size - (n-1)*4096 bytes).
    function verify(
        bytes32 root,
        uint64 size,
        bytes[] calldata leftSegments,
        bytes32[] calldata edgeHashes,
        bytes calldata lastSegment
    ) internal view returns (bool) {
        if (size == 0) {
            return root == EMPTY_ROOT && leftSegments.length == 0 && edgeHashes.length == 0
                && lastSegment.length == 0;
        }
        uint256 n = (uint256(size) + SEGMENT_SIZE - 1) / SEGMENT_SIZE;
        if (lastSegment.length != uint256(size) - (n - 1) * SEGMENT_SIZE) return false;
        bytes32 node = RFC6962.leafHash(lastSegment);
        uint256 rest = n - 1;
        uint256 seg;
        uint256 edge;
        for (uint256 a; rest != 0; ++a) {
            if (rest & 1 != 0) {
                if (seg >= leftSegments.length || edge + a > edgeHashes.length) return false;
                (bool ok, bytes32 sibling) = _subtree(leftSegments[seg++], edgeHashes, edge, a);
                if (!ok) return false;
                edge += a;
                node = RFC6962.nodeHash(sibling, node);
            }
            rest >>= 1;
        }
        return seg == leftSegments.length && edge == edgeHashes.length && node == root;
    }

    /// @dev Root of a perfect subtree of 2^height leaves from its leftmost segment and the
    /// `height` left-edge siblings starting at `edgeHashes[from]`.
    function _subtree(bytes calldata first, bytes32[] calldata edgeHashes, uint256 from, uint256 height)
        private
        view
        returns (bool ok, bytes32 h)
    {
        if (first.length != SEGMENT_SIZE) return (false, 0);
        h = RFC6962.leafHash(first);
        for (uint256 j; j < height; ++j) {
            h = RFC6962.nodeHash(h, edgeHashes[from + j]);
        }
        return (true, h);
    }
}
