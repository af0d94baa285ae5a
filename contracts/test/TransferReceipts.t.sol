// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {TransferReceipts} from "../src/TransferReceipts.sol";

contract TransferReceiptsTest is Fixture {
    uint64 internal constant SIZE = 10 * MIB;

    bytes32 internal root;
    address internal provider;
    address internal receiver;
    uint256 internal receiverKey;

    function setUp() public {
        deployAll(defaultParams());
        root = registerSized(SIZE, "content");
        provider = makeAddr("provider");
        (receiver, receiverKey) = makeAccount("receiver");
        vm.deal(address(this), 1000 ether);
        trc.deposit{value: 1 ether}(receiver);
    }

    function _pay(uint64 bytesServed) internal pure returns (uint128) {
        return priceOf(bytesServed, MIN_PRICE);
    }

    function _signed(uint64 bytesServed, uint64 nonce)
        internal
        view
        returns (TransferReceipts.Receipt memory r, bytes memory sig)
    {
        r = receipt(root, provider, receiver, bytesServed, _pay(bytesServed), nonce);
        sig = signReceipt(receiverKey, r);
    }

    function _escrow(address who) internal view returns (uint256 balance) {
        (balance,,) = trc.escrowOf(who);
    }

    function _assertReject(
        TransferReceipts.Receipt memory r,
        bytes memory sig,
        TransferReceipts.RejectReason want
    ) internal {
        uint256 escrowBefore = _escrow(r.receiver);
        uint256 burntBefore = trc.totalBurnt();
        uint256 earnedBefore = trc.earningsOf(r.provider);
        bool usedBefore = trc.isNonceUsed(r.receiver, r.nonce);
        TransferReceipts.RejectReason got = submitOne(r.provider, r, sig);
        assertEq(uint256(got), uint256(want), "reject reason");
        assertEq(_escrow(r.receiver), escrowBefore, "escrow unchanged");
        assertEq(trc.totalBurnt(), burntBefore, "burnt unchanged");
        assertEq(trc.earningsOf(r.provider), earnedBefore, "earnings unchanged");
        assertEq(trc.isNonceUsed(r.receiver, r.nonce), usedBefore, "nonce unchanged");
    }

    // ------------------------------------------------------------------ acceptance

    function test_accept_debitsEscrowBurnsFeeCreditsProvider() public {
        (TransferReceipts.Receipt memory r, bytes memory sig) = _signed(4 * MIB, 7);
        uint128 payment = r.payment;
        uint128 fee = uint128(uint256(payment) * RECEIPT_FEE_BPS / 10_000);
        vm.expectEmit(address(trc));
        emit TransferReceipts.ReceiptAccepted(
            provider, receiver, root, 4 * MIB, 1, payment, fee, 7, 0, trc.hashReceipt(r)
        );
        assertEq(uint256(submitOne(provider, r, sig)), 0, "accepted");
        assertEq(_escrow(receiver), 1 ether - payment, "escrow debited");
        assertEq(trc.totalBurnt(), fee, "fee burnt");
        assertEq(trc.earningsOf(provider), payment - fee, "provider credited");
        assertEq(trc.servedBytes(provider, 0), 4 * MIB, "served");
        assertEq(trc.receiptCount(provider, 0), 1, "count");
        assertEq(trc.paymentsOf(provider, 0), payment, "payments");
        assertEq(trc.feesOf(provider, 0), fee, "fees");
        assertEq(trc.pairBytes(receiver, provider, root, 0), 4 * MIB, "pair bytes");
        assertTrue(trc.isNonceUsed(receiver, 7), "nonce used");
        uint256 before = provider.balance;
        vm.prank(provider);
        trc.withdrawEarnings();
        assertEq(provider.balance - before, payment - fee, "earnings pulled");
        assertEq(trc.earningsOf(provider), 0, "earnings cleared");
        assertEq(address(trc).balance, _escrow(receiver) + trc.totalBurnt(), "conservation");
    }

    // ------------------------------------------------------------------ the holes

    /// @dev Hole: a self-signed receipt (receiver = a fresh key of the provider's) for a root that
    /// was never registered, claiming 2^64-1 bytes, earned 99.9% of an epoch's rewards.
    function test_forgedReceipt_unregisteredRoot_earnsNothing() public {
        (address sybil, uint256 sybilKey) = makeAccount("sybil");
        TransferReceipts.Receipt memory r =
            receipt(keccak256("never registered"), provider, sybil, type(uint64).max, 1, 1);
        _assertReject(r, signReceipt(sybilKey, r), TransferReceipts.RejectReason.RootNotRegistered);
        assertEq(trc.servedBytes(provider, 0), 0, "no bytes credited");
        assertEq(trc.feesOf(provider, 0), 0, "no fees: nothing to claim rewards against");
    }

    function test_maxBytesReceipt_rejectedExceedsSize() public {
        trc.deposit{value: 100 ether}(receiver);
        TransferReceipts.Receipt memory r =
            receipt(root, provider, receiver, type(uint64).max, type(uint128).max, 1);
        _assertReject(r, signReceipt(receiverKey, r), TransferReceipts.RejectReason.ExceedsSize);
        r.bytesServed = SIZE + 1;
        r.payment = _pay(SIZE + 1);
        _assertReject(r, signReceipt(receiverKey, r), TransferReceipts.RejectReason.ExceedsSize);
    }

    /// @dev Bytes above the registered size earn nothing, cumulatively per (receiver, provider,
    /// root, epoch); the budget is fresh in the next epoch and for another receiver.
    function testFuzz_cumulativeBytes_cappedBySizePerPairEpoch(uint64 a, uint64 b) public {
        a = uint64(bound(a, 1, SIZE));
        b = uint64(bound(b, 1, SIZE));
        (TransferReceipts.Receipt memory r1, bytes memory s1) = _signed(a, 1);
        (TransferReceipts.Receipt memory r2, bytes memory s2) = _signed(b, 2);
        assertEq(uint256(submitOne(provider, r1, s1)), 0, "first fits");
        if (uint256(a) + b > SIZE) {
            _assertReject(r2, s2, TransferReceipts.RejectReason.ExceedsSize);
        } else {
            assertEq(uint256(submitOne(provider, r2, s2)), 0, "second fits");
        }
        assertLe(trc.pairBytes(receiver, provider, root, 0), SIZE, "pair bytes <= size");
        assertLe(trc.servedBytes(provider, 0), SIZE, "served <= size for one pair");
        // The same receipt in the next epoch fits again.
        vm.warp(block.timestamp + EPOCH);
        (TransferReceipts.Receipt memory r3, bytes memory s3) = _signed(b, 3);
        assertEq(uint256(submitOne(provider, r3, s3)), 0, "next epoch");
    }

    function test_cumulativeBytes_withinOneBatch() public {
        TransferReceipts.Receipt[] memory rs = new TransferReceipts.Receipt[](3);
        bytes[] memory sigs = new bytes[](3);
        for (uint64 i; i < 3; ++i) (rs[i], sigs[i]) = _signed(SIZE / 2, i);
        TransferReceipts.RejectReason[] memory reasons = submitAll(provider, rs, sigs);
        assertEq(uint256(reasons[0]), 0, "first half");
        assertEq(uint256(reasons[1]), 0, "second half");
        assertEq(uint256(reasons[2]), uint256(TransferReceipts.RejectReason.ExceedsSize), "third");
        assertFalse(trc.isNonceUsed(receiver, 2), "rejected nonce stays free");
        assertEq(trc.pairBytes(receiver, provider, root, 0), SIZE, "exactly the size");
    }

    // ------------------------------------------------------------------ every reason, in order

    function test_rejectReasons() public {
        (TransferReceipts.Receipt memory r, bytes memory sig) = _signed(MIB, 1);
        // NotProvider: submitted by someone else.
        TransferReceipts.Receipt memory other =
            receipt(root, makeAddr("someone"), receiver, MIB, _pay(MIB), 1);
        _assertRejectAs(provider, other, signReceipt(receiverKey, other), TransferReceipts.RejectReason.NotProvider);
        // InvalidSignature: signed by another key, or garbage.
        (, uint256 otherKey) = makeAccount("other key");
        _assertReject(r, signReceipt(otherKey, r), TransferReceipts.RejectReason.InvalidSignature);
        _assertReject(r, hex"1234", TransferReceipts.RejectReason.InvalidSignature);
        // NonceUsed.
        assertEq(uint256(submitOne(provider, r, sig)), 0, "accepted once");
        _assertReject(r, sig, TransferReceipts.RejectReason.NonceUsed);
        // IssuedInFuture.
        (r, sig) = _signed(MIB, 2);
        r.issuedAt = uint64(block.timestamp + 1);
        _assertReject(r, signReceipt(receiverKey, r), TransferReceipts.RejectReason.IssuedInFuture);
        // Stale: issued in epoch e, cashable until the end of e + 1.
        (r, sig) = _signed(MIB, 3);
        vm.warp(block.timestamp + 2 * EPOCH);
        _assertReject(r, sig, TransferReceipts.RejectReason.Stale);
        (TransferReceipts.Receipt memory fresh, bytes memory freshSig) = _signed(MIB, 4);
        vm.warp(block.timestamp + EPOCH);
        assertEq(uint256(submitOne(provider, fresh, freshSig)), 0, "one epoch late is fine");
        // Empty.
        (r, sig) = _signed(0, 5);
        _assertReject(r, sig, TransferReceipts.RejectReason.Empty);
        // Underpaid: one wei below the minimum price.
        (r,) = _signed(MIB, 6);
        r.payment -= 1;
        _assertReject(r, signReceipt(receiverKey, r), TransferReceipts.RejectReason.Underpaid);
        // InsufficientEscrow.
        (address poor, uint256 poorKey) = makeAccount("poor");
        r = receipt(root, provider, poor, MIB, _pay(MIB), 1);
        _assertReject(r, signReceipt(poorKey, r), TransferReceipts.RejectReason.InsufficientEscrow);
    }

    function _assertRejectAs(
        address sender,
        TransferReceipts.Receipt memory r,
        bytes memory sig,
        TransferReceipts.RejectReason want
    ) internal {
        assertEq(uint256(submitOne(sender, r, sig)), uint256(want), "reject reason");
        assertFalse(trc.isNonceUsed(r.receiver, r.nonce), "nonce unchanged");
    }

    /// @dev One bad receipt never blocks the others: a batch of good and bad receipts credits
    /// exactly the good ones.
    function test_batch_badReceiptsDoNotBlockGoodOnes() public {
        TransferReceipts.Receipt[] memory rs = new TransferReceipts.Receipt[](4);
        bytes[] memory sigs = new bytes[](4);
        (rs[0], sigs[0]) = _signed(MIB, 10);
        (rs[1], sigs[1]) = _signed(MIB, 11);
        rs[1].issuedAt = uint64(block.timestamp + 1000); // future
        sigs[1] = signReceipt(receiverKey, rs[1]);
        (rs[2], sigs[2]) = _signed(MIB, 10); // replay inside the batch
        (rs[3], sigs[3]) = _signed(MIB, 12);
        TransferReceipts.RejectReason[] memory reasons = submitAll(provider, rs, sigs);
        assertEq(uint256(reasons[0]), 0, "0 ok");
        assertEq(uint256(reasons[1]), uint256(TransferReceipts.RejectReason.IssuedInFuture), "1");
        assertEq(uint256(reasons[2]), uint256(TransferReceipts.RejectReason.NonceUsed), "2");
        assertEq(uint256(reasons[3]), 0, "3 ok");
        assertEq(trc.receiptCount(provider, 0), 2, "two credited");
        assertEq(_escrow(receiver), 1 ether - 2 * _pay(MIB), "two debited");
    }

    function test_RevertWhen_batchMalformed() public {
        vm.expectRevert(TransferReceipts.EmptyBatch.selector);
        trc.submitBatch(new TransferReceipts.Receipt[](0), new bytes[](0));
        vm.expectRevert(abi.encodeWithSelector(TransferReceipts.LengthMismatch.selector, 1, 0));
        trc.submitBatch(new TransferReceipts.Receipt[](1), new bytes[](0));
    }

    // ------------------------------------------------------------------ escrow

    function test_escrow_withdrawalAfterDelayPaysMinOfRequestAndBalance() public {
        vm.prank(receiver);
        trc.requestWithdrawal(2 ether);
        (, uint256 requested, uint64 unlockAt) = trc.escrowOf(receiver);
        assertEq(requested, 2 ether, "requested");
        assertEq(unlockAt, block.timestamp + WITHDRAW_DELAY, "unlockAt");
        // Receipts keep debiting meanwhile.
        (TransferReceipts.Receipt memory r, bytes memory sig) = _signed(MIB, 1);
        assertEq(uint256(submitOne(provider, r, sig)), 0, "debited while pending");
        vm.prank(receiver);
        vm.expectRevert(abi.encodeWithSelector(TransferReceipts.WithdrawalLocked.selector, unlockAt));
        trc.withdrawEscrow();
        vm.warp(unlockAt);
        uint256 before = receiver.balance;
        vm.prank(receiver);
        trc.withdrawEscrow();
        assertEq(receiver.balance - before, 1 ether - r.payment, "min(requested, balance)");
        assertEq(_escrow(receiver), 0, "empty");
        vm.prank(receiver);
        vm.expectRevert(abi.encodeWithSelector(TransferReceipts.NoWithdrawalRequested.selector, receiver));
        trc.withdrawEscrow();
    }

    function test_RevertWhen_constructorParamsOutOfRange() public {
        vm.expectRevert(TransferReceipts.InvalidParams.selector);
        new TransferReceipts(registry, EPOCH, MIN_PRICE, 0, WITHDRAW_DELAY); // fee 0
        vm.expectRevert(TransferReceipts.InvalidParams.selector);
        new TransferReceipts(registry, EPOCH, MIN_PRICE, 10_001, WITHDRAW_DELAY);
        vm.expectRevert(TransferReceipts.InvalidParams.selector);
        new TransferReceipts(registry, EPOCH, MIN_PRICE, 1000, 2 * EPOCH - 1); // < 2 epochs
        vm.expectRevert(TransferReceipts.InvalidParams.selector);
        new TransferReceipts(registry, EPOCH, 0, 1000, WITHDRAW_DELAY);
    }

    // ------------------------------------------------------------------ gas

    /// @dev 100 receipts, one receiver, one root, sequential nonces: gas per receipt (execution
    /// only; docs/contracts.md has the transaction figures).
    function test_gas_submitBatch100SameReceiverRoot() public {
        trc.deposit{value: 10 ether}(receiver);
        TransferReceipts.Receipt[] memory rs = new TransferReceipts.Receipt[](100);
        bytes[] memory sigs = new bytes[](100);
        for (uint64 i; i < 100; ++i) (rs[i], sigs[i]) = _signed(64 * 1024, i);
        vm.prank(provider);
        uint256 accepted = trc.submitBatch(rs, sigs);
        uint256 used = vm.lastCallGas().gasTotalUsed;
        emit log_named_uint("submitBatch 100 receipts: call gas", used);
        emit log_named_uint("submitBatch: call gas per receipt", used / 100);
        assertEq(accepted, 100, "all accepted");
        assertLe(used / 100, 20_000, "gas per receipt (call frame; whole tx under --gas-report)");
    }

    // ------------------------------------------------------------------ batch caches

    /// @dev A batch that interleaves receivers, roots and nonce words ends in exactly the state
    /// that submitting its receipts one by one produces (the write-back caches lose nothing).
    function testFuzz_batch_equalsOneByOne(uint256 seed) public {
        (address r2, uint256 k2) = makeAccount("receiver 2");
        bytes32 root2 = registerSized(2 * MIB, "content 2");
        TransferReceipts one = new TransferReceipts(registry, EPOCH, MIN_PRICE, RECEIPT_FEE_BPS, WITHDRAW_DELAY);
        trc.deposit{value: 1 ether}(r2);
        one.deposit{value: 1 ether}(receiver);
        one.deposit{value: 1 ether}(r2);
        TransferReceipts.Receipt[] memory rs = new TransferReceipts.Receipt[](8);
        bytes[] memory sigs = new bytes[](8);
        bytes[] memory sigsOne = new bytes[](8);
        for (uint256 i; i < 8; ++i) {
            uint256 x = uint256(keccak256(abi.encode(seed, i)));
            bool second = x & 1 == 1;
            uint64 b = uint64(1 + (x >> 8) % (MIB + MIB / 2));
            rs[i] = receipt(
                (x >> 4) & 1 == 1 ? root2 : root,
                provider,
                second ? r2 : receiver,
                b,
                (x >> 5) % 8 == 0 ? 1 : _pay(b),
                uint64((x >> 40) % 520) // crosses bitmap words; repeats happen
            );
            uint256 key = second ? k2 : receiverKey;
            sigs[i] = signDigest(key, trc.hashReceipt(rs[i]));
            sigsOne[i] = signDigest(key, one.hashReceipt(rs[i]));
        }
        vm.prank(provider);
        trc.submitBatch(rs, sigs);
        for (uint256 i; i < 8; ++i) {
            TransferReceipts.Receipt[] memory single = new TransferReceipts.Receipt[](1);
            bytes[] memory ss = new bytes[](1);
            single[0] = rs[i];
            ss[0] = sigsOne[i];
            vm.prank(provider);
            one.submitBatch(single, ss);
        }
        address[2] memory recv = [receiver, r2];
        bytes32[2] memory roots = [root, root2];
        for (uint256 a; a < 2; ++a) {
            (uint256 x1,,) = trc.escrowOf(recv[a]);
            (uint256 x2,,) = one.escrowOf(recv[a]);
            assertEq(x1, x2, "escrow");
            for (uint256 b; b < 2; ++b) {
                assertEq(trc.pairBytes(recv[a], provider, roots[b], 0), one.pairBytes(recv[a], provider, roots[b], 0), "pair");
            }
            for (uint64 n; n < 520; n += 37) {
                assertEq(trc.isNonceUsed(recv[a], n), one.isNonceUsed(recv[a], n), "nonce");
            }
        }
        for (uint256 i; i < 8; ++i) {
            assertEq(
                trc.isNonceUsed(rs[i].receiver, rs[i].nonce),
                one.isNonceUsed(rs[i].receiver, rs[i].nonce),
                "receipt nonce"
            );
        }
        assertEq(trc.earningsOf(provider), one.earningsOf(provider), "earnings");
        assertEq(trc.totalBurnt(), one.totalBurnt(), "burnt");
        assertEq(trc.servedBytes(provider, 0), one.servedBytes(provider, 0), "served");
        assertEq(trc.receiptCount(provider, 0), one.receiptCount(provider, 0), "count");
        assertEq(trc.feesOf(provider, 0), one.feesOf(provider, 0), "fees");
    }
}
