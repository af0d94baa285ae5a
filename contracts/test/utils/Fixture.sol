// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test, Vm} from "./Test.sol";
import {MerkleTrees} from "./MerkleTrees.sol";
import {ContentRegistry} from "../../src/ContentRegistry.sol";
import {TransferReceipts} from "../../src/TransferReceipts.sol";
import {DataAvailability} from "../../src/DataAvailability.sol";
import {HostingRewards} from "../../src/HostingRewards.sol";

/// @notice The four contracts deployed in order with the deployment defaults of chain/deploy.py
/// (`DeployParams`), and builders for registrations, slots, receipts and responses.
abstract contract Fixture is Test {
    uint64 internal constant EPOCH = 1 days;
    uint256 internal constant MIN_PRICE = 1e15; // wei per GiB
    uint16 internal constant RECEIPT_FEE_BPS = 1000;
    uint64 internal constant WITHDRAW_DELAY = 3 days;
    uint16 internal constant REBATE_BPS = 5000;
    uint64 internal constant CLAIM_WINDOW = 30 days;
    uint32 internal constant MIB = 1 << 20;
    uint256 internal constant GIB = 1 << 30;
    uint256 internal constant T0 = 1_700_000_000;
    uint256 internal constant B0 = 1000;

    ContentRegistry internal registry;
    TransferReceipts internal trc;
    DataAvailability internal da;
    HostingRewards internal rewards;

    function defaultParams() internal pure returns (DataAvailability.Params memory) {
        return DataAvailability.Params({
            minStake: 1e16,
            challengeBond: 1e15,
            challengeReward: 5e14,
            responseWindow: 600,
            exitDelay: 3 days,
            periodBlocks: 7200,
            dueBps: 2500,
            samples: 20,
            faultSlashBps: 100,
            proofSlashBps: 5000,
            maxFaults: 3,
            storageRatePerGiBDay: 1e13,
            feeBps: 1000
        });
    }

    function deployAll(DataAvailability.Params memory p) internal {
        vm.warp(T0);
        vm.roll(B0);
        registry = new ContentRegistry();
        trc = new TransferReceipts(registry, EPOCH, MIN_PRICE, RECEIPT_FEE_BPS, WITHDRAW_DELAY);
        da = new DataAvailability(registry, trc, p);
        rewards = new HostingRewards(trc, da, REBATE_BPS, CLAIM_WINDOW);
    }

    // ------------------------------------------------------------------ content

    /// @dev `len` pseudo-random bytes derived from `salt`.
    function filled(uint256 len, bytes32 salt) internal pure returns (bytes memory b) {
        b = new bytes(len);
        for (uint256 i; i < len; i += 32) {
            bytes32 w = keccak256(abi.encode(salt, i));
            assembly {
                mstore(add(add(b, 32), i), w)
            }
        }
        assembly {
            mstore(b, len) // the loop may write past len inside the allocation's last word
        }
    }

    /// @dev A spine size proof (contracts/src/SizeProof.sol) in calldata order.
    struct SizeProofData {
        bytes[] left;
        bytes32[] edges;
        bytes last;
    }

    /// @dev A registration of `size` bytes whose full segments all equal one 4 KiB block (so any
    /// size is cheap to build) and whose last segment is distinct, with its spine size proof.
    /// With equal full leaves h0, the spine subtree of 2^a leaves has leftmost segment `full`
    /// and left-edge siblings pow2Root(h0, 2^j) for j < a.
    function sizedRegistration(uint64 size, uint8 k, uint8 n, bytes32 slotsRoot, bytes32 salt)
        internal
        pure
        returns (ContentRegistry.Registration memory reg, SizeProofData memory proof)
    {
        uint256 segs = (uint256(size) + 4095) / 4096;
        bytes memory full = filled(4096, salt);
        bytes memory last = filled(uint256(size) - (segs - 1) * 4096, keccak256(abi.encode(salt, "tail")));
        bytes32 root;
        (root, proof) = _uniformSpine(full, last, segs);
        reg = ContentRegistry.Registration({
            root: root,
            size: size,
            chunkSize: MIB,
            segmentSize: 4096,
            dataShards: k,
            slotCount: n,
            slotsRoot: slotsRoot,
            metadataURI: "ipfs://content"
        });
    }

    function _uniformSpine(bytes memory full, bytes memory last, uint256 segs)
        private
        pure
        returns (bytes32 root, SizeProofData memory proof)
    {
        proof.last = last;
        bytes32 fullLeaf = MerkleTrees.leaf(full);
        (root,) = MerkleTrees.lastRootAndPath(fullLeaf, MerkleTrees.leaf(last), segs);
        (uint256 count, uint256 edges) = spineShape(segs);
        proof.left = new bytes[](count);
        proof.edges = new bytes32[](edges);
        uint256 rest = segs - 1;
        uint256 e;
        uint256 c;
        for (uint256 a; rest != 0; ++a) {
            if (rest & 1 != 0) {
                proof.left[c++] = full;
                for (uint256 j; j < a; ++j) proof.edges[e++] = MerkleTrees.pow2Root(fullLeaf, 1 << j);
            }
            rest >>= 1;
        }
    }

    /// @dev (spine subtrees, left-edge hashes) of a tree of `segs` leaves: the one bits of
    /// segs - 1 and the sum of their positions.
    function spineShape(uint256 segs) internal pure returns (uint256 count, uint256 edges) {
        uint256 rest = segs == 0 ? 0 : segs - 1;
        for (uint256 a; rest != 0; ++a) {
            if (rest & 1 != 0) {
                ++count;
                edges += a;
            }
            rest >>= 1;
        }
    }

    /// @dev The spine size proof of real `content` with segment leaf hashes `leaves`
    /// (reference builder over MerkleTrees.root, independent of SizeProof.sol).
    function spineProofOf(bytes memory content, bytes32[] memory leaves)
        internal
        pure
        returns (SizeProofData memory proof)
    {
        uint256 segs = leaves.length;
        proof.last = MerkleTrees.segment(content, segs - 1);
        (uint256 count, uint256 edges) = spineShape(segs);
        proof.left = new bytes[](count);
        proof.edges = new bytes32[](edges);
        // Left to right the spine subtrees are the high bits first; list them bottom-up.
        uint256[] memory starts = new uint256[](256);
        uint256 start;
        for (uint256 a = 256; a > 0; --a) {
            if ((segs - 1) >> (a - 1) & 1 != 0) {
                starts[a - 1] = start;
                start += 1 << (a - 1);
            }
        }
        uint256 rest = segs - 1;
        uint256 e;
        uint256 c;
        for (uint256 a; rest != 0; ++a) {
            if (rest & 1 != 0) {
                uint256 s = starts[a];
                proof.left[c++] = MerkleTrees.segment(content, s);
                for (uint256 j; j < a; ++j) {
                    proof.edges[e++] = MerkleTrees.root(leaves, s + (1 << j), s + (2 << j));
                }
            }
            rest >>= 1;
        }
    }

    /// @dev Commit (as `who`), move one block, register (as `who`).
    function registerAs(address who, ContentRegistry.Registration memory reg, SizeProofData memory p)
        internal
    {
        bytes32 commitment = registry.registrationCommitment(who, reg);
        vm.prank(who);
        registry.commitRegistration(commitment);
        vm.roll(block.number + 1);
        vm.prank(who);
        registry.register(reg, p.left, p.edges, p.last);
    }

    function registerSized(uint64 size, bytes32 salt) internal returns (bytes32) {
        return registerSized(size, 4, 8, bytes32(uint256(1)), salt);
    }

    function registerSized(uint64 size, uint8 k, uint8 n, bytes32 slotsRoot, bytes32 salt)
        internal
        returns (bytes32)
    {
        (ContentRegistry.Registration memory reg, SizeProofData memory proof) =
            sizedRegistration(size, k, n, slotsRoot, salt);
        registerAs(address(this), reg, proof);
        return reg.root;
    }

    // ------------------------------------------------------------------ slots

    /// @dev Segment `r` of slot `j` of the synthetic slot set `salt` (slotsRoot is not checked
    /// against the content on chain, so tests need no Reed-Solomon code).
    function slotSegment(bytes32 salt, uint256 j, uint256 r) internal pure returns (bytes memory) {
        return filled(4096, keccak256(abi.encode(salt, j, r)));
    }

    function slotLeaves(bytes32 salt, uint256 j, uint256 rows)
        internal
        pure
        returns (bytes32[] memory leaves)
    {
        leaves = new bytes32[](rows);
        for (uint256 r; r < rows; ++r) leaves[r] = MerkleTrees.leaf(slotSegment(salt, j, r));
    }

    function slotRootsOf(bytes32 salt, uint256 n, uint256 rows)
        internal
        pure
        returns (bytes32[] memory roots)
    {
        roots = new bytes32[](n);
        for (uint256 j; j < n; ++j) roots[j] = MerkleTrees.root(slotLeaves(salt, j, rows));
    }

    function slotsRootOf(bytes32[] memory slotRoots) internal pure returns (bytes32) {
        return MerkleTrees.root(_wordLeaves(slotRoots));
    }

    function slotProofOf(bytes32[] memory slotRoots, uint256 j)
        internal
        pure
        returns (bytes32[] memory)
    {
        return MerkleTrees.path(_wordLeaves(slotRoots), j);
    }

    function _wordLeaves(bytes32[] memory words) private pure returns (bytes32[] memory leaves) {
        leaves = new bytes32[](words.length);
        for (uint256 i; i < words.length; ++i) leaves[i] = MerkleTrees.wordLeaf(words[i]);
    }

    /// @dev A root with `n` slots of `rows` rows (K = 4, size rows*4*4096) built from `salt`.
    struct Slotted {
        bytes32 root;
        bytes32 salt;
        uint64 rows;
        bytes32[] slotRoots;
    }

    function registerSlotted(bytes32 salt, uint8 n, uint64 rows)
        internal
        returns (Slotted memory s)
    {
        s.salt = salt;
        s.rows = rows;
        s.slotRoots = slotRootsOf(salt, n, rows);
        s.root = registerSized(
            uint64(rows) * 4 * 4096, 4, n, slotsRootOf(s.slotRoots), keccak256(abi.encode(salt))
        );
    }

    function commitSlot(Slotted memory s, address host, uint8 j, uint256 stake) internal {
        bytes32[] memory proof = slotProofOf(s.slotRoots, j);
        vm.deal(host, host.balance + stake);
        vm.prank(host);
        da.commit{value: stake}(s.root, j, s.slotRoots[j], proof);
    }

    /// @dev Issue a challenge from `challenger` and move to block seedBlock + 1 with
    /// blockhash(seedBlock) = `seed`.
    function challengeSlot(Slotted memory s, uint8 j, address challenger, bytes32 seed)
        internal
        returns (uint256 id)
    {
        uint256 bond = da.challengeBond();
        vm.deal(challenger, challenger.balance + bond);
        vm.prank(challenger);
        id = da.challenge{value: bond}(s.root, j);
        uint64 seedBlock = da.getChallenge(id).seedBlock;
        vm.roll(seedBlock + 1);
        vm.setBlockhash(seedBlock, seed);
    }

    /// @dev The correct answer to challenge `id` on slot `j` of `s`.
    function answerOf(Slotted memory s, uint8 j, uint256 id)
        internal
        view
        returns (bytes[] memory segments, bytes32[][] memory proofs)
    {
        uint256[] memory idx = da.sampleIndicesOf(id);
        bytes32[] memory leaves = slotLeaves(s.salt, j, s.rows);
        segments = new bytes[](idx.length);
        proofs = new bytes32[][](idx.length);
        for (uint256 k; k < idx.length; ++k) {
            segments[k] = slotSegment(s.salt, j, idx[k]);
            proofs[k] = MerkleTrees.path(leaves, idx[k]);
        }
    }

    function respondAs(address host, uint256 id, bytes[] memory segs, bytes32[][] memory proofs)
        internal
    {
        vm.prank(host);
        da.respond(id, segs, proofs);
    }

    // ------------------------------------------------------------------ receipts

    function receipt(
        bytes32 root,
        address provider,
        address receiver,
        uint64 bytesServed,
        uint128 payment,
        uint64 nonce
    ) internal view returns (TransferReceipts.Receipt memory) {
        return TransferReceipts.Receipt({
            contentRoot: root,
            provider: provider,
            receiver: receiver,
            bytesServed: bytesServed,
            chunks: 1,
            payment: payment,
            nonce: nonce,
            issuedAt: uint64(block.timestamp)
        });
    }

    /// @dev ceil(bytes * price / 2^30): the smallest payment the contract accepts.
    function priceOf(uint256 bytesServed, uint256 pricePerGiB) internal pure returns (uint128) {
        return uint128((bytesServed * pricePerGiB + GIB - 1) / GIB);
    }

    function signReceipt(uint256 key, TransferReceipts.Receipt memory r)
        internal
        view
        returns (bytes memory)
    {
        return signDigest(key, trc.hashReceipt(r));
    }

    /// @dev Submit one receipt as `provider`; returns the reject reason (None if accepted).
    function submitOne(address provider, TransferReceipts.Receipt memory r, bytes memory sig)
        internal
        returns (TransferReceipts.RejectReason)
    {
        TransferReceipts.Receipt[] memory rs = new TransferReceipts.Receipt[](1);
        bytes[] memory sigs = new bytes[](1);
        rs[0] = r;
        sigs[0] = sig;
        TransferReceipts.RejectReason[] memory reasons = submitAll(provider, rs, sigs);
        return reasons[0];
    }

    /// @dev Submit a batch as `provider`; returns each receipt's reject reason (None = accepted),
    /// read from the ReceiptRejected events.
    function submitAll(
        address provider,
        TransferReceipts.Receipt[] memory rs,
        bytes[] memory sigs
    ) internal returns (TransferReceipts.RejectReason[] memory reasons) {
        reasons = new TransferReceipts.RejectReason[](rs.length);
        vm.recordLogs();
        vm.prank(provider);
        uint256 accepted = trc.submitBatch(rs, sigs);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        uint256 rejected;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics[0] != TransferReceipts.ReceiptRejected.selector) continue;
            (uint256 index,,, TransferReceipts.RejectReason reason) = abi.decode(
                logs[i].data, (uint256, address, uint64, TransferReceipts.RejectReason)
            );
            reasons[index] = reason;
            ++rejected;
        }
        assertEq(accepted + rejected, rs.length, "every receipt accepted or rejected");
    }
}
