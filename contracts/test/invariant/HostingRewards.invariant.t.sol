// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "../utils/Test.sol";
import {MerkleTrees} from "../utils/MerkleTrees.sol";
import {MockFees} from "../mocks/MockFees.sol";
import {HostingRewards} from "../../src/HostingRewards.sol";
import {TransferReceipts} from "../../src/TransferReceipts.sol";
import {DataAvailability} from "../../src/DataAvailability.sol";

/// @notice Funds epochs, posts validator-signed allocations (sometimes with a total below the
/// tree's sum), claims honest and dishonest amounts, lets hosts earn fees (monotone, like the
/// chain's tallies) and rolls epochs over, over four hosts and two epochs (rolled into up to
/// four).
contract RewardsHandler is Test {
    HostingRewards public immutable rewards;
    MockFees public immutable fees;
    address[4] public hosts;
    uint256[4] public amounts;
    uint256 internal validatorKey;
    bytes32[] internal tree;

    mapping(uint64 => mapping(address => uint256)) public ghostPaidTo;
    mapping(uint64 => mapping(address => uint256)) internal _fees;
    mapping(uint64 => mapping(address => uint256)) internal _storageFees;
    uint256 public ghostFunded;
    uint256 public ghostPaid;

    constructor(HostingRewards rewards_, MockFees fees_, uint256 validatorKey_) {
        rewards = rewards_;
        fees = fees_;
        validatorKey = validatorKey_;
        for (uint256 i; i < 4; ++i) {
            hosts[i] = makeAddr(string(abi.encode("rhost", i)));
            amounts[i] = (i + 1) * 0.5 ether;
            tree.push(MerkleTrees.rewardLeaf(hosts[i], amounts[i]));
            for (uint64 e; e < 4; ++e) fees.setFees(hosts[i], e, 0, 0);
        }
        vm.deal(address(this), 1_000_000 ether);
    }

    function fund(uint64 epoch, uint256 amount) external {
        epoch = uint64(bound(epoch, 0, 1));
        amount = bound(amount, 1, 10 ether);
        rewards.fundEpoch{value: amount}(epoch);
        ghostFunded += amount;
    }

    function earn(uint64 epoch, uint256 who, uint256 receiptFees, uint256 storageFees) external {
        epoch = uint64(bound(epoch, 0, 1));
        address h = hosts[who % 4];
        uint256 r = _fees[epoch][h] + bound(receiptFees, 0, 20 ether);
        uint256 st = _storageFees[epoch][h] + bound(storageFees, 0, 1 ether);
        _fees[epoch][h] = r;
        _storageFees[epoch][h] = st;
        fees.setFees(h, epoch, r, st);
    }

    function post(uint64 epoch, uint256 total) external {
        epoch = uint64(bound(epoch, 0, 1));
        total = bound(total, 0, 5 ether); // the tree sums to 5 ether
        (bytes32 root,) = MerkleTrees.sortedRootAndProof(tree, 0);
        bytes[] memory sigs = new bytes[](1);
        sigs[0] = signDigest(validatorKey, rewards.hashAllocation(epoch, address(0), root, total));
        rewards.postAllocation(epoch, address(0), root, total, sigs);
    }

    function claim(uint64 epoch, uint256 who, bool honest) external {
        epoch = uint64(bound(epoch, 0, 1));
        who = who % 4;
        (, bytes32[] memory proof) = MerkleTrees.sortedRootAndProof(tree, who);
        uint256 amount = honest ? amounts[who] : amounts[who] + 1;
        rewards.claim(epoch, address(0), hosts[who], amount, proof);
        ghostPaidTo[epoch][hosts[who]] += amount;
        ghostPaid += amount;
    }

    function rollover(uint64 epoch, uint64 toEpoch, uint8 gate) external {
        if (gate % 8 != 0) return; // rarely: a closed epoch takes no more claims
        epoch = uint64(bound(epoch, 0, 1));
        toEpoch = uint64(bound(toEpoch, epoch + 1, 3));
        rewards.rollover(epoch, address(0), toEpoch);
    }

    function advance(uint32 dt) external {
        vm.warp(block.timestamp + bound(dt, 0, 20 days));
    }
}

contract HostingRewardsInvariantTest is Test {
    HostingRewards internal rewards;
    MockFees internal fees;
    RewardsHandler internal handler;

    function setUp() public {
        vm.warp(1_700_000_000);
        fees = new MockFees();
        rewards = new HostingRewards(
            TransferReceipts(address(fees)), DataAvailability(address(fees)), 5000, 30 days
        );
        (address v, uint256 key) = makeAccount("validator");
        rewards.addValidator(v);
        handler = new RewardsHandler(rewards, fees, key);
        rewards.transferOwnership(address(handler)); // the handler may roll over unposted epochs
        targetContract(address(handler));
    }

    /// @dev paid <= allocation total <= funded, per epoch.
    function invariant_paidWithinTotalWithinFunded() public view {
        for (uint64 e; e < 4; ++e) {
            (, uint256 total, uint256 paidOut, bool posted) = rewards.allocationOf(e, address(0));
            assertLe(paidOut, total, "paid <= total");
            if (posted) assertLe(total, rewards.funded(e, address(0)), "total <= funded");
        }
    }

    /// @dev The ETH paid to a host for an epoch never exceeds its fee cap.
    function invariant_ethPaidWithinRebateCap() public view {
        for (uint64 e; e < 4; ++e) {
            for (uint256 i; i < 4; ++i) {
                address h = handler.hosts(i);
                assertLe(handler.ghostPaidTo(e, h), rewards.feeCapOf(h, e), "paid <= cap");
                assertLe(handler.ghostPaidTo(e, h), handler.amounts(i), "paid once");
            }
        }
    }

    /// @dev balance == sum(funded - paid - rolled over): nothing leaves except claims, nothing
    /// is stuck that rollover cannot move.
    function invariant_balanceIsFundedMinusPaidMinusRolled() public view {
        uint256 expect;
        for (uint64 e; e < 4; ++e) {
            expect += rewards.funded(e, address(0)) - rewards.paid(e, address(0))
                - rewards.rolledOver(e, address(0));
        }
        assertEq(address(rewards).balance, expect, "balance");
        assertEq(address(rewards).balance, handler.ghostFunded() - handler.ghostPaid(), "ghost");
    }
}
