// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {MerkleTrees} from "./utils/MerkleTrees.sol";
import {ContentRegistry} from "../src/ContentRegistry.sol";
import {TransferReceipts} from "../src/TransferReceipts.sol";
import {DataAvailability} from "../src/DataAvailability.sol";
import {HostingRewards} from "../src/HostingRewards.sol";

/// @notice docs/incentives.md section 1, rule 2, on the real contracts: a ring with one owner
/// (a provider and a receiver it controls) that pays itself for a whole epoch and then receives
/// the largest ETH reward the fee cap allows ends poorer than it started, at every price, fee,
/// rebate and byte count.
contract SybilRingTest is Fixture {
    address internal provider;
    address internal receiver;
    uint256 internal receiverKey;
    address internal validator;
    uint256 internal validatorKey;
    address internal funder;

    function setUp() public {
        vm.warp(T0);
        vm.roll(B0);
        registry = new ContentRegistry();
        provider = makeAddr("ring provider");
        (receiver, receiverKey) = makeAccount("ring receiver");
        (validator, validatorKey) = makeAccount("validator");
        funder = makeAddr("protocol funder");
    }

    function _deploy(uint16 feeBps, uint16 rebateBps) internal {
        trc = new TransferReceipts(registry, EPOCH, MIN_PRICE, feeBps, WITHDRAW_DELAY);
        DataAvailability.Params memory p = defaultParams();
        p.feeBps = feeBps;
        da = new DataAvailability(registry, trc, p);
        rewards = new HostingRewards(trc, da, rebateBps, CLAIM_WINDOW);
        rewards.addValidator(validator);
    }

    /// @dev The ring's whole wealth: both keys' balances.
    function _wealth() internal view returns (uint256) {
        return provider.balance + receiver.balance;
    }

    function testFuzz_sybilRing_endsPoorer(
        uint256 pricePerGiB,
        uint16 feeBps,
        uint16 rebateBps,
        uint64 bytesPerReceipt,
        uint8 receipts
    ) public {
        feeBps = uint16(bound(feeBps, 1, 10_000));
        rebateBps = uint16(bound(rebateBps, 0, 9999));
        pricePerGiB = bound(pricePerGiB, MIN_PRICE, 1e20);
        uint64 size = 64 * MIB;
        bytesPerReceipt = uint64(bound(bytesPerReceipt, 1, size));
        _deploy(feeBps, rebateBps);
        // The ring registers its own content (anyone's registered root would do).
        bytes32 root = registerSized(size, keccak256(abi.encode(pricePerGiB, feeBps)));

        vm.deal(provider, 0);
        vm.deal(receiver, 1000 ether);
        uint256 start = _wealth();
        vm.prank(receiver);
        trc.deposit{value: 1000 ether}(receiver);
        _payItself(root, bound(receipts, 1, 8), bytesPerReceipt, pricePerGiB);
        uint256 burnt = trc.feesOf(provider, 0);
        uint256 cap = _claimMax(0);
        assertLe(cap, (burnt * rebateBps) / 10_000, "cap formula");
        _cashOut();

        uint256 end = _wealth();
        assertEq(end + burnt, start + cap, "the ring loses exactly fee - subsidy");
        assertLe(end, start, "never richer");
        if (burnt != 0) assertLt(end, start, "strictly poorer once any fee is burnt");
        // The loss is at least fee * (1 - rebate): the rule of section 1.
        assertGe(start - end, burnt - (burnt * rebateBps) / 10_000, "loss >= fee * (1 - rebate)");
    }

    /// @dev `n` receipts of `bytesPerReceipt` at `pricePerGiB` from the ring's receiver to its
    /// provider, in one batch (the ones beyond the per-pair size cap are rejected).
    function _payItself(bytes32 root, uint256 n, uint64 bytesPerReceipt, uint256 pricePerGiB)
        internal
    {
        uint128 payment = priceOf(bytesPerReceipt, pricePerGiB);
        TransferReceipts.Receipt[] memory rs = new TransferReceipts.Receipt[](n);
        bytes[] memory sigs = new bytes[](n);
        for (uint256 i; i < n; ++i) {
            rs[i] = receipt(root, provider, receiver, bytesPerReceipt, payment, uint64(i));
            sigs[i] = signReceipt(receiverKey, rs[i]);
        }
        vm.prank(provider);
        assertGe(trc.submitBatch(rs, sigs), 1, "at least one accepted");
    }

    /// @dev Funds `epoch` generously, posts an allocation that gives the ring exactly its cap
    /// and claims it; returns the cap.
    function _claimMax(uint64 epoch) internal returns (uint256 cap) {
        cap = rewards.feeCapOf(provider, epoch);
        vm.deal(funder, 1_000_000 ether);
        vm.prank(funder);
        rewards.fundEpoch{value: 1_000_000 ether}(epoch);
        if (cap == 0) return 0;
        bytes32[] memory leaves = new bytes32[](2);
        leaves[0] = MerkleTrees.rewardLeaf(provider, cap + 1);
        leaves[1] = MerkleTrees.rewardLeaf(provider, cap);
        (bytes32 mroot, bytes32[] memory over) = MerkleTrees.sortedRootAndProof(leaves, 0);
        (, bytes32[] memory proof) = MerkleTrees.sortedRootAndProof(leaves, 1);
        bytes[] memory vsig = new bytes[](1);
        vsig[0] = signDigest(validatorKey, rewards.hashAllocation(epoch, address(0), mroot, 2 * cap + 1));
        rewards.postAllocation(epoch, address(0), mroot, 2 * cap + 1, vsig);
        // One wei above the cap is refused, whatever the validators signed.
        vm.expectRevert(
            abi.encodeWithSelector(HostingRewards.ExceedsFeeCap.selector, provider, epoch, cap)
        );
        rewards.claim(epoch, address(0), provider, cap + 1, over);
        rewards.claim(epoch, address(0), provider, cap, proof);
    }

    function _cashOut() internal {
        if (trc.earningsOf(provider) != 0) {
            vm.prank(provider);
            trc.withdrawEarnings();
        }
        vm.prank(receiver);
        trc.requestWithdrawal(type(uint256).max);
        vm.warp(block.timestamp + WITHDRAW_DELAY);
        vm.prank(receiver);
        trc.withdrawEscrow();
    }

    /// @dev The same rule for storage payments: a ring that publishes, funds the storage budget,
    /// hosts the slot itself, challenges itself and claims the capped reward ends poorer.
    function testFuzz_sybilStorageRing_endsPoorer(uint16 feeBps, uint16 rebateBps, uint32 dt)
        public
    {
        feeBps = uint16(bound(feeBps, 1, 10_000));
        rebateBps = uint16(bound(rebateBps, 0, 9999));
        uint256 elapsed = bound(dt, 1 hours, 60 days);
        _deploy(feeBps, rebateBps);
        Slotted memory s = registerSlotted(keccak256(abi.encode(feeBps, rebateBps)), 8, 4);
        vm.deal(provider, 100 ether);
        uint256 start = _wealth();
        vm.startPrank(provider);
        da.fundStorage{value: 50 ether}(s.root);
        vm.stopPrank();
        // provider.balance already reduced by the budget; commit, challenge and answer as the
        // ring (host = challenger = provider).
        bytes32[] memory proof = slotProofOf(s.slotRoots, 0);
        vm.prank(provider);
        da.commit{value: 1 ether}(s.root, 0, s.slotRoots[0], proof);
        vm.warp(block.timestamp + elapsed);
        vm.prank(provider);
        uint256 id = da.challenge{value: 1e15}(s.root, 0);
        vm.roll(block.number + 1);
        vm.setBlockhash(block.number - 1, "ring seed");
        vm.roll(block.number + 1);
        (bytes[] memory segs, bytes32[][] memory proofs) = answerOf(s, 0, id);
        respondAs(provider, id, segs, proofs);
        uint64 epoch = trc.currentEpoch();
        uint256 burnt = da.storageFeesOf(provider, epoch);
        uint256 cap = _claimMax(epoch);
        // Leave: exit, withdraw the stake, pull what is owed.
        vm.prank(provider);
        da.requestExit(s.root, 0);
        vm.warp(block.timestamp + 3 days);
        vm.startPrank(provider);
        da.withdraw(s.root, 0);
        da.withdrawOwed();
        vm.stopPrank();
        uint256 end = _wealth();
        uint256 budgetLeft = da.storageBudgetOf(s.root);
        // The unspent budget is not refundable: count it as the ring's anyway (generous).
        assertEq(end + budgetLeft + burnt, start + cap, "loses exactly fee - subsidy");
        if (burnt != 0) assertLt(end + budgetLeft, start, "strictly poorer");
    }
}
