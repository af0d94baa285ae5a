// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "../utils/Test.sol";
import {TransferReceipts} from "../../src/TransferReceipts.sol";

/// @notice Submits batches of receipts with nonces from a small range, so replays (within and
/// across batches) are frequent, and keeps ghost totals of what was accepted.
contract ReceiptsHandler is Test {
    TransferReceipts public immutable trc;
    address[3] public receivers;
    uint256[3] internal keys;
    address public constant PROVIDER = address(0xB0B);

    mapping(address => mapping(uint64 => bool)) public ghostUsed;
    uint256 public ghostAccepted;
    uint256 public ghostBytes;
    uint256 public doubleAccepts;

    constructor(TransferReceipts trc_) {
        trc = trc_;
        for (uint256 i; i < 3; ++i) {
            (receivers[i], keys[i]) = makeAccount(string(abi.encode("recv", i)));
        }
    }

    function submit(uint256 seed, uint8 size) external {
        uint256 n = bound(size, 1, 6);
        TransferReceipts.Receipt[] memory rs = new TransferReceipts.Receipt[](n);
        bytes[] memory sigs = new bytes[](n);
        uint256 sum;
        for (uint256 i; i < n; ++i) {
            uint256 x = uint256(keccak256(abi.encode(seed, i)));
            uint256 who = x % 3;
            rs[i] = TransferReceipts.Receipt({
                contentRoot: bytes32(x),
                provider: PROVIDER,
                receiver: receivers[who],
                bytesServed: uint64(x >> 100) % 1e12,
                chunks: 1,
                nonce: uint64((x >> 8) % 600), // crosses bitmap words 0..2
                issuedAt: uint64(block.timestamp)
            });
            sigs[i] = signDigest(keys[who], trc.hashReceipt(rs[i]));
            sum += rs[i].bytesServed;
        }
        vm.prank(PROVIDER);
        try trc.submitBatch(rs, sigs) {
            for (uint256 i; i < n; ++i) {
                if (ghostUsed[rs[i].receiver][rs[i].nonce]) ++doubleAccepts;
                ghostUsed[rs[i].receiver][rs[i].nonce] = true;
            }
            ghostAccepted += n;
            ghostBytes += sum;
        } catch {}
    }

    function advance(uint32 dt) external {
        vm.warp(block.timestamp + bound(dt, 0, 3 hours));
    }
}

contract TransferReceiptsInvariantTest is Test {
    TransferReceipts internal trc;
    ReceiptsHandler internal handler;

    function setUp() public {
        vm.warp(1_700_000_000);
        trc = new TransferReceipts(1 hours);
        handler = new ReceiptsHandler(trc);
        targetContract(address(handler));
    }

    function invariant_noNonceAcceptedTwice() public view {
        assertEq(handler.doubleAccepts(), 0, "a (receiver, nonce) was accepted twice");
    }

    function invariant_talliesMatchAcceptedReceipts() public view {
        uint64 last = trc.currentEpoch();
        uint256 count;
        uint256 served;
        address p = handler.PROVIDER();
        for (uint64 e; e <= last; ++e) {
            count += trc.receiptCount(p, e);
            served += trc.servedBytes(p, e);
        }
        assertEq(count, handler.ghostAccepted(), "receipt count");
        assertEq(served, handler.ghostBytes(), "served bytes");
    }
}
