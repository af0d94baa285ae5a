// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "../utils/Test.sol";
import {MerkleTrees} from "../utils/MerkleTrees.sol";
import {ContentRegistry} from "../../src/ContentRegistry.sol";
import {DataAvailability} from "../../src/DataAvailability.sol";

/// @notice Drives commits, top-ups, exits, withdrawals, challenges, right and wrong answers and
/// expiry slashes over three hosts and one root.
contract DAHandler is Test {
    DataAvailability public immutable da;
    bytes32 public immutable root;
    bytes internal content;
    bytes32[] internal leaves;
    address[3] public hosts;
    address public constant KEEPER = address(0xCAFE);

    uint256 public ghostDeposited;
    uint256 public ghostWithdrawn;
    uint256 public ghostBounties;
    uint256 public ghostTreasuryOut;
    /// @dev Answers accepted in or before their seed block (must stay 0).
    uint256 public ghostEarlyAnswers;
    /// @dev Challenges voided although their seed hash was still available (must stay 0).
    uint256 public ghostWrongVoids;

    constructor(DataAvailability da_, bytes memory content_, bytes32 root_) {
        da = da_;
        content = content_;
        leaves = MerkleTrees.segmentLeaves(content_);
        root = root_;
        for (uint256 i; i < 3; ++i) {
            hosts[i] = makeAddr(string(abi.encode("dahost", i)));
            vm.deal(hosts[i], 1_000 ether);
        }
    }

    function commit(uint256 who, uint256 amount) external {
        address h = hosts[who % 3];
        amount = bound(amount, 1, 5 ether);
        vm.prank(h);
        try da.commit{value: amount}(root) {
            ghostDeposited += amount;
        } catch {}
    }

    function requestExit(uint256 who) external {
        vm.prank(hosts[who % 3]);
        try da.requestExit(root) {} catch {}
    }

    function withdraw(uint256 who) external {
        address h = hosts[who % 3];
        uint256 before = h.balance;
        vm.prank(h);
        try da.withdraw(root) {
            ghostWithdrawn += h.balance - before;
        } catch {}
    }

    function challenge(uint256 who) external {
        vm.prank(KEEPER);
        try da.challenge(hosts[who % 3], root) {} catch {}
    }

    /// @dev Answers with the drawn segment when the index is ready; otherwise with segment 0
    /// (too early: must revert SeedNotReady; seed gone: voids).
    function respond(uint256 who, bool honest) external {
        address h = hosts[who % 3];
        uint256 id = da.openChallenge(h, root);
        if (id == 0) return;
        (bool ready, uint256 index) = da.segmentIndexOf(id);
        uint64 seedBlock = da.getChallenge(id).seedBlock;
        bytes memory seg = MerkleTrees.segment(content, index);
        bytes32[] memory proof = MerkleTrees.path(leaves, index);
        if (!honest && proof.length > 0) proof[0] = bytes32(uint256(proof[0]) ^ 1);
        uint256 before = KEEPER.balance;
        vm.prank(h);
        try da.respond(id, seg, proof) {
            ghostBounties += KEEPER.balance - before;
            if (block.number <= seedBlock) ++ghostEarlyAnswers;
            bool voided = da.getChallenge(id).status == DataAvailability.ChallengeStatus.Void;
            if (voided && ready) ++ghostWrongVoids;
        } catch {}
    }

    function slashExpired(uint256 who) external {
        uint256 id = da.openChallenge(hosts[who % 3], root);
        if (id == 0) return;
        uint256 before = KEEPER.balance;
        vm.prank(KEEPER);
        try da.slashExpired(id) {
            ghostBounties += KEEPER.balance - before;
        } catch {}
    }

    function drainTreasury(uint256 amount) external {
        uint256 t = da.treasuryBalance();
        if (t == 0) return;
        amount = bound(amount, 1, t);
        vm.prank(da.owner());
        da.withdrawTreasury(payable(address(0xFEE)), amount);
        ghostTreasuryOut += amount;
    }

    /// @dev Time and blocks move on; now and then far enough for a seed hash to be gone.
    function advance(uint32 dt, uint16 blocks) external {
        vm.warp(block.timestamp + bound(dt, 0, 2 days));
        vm.roll(block.number + bound(blocks, 1, 300));
    }
}

contract DataAvailabilityInvariantTest is Test {
    ContentRegistry internal registry;
    DataAvailability internal da;
    DAHandler internal handler;

    function setUp() public {
        vm.warp(1_700_000_000);
        vm.roll(10);
        registry = new ContentRegistry();
        da = new DataAvailability(registry, 1 ether, 1 hours, 2500, 1 days);
        bytes memory content = new bytes(3 * 4096 + 7);
        for (uint256 i; i < content.length; ++i) content[i] = bytes1(uint8(i * 7 + 3));
        bytes32 root = MerkleTrees.root(MerkleTrees.segmentLeaves(content));
        registry.register(root, uint64(content.length), 1 << 20, 4096, "");
        handler = new DAHandler(da, content, root);
        da.transferOwnership(address(handler));
        targetContract(address(handler));
    }

    /// @dev Every wei is either someone's stake or the treasury's.
    function invariant_balanceEqualsStakesPlusTreasury() public view {
        assertEq(address(da).balance, da.totalStaked() + da.treasuryBalance(), "balance accounting");
    }

    /// @dev The sum of per-host stakes equals totalStaked (no stake goes negative or leaks).
    function invariant_sumOfStakesEqualsTotal() public view {
        uint256 sum;
        for (uint256 i; i < 3; ++i) sum += da.stakeOf(handler.hosts(i), handler.root());
        assertEq(sum, da.totalStaked(), "sum of stakes");
    }

    /// @dev Money in = money out + money held.
    function invariant_conservation() public view {
        assertEq(
            handler.ghostDeposited(),
            handler.ghostWithdrawn() + handler.ghostBounties() + handler.ghostTreasuryOut()
                + address(da).balance,
            "conservation"
        );
    }

    /// @dev No answer is accepted before its segment can be drawn; only lost seeds void.
    function invariant_answersNeedTheSeedBlock() public view {
        assertEq(handler.ghostEarlyAnswers(), 0, "answer accepted before the seed block");
        assertEq(handler.ghostWrongVoids(), 0, "void with a live seed");
    }

    /// @dev Active hosts are exactly the committed, non-exiting ones.
    function invariant_activeHostsAreNotExiting() public view {
        address[] memory active = da.hostsOf(handler.root());
        for (uint256 i; i < active.length; ++i) {
            (uint256 stake, uint64 exitAt,) = da.commitmentOf(active[i], handler.root());
            assertTrue(stake > 0 && exitAt == 0, "active host is committed and not exiting");
        }
    }
}
