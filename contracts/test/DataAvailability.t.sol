// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "./utils/Test.sol";
import {MerkleTrees} from "./utils/MerkleTrees.sol";
import {ContentRegistry} from "../src/ContentRegistry.sol";
import {DataAvailability} from "../src/DataAvailability.sol";

contract DataAvailabilityTest is Test {
    uint256 internal constant MIN_STAKE = 1 ether;
    uint64 internal constant WINDOW = 1 hours;
    uint16 internal constant SLASH_BPS = 1000; // 10 %
    uint64 internal constant EXIT_DELAY = 1 days;
    uint32 internal constant MIB = 1 << 20;

    ContentRegistry internal registry;
    DataAvailability internal da;
    address internal host;
    address internal challenger;
    address internal owner;

    bytes internal content;
    bytes32[] internal leaves;
    bytes32 internal root;

    event ChallengePassed(uint256 indexed id, address indexed host, bytes32 indexed root);
    event ChallengeFailed(
        uint256 indexed id,
        address indexed host,
        bytes32 indexed root,
        DataAvailability.FailReason reason
    );
    event HostSlashed(address indexed host, bytes32 indexed root, uint256 amount);

    function setUp() public {
        vm.warp(1_700_000_000);
        vm.roll(100);
        owner = address(this);
        registry = new ContentRegistry();
        da = new DataAvailability(registry, MIN_STAKE, WINDOW, SLASH_BPS, EXIT_DELAY);
        host = makeAddr("host");
        challenger = makeAddr("challenger");
        vm.deal(host, 100 ether);

        // 4 full segments and a 100-byte tail.
        content = new bytes(4 * 4096 + 100);
        for (uint256 i; i < content.length; i += 32) {
            bytes32 word = keccak256(abi.encode(i));
            for (uint256 j; j < 32 && i + j < content.length; ++j) content[i + j] = word[j];
        }
        leaves = MerkleTrees.segmentLeaves(content);
        root = MerkleTrees.root(leaves);
        registry.register(root, uint64(content.length), MIB, 4096, "");
    }

    function _commit(address who, uint256 amount) internal {
        vm.prank(who);
        da.commit{value: amount}(root);
    }

    function _challenge() internal returns (uint256 id, uint256 index) {
        vm.prank(challenger);
        id = da.challenge(host, root);
        index = da.getChallenge(id).segmentIndex;
    }

    /// @dev Arguments are computed before the prank: sha256 is a (precompile) call and would
    /// consume it.
    function _answer(uint256 id, uint256 index) internal {
        bytes memory seg = MerkleTrees.segment(content, index);
        bytes32[] memory proof = MerkleTrees.path(leaves, index);
        vm.prank(host);
        da.respond(id, seg, proof);
    }

    // ------------------------------------------------------------------ commit / exit

    function test_commit_recordsStakeAndActiveHost() public {
        _commit(host, 1 ether);
        _commit(host, 0.5 ether);
        assertEq(da.stakeOf(host, root), 1.5 ether, "stake with top-up");
        assertEq(da.totalStaked(), 1.5 ether, "total");
        (uint32 hosts, uint64 provenAt) = da.availability(root);
        assertEq(hosts, 1, "one active host");
        assertEq(provenAt, 0, "never proven");
        assertEq(da.hostsOf(root)[0], host, "hostsOf");
    }

    function test_RevertWhen_commit_belowMinStake() public {
        vm.expectRevert(
            abi.encodeWithSelector(DataAvailability.InsufficientStake.selector, 0.5 ether, MIN_STAKE)
        );
        _commit(host, 0.5 ether);
    }

    function test_RevertWhen_commit_unregisteredOrEmpty() public {
        bytes32 other = keccak256("other");
        vm.expectRevert(abi.encodeWithSelector(DataAvailability.RootNotRegistered.selector, other));
        vm.prank(host);
        da.commit{value: 1 ether}(other);

        bytes32 empty = sha256("");
        registry.register(empty, 0, MIB, 4096, "");
        vm.expectRevert(abi.encodeWithSelector(DataAvailability.EmptyContent.selector, empty));
        vm.prank(host);
        da.commit{value: 1 ether}(empty);
    }

    function test_withdraw_returnsStakeAfterExitDelay() public {
        _commit(host, 2 ether);
        vm.prank(host);
        da.requestExit(root);
        (uint32 hosts,) = da.availability(root);
        assertEq(hosts, 0, "exiting host not counted");
        vm.warp(block.timestamp + EXIT_DELAY);
        uint256 before = host.balance;
        vm.prank(host);
        da.withdraw(root);
        assertEq(host.balance - before, 2 ether, "stake returned");
        assertEq(da.stakeOf(host, root), 0, "stake cleared");
        assertEq(address(da).balance, 0, "contract empty");
    }

    function test_RevertWhen_withdraw_beforeDelayOrWithoutExit() public {
        _commit(host, 1 ether);
        vm.expectRevert(abi.encodeWithSelector(DataAvailability.ExitNotRequested.selector, host, root));
        vm.prank(host);
        da.withdraw(root);
        vm.prank(host);
        da.requestExit(root);
        uint64 readyAt = uint64(block.timestamp) + EXIT_DELAY;
        vm.expectRevert(abi.encodeWithSelector(DataAvailability.ExitDelayNotElapsed.selector, readyAt));
        vm.prank(host);
        da.withdraw(root);
    }

    function test_RevertWhen_withdraw_challengeOpen() public {
        _commit(host, 1 ether);
        vm.prank(host);
        da.requestExit(root);
        (uint256 id,) = _challenge();
        vm.warp(block.timestamp + EXIT_DELAY);
        vm.expectRevert(abi.encodeWithSelector(DataAvailability.ChallengeStillOpen.selector, id));
        vm.prank(host);
        da.withdraw(root);
    }

    // ------------------------------------------------------------------ challenges

    function testFuzz_respond_passesWithTheRightSegment(bytes32 randao) public {
        vm.prevrandao(randao);
        _commit(host, 1 ether);
        (uint256 id, uint256 index) = _challenge();
        assertLt(index, leaves.length, "index in range");
        assertEq(da.openChallenge(host, root), id, "open");
        vm.expectEmit(address(da));
        emit ChallengePassed(id, host, root);
        _answer(id, index);
        DataAvailability.Challenge memory c = da.getChallenge(id);
        assertEq(uint256(c.status), uint256(DataAvailability.ChallengeStatus.Passed), "passed");
        assertEq(da.openChallenge(host, root), 0, "closed");
        (, uint64 provenAt) = da.availability(root);
        assertEq(provenAt, block.timestamp, "proven now");
        assertTrue(da.isAvailable(root, 1, 0), "available");
        assertFalse(da.isAvailable(root, 2, 1 days), "only one host");
        vm.warp(block.timestamp + 2 days);
        assertFalse(da.isAvailable(root, 1, 1 days), "stale");
    }

    function test_respond_everySegmentIndexVerifies() public {
        _commit(host, 1 ether);
        // Drive the randomness until every index (incl. the short tail) was drawn once.
        uint256 seen;
        for (uint256 r; seen != (1 << leaves.length) - 1; ++r) {
            vm.prevrandao(bytes32(r));
            (uint256 id, uint256 index) = _challenge();
            _answer(id, index);
            assertEq(uint256(da.getChallenge(id).status), 2, "passed");
            seen |= 1 << index;
        }
    }

    function test_respond_wrongSegmentFailsSlashesAndForcesExit() public {
        _commit(host, 2 ether);
        (uint256 id, uint256 index) = _challenge();
        uint256 other = (index + 1) % (leaves.length - 1); // a full segment, not ours
        if (other == index) other = index + 1;
        bytes memory wrong = MerkleTrees.segment(content, other);
        if (index == leaves.length - 1) wrong = MerkleTrees.segment(content, index); // keep length
        bytes32[] memory proof = MerkleTrees.path(leaves, index);
        proof[0] ^= bytes32(uint256(1));
        uint256 before = challenger.balance;
        vm.expectEmit(address(da));
        emit ChallengeFailed(id, host, root, DataAvailability.FailReason.InvalidProof);
        vm.expectEmit(address(da));
        emit HostSlashed(host, root, 0.2 ether);
        vm.prank(host);
        da.respond(id, wrong, proof);
        assertEq(uint256(da.getChallenge(id).status), 3, "failed");
        assertEq(da.stakeOf(host, root), 1.8 ether, "slashed 10 %");
        assertEq(challenger.balance - before, 0.1 ether, "half to challenger");
        assertEq(da.treasuryBalance(), 0.1 ether, "half to treasury");
        (uint32 hosts,) = da.availability(root);
        assertEq(hosts, 0, "forced out");
        (, uint64 exitAt,) = da.commitmentOf(host, root);
        assertEq(exitAt, block.timestamp, "exit begun");
    }

    function test_respond_wrongLengthFails() public {
        _commit(host, 1 ether);
        (uint256 id, uint256 index) = _challenge();
        bytes32[] memory proof = MerkleTrees.path(leaves, index);
        vm.expectEmit(address(da));
        emit ChallengeFailed(id, host, root, DataAvailability.FailReason.WrongLength);
        vm.prank(host);
        da.respond(id, new bytes(17), proof);
    }

    function test_RevertWhen_respond_notHostLateOrTwice() public {
        _commit(host, 1 ether);
        (uint256 id, uint256 index) = _challenge();
        bytes memory seg = MerkleTrees.segment(content, index);
        bytes32[] memory proof = MerkleTrees.path(leaves, index);
        vm.expectRevert(abi.encodeWithSelector(DataAvailability.NotChallengedHost.selector, id, challenger));
        vm.prank(challenger);
        da.respond(id, seg, proof);

        uint64 deadline = da.getChallenge(id).deadline;
        vm.warp(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(DataAvailability.ChallengeExpired.selector, id, deadline));
        vm.prank(host);
        da.respond(id, seg, proof);

        vm.warp(deadline);
        _answer(id, index);
        vm.expectRevert(
            abi.encodeWithSelector(
                DataAvailability.ChallengeNotOpen.selector, id, DataAvailability.ChallengeStatus.Passed
            )
        );
        vm.prank(host);
        da.respond(id, seg, proof);
    }

    function test_RevertWhen_challenge_notCommittedOrAlreadyOpen() public {
        vm.expectRevert(abi.encodeWithSelector(DataAvailability.NotCommitted.selector, host, root));
        da.challenge(host, root);
        _commit(host, 1 ether);
        (uint256 id,) = _challenge();
        vm.expectRevert(
            abi.encodeWithSelector(DataAvailability.ChallengeAlreadyOpen.selector, host, root, id)
        );
        da.challenge(host, root);
    }

    function test_slashExpired_paysCallerHalf() public {
        _commit(host, 4 ether);
        (uint256 id,) = _challenge();
        uint64 deadline = da.getChallenge(id).deadline;
        vm.expectRevert(abi.encodeWithSelector(DataAvailability.ChallengeNotExpired.selector, id, deadline));
        da.slashExpired(id);
        vm.warp(deadline + 1);
        address keeper = makeAddr("keeper");
        vm.expectEmit(address(da));
        emit ChallengeFailed(id, host, root, DataAvailability.FailReason.Expired);
        vm.prank(keeper);
        da.slashExpired(id);
        assertEq(keeper.balance, 0.2 ether, "caller bounty");
        assertEq(da.treasuryBalance(), 0.2 ether, "treasury");
        assertEq(da.stakeOf(host, root), 3.6 ether, "remaining stake");
        assertEq(address(da).balance, da.totalStaked() + da.treasuryBalance(), "accounting");
    }

    function test_slashExpired_byHostEarnsNoBounty() public {
        _commit(host, 1 ether);
        (uint256 id,) = _challenge();
        vm.warp(block.timestamp + WINDOW + 1);
        uint256 before = host.balance;
        vm.prank(host);
        da.slashExpired(id);
        assertEq(host.balance, before, "no bounty to self");
        assertEq(da.treasuryBalance(), 0.1 ether, "all to treasury");
    }

    function test_commit_reactivatesAfterFailure() public {
        _commit(host, 1 ether);
        (uint256 id,) = _challenge();
        vm.warp(block.timestamp + WINDOW + 1);
        vm.prank(challenger);
        da.slashExpired(id);
        _commit(host, 0.1 ether);
        (uint32 hosts,) = da.availability(root);
        assertEq(hosts, 1, "active again");
        assertEq(da.stakeOf(host, root), 1 ether, "0.9 + 0.1");
    }

    function test_withdrawTreasury_ownerOnly() public {
        _commit(host, 1 ether);
        (uint256 id,) = _challenge();
        vm.warp(block.timestamp + WINDOW + 1);
        vm.prank(host);
        da.slashExpired(id);
        address payable sink = payable(makeAddr("sink"));
        vm.expectRevert();
        vm.prank(host);
        da.withdrawTreasury(sink, 0.1 ether);
        da.withdrawTreasury(sink, 0.1 ether);
        assertEq(sink.balance, 0.1 ether, "treasury paid");
        vm.expectRevert();
        da.withdrawTreasury(sink, 1);
    }

    function test_RevertWhen_setParams_outOfRange() public {
        vm.expectRevert(DataAvailability.InvalidParams.selector);
        da.setParams(1, WINDOW, 10_001, EXIT_DELAY);
        vm.expectRevert();
        vm.prank(host);
        da.setParams(1, WINDOW, 1, EXIT_DELAY);
    }

    /// @dev 1 TiB content of 2^28 identical segments: every sibling equals the running hash, so
    /// the root does not depend on the drawn index and the proof is a real 28-hash audit path.
    function test_respond_gasTebibyteRoot() public {
        bytes memory seg = new bytes(4096);
        for (uint256 i; i < 4096; i += 32) {
            bytes32 w = keccak256(abi.encode("tib", i));
            assembly {
                mstore(add(add(seg, 32), i), w)
            }
        }
        bytes32[] memory proof = new bytes32[](28);
        bytes32 acc = MerkleTrees.leaf(seg);
        for (uint256 i; i < 28; ++i) {
            proof[i] = acc;
            acc = MerkleTrees.node(acc, acc);
        }
        registry.register(acc, uint64(1) << 40, MIB, 4096, "");
        vm.prank(host);
        da.commit{value: 1 ether}(acc);
        vm.prank(challenger);
        uint256 id = da.challenge(host, acc);
        vm.prank(host);
        uint256 before = gasleft();
        da.respond(id, seg, proof);
        uint256 used = before - gasleft();
        assertEq(uint256(da.getChallenge(id).status), 2, "passed");
        // ~40k execution; ~142k under --gas-report (isolated: incl. 21000 base and calldata).
        assertLe(used, 150_000, "respond gas");
    }
}
