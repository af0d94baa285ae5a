// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Fixture} from "../utils/Fixture.sol";
import {ContentRegistry} from "../../src/ContentRegistry.sol";
import {TransferReceipts} from "../../src/TransferReceipts.sol";

/// @notice Deposits, batches of receipts good and bad (unregistered roots, 2^64-1 bytes,
/// underpaid, replayed, future, stale, unfunded), earnings and escrow withdrawals, time passing.
contract ReceiptsHandler is Fixture {
    address[3] public receivers;
    uint256[3] internal keys;
    address[2] public providers;
    bytes32[3] public roots; // roots[2] is never registered
    uint64[3] public sizes;
    uint256 public ghostAccepted;

    constructor(ContentRegistry registry_, TransferReceipts trc_) {
        registry = registry_;
        trc = trc_;
        for (uint256 i; i < 3; ++i) {
            (receivers[i], keys[i]) = makeAccount(string(abi.encode("recv", i)));
        }
        providers[0] = makeAddr("prov0");
        providers[1] = makeAddr("prov1");
        sizes[0] = 1 * MIB;
        sizes[1] = 3 * MIB + 5;
        roots[0] = registerSized(sizes[0], "r0");
        roots[1] = registerSized(sizes[1], "r1");
        roots[2] = keccak256("unregistered");
        vm.deal(address(this), 1_000_000 ether);
    }

    function deposit(uint256 who, uint256 amount) external {
        trc.deposit{value: bound(amount, 1, 10 ether)}(receivers[who % 3]);
    }

    function submit(uint256 seed, uint8 size, uint8 providerIdx) external {
        uint256 n = bound(size, 1, 6);
        address provider = providers[providerIdx % 2];
        TransferReceipts.Receipt[] memory rs = new TransferReceipts.Receipt[](n);
        bytes[] memory sigs = new bytes[](n);
        for (uint256 i; i < n; ++i) {
            uint256 x = uint256(keccak256(abi.encode(seed, i)));
            uint256 who = x % 3;
            uint256 r = (x >> 8) % 3;
            uint64 b = (x >> 16) % 8 == 0 ? type(uint64).max : uint64((x >> 24) % (sizes[r % 2] / 4 + 1));
            uint256 price = (x >> 90) % 4 == 0 ? MIN_PRICE - 1 : MIN_PRICE * (1 + (x >> 92) % 50);
            uint128 payment = b == type(uint64).max ? type(uint128).max : priceOf(b, price);
            rs[i] = receipt(roots[r], provider, receivers[who], b, payment, uint64((x >> 100) % 600));
            if ((x >> 120) % 10 == 0) rs[i].issuedAt = uint64(block.timestamp + 60);
            if ((x >> 124) % 10 == 0 && block.timestamp > 3 * EPOCH) {
                rs[i].issuedAt = uint64(block.timestamp - 3 * EPOCH);
            }
            sigs[i] = signReceipt(keys[who], rs[i]);
        }
        vm.prank((seed >> 200) % 16 == 0 ? providers[(providerIdx + 1) % 2] : provider);
        ghostAccepted += trc.submitBatch(rs, sigs);
    }

    function withdrawEarnings(uint8 p) external {
        vm.prank(providers[p % 2]);
        trc.withdrawEarnings();
    }

    function requestWithdrawal(uint256 who, uint256 amount) external {
        vm.prank(receivers[who % 3]);
        trc.requestWithdrawal(bound(amount, 1, 20 ether));
    }

    function withdrawEscrow(uint256 who) external {
        vm.prank(receivers[who % 3]);
        trc.withdrawEscrow();
    }

    function advance(uint32 dt) external {
        vm.warp(block.timestamp + bound(dt, 0, 2 days));
    }
}

contract TransferReceiptsInvariantTest is Fixture {
    ReceiptsHandler internal handler;

    function setUp() public {
        deployAll(defaultParams());
        handler = new ReceiptsHandler(registry, trc);
        targetContract(address(handler));
    }

    /// @dev balance == sum(escrow) + sum(earnings) + totalBurnt.
    function invariant_balanceIsEscrowPlusEarningsPlusBurnt() public view {
        uint256 sum = trc.totalBurnt();
        for (uint256 i; i < 3; ++i) {
            (uint256 bal,,) = trc.escrowOf(handler.receivers(i));
            sum += bal;
        }
        for (uint256 i; i < 2; ++i) sum += trc.earningsOf(handler.providers(i));
        assertEq(address(trc).balance, sum, "conservation");
    }

    /// @dev No (receiver, provider, root, epoch) is credited more than the root's size, and
    /// nothing is ever credited for the unregistered root.
    function invariant_pairBytesWithinSize() public view {
        uint64 last = trc.currentEpoch();
        for (uint64 e; e <= last; ++e) {
            for (uint256 p; p < 2; ++p) {
                address provider = handler.providers(p);
                uint256 fees = trc.feesOf(provider, e);
                assertLe(fees, trc.paymentsOf(provider, e) * RECEIPT_FEE_BPS / 10_000, "fee share");
                for (uint256 i; i < 3; ++i) {
                    address receiver = handler.receivers(i);
                    for (uint256 r; r < 3; ++r) {
                        uint256 b = trc.pairBytes(receiver, provider, handler.roots(r), e);
                        uint256 cap = r == 2 ? 0 : handler.sizes(r);
                        assertLe(b, cap, "pair bytes <= size");
                    }
                }
            }
        }
    }
}
