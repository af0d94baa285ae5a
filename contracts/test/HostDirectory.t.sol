// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {DataAvailability} from "../src/DataAvailability.sol";
import {HostDirectory} from "../src/HostDirectory.sol";

contract HostDirectoryTest is Fixture {
    uint64 internal constant ROWS = 3;
    uint256 internal constant STAKE = 1 ether;

    HostDirectory internal dir;
    Slotted internal s;

    function setUp() public {
        deployAll(defaultParams());
        dir = new HostDirectory(da);
        s = registerSlotted("dir", 8, ROWS);
    }

    function _host(uint256 j) internal returns (address) {
        return makeAddr(string(abi.encodePacked("host", bytes1(uint8(65 + j)))));
    }

    function _announce(address who, string memory endpoint) internal {
        vm.prank(who);
        dir.announce(endpoint);
    }

    function _bytes(uint256 n, bytes1 fill) internal pure returns (string memory) {
        bytes memory b = new bytes(n);
        for (uint256 i; i < n; ++i) {
            b[i] = fill;
        }
        return string(b);
    }

    // ------------------------------------------------------------------ announce

    function test_announce_setsRecordAndEmits() public {
        address h = _host(0);
        assertEq(dir.endpointOf(h), "", "no record yet");
        vm.expectEmit(address(dir));
        emit HostDirectory.EndpointAnnounced(h, "127.0.0.1:7420");
        _announce(h, "127.0.0.1:7420");
        assertEq(dir.endpointOf(h), "127.0.0.1:7420", "record");
        _announce(h, "[2001:db8::1]:7420");
        assertEq(dir.endpointOf(h), "[2001:db8::1]:7420", "replaced");
        assertEq(dir.endpointOf(_host(1)), "", "others untouched");
    }

    function test_announce_emptyWithdraws() public {
        address h = _host(0);
        _announce(h, "10.0.0.1:1");
        vm.expectEmit(address(dir));
        emit HostDirectory.EndpointAnnounced(h, "");
        _announce(h, "");
        assertEq(dir.endpointOf(h), "", "withdrawn");
    }

    function test_announce_acceptsMaxLength() public {
        string memory e = _bytes(128, "a");
        _announce(_host(0), e);
        assertEq(dir.endpointOf(_host(0)), e, "128 bytes");
    }

    function test_RevertWhen_announce_tooLong() public {
        string memory e = _bytes(129, "a");
        vm.expectRevert(abi.encodeWithSelector(HostDirectory.EndpointTooLong.selector, 129, 128));
        _announce(_host(0), e);
    }

    function testFuzz_announce_roundTripOrRevert(address who, bytes memory raw) public {
        string memory e = string(raw);
        if (raw.length > 128) {
            vm.expectRevert(
                abi.encodeWithSelector(HostDirectory.EndpointTooLong.selector, raw.length, 128)
            );
            _announce(who, e);
            assertEq(dir.endpointOf(who), "", "nothing stored");
            return;
        }
        _announce(who, e);
        assertEq(dir.endpointOf(who), e, "stored as sent (arbitrary bytes: clients must parse)");
    }

    // ------------------------------------------------------------------ providersOf

    function test_providersOf_listsHoldersInSlotOrderWithRecords() public {
        commitSlot(s, _host(5), 5, STAKE);
        commitSlot(s, _host(1), 1, STAKE);
        commitSlot(s, _host(6), 6, STAKE);
        _announce(_host(1), "10.0.0.1:7420");
        _announce(_host(6), "10.0.0.6:7420");
        _announce(_host(2), "10.0.0.2:7420"); // announced but holds nothing
        (address[] memory hosts, string[] memory eps) = dir.providersOf(s.root);
        assertEq(hosts.length, 3, "three holders");
        assertEq(eps.length, 3, "one record each");
        assertEq(hosts[0], _host(1), "slot 1");
        assertEq(hosts[1], _host(5), "slot 5");
        assertEq(hosts[2], _host(6), "slot 6");
        assertEq(eps[0], "10.0.0.1:7420", "slot 1 record");
        assertEq(eps[1], "", "slot 5 announced nothing");
        assertEq(eps[2], "10.0.0.6:7420", "slot 6 record");
    }

    function test_providersOf_unregisteredOrUncommittedIsEmpty() public view {
        (address[] memory hosts, string[] memory eps) = dir.providersOf(keccak256("nothing"));
        assertEq(hosts.length + eps.length, 0, "unregistered");
        (hosts, eps) = dir.providersOf(s.root);
        assertEq(hosts.length + eps.length, 0, "no commitments");
    }

    function test_providersOf_dropsExitedAndTerminatedHosts() public {
        address exiting = _host(0);
        address terminated = _host(1);
        address honest = _host(2);
        commitSlot(s, exiting, 0, STAKE);
        commitSlot(s, terminated, 1, STAKE);
        commitSlot(s, honest, 2, STAKE);
        vm.prank(exiting);
        da.requestExit(s.root, 0);
        (address[] memory hosts,) = dir.providersOf(s.root);
        assertEq(hosts.length, 3, "an exiting host still holds its slot");
        // A wrong answer is deletion evidence: terminated.
        uint256 id = challengeSlot(s, 1, makeAddr("challenger"), keccak256("seed"));
        (bytes[] memory segs, bytes32[][] memory proofs) = answerOf(s, 1, id);
        segs[0] = filled(4096, "not the slot");
        respondAs(terminated, id, segs, proofs);
        assertTrue(da.commitmentOf(s.root, 1).terminated, "terminated");
        (hosts,) = dir.providersOf(s.root);
        assertEq(hosts.length, 2, "terminated dropped");
        assertEq(hosts[0], exiting, "exiting kept before readyAt");
        vm.warp(da.commitmentOf(s.root, 0).readyAt);
        (hosts,) = dir.providersOf(s.root);
        assertEq(hosts.length, 1, "exit complete: dropped");
        assertEq(hosts[0], honest, "honest host");
    }

    function testFuzz_providersOf_matchesCommitments(uint8 mask, uint8 announced) public {
        for (uint8 j; j < 8; ++j) {
            if (mask & (1 << j) != 0) commitSlot(s, _host(j), j, STAKE);
            if (announced & (1 << j) != 0) _announce(_host(j), string(abi.encodePacked("h", j)));
        }
        (address[] memory hosts, string[] memory eps) = dir.providersOf(s.root);
        uint256 k;
        for (uint8 j; j < 8; ++j) {
            if (mask & (1 << j) == 0) continue;
            assertEq(hosts[k], _host(j), "holder in slot order");
            string memory want =
                announced & (1 << j) != 0 ? string(abi.encodePacked("h", j)) : "";
            assertEq(eps[k], want, "its record");
            ++k;
        }
        assertEq(hosts.length, k, "exactly the holders");
        assertEq(eps.length, k, "parallel arrays");
    }

    /// @dev The worst case a client's eth_call pays: 64 slots, every host announced 128 bytes.
    function test_providersOf_gasBoundedAt64Slots() public {
        Slotted memory big = registerSlotted("big", 64, 1);
        for (uint8 j; j < 64; ++j) {
            address h = _host(j);
            commitSlot(big, h, j, STAKE);
            _announce(h, _bytes(128, bytes1(uint8(97 + (j % 26)))));
        }
        (address[] memory hosts, string[] memory eps) = dir.providersOf(big.root);
        uint256 used = vm.lastCallGas().gasTotalUsed; // the call itself, not our decoding
        assertEq(hosts.length, 64, "all listed");
        assertEq(bytes(eps[63]).length, 128, "full records");
        assertLe(used, 600_000, "a view well inside any eth_call gas cap (measured 443k)");
    }
}
