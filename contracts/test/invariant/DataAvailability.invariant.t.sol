// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Fixture} from "../utils/Fixture.sol";
import {ContentRegistry} from "../../src/ContentRegistry.sol";
import {TransferReceipts} from "../../src/TransferReceipts.sol";
import {DataAvailability} from "../../src/DataAvailability.sol";

/// @notice Three hosts and two challengers on the four slots of one root: commits, top-ups,
/// exits, withdrawals, challenges answered right or wrong or not at all, voids (seed hashes
/// gone), storage and reward funding, owed withdrawals, parameter changes, time and blocks.
contract AvailabilityHandler is Fixture {
    Slotted internal s;
    address[3] public hosts;
    address[2] public challengers;

    constructor(ContentRegistry registry_, TransferReceipts trc_, DataAvailability da_) {
        registry = registry_;
        trc = trc_;
        da = da_;
        s = registerSlotted("inv", 4, 3);
        for (uint256 i; i < 3; ++i) hosts[i] = makeAddr(string(abi.encode("ihost", i)));
        challengers[0] = makeAddr("ichal0");
        challengers[1] = makeAddr("ichal1");
        vm.deal(address(this), 1_000_000 ether);
    }

    function root() external view returns (bytes32) {
        return s.root;
    }

    function actor(uint256 i) public view returns (address) {
        return i < 3 ? hosts[i] : challengers[i - 3];
    }

    function commit(uint256 h, uint8 j, uint256 stake) external {
        commitSlot(s, hosts[h % 3], j % 4, bound(stake, 1e16, 2 ether));
    }

    function topUp(uint256 h, uint256 amount) external {
        address host = hosts[h % 3];
        (bool held, uint8 j) = da.slotOf(s.root, host);
        if (!held) return;
        amount = bound(amount, 1, 1 ether);
        vm.deal(host, host.balance + amount);
        vm.prank(host);
        da.topUp{value: amount}(s.root, j);
    }

    function requestExit(uint256 h) external {
        address host = hosts[h % 3];
        (, uint8 j) = da.slotOf(s.root, host);
        vm.prank(host);
        da.requestExit(s.root, j);
    }

    function withdraw(uint256 h) external {
        address host = hosts[h % 3];
        (, uint8 j) = da.slotOf(s.root, host);
        vm.prank(host);
        da.withdraw(s.root, j);
    }

    function challenge(uint8 j, uint256 c, bytes32 seed) external {
        if (seed == bytes32(0)) seed = "nonzero";
        challengeSlot(s, j % 4, challengers[c % 2], seed);
    }

    function respond(uint8 j, bool correct, uint8 corrupt) external {
        j = j % 4;
        uint256 id = da.openChallenge(s.root, j);
        if (id == 0) return;
        DataAvailability.Challenge memory ch = da.getChallenge(id);
        if (block.number <= ch.seedBlock) vm.roll(ch.seedBlock + 1);
        bytes[] memory segs;
        bytes32[][] memory proofs;
        if (da.sampleIndicesOf(id).length == 0) {
            segs = new bytes[](0);
            proofs = new bytes32[][](0);
        } else {
            (segs, proofs) = answerOf(s, j, id);
            if (!correct) segs[corrupt % segs.length] = new bytes(4096 - (corrupt % 2));
        }
        respondAs(ch.host, id, segs, proofs);
    }

    function expire(uint8 j) external {
        uint256 id = da.openChallenge(s.root, j % 4);
        if (id == 0) return;
        uint64 deadline = da.getChallenge(id).deadline;
        if (block.timestamp <= deadline) vm.warp(deadline + 1);
        da.slashExpired(id);
    }

    function fundRewards(uint256 amount) external {
        da.fundRewards{value: bound(amount, 1, 1 ether)}();
    }

    function fundStorage(uint256 amount) external {
        da.fundStorage{value: bound(amount, 1, 1 ether)}(s.root);
    }

    function withdrawOwed(uint256 who) external {
        vm.prank(actor(who % 5));
        da.withdrawOwed();
    }

    function setParams(uint64 window, uint64 exitDelay, uint16 slash, uint8 maxFaults) external {
        DataAvailability.Params memory p = da.params();
        p.responseWindow = uint64(bound(window, 60, 3600));
        p.exitDelay = uint64(bound(exitDelay, p.responseWindow + 1, 5 days));
        p.proofSlashBps = uint16(bound(slash, 0, 10_000));
        p.faultSlashBps = p.proofSlashBps / 10;
        p.maxFaults = uint8(bound(maxFaults, 1, 5));
        da.setParams(p);
    }

    function advance(uint32 dt, uint16 blocks) external {
        vm.warp(block.timestamp + bound(dt, 0, 2 days));
        vm.roll(block.number + bound(blocks, 0, 8000));
    }
}

contract DataAvailabilityInvariantTest is Fixture {
    AvailabilityHandler internal handler;

    function setUp() public {
        deployAll(defaultParams());
        handler = new AvailabilityHandler(registry, trc, da);
        da.transferOwnership(address(handler));
        targetContract(address(handler));
    }

    /// @dev balance == staked + owed + pool + storage budgets + bonds of open challenges + burnt.
    function invariant_balanceIsAccountedFor() public view {
        assertEq(
            address(da).balance,
            da.totalStaked() + da.totalOwed() + da.rewardPool() + da.totalStorageBudget()
                + da.totalBonds() + da.totalBurnt(),
            "conservation"
        );
    }

    function invariant_totalsMatchTheParts() public view {
        bytes32 root = handler.root();
        uint256 staked;
        uint256 bonds;
        for (uint8 j; j < 4; ++j) {
            DataAvailability.Commitment memory c = da.commitmentOf(root, j);
            staked += c.stake;
            if (c.terminated) assertTrue(c.readyAt != 0, "terminated hosts are exiting");
            if (c.openChallenge != 0) {
                DataAvailability.Challenge memory ch = da.getChallenge(c.openChallenge);
                assertEq(uint256(ch.status), 1, "open challenge is open");
                assertEq(ch.host, c.host, "open challenge names the holder");
                bonds += ch.bond;
            }
        }
        assertEq(staked, da.totalStaked(), "sum of stakes");
        assertEq(bonds, da.totalBonds(), "sum of open bonds");
        uint256 owed;
        for (uint256 i; i < 5; ++i) owed += da.owedTo(handler.actor(i));
        assertEq(owed, da.totalOwed(), "sum of owed");
        assertEq(da.storageBudgetOf(root), da.totalStorageBudget(), "one budget");
    }

    /// @dev Views stay bounded by the slot count.
    function invariant_viewsBounded() public view {
        bytes32 root = handler.root();
        assertEq(da.hostsOf(root).length, 4, "hostsOf = slotCount");
        (uint32 active,) = da.availability(root);
        assertLe(active, 4, "active <= slots");
        assertFalse(da.isAvailable(root, 5, type(uint64).max), "never more than N");
    }
}
