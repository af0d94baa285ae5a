// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "./utils/Test.sol";
import {TransferReceipts} from "../src/TransferReceipts.sol";

contract TransferReceiptsTest is Test {
    uint64 internal constant EPOCH = 1 hours;
    uint64 internal constant T0 = 1_700_000_000;

    TransferReceipts internal trc;
    address internal provider;
    address internal receiver;
    uint256 internal receiverKey;

    event ReceiptAccepted(
        address indexed provider,
        address indexed receiver,
        bytes32 indexed contentRoot,
        uint64 bytesServed,
        uint32 chunks,
        uint64 nonce,
        uint64 epoch
    );

    function setUp() public {
        vm.warp(T0);
        trc = new TransferReceipts(EPOCH);
        provider = makeAddr("provider");
        (receiver, receiverKey) = makeAccount("receiver");
        vm.warp(T0 + 3 * EPOCH + 5);
    }

    function _receipt(address to, uint64 nonce, uint64 issuedAt)
        internal
        view
        returns (TransferReceipts.Receipt memory)
    {
        return TransferReceipts.Receipt({
            contentRoot: keccak256("content"),
            provider: provider,
            receiver: to,
            bytesServed: 1 << 20,
            chunks: 1,
            nonce: nonce,
            issuedAt: issuedAt
        });
    }

    function _one(TransferReceipts.Receipt memory r, uint256 key)
        internal
        view
        returns (TransferReceipts.Receipt[] memory rs, bytes[] memory sigs)
    {
        rs = new TransferReceipts.Receipt[](1);
        rs[0] = r;
        sigs = new bytes[](1);
        sigs[0] = signDigest(key, trc.hashReceipt(r));
    }

    function test_constructor_setsEpochs() public view {
        assertEq(trc.genesis(), T0, "genesis");
        assertEq(trc.epochLength(), EPOCH, "epoch length");
        assertEq(trc.currentEpoch(), 3, "current epoch");
        assertEq(trc.epochOf(T0 - 1), 0, "before genesis");
        assertEq(trc.epochOf(T0 + EPOCH), 1, "epoch boundary");
    }

    function test_RevertWhen_constructor_zeroEpoch() public {
        vm.expectRevert(TransferReceipts.InvalidEpochLength.selector);
        new TransferReceipts(0);
    }

    function test_submitBatch_creditsProviderAndEmits() public {
        uint64 issued = T0 + EPOCH + 1;
        (TransferReceipts.Receipt[] memory rs, bytes[] memory sigs) =
            _one(_receipt(receiver, 7, issued), receiverKey);
        vm.expectEmit(address(trc));
        emit ReceiptAccepted(provider, receiver, keccak256("content"), 1 << 20, 1, 7, 1);
        vm.prank(provider);
        assertEq(trc.submitBatch(rs, sigs), 1, "accepted");
        assertEq(trc.servedBytes(provider, 1), 1 << 20, "served bytes");
        assertEq(trc.receiptCount(provider, 1), 1, "count");
        assertTrue(trc.isNonceUsed(receiver, 7), "nonce used");
        assertFalse(trc.isNonceUsed(receiver, 6), "neighbour nonce free");
    }

    function test_hashReceipt_isEip712Digest() public view {
        TransferReceipts.Receipt memory r = _receipt(receiver, 1, T0);
        bytes32 structHash = keccak256(
            abi.encode(
                trc.RECEIPT_TYPEHASH(),
                r.contentRoot,
                r.provider,
                r.receiver,
                r.bytesServed,
                r.chunks,
                r.nonce,
                r.issuedAt
            )
        );
        bytes32 domain = keccak256(
            abi.encode(
                keccak256(
                    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
                ),
                keccak256("BCAI Transfer Receipts"),
                keccak256("1"),
                block.chainid,
                address(trc)
            )
        );
        assertEq(
            trc.hashReceipt(r),
            keccak256(abi.encodePacked("\x19\x01", domain, structHash)),
            "digest"
        );
    }

    function test_RevertWhen_submitBatch_nonceReplayed() public {
        (TransferReceipts.Receipt[] memory rs, bytes[] memory sigs) =
            _one(_receipt(receiver, 9, T0), receiverKey);
        vm.prank(provider);
        trc.submitBatch(rs, sigs);
        vm.expectRevert(
            abi.encodeWithSelector(TransferReceipts.NonceUsed.selector, 0, receiver, uint64(9))
        );
        vm.prank(provider);
        trc.submitBatch(rs, sigs);
    }

    function test_RevertWhen_submitBatch_nonceTwiceInOneBatch() public {
        TransferReceipts.Receipt[] memory rs = new TransferReceipts.Receipt[](3);
        bytes[] memory sigs = new bytes[](3);
        uint64[3] memory nonces = [uint64(1), 300, 1];
        for (uint256 i; i < 3; ++i) {
            rs[i] = _receipt(receiver, nonces[i], T0);
            sigs[i] = signDigest(receiverKey, trc.hashReceipt(rs[i]));
        }
        vm.expectRevert(
            abi.encodeWithSelector(TransferReceipts.NonceUsed.selector, 2, receiver, uint64(1))
        );
        vm.prank(provider);
        trc.submitBatch(rs, sigs);
    }

    function test_RevertWhen_submitBatch_notProvider() public {
        (TransferReceipts.Receipt[] memory rs, bytes[] memory sigs) =
            _one(_receipt(receiver, 1, T0), receiverKey);
        address other = makeAddr("other");
        vm.expectRevert(
            abi.encodeWithSelector(TransferReceipts.NotProvider.selector, 0, provider, other)
        );
        vm.prank(other);
        trc.submitBatch(rs, sigs);
    }

    function test_RevertWhen_submitBatch_signedBySomeoneElse() public {
        (address mallory, uint256 malloryKey) = makeAccount("mallory");
        (TransferReceipts.Receipt[] memory rs, bytes[] memory sigs) =
            _one(_receipt(receiver, 1, T0), malloryKey);
        vm.expectRevert(
            abi.encodeWithSelector(TransferReceipts.InvalidSignature.selector, 0, mallory)
        );
        vm.prank(provider);
        trc.submitBatch(rs, sigs);
    }

    function test_RevertWhen_submitBatch_highSSignature() public {
        TransferReceipts.Receipt memory r = _receipt(receiver, 1, T0);
        (uint8 v, bytes32 rr, bytes32 s) = vm.sign(receiverKey, trc.hashReceipt(r));
        // The malleable twin (n - s, flipped v) recovers the same key; OZ ECDSA rejects it.
        bytes memory twin = abi.encodePacked(rr, bytes32(SECP256K1_N - uint256(s)), v == 27 ? uint8(28) : uint8(27));
        TransferReceipts.Receipt[] memory rs = new TransferReceipts.Receipt[](1);
        rs[0] = r;
        bytes[] memory sigs = new bytes[](1);
        sigs[0] = twin;
        vm.expectRevert(
            abi.encodeWithSelector(TransferReceipts.InvalidSignature.selector, 0, address(0))
        );
        vm.prank(provider);
        trc.submitBatch(rs, sigs);
    }

    function test_RevertWhen_submitBatch_zeroReceiver() public {
        TransferReceipts.Receipt memory r = _receipt(address(0), 1, T0);
        TransferReceipts.Receipt[] memory rs = new TransferReceipts.Receipt[](1);
        rs[0] = r;
        bytes[] memory sigs = new bytes[](1);
        sigs[0] = new bytes(65);
        vm.expectRevert(
            abi.encodeWithSelector(TransferReceipts.InvalidSignature.selector, 0, address(0))
        );
        vm.prank(provider);
        trc.submitBatch(rs, sigs);
    }

    function test_RevertWhen_submitBatch_issuedInFuture() public {
        uint64 future = uint64(block.timestamp) + 1;
        (TransferReceipts.Receipt[] memory rs, bytes[] memory sigs) =
            _one(_receipt(receiver, 1, future), receiverKey);
        vm.expectRevert(
            abi.encodeWithSelector(TransferReceipts.IssuedInFuture.selector, 0, future)
        );
        vm.prank(provider);
        trc.submitBatch(rs, sigs);
    }

    function test_RevertWhen_submitBatch_lengthMismatch() public {
        TransferReceipts.Receipt[] memory rs = new TransferReceipts.Receipt[](1);
        bytes[] memory sigs = new bytes[](2);
        vm.expectRevert(abi.encodeWithSelector(TransferReceipts.LengthMismatch.selector, 1, 2));
        trc.submitBatch(rs, sigs);
    }

    function test_RevertWhen_submitBatch_empty() public {
        vm.expectRevert(TransferReceipts.EmptyBatch.selector);
        trc.submitBatch(new TransferReceipts.Receipt[](0), new bytes[](0));
    }

    /// @dev A batch whose receipts alternate receivers, nonce windows and epochs exercises every
    /// write-back path of the batch cache; the result must equal one-by-one submission.
    function testFuzz_submitBatch_cacheMatchesStorage(uint256 seed, uint8 count) public {
        uint256 n = bound(count, 1, 24);
        (address r2, uint256 k2) = makeAccount("receiver2");
        TransferReceipts.Receipt[] memory rs = new TransferReceipts.Receipt[](n);
        bytes[] memory sigs = new bytes[](n);
        uint256 expectBytesE1;
        uint256 expectBytesE2;
        for (uint256 i; i < n; ++i) {
            uint256 x = uint256(keccak256(abi.encode(seed, i)));
            bool second = x & 1 == 1;
            uint64 nonce = uint64(i) * 97 + uint64((x >> 8) % 3); // distinct, crossing words
            uint64 issued = (x >> 16) & 1 == 1 ? T0 + EPOCH : T0 + 2 * EPOCH;
            rs[i] = _receipt(second ? r2 : receiver, nonce, issued);
            rs[i].bytesServed = uint64((x >> 32) % 1e9);
            sigs[i] = signDigest(second ? k2 : receiverKey, trc.hashReceipt(rs[i]));
            if (issued == T0 + EPOCH) expectBytesE1 += rs[i].bytesServed;
            else expectBytesE2 += rs[i].bytesServed;
        }
        vm.prank(provider);
        trc.submitBatch(rs, sigs);
        assertEq(trc.servedBytes(provider, 1), expectBytesE1, "epoch 1 bytes");
        assertEq(trc.servedBytes(provider, 2), expectBytesE2, "epoch 2 bytes");
        assertEq(
            trc.receiptCount(provider, 1) + trc.receiptCount(provider, 2), n, "receipt count"
        );
        for (uint256 i; i < n; ++i) {
            assertTrue(trc.isNonceUsed(rs[i].receiver, rs[i].nonce), "nonce marked");
        }
        // Every receipt is now a replay.
        for (uint256 i; i < n; ++i) {
            TransferReceipts.Receipt[] memory one = new TransferReceipts.Receipt[](1);
            bytes[] memory sig = new bytes[](1);
            one[0] = rs[i];
            sig[0] = sigs[i];
            vm.expectRevert(
                abi.encodeWithSelector(
                    TransferReceipts.NonceUsed.selector, 0, rs[i].receiver, rs[i].nonce
                )
            );
            vm.prank(provider);
            trc.submitBatch(one, sig);
        }
    }

    function _batch(uint256 n, bool distinctReceivers)
        internal
        returns (TransferReceipts.Receipt[] memory rs, bytes[] memory sigs)
    {
        rs = new TransferReceipts.Receipt[](n);
        sigs = new bytes[](n);
        for (uint256 i; i < n; ++i) {
            address to = receiver;
            uint256 key = receiverKey;
            if (distinctReceivers) (to, key) = makeAccount(string(abi.encode("r", i)));
            rs[i] = _receipt(to, uint64(i), T0 + EPOCH);
            sigs[i] = signDigest(key, trc.hashReceipt(rs[i]));
        }
    }

    /// @dev forge's gasleft delta is execution only (plus the caller's ABI encoding); the
    /// per-transaction figures from receipts are in docs/contracts.md (measure_gas.py).
    function test_submitBatch_gas100SameReceiver() public {
        (TransferReceipts.Receipt[] memory rs, bytes[] memory sigs) = _batch(100, false);
        vm.prank(provider);
        uint256 before = gasleft();
        trc.submitBatch(rs, sigs);
        uint256 used = before - gasleft();
        // ~11.3k execution; ~13.8k under --gas-report (isolated: incl. base and calldata).
        assertLe(used / 100, 15_000, "gas per receipt, one receiver, dense nonces");
    }

    function test_submitBatch_gas100DistinctReceivers() public {
        (TransferReceipts.Receipt[] memory rs, bytes[] memory sigs) = _batch(100, true);
        vm.prank(provider);
        uint256 before = gasleft();
        trc.submitBatch(rs, sigs);
        uint256 used = before - gasleft();
        assertLe(used / 100, 37_000, "gas per receipt, fresh bitmap word each");
    }
}
