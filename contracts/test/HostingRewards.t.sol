// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "./utils/Test.sol";
import {MerkleTrees} from "./utils/MerkleTrees.sol";
import {MockERC20} from "./mocks/MockERC20.sol";
import {MockFees} from "./mocks/MockFees.sol";
import {HostingRewards} from "../src/HostingRewards.sol";
import {TransferReceipts} from "../src/TransferReceipts.sol";
import {DataAvailability} from "../src/DataAvailability.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @notice A host whose receive() tries to claim again (reentrancy probe).
contract ReenteringHost {
    HostingRewards internal immutable rewards;
    bytes32[] internal proof;
    uint256 internal amount;

    constructor(HostingRewards rewards_) {
        rewards = rewards_;
    }

    function arm(uint256 amount_, bytes32[] memory proof_) external {
        amount = amount_;
        proof = proof_;
    }

    receive() external payable {
        rewards.claim(6, address(0), address(this), amount, proof);
    }
}

/// @notice Validators, quorum, Merkle claims, the fee cap and rollover, against fee views that the
/// test sets (MockFees); test/Sybil.t.sol runs the cap against the real contracts.
contract HostingRewardsTest is Test {
    HostingRewards internal rewards;
    MockFees internal fees;
    MockERC20 internal token;
    address[3] internal vals;
    uint256[3] internal keys;
    address[4] internal hosts;
    uint256[4] internal amounts;
    bytes32[] internal tree;

    event Claimed(uint64 indexed epoch, address indexed token, address indexed host, uint256 amount);
    event AllocationPosted(
        uint64 indexed epoch, address indexed token, bytes32 merkleRoot, uint256 total
    );

    function setUp() public {
        vm.warp(1_700_000_000);
        fees = new MockFees();
        rewards = new HostingRewards(
            TransferReceipts(address(fees)), DataAvailability(address(fees)), 5000, 30 days
        );
        token = new MockERC20();
        // Three validators sorted by address.
        for (uint256 i; i < 3; ++i) {
            (vals[i], keys[i]) = makeAccount(string(abi.encode("validator", i)));
        }
        for (uint256 i; i < 3; ++i) {
            for (uint256 j = i + 1; j < 3; ++j) {
                if (vals[j] < vals[i]) {
                    (vals[i], vals[j]) = (vals[j], vals[i]);
                    (keys[i], keys[j]) = (keys[j], keys[i]);
                }
            }
            rewards.addValidator(vals[i]);
        }
        rewards.setQuorum(2);
        for (uint256 i; i < 4; ++i) {
            hosts[i] = makeAddr(string(abi.encode("host", i)));
            amounts[i] = (i + 1) * 1 ether;
            tree.push(MerkleTrees.rewardLeaf(hosts[i], amounts[i]));
        }
        vm.deal(address(this), 100 ether);
    }

    function _root() internal view returns (bytes32 r) {
        (r,) = MerkleTrees.sortedRootAndProof(tree, 0);
    }

    function _proof(uint256 i) internal view returns (bytes32[] memory p) {
        (, p) = MerkleTrees.sortedRootAndProof(tree, i);
    }

    function _sigs(uint64 epoch, address tok, bytes32 root, uint256 total, uint256[] memory who)
        internal
        view
        returns (bytes[] memory sigs)
    {
        bytes32 digest = rewards.hashAllocation(epoch, tok, root, total);
        sigs = new bytes[](who.length);
        for (uint256 i; i < who.length; ++i) sigs[i] = signDigest(keys[who[i]], digest);
    }

    function _pair(uint256 a, uint256 b) internal pure returns (uint256[] memory w) {
        w = new uint256[](2);
        w[0] = a;
        w[1] = b;
    }

    function _postEth(uint64 epoch) internal {
        rewards.fundEpoch{value: 10 ether}(epoch);
        bytes32 root = _root();
        rewards.postAllocation(epoch, address(0), root, 10 ether, _sigs(epoch, address(0), root, 10 ether, _pair(0, 2)));
    }

    function test_validators_managedByOwner() public {
        assertEq(rewards.validators().length, 3, "three");
        assertTrue(rewards.isValidator(vals[1]), "member");
        assertEq(rewards.quorum(), 2, "quorum");
        vm.expectRevert(abi.encodeWithSelector(HostingRewards.ValidatorExists.selector, vals[0]));
        rewards.addValidator(vals[0]);
        rewards.removeValidator(vals[2]);
        assertFalse(rewards.isValidator(vals[2]), "removed");
        vm.expectRevert(abi.encodeWithSelector(HostingRewards.InvalidQuorum.selector, 2, 1));
        rewards.removeValidator(vals[1]);
        vm.expectRevert(abi.encodeWithSelector(HostingRewards.InvalidQuorum.selector, 3, 2));
        rewards.setQuorum(3);
        vm.expectRevert();
        vm.prank(hosts[0]);
        rewards.addValidator(hosts[0]);
    }

    function test_claim_paysEveryHostOnceEth() public {
        _postEth(5);
        for (uint256 i; i < 4; ++i) {
            vm.expectEmit(address(rewards));
            emit Claimed(5, address(0), hosts[i], amounts[i]);
            rewards.claim(5, address(0), hosts[i], amounts[i], _proof(i));
            assertEq(hosts[i].balance, amounts[i], "paid");
            assertTrue(rewards.claimed(5, address(0), hosts[i]), "claimed");
        }
        assertEq(rewards.paid(5, address(0)), 10 ether, "paid total");
        vm.expectRevert(
            abi.encodeWithSelector(HostingRewards.AlreadyClaimed.selector, uint64(5), address(0), hosts[1])
        );
        rewards.claim(5, address(0), hosts[1], amounts[1], _proof(1));
    }

    function test_claim_paysToken() public {
        token.mint(address(this), 10 ether);
        token.approve(address(rewards), 10 ether);
        rewards.fundEpochToken(2, IERC20(address(token)), 10 ether);
        assertEq(rewards.funded(2, address(token)), 10 ether, "funded");
        bytes32 root = _root();
        rewards.postAllocation(2, address(token), root, 10 ether, _sigs(2, address(token), root, 10 ether, _pair(1, 2)));
        rewards.claim(2, address(token), hosts[3], amounts[3], _proof(3));
        assertEq(token.balanceOf(hosts[3]), 4 ether, "token paid");
    }

    function test_RevertWhen_claim_wrongAmountOrProof() public {
        _postEth(1);
        bytes32[] memory p = _proof(0);
        vm.expectRevert(HostingRewards.InvalidProof.selector);
        rewards.claim(1, address(0), hosts[0], amounts[0] + 1, p);
        vm.expectRevert(HostingRewards.InvalidProof.selector);
        rewards.claim(1, address(0), hosts[1], amounts[0], p);
    }

    function test_RevertWhen_claim_noAllocation() public {
        bytes32[] memory p = _proof(0);
        vm.expectRevert(abi.encodeWithSelector(HostingRewards.NoAllocation.selector, uint64(9), address(0)));
        rewards.claim(9, address(0), hosts[0], amounts[0], p);
    }

    function test_RevertWhen_claim_treeSumsAboveTotal() public {
        rewards.fundEpoch{value: 10 ether}(3);
        bytes32 root = _root();
        // Validators signed a total below the tree's sum: the cap holds.
        rewards.postAllocation(3, address(0), root, 2 ether, _sigs(3, address(0), root, 2 ether, _pair(0, 1)));
        rewards.claim(3, address(0), hosts[1], 2 ether, _proof(1));
        bytes32[] memory p = _proof(0);
        vm.expectRevert(
            abi.encodeWithSelector(HostingRewards.AllocationExhausted.selector, 2 ether, 1 ether, 2 ether)
        );
        rewards.claim(3, address(0), hosts[0], 1 ether, p);
    }

    function test_postAllocation_emits() public {
        rewards.fundEpoch{value: 10 ether}(4);
        bytes32 root = _root();
        bytes[] memory sigs = _sigs(4, address(0), root, 7 ether, _pair(0, 1));
        vm.expectEmit(address(rewards));
        emit AllocationPosted(4, address(0), root, 7 ether);
        rewards.postAllocation(4, address(0), root, 7 ether, sigs);
        (bytes32 r, uint256 total,, bool posted) = rewards.allocationOf(4, address(0));
        assertEq(r, root, "root");
        assertEq(total, 7 ether, "total");
        assertTrue(posted, "posted");
    }

    function test_RevertWhen_postAllocation_badSignatures() public {
        rewards.fundEpoch{value: 10 ether}(1);
        bytes32 root = _root();
        bytes[] memory unsorted = _sigs(1, address(0), root, 1 ether, _pair(2, 0));
        vm.expectRevert(abi.encodeWithSelector(HostingRewards.SignersNotSorted.selector, 1, vals[0]));
        rewards.postAllocation(1, address(0), root, 1 ether, unsorted);

        bytes[] memory dup = _sigs(1, address(0), root, 1 ether, _pair(1, 1));
        vm.expectRevert(abi.encodeWithSelector(HostingRewards.SignersNotSorted.selector, 1, vals[1]));
        rewards.postAllocation(1, address(0), root, 1 ether, dup);

        uint256[] memory one = new uint256[](1);
        bytes[] memory single = _sigs(1, address(0), root, 1 ether, one);
        vm.expectRevert(abi.encodeWithSelector(HostingRewards.QuorumNotMet.selector, 1, 2));
        rewards.postAllocation(1, address(0), root, 1 ether, single);

        (address stranger, uint256 strangerKey) = makeAccount("stranger");
        bytes[] memory foreign = _sigs(1, address(0), root, 1 ether, _pair(0, 1));
        foreign[1] = signDigest(strangerKey, rewards.hashAllocation(1, address(0), root, 1 ether));
        vm.expectRevert(abi.encodeWithSelector(HostingRewards.NotValidator.selector, stranger));
        rewards.postAllocation(1, address(0), root, 1 ether, foreign);

        // Signed for another total: recovers to some non-validator.
        bytes[] memory other = _sigs(1, address(0), root, 2 ether, _pair(0, 1));
        vm.expectRevert();
        rewards.postAllocation(1, address(0), root, 1 ether, other);
    }

    function test_RevertWhen_postAllocation_overFundingOrTwice() public {
        rewards.fundEpoch{value: 1 ether}(1);
        bytes32 root = _root();
        bytes[] memory sigs = _sigs(1, address(0), root, 2 ether, _pair(0, 1));
        vm.expectRevert(abi.encodeWithSelector(HostingRewards.AllocationExceedsFunding.selector, 2 ether, 1 ether));
        rewards.postAllocation(1, address(0), root, 2 ether, sigs);
        sigs = _sigs(1, address(0), root, 1 ether, _pair(0, 1));
        rewards.postAllocation(1, address(0), root, 1 ether, sigs);
        vm.expectRevert(abi.encodeWithSelector(HostingRewards.AllocationExists.selector, uint64(1), address(0)));
        rewards.postAllocation(1, address(0), root, 1 ether, sigs);
    }

    function test_RevertWhen_fund_zero() public {
        vm.expectRevert(HostingRewards.ZeroAmount.selector);
        rewards.fundEpoch(1);
        vm.expectRevert(HostingRewards.ZeroAddress.selector);
        rewards.fundEpochToken(1, IERC20(address(0)), 1);
    }

    function testFuzz_claim_onlyListedPairs(uint256 i, uint256 amount) public {
        _postEth(7);
        i = bound(i, 0, 3);
        vm.assume(amount != amounts[i]);
        bytes32[] memory p = _proof(i);
        vm.expectRevert(HostingRewards.InvalidProof.selector);
        rewards.claim(7, address(0), hosts[i], amount, p);
    }

    function test_RevertWhen_claim_reentered() public {
        ReenteringHost attacker = new ReenteringHost(rewards);
        tree[0] = MerkleTrees.rewardLeaf(address(attacker), amounts[0]);
        _postEth(6);
        bytes32[] memory p = _proof(0);
        attacker.arm(amounts[0], p);
        // The nested claim hits the guard, so the payout call fails and the claim reverts whole.
        vm.expectRevert();
        rewards.claim(6, address(0), address(attacker), amounts[0], p);
        assertFalse(rewards.claimed(6, address(0), address(attacker)), "not marked claimed");
        assertEq(rewards.paid(6, address(0)), 0, "nothing paid");
        assertEq(address(rewards).balance, 10 ether, "funds intact");
    }

    // ------------------------------------------------------------------ fee cap

    /// @dev An ETH claim is at most rebateBps * (receipt fees + storage fees) / 10000 of the
    /// host's epoch, whatever the validators signed.
    function test_RevertWhen_claim_exceedsFeeCap() public {
        fees.setFees(hosts[1], 5, 3 ether, 0.5 ether); // cap = 50% of 3.5 = 1.75 < 2 ether
        _postEth(5);
        bytes32[] memory p = _proof(1);
        vm.expectRevert(
            abi.encodeWithSelector(HostingRewards.ExceedsFeeCap.selector, hosts[1], uint64(5), 1.75 ether)
        );
        rewards.claim(5, address(0), hosts[1], amounts[1], p);
        assertEq(rewards.feeCapOf(hosts[1], 5), 1.75 ether, "cap");
        fees.setFees(hosts[1], 5, 3.5 ether, 0.5 ether); // cap = 2 ether: exactly enough
        rewards.claim(5, address(0), hosts[1], amounts[1], p);
        assertEq(hosts[1].balance, 2 ether, "paid at the cap");
    }

    function test_claim_tokenNotCapped() public {
        fees.setFees(hosts[3], 2, 0, 0);
        token.mint(address(this), 10 ether);
        token.approve(address(rewards), 10 ether);
        rewards.fundEpochToken(2, IERC20(address(token)), 10 ether);
        bytes32 root = _root();
        rewards.postAllocation(2, address(token), root, 10 ether, _sigs(2, address(token), root, 10 ether, _pair(1, 2)));
        rewards.claim(2, address(token), hosts[3], amounts[3], _proof(3));
        assertEq(token.balanceOf(hosts[3]), 4 ether, "token paid without an ETH cap");
    }

    function test_RevertWhen_constructor_rebateNotBelowOne() public {
        vm.expectRevert(abi.encodeWithSelector(HostingRewards.InvalidRebate.selector, 10_000));
        new HostingRewards(TransferReceipts(address(fees)), DataAvailability(address(fees)), 10_000, 1);
    }

    // ------------------------------------------------------------------ rollover

    /// @dev Hole: funds never allocated or never claimed were stuck.
    function test_rollover_unclaimedAfterClaimWindow() public {
        _postEth(5);
        rewards.claim(5, address(0), hosts[0], amounts[0], _proof(0));
        (,,, bool posted) = rewards.allocationOf(5, address(0));
        assertTrue(posted, "posted");
        vm.expectRevert(
            abi.encodeWithSelector(
                HostingRewards.ClaimWindowOpen.selector, uint64(5), address(0), uint64(block.timestamp + 30 days)
            )
        );
        rewards.rollover(5, address(0), 6);
        vm.warp(block.timestamp + 30 days);
        vm.prank(hosts[2]); // anyone
        rewards.rollover(5, address(0), 6);
        assertEq(rewards.funded(6, address(0)), 9 ether, "remainder moved");
        assertEq(rewards.rolledOver(5, address(0)), 9 ether, "recorded");
        assertTrue(rewards.isClosed(5, address(0)), "closed");
        bytes32[] memory p = _proof(1);
        vm.expectRevert(abi.encodeWithSelector(HostingRewards.EpochClosed.selector, uint64(5), address(0)));
        rewards.claim(5, address(0), hosts[1], amounts[1], p);
        vm.expectRevert(abi.encodeWithSelector(HostingRewards.EpochClosed.selector, uint64(5), address(0)));
        rewards.fundEpoch{value: 1}(5);
        vm.expectRevert(abi.encodeWithSelector(HostingRewards.EpochClosed.selector, uint64(5), address(0)));
        rewards.rollover(5, address(0), 7);
        // The moved funds pay epoch 6's allocation.
        bytes32 root = _root();
        rewards.postAllocation(6, address(0), root, 9 ether, _sigs(6, address(0), root, 9 ether, _pair(0, 1)));
        rewards.claim(6, address(0), hosts[3], amounts[3], _proof(3));
        assertEq(address(rewards).balance, 5 ether, "balance = funded - paid - rolled over");
    }

    function test_rollover_unpostedByOwnerOnly() public {
        rewards.fundEpoch{value: 3 ether}(2);
        vm.prank(hosts[0]);
        vm.expectRevert(abi.encodeWithSelector(HostingRewards.NotPosted.selector, uint64(2), address(0)));
        rewards.rollover(2, address(0), 3);
        vm.expectRevert(abi.encodeWithSelector(HostingRewards.InvalidRolloverTarget.selector, uint64(2), uint64(2)));
        rewards.rollover(2, address(0), 2);
        _postEth(4);
        vm.expectRevert(abi.encodeWithSelector(HostingRewards.InvalidRolloverTarget.selector, uint64(2), uint64(4)));
        rewards.rollover(2, address(0), 4); // already posted
        rewards.rollover(2, address(0), 3);
        assertEq(rewards.funded(3, address(0)), 3 ether, "moved");
        bytes32 root = _root();
        bytes[] memory sigs = _sigs(2, address(0), root, 1 ether, _pair(0, 1));
        vm.expectRevert(abi.encodeWithSelector(HostingRewards.EpochClosed.selector, uint64(2), address(0)));
        rewards.postAllocation(2, address(0), root, 1 ether, sigs);
    }
}
