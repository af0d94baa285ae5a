// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "../utils/Test.sol";
import {MerkleTrees} from "../utils/MerkleTrees.sol";
import {HostingRewards} from "../../src/HostingRewards.sol";

/// @notice Funds epochs, posts validator-signed allocations (sometimes with a total below the
/// tree's sum) and claims, honest or with wrong amounts, over four hosts and three epochs.
contract RewardsHandler is Test {
    HostingRewards public immutable rewards;
    address[4] public hosts;
    uint256[4] public amounts;
    uint256 internal validatorKey;
    bytes32[] internal tree;

    mapping(uint64 => mapping(address => uint256)) public ghostClaims;
    uint256 public ghostFunded;
    uint256 public ghostPaid;

    constructor(HostingRewards rewards_, uint256 validatorKey_) {
        rewards = rewards_;
        validatorKey = validatorKey_;
        for (uint256 i; i < 4; ++i) {
            hosts[i] = makeAddr(string(abi.encode("rhost", i)));
            amounts[i] = (i + 1) * 0.5 ether;
            tree.push(MerkleTrees.rewardLeaf(hosts[i], amounts[i]));
        }
        vm.deal(address(this), 1_000_000 ether);
    }

    function fund(uint64 epoch, uint256 amount) external {
        epoch = uint64(bound(epoch, 0, 2));
        amount = bound(amount, 1, 10 ether);
        rewards.fundEpoch{value: amount}(epoch);
        ghostFunded += amount;
    }

    function post(uint64 epoch, uint256 total) external {
        epoch = uint64(bound(epoch, 0, 2));
        total = bound(total, 0, 5 ether); // the tree sums to 5 ether
        (bytes32 root,) = MerkleTrees.sortedRootAndProof(tree, 0);
        bytes[] memory sigs = new bytes[](1);
        sigs[0] = signDigest(validatorKey, rewards.hashAllocation(epoch, address(0), root, total));
        try rewards.postAllocation(epoch, address(0), root, total, sigs) {} catch {}
    }

    function claim(uint64 epoch, uint256 who, bool honest) external {
        epoch = uint64(bound(epoch, 0, 2));
        who = who % 4;
        (, bytes32[] memory proof) = MerkleTrees.sortedRootAndProof(tree, who);
        uint256 amount = honest ? amounts[who] : amounts[who] + 1;
        try rewards.claim(epoch, address(0), hosts[who], amount, proof) {
            ++ghostClaims[epoch][hosts[who]];
            ghostPaid += amount;
        } catch {}
    }
}

contract HostingRewardsInvariantTest is Test {
    HostingRewards internal rewards;
    RewardsHandler internal handler;

    function setUp() public {
        rewards = new HostingRewards();
        (address validator, uint256 key) = makeAccount("validator");
        rewards.addValidator(validator);
        handler = new RewardsHandler(rewards, key);
        targetContract(address(handler));
    }

    function invariant_noDoubleClaim() public view {
        for (uint64 e; e < 3; ++e) {
            for (uint256 i; i < 4; ++i) {
                assertLe(handler.ghostClaims(e, handler.hosts(i)), 1, "claimed twice");
            }
        }
    }

    function invariant_paidWithinFunded() public view {
        for (uint64 e; e < 3; ++e) {
            (, uint256 total, uint256 paidOut,) = rewards.allocationOf(e, address(0));
            assertLe(paidOut, total, "paid <= allocation total");
            assertLe(total, rewards.funded(e, address(0)), "allocation <= funded");
            assertEq(paidOut, rewards.paid(e, address(0)), "paid view");
        }
    }

    function invariant_balanceIsFundedMinusPaid() public view {
        assertEq(address(rewards).balance, handler.ghostFunded() - handler.ghostPaid(), "balance");
    }
}
