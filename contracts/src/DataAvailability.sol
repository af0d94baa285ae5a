// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {ContentRegistry} from "./ContentRegistry.sol";
import {TransferReceipts} from "./TransferReceipts.sol";
import {RFC6962} from "./RFC6962.sol";

/// @title DataAvailability
/// @notice Proofs of storage over erasure-coded slots. Each registered root is split into
/// `slotCount` slots (docs/incentives.md section 2); a host stakes ETH on holding exactly one
/// slot (`commit`, proving the slot root against the registered `slotsRoot`). The chain's
/// randomness schedules challenges: a commitment is *due* in a block period when the hash of the
/// period's start block says so (`isDue`); a challenger posts `challengeBond` and the host must
/// answer with `samples` segments of its slot, drawn from the hash of the block after the
/// challenge, each with its RFC 6962 audit path against the slot root, within `responseWindow`.
/// A pass pays the host its accrued storage payment and the challenger its bond back plus, for a
/// scheduled challenge, `challengeReward` from the reward pool. An unanswered challenge is a
/// *fault* (downtime: `faultSlashBps`, the host stays, until `maxFaults` consecutive faults
/// terminate it); a wrong answer is *deletion evidence* (`proofSlashBps`, terminated).
/// @dev Parameters are snapshotted into every challenge (deadline, samples, slash rates,
/// maxFaults, exitDelay, reward, bond) and every exit (readyAt), so `setParams` never changes an
/// open obligation. `storageRatePerGiBDay`, `feeBps` and `periodBlocks` are fixed at deployment
/// (setParams reverts `ImmutableParam` if they differ): storage accrues continuously and period
/// numbers must never jump.
/// Every payout is a pull payment (`owedTo`, `withdrawOwed`); nothing pushes ETH inside a
/// challenge, so a challenger that cannot receive ETH cannot stop a slash. `withdraw` pays the
/// calling host its own stake.
/// Slot freeing: a slot is free when never taken, when its host withdrew, or when its host is
/// exiting (voluntarily or terminated) past `readyAt` with no open challenge; `commit` on such a
/// slot moves the old host's remaining stake to `owedTo(oldHost)` and emits `Withdrawn` for it.
/// Value accounting: address(this).balance == totalStaked + totalOwed + rewardPool +
/// totalStorageBudget + totalBonds + totalBurnt.
/// Choices where docs/incentives.md leaves details open: a respond with a number of segments or
/// proofs other than `samples` reverts `SampleCountMismatch` (a malformed call, not evidence);
/// the scheduled reward is paid on every resolution of a scheduled challenge but a void one;
/// a fault forfeits the storage payment accrued since the last payment (lastPaidAt = now);
/// a storage payment capped by the budget also moves lastPaidAt to now; `isDue` is false for a
/// commitment that cannot be challenged now (free, terminated, or exiting too close to readyAt).
contract DataAvailability is Ownable, ReentrancyGuardTransient {
    // ------------------------------------------------------------------ types

    /// @notice The owner-set parameters (field order is the ABI tuple order).
    struct Params {
        uint256 minStake;
        uint256 challengeBond;
        uint256 challengeReward;
        uint64 responseWindow;
        uint64 exitDelay;
        uint64 periodBlocks;
        uint16 dueBps;
        uint16 samples;
        uint16 faultSlashBps;
        uint16 proofSlashBps;
        uint8 maxFaults;
        uint256 storageRatePerGiBDay;
        uint16 feeBps;
    }

    /// @notice Life cycle of a challenge.
    enum ChallengeStatus {
        None,
        Open,
        Passed,
        Failed,
        Void
    }

    /// @notice Why a challenge failed.
    enum FailReason {
        None,
        Expired,
        WrongLength,
        InvalidProof
    }

    /// @notice A commitment of one host to one slot of one root.
    /// `readyAt` is 0 while active; else the host is exiting (withdraws from `readyAt`).
    /// `challengedPeriod` is the period of the last challenge plus one (0 = never).
    struct Commitment {
        address host;
        uint64 lastProvenAt;
        uint8 faults;
        bool terminated;
        uint128 stake;
        uint64 lastPaidAt;
        uint64 readyAt;
        bytes32 slotRoot;
        uint64 openChallenge;
        uint64 challengedPeriod;
        uint64 committedAt;
    }

    /// @notice A challenge with its parameter snapshot.
    struct Challenge {
        address host;
        uint64 deadline;
        ChallengeStatus status;
        bool scheduled;
        uint8 slot;
        FailReason reason;
        bytes32 root;
        address challenger;
        uint64 seedBlock;
        uint128 bond;
        uint128 reward;
        uint16 samples;
        uint16 faultSlashBps;
        uint16 proofSlashBps;
        uint8 maxFaults;
        uint64 exitDelay;
        uint64 rows;
    }

    /// @dev The registry's (immutable) layout of a root, cached at its first commit.
    struct RootInfo {
        uint64 size;
        uint64 rows;
        uint8 dataShards;
        uint8 slotCount;
        uint64 lastProvenAt;
        bytes32 slotsRoot;
    }

    // ------------------------------------------------------------------ constants

    /// @notice Segment size (bytes).
    uint256 public constant SEGMENT_SIZE = 4096;
    /// @notice Denominator of basis points.
    uint16 public constant BPS = 10_000;
    /// @notice Most segments a challenge may ask for.
    uint16 public constant MAX_SAMPLES = 256;

    // ------------------------------------------------------------------ errors

    /// @notice A parameter is out of range.
    error InvalidParams();
    /// @notice `storageRatePerGiBDay`, `feeBps` and `periodBlocks` cannot change.
    error ImmutableParam();
    /// @notice `root` is not registered, or has size 0.
    error RootNotRegistered(bytes32 root);
    /// @notice `slot` is not below the root's slot count.
    error InvalidSlot(bytes32 root, uint8 slot);
    /// @notice `slotProof` does not prove `slotRoot` as leaf `slot` of the registered slotsRoot.
    error InvalidSlotProof(bytes32 root, uint8 slot);
    /// @notice (root, slot) is held by `host`.
    error SlotTaken(bytes32 root, uint8 slot, address host);
    /// @notice `host` already holds slot `slot` of `root` (one slot per host per root).
    error HostHasSlot(bytes32 root, address host, uint8 slot);
    /// @notice The stake `stake` is below `minStake`.
    error InsufficientStake(uint256 stake, uint256 minStake);
    /// @notice (root, slot) has no commitment.
    error NotCommitted(bytes32 root, uint8 slot);
    /// @notice `caller` is not the host of (root, slot).
    error NotHost(bytes32 root, uint8 slot, address caller);
    /// @notice The host of (root, slot) is exiting already.
    error ExitAlreadyRequested(bytes32 root, uint8 slot);
    /// @notice The host of (root, slot) has not asked to exit.
    error ExitNotRequested(bytes32 root, uint8 slot);
    /// @notice Withdrawal possible from `readyAt`.
    error ExitDelayNotElapsed(uint64 readyAt);
    /// @notice Challenge `id` is still open.
    error ChallengeStillOpen(uint256 id);
    /// @notice `msg.value` must equal the challenge bond.
    error WrongBond(uint256 sent, uint256 bond);
    /// @notice (root, slot) cannot be challenged now (terminated, or exiting within one response
    /// window of readyAt).
    error NotChallengeable(bytes32 root, uint8 slot);
    /// @notice (root, slot) has open challenge `id`.
    error ChallengeAlreadyOpen(bytes32 root, uint8 slot, uint256 id);
    /// @notice (root, slot) was challenged in `period` already.
    error AlreadyChallengedThisPeriod(bytes32 root, uint8 slot, uint64 period);
    /// @notice Challenge `id` is not open (its status is `status`).
    error ChallengeNotOpen(uint256 id, ChallengeStatus status);
    /// @notice Only the challenged host may respond to challenge `id`.
    error NotChallengedHost(uint256 id, address caller);
    /// @notice Challenge `id`'s samples are drawn from block `seedBlock`'s hash: answer from
    /// block seedBlock + 1 on.
    error SeedNotReady(uint256 id, uint64 seedBlock);
    /// @notice Challenge `id` passed its deadline.
    error ChallengeExpired(uint256 id, uint64 deadline);
    /// @notice Challenge `id` can be settled only after `deadline`.
    error ChallengeNotExpired(uint256 id, uint64 deadline);
    /// @notice A response must carry exactly `samples` segments and proofs.
    error SampleCountMismatch(uint256 samples, uint256 segments, uint256 proofs);
    /// @notice A slot has at least one row.
    error ZeroRows();
    /// @notice Amount must be positive.
    error ZeroAmount();

    // ------------------------------------------------------------------ events

    /// @notice `host` committed to `slot` of `root` with `stake`.
    event Committed(address indexed host, bytes32 indexed root, uint8 slot, uint256 stake);
    /// @notice `host` topped up its stake on (root, slot) to `stake`.
    event StakeAdded(address indexed host, bytes32 indexed root, uint8 slot, uint256 stake);
    /// @notice `host` is exiting (root, slot) and may withdraw from `readyAt`.
    event ExitRequested(address indexed host, bytes32 indexed root, uint8 slot, uint64 readyAt);
    /// @notice `host` left (root, slot) with `amount` of stake (paid, or owed if evicted).
    event Withdrawn(address indexed host, bytes32 indexed root, uint8 slot, uint256 amount);
    /// @notice Challenge `id` asks `host` for samples of (root, slot) by `deadline`, drawn from
    /// the hash of block `seedBlock`; `scheduled` if the commitment was due this period.
    event ChallengeIssued(
        uint256 indexed id,
        address indexed host,
        bytes32 indexed root,
        uint8 slot,
        uint64 seedBlock,
        uint64 deadline,
        bool scheduled
    );
    /// @notice `host` answered challenge `id` correctly.
    event ChallengePassed(uint256 indexed id, address indexed host, bytes32 indexed root, uint8 slot);
    /// @notice Challenge `id` failed for `reason`: `slashed` taken from the stake; `terminated`
    /// if the host is forced out.
    event ChallengeFailed(
        uint256 indexed id,
        address indexed host,
        bytes32 indexed root,
        uint8 slot,
        FailReason reason,
        uint256 slashed,
        bool terminated
    );
    /// @notice Challenge `id` was voided: its seed hash left the 256-block window before the host
    /// answered. Bond back, no slash.
    event ChallengeVoided(uint256 indexed id, address indexed host, bytes32 indexed root, uint8 slot);
    /// @notice `host` earned `amount` (fee `fee` burnt, the rest owed) for storing (root, slot),
    /// counted in receipts epoch `epoch`.
    event StoragePaid(
        address indexed host,
        bytes32 indexed root,
        uint8 slot,
        uint256 amount,
        uint256 fee,
        uint64 epoch
    );
    /// @notice `from` added `amount` to the storage budget of `root`.
    event StorageFunded(bytes32 indexed root, address indexed from, uint256 amount);
    /// @notice `from` added `amount` to the reward pool.
    event RewardsFunded(address indexed from, uint256 amount);
    /// @notice `to` pulled `amount` it was owed.
    event OwedWithdrawn(address indexed to, uint256 amount);
    /// @notice The owner changed the parameters (for challenges and exits created from now on).
    event ParamsUpdated(Params params);

    // ------------------------------------------------------------------ storage

    /// @notice The registry roots must be registered in.
    ContentRegistry public immutable registry;
    /// @notice The receipts contract (its epochs count storage fees).
    TransferReceipts public immutable receipts;
    /// @notice Block number of deployment; period 0 starts here.
    uint64 public immutable genesisBlock;

    /// @notice Number of challenges issued so far (ids are 1..challengeCount).
    uint256 public challengeCount;
    /// @notice Sum of all stakes.
    uint256 public totalStaked;
    /// @notice Sum of `owedTo` over all accounts.
    uint256 public totalOwed;
    /// @notice Protocol funds that pay scheduled challenges.
    uint256 public rewardPool;
    /// @notice Sum of all storage budgets.
    uint256 public totalStorageBudget;
    /// @notice Bonds of open challenges.
    uint256 public totalBonds;
    /// @notice Storage fees burnt (held by this contract forever).
    uint256 public totalBurnt;

    /// @notice ETH each account may pull with `withdrawOwed`.
    mapping(address account => uint256) public owedTo;
    /// @notice Storage budget of each root (paid out to its hosts on passes).
    mapping(bytes32 root => uint256) public storageBudgetOf;
    /// @notice Storage fees burnt on payments to `host` in receipts epoch `epoch`.
    mapping(address host => mapping(uint64 epoch => uint256)) public storageFeesOf;
    /// @notice Storage payments (fees included) to `host` in receipts epoch `epoch`.
    mapping(address host => mapping(uint64 epoch => uint256)) public storagePaidOf;

    Params private _params;
    mapping(bytes32 root => mapping(uint8 slot => Commitment)) private _commitments;
    mapping(bytes32 root => mapping(address host => uint256 slotPlusOne)) private _slotOfHost;
    mapping(uint256 id => Challenge) private _challenges;
    mapping(bytes32 root => RootInfo) private _roots;

    // ------------------------------------------------------------------ construction and admin

    /// @param registry_ the ContentRegistry.
    /// @param receipts_ the TransferReceipts (its `epochOf` tallies storage fees).
    /// @param p the parameters (see `setParams` for the ranges).
    constructor(ContentRegistry registry_, TransferReceipts receipts_, Params memory p)
        Ownable(msg.sender)
    {
        registry = registry_;
        receipts = receipts_;
        genesisBlock = uint64(block.number);
        _checkParams(p);
        _params = p;
        emit ParamsUpdated(p);
    }

    /// @notice Replace the parameters. Owner only. Applies to challenges and exits created
    /// afterwards; open ones keep their snapshot. Ranges: responseWindow, periodBlocks > 0;
    /// exitDelay > responseWindow (an exiting host can be challenged at least once); dueBps <= 10000; 1 <= samples <= 256; faultSlashBps <= proofSlashBps
    /// <= 10000; maxFaults >= 1; feeBps <= 10000; minStake, challengeBond, challengeReward
    /// < 2^128; storageRatePerGiBDay < 2^96. storageRatePerGiBDay, feeBps and periodBlocks must
    /// equal the current ones.
    function setParams(Params calldata p) external onlyOwner {
        _checkParams(p);
        Params storage cur = _params;
        if (
            p.storageRatePerGiBDay != cur.storageRatePerGiBDay || p.feeBps != cur.feeBps
                || p.periodBlocks != cur.periodBlocks
        ) revert ImmutableParam();
        _params = p;
        emit ParamsUpdated(p);
    }

    /// @notice The current parameters.
    function params() external view returns (Params memory) {
        return _params;
    }

    /// @notice The current challenge bond (wei).
    function challengeBond() external view returns (uint256) {
        return _params.challengeBond;
    }

    /// @notice The current minimum stake (wei).
    function minStake() external view returns (uint256) {
        return _params.minStake;
    }

    // ------------------------------------------------------------------ funding and payouts

    /// @notice Add `msg.value` to the reward pool that pays scheduled challenges.
    function fundRewards() external payable {
        if (msg.value == 0) revert ZeroAmount();
        rewardPool += msg.value;
        emit RewardsFunded(msg.sender, msg.value);
    }

    /// @notice Add `msg.value` to the storage budget of `root` (a registered, non-empty root).
    /// The budget pays the root's hosts on passes; it is not refundable.
    function fundStorage(bytes32 root) external payable {
        if (msg.value == 0) revert ZeroAmount();
        (bool registered, uint64 size) = registry.registeredSize(root);
        if (!registered || size == 0) revert RootNotRegistered(root);
        storageBudgetOf[root] += msg.value;
        totalStorageBudget += msg.value;
        emit StorageFunded(root, msg.sender, msg.value);
    }

    /// @notice Pay the caller everything it is owed (bonds, rewards, bounties, storage payments,
    /// stakes of evicted commitments).
    function withdrawOwed() external nonReentrant {
        uint256 amount = owedTo[msg.sender];
        if (amount == 0) revert ZeroAmount();
        owedTo[msg.sender] = 0;
        totalOwed -= amount;
        emit OwedWithdrawn(msg.sender, amount);
        Address.sendValue(payable(msg.sender), amount);
    }

    // ------------------------------------------------------------------ hosts

    /// @notice Stake `msg.value` (>= minStake) on holding `slot` of `root`, whose RFC 6962 root
    /// is `slotRoot`, proven by `slotProof` as leaf `slot` of the registered slotsRoot (tree of
    /// slotCount leaves). The new commitment starts unproven (lastProvenAt 0, faults 0).
    function commit(bytes32 root, uint8 slot, bytes32 slotRoot, bytes32[] calldata slotProof)
        external
        payable
    {
        RootInfo memory info = _rootInfo(root);
        if (slot >= info.slotCount) revert InvalidSlot(root, slot);
        uint256 held = _slotOfHost[root][msg.sender];
        if (held != 0) revert HostHasSlot(root, msg.sender, uint8(held - 1));
        if (
            !RFC6962.verifyInclusion(
                RFC6962.wordLeafHash(slotRoot), slot, info.slotCount, slotProof, info.slotsRoot
            )
        ) revert InvalidSlotProof(root, slot);
        uint256 minStake_ = _params.minStake;
        if (msg.value < minStake_) revert InsufficientStake(msg.value, minStake_);
        Commitment storage c = _commitments[root][slot];
        if (c.host != address(0)) _evict(root, slot, c);
        uint64 now_ = uint64(block.timestamp);
        _commitments[root][slot] = Commitment({
            host: msg.sender,
            lastProvenAt: 0,
            faults: 0,
            terminated: false,
            stake: uint128(msg.value),
            lastPaidAt: now_,
            readyAt: 0,
            slotRoot: slotRoot,
            openChallenge: 0,
            challengedPeriod: 0,
            committedAt: now_
        });
        _slotOfHost[root][msg.sender] = uint256(slot) + 1;
        totalStaked += msg.value;
        emit Committed(msg.sender, root, slot, msg.value);
    }

    /// @notice Add `msg.value` to the caller's stake on (root, slot).
    function topUp(bytes32 root, uint8 slot) external payable {
        if (msg.value == 0) revert ZeroAmount();
        Commitment storage c = _hostCommitment(root, slot);
        uint256 stake = uint256(c.stake) + msg.value;
        c.stake = uint128(stake); // total ETH supply < 2^128 wei
        totalStaked += msg.value;
        emit StakeAdded(msg.sender, root, slot, stake);
    }

    /// @notice Start leaving (root, slot): the host stops counting as available at once and may
    /// withdraw at `readyAt = now + exitDelay` (the current exitDelay, fixed now). It stays
    /// challengeable while `now + responseWindow < readyAt`.
    function requestExit(bytes32 root, uint8 slot) external {
        Commitment storage c = _hostCommitment(root, slot);
        if (c.readyAt != 0) revert ExitAlreadyRequested(root, slot);
        uint64 readyAt = uint64(block.timestamp) + _params.exitDelay;
        c.readyAt = readyAt;
        emit ExitRequested(msg.sender, root, slot, readyAt);
    }

    /// @notice Take the remaining stake on (root, slot) back from `readyAt` on, with no open
    /// challenge (an expired one is settled first with `slashExpired`, by anyone). Frees the slot.
    function withdraw(bytes32 root, uint8 slot) external nonReentrant {
        Commitment storage c = _hostCommitment(root, slot);
        uint64 readyAt = c.readyAt;
        if (readyAt == 0) revert ExitNotRequested(root, slot);
        if (block.timestamp < readyAt) revert ExitDelayNotElapsed(readyAt);
        uint256 open = c.openChallenge;
        if (open != 0) revert ChallengeStillOpen(open);
        uint256 stake = c.stake;
        delete _commitments[root][slot];
        delete _slotOfHost[root][msg.sender];
        totalStaked -= stake;
        emit Withdrawn(msg.sender, root, slot, stake);
        if (stake != 0) Address.sendValue(payable(msg.sender), stake);
    }

    // ------------------------------------------------------------------ challenges

    /// @notice Challenge the host of (root, slot); `msg.value` must equal `challengeBond`.
    /// Allowed when the commitment is active, or exiting with now + responseWindow < readyAt
    /// (so an open challenge always expires before readyAt and never blocks a withdrawal), with
    /// no open challenge and at most once per commitment per period. `scheduled` = `isDue`.
    /// The samples are drawn from the hash of the next block (`seedBlock`), unknown now.
    /// @return id the new challenge's id (ids start at 1).
    function challenge(bytes32 root, uint8 slot) external payable returns (uint256 id) {
        Params memory p = _params;
        if (msg.value != p.challengeBond) revert WrongBond(msg.value, p.challengeBond);
        Commitment storage c = _commitments[root][slot];
        if (c.host == address(0)) revert NotCommitted(root, slot);
        if (!_challengeable(c, p.responseWindow)) revert NotChallengeable(root, slot);
        if (c.openChallenge != 0) revert ChallengeAlreadyOpen(root, slot, c.openChallenge);
        uint64 period = currentPeriod();
        if (c.challengedPeriod == period + 1) {
            revert AlreadyChallengedThisPeriod(root, slot, period);
        }
        bool scheduled = _dueHash(root, slot, period, p.dueBps);
        id = ++challengeCount;
        uint64 seedBlock = uint64(block.number) + 1;
        uint64 deadline = uint64(block.timestamp) + p.responseWindow;
        _challenges[id] = Challenge({
            host: c.host,
            deadline: deadline,
            status: ChallengeStatus.Open,
            scheduled: scheduled,
            slot: slot,
            reason: FailReason.None,
            root: root,
            challenger: msg.sender,
            seedBlock: seedBlock,
            bond: uint128(msg.value),
            reward: uint128(p.challengeReward),
            samples: p.samples,
            faultSlashBps: p.faultSlashBps,
            proofSlashBps: p.proofSlashBps,
            maxFaults: p.maxFaults,
            exitDelay: p.exitDelay,
            rows: _roots[root].rows
        });
        c.openChallenge = uint64(id);
        c.challengedPeriod = period + 1;
        totalBonds += msg.value;
        emit ChallengeIssued(id, c.host, root, slot, seedBlock, deadline, scheduled);
    }

    /// @notice Answer challenge `id` with `samples` segments of the slot (4096 bytes each) at the
    /// indices `sampleIndicesOf(id)`, each with its RFC 6962 audit path against the slot root
    /// (tree of `rows` leaves). Host only, from block seedBlock + 1, by the deadline. A wrong
    /// segment length or proof does not revert: it is deletion evidence (slash proofSlashBps,
    /// terminate). If the seed hash is gone (> 256 blocks), the challenge is voided instead.
    function respond(uint256 id, bytes[] calldata segments, bytes32[][] calldata proofs) external {
        Challenge storage ch = _challenges[id];
        _checkRespond(ch, id);
        Commitment storage c = _commitments[ch.root][ch.slot];
        bytes32 seed = blockhash(ch.seedBlock);
        if (seed == bytes32(0)) {
            _void(id, ch, c);
            return;
        }
        uint256 samples = ch.samples;
        if (segments.length != samples || proofs.length != samples) {
            revert SampleCountMismatch(samples, segments.length, proofs.length);
        }
        FailReason reason = _judge(
            Draw({seed: seed, id: id, rows: ch.rows, slotRoot: c.slotRoot}), segments, proofs
        );
        c.openChallenge = 0;
        if (reason == FailReason.None) {
            _pass(id, ch, c);
        } else {
            _fail(id, ch, c, reason, true);
        }
    }

    /// @notice Settle challenge `id` after its deadline passed unanswered: a fault. Anyone may
    /// call (the host included). faults += 1; slash faultSlashBps and keep the host, or at
    /// maxFaults consecutive faults slash proofSlashBps and terminate (snapshot values).
    function slashExpired(uint256 id) external {
        Challenge storage ch = _challenges[id];
        if (ch.status != ChallengeStatus.Open) revert ChallengeNotOpen(id, ch.status);
        if (block.timestamp <= ch.deadline) revert ChallengeNotExpired(id, ch.deadline);
        Commitment storage c = _commitments[ch.root][ch.slot];
        c.openChallenge = 0;
        uint8 faults = c.faults + 1;
        c.faults = faults;
        c.lastPaidAt = uint64(block.timestamp);
        _fail(id, ch, c, FailReason.Expired, faults >= ch.maxFaults);
    }

    // ------------------------------------------------------------------ views

    /// @notice The commitment on (root, slot) (host 0 if free).
    function commitmentOf(bytes32 root, uint8 slot) external view returns (Commitment memory) {
        return _commitments[root][slot];
    }

    /// @notice The slot `host` holds in `root`, if any.
    function slotOf(bytes32 root, address host) external view returns (bool held, uint8 slot) {
        uint256 s = _slotOfHost[root][host];
        if (s == 0) return (false, 0);
        return (true, uint8(s - 1));
    }

    /// @notice The holder of each slot of `root` (exiting holders included; zero if free).
    /// Length = slotCount (<= 64); empty for unregistered roots.
    function hostsOf(bytes32 root) external view returns (address[] memory hosts) {
        uint8 n = _roots[root].slotCount;
        if (n == 0) {
            (bool registered,) = registry.registeredSize(root);
            if (registered) (,, n,,) = registry.layoutOf(root);
        }
        hosts = new address[](n);
        for (uint8 j; j < n; ++j) {
            hosts[j] = _commitments[root][j].host;
        }
    }

    /// @notice Whether at least `minHosts` active (not exiting) slots of `root` passed a
    /// challenge within the last `maxAge` seconds. Bounded by slotCount (<= 64).
    function isAvailable(bytes32 root, uint32 minHosts, uint64 maxAge) external view returns (bool) {
        if (minHosts == 0) return true;
        uint8 n = _roots[root].slotCount;
        uint256 fresh;
        for (uint8 j; j < n; ++j) {
            Commitment storage c = _commitments[root][j];
            uint64 provenAt = c.lastProvenAt;
            if (
                c.host != address(0) && c.readyAt == 0 && provenAt != 0
                    && block.timestamp - provenAt <= maxAge
            ) {
                if (++fresh >= minHosts) return true;
            }
        }
        return false;
    }

    /// @notice Active (committed, not exiting) slots of `root` and the last time any of its
    /// slots passed a challenge (0 if never). Bounded by slotCount (<= 64).
    function availability(bytes32 root) external view returns (uint32 hosts, uint64 lastProvenAt) {
        uint8 n = _roots[root].slotCount;
        for (uint8 j; j < n; ++j) {
            Commitment storage c = _commitments[root][j];
            if (c.host != address(0) && c.readyAt == 0) ++hosts;
        }
        return (hosts, _roots[root].lastProvenAt);
    }

    /// @notice Challenge `id` (status None for ids never issued).
    function getChallenge(uint256 id) external view returns (Challenge memory) {
        return _challenges[id];
    }

    /// @notice The open challenge on (root, slot), 0 if none.
    function openChallenge(bytes32 root, uint8 slot) external view returns (uint256) {
        return _commitments[root][slot].openChallenge;
    }

    /// @notice The slot rows challenge `id` asks for: `drawSampleIndices(blockhash(seedBlock),
    /// id, samples, rows)`. Empty for ids never issued, before block seedBlock + 1, and once the
    /// seed hash is older than 256 blocks.
    function sampleIndicesOf(uint256 id) external view returns (uint256[] memory) {
        Challenge storage ch = _challenges[id];
        uint64 seedBlock = ch.seedBlock;
        if (seedBlock == 0 || block.number <= seedBlock) return new uint256[](0);
        bytes32 seed = blockhash(seedBlock);
        if (seed == bytes32(0)) return new uint256[](0);
        return drawSampleIndices(seed, id, ch.samples, ch.rows);
    }

    /// @notice index[k] = uint256(keccak256(abi.encode(seed, id, k))) % rows for k < samples
    /// (docs/incentives.md section 2; node.content.draw_sample_indices). Indices may repeat.
    function drawSampleIndices(bytes32 seed, uint256 id, uint16 samples, uint64 rows)
        public
        pure
        returns (uint256[] memory indices)
    {
        if (rows == 0) revert ZeroRows();
        indices = new uint256[](samples);
        for (uint256 k; k < samples; ++k) {
            indices[k] = _drawIndex(seed, id, k, rows);
        }
    }

    /// @notice Whether (root, slot) is due (scheduled) in the current period: it can be
    /// challenged now and uint256(keccak256(abi.encode(blockhash(startBlock(p)), root, slot)))
    /// % 10000 < dueBps. False while the start block's hash is unknown (the start block itself)
    /// or gone (more than 256 blocks ago), so validators challenge early in a period.
    function isDue(bytes32 root, uint8 slot) external view returns (bool) {
        Commitment storage c = _commitments[root][slot];
        if (c.host == address(0) || !_challengeable(c, _params.responseWindow)) return false;
        return _dueHash(root, slot, currentPeriod(), _params.dueBps);
    }

    /// @notice The period of block `blockNumber`: (blockNumber - genesisBlock) / periodBlocks
    /// (0 before genesis).
    function periodOf(uint256 blockNumber) public view returns (uint64) {
        if (blockNumber <= genesisBlock) return 0;
        return uint64((blockNumber - genesisBlock) / _params.periodBlocks);
    }

    /// @notice The period of the current block.
    function currentPeriod() public view returns (uint64) {
        return periodOf(block.number);
    }

    /// @notice The first block of `period`.
    function startBlock(uint64 period) public view returns (uint256) {
        return uint256(genesisBlock) + uint256(period) * _params.periodBlocks;
    }

    // ------------------------------------------------------------------ internals

    function _rootInfo(bytes32 root) private returns (RootInfo memory info) {
        info = _roots[root];
        if (info.size != 0) return info;
        (bool registered,) = registry.registeredSize(root);
        if (!registered) revert RootNotRegistered(root);
        (info.size, info.dataShards, info.slotCount, info.slotsRoot, info.rows) =
            registry.layoutOf(root);
        if (info.size == 0) revert RootNotRegistered(root);
        _roots[root] = info;
    }

    function _hostCommitment(bytes32 root, uint8 slot) private view returns (Commitment storage c) {
        c = _commitments[root][slot];
        if (c.host == address(0)) revert NotCommitted(root, slot);
        if (c.host != msg.sender) revert NotHost(root, slot, msg.sender);
    }

    /// @dev Frees a slot whose holder is exiting past readyAt with no open challenge: its stake
    /// becomes owed to it. Reverts SlotTaken otherwise.
    function _evict(bytes32 root, uint8 slot, Commitment storage c) private {
        address old = c.host;
        if (c.readyAt == 0 || block.timestamp < c.readyAt || c.openChallenge != 0) {
            revert SlotTaken(root, slot, old);
        }
        uint256 stake = c.stake;
        delete _slotOfHost[root][old];
        totalStaked -= stake;
        _owe(old, stake);
        emit Withdrawn(old, root, slot, stake);
    }

    function _challengeable(Commitment storage c, uint64 responseWindow)
        private
        view
        returns (bool)
    {
        if (c.terminated) return false;
        uint64 readyAt = c.readyAt;
        return readyAt == 0 || block.timestamp + responseWindow < readyAt;
    }

    function _dueHash(bytes32 root, uint8 slot, uint64 period, uint16 dueBps)
        private
        view
        returns (bool)
    {
        uint256 start = startBlock(period);
        if (start >= block.number) return false;
        bytes32 h = blockhash(start);
        if (h == bytes32(0)) return false;
        return uint256(keccak256(abi.encode(h, root, slot))) % BPS < dueBps;
    }

    function _drawIndex(bytes32 seed, uint256 id, uint256 k, uint64 rows)
        private
        pure
        returns (uint256)
    {
        return uint256(keccak256(abi.encode(seed, id, k))) % rows;
    }

    function _checkRespond(Challenge storage ch, uint256 id) private view {
        ChallengeStatus status = ch.status;
        if (status != ChallengeStatus.Open) revert ChallengeNotOpen(id, status);
        if (msg.sender != ch.host) revert NotChallengedHost(id, msg.sender);
        if (block.timestamp > ch.deadline) revert ChallengeExpired(id, ch.deadline);
        uint64 seedBlock = ch.seedBlock;
        if (block.number <= seedBlock) revert SeedNotReady(id, seedBlock);
    }

    /// @dev What a response is judged against (in memory to stay clear of stack limits).
    struct Draw {
        bytes32 seed;
        uint256 id;
        uint64 rows;
        bytes32 slotRoot;
    }

    /// @dev FailReason.None iff every segment k is 4096 bytes and proven at its drawn index.
    function _judge(Draw memory d, bytes[] calldata segments, bytes32[][] calldata proofs)
        private
        view
        returns (FailReason)
    {
        uint256 n = segments.length;
        for (uint256 k; k < n; ++k) {
            FailReason reason = _judgeSample(d, k, segments[k], proofs[k]);
            if (reason != FailReason.None) return reason;
        }
        return FailReason.None;
    }

    function _judgeSample(
        Draw memory d,
        uint256 k,
        bytes calldata segment,
        bytes32[] calldata proof
    ) private view returns (FailReason) {
        if (segment.length != SEGMENT_SIZE) return FailReason.WrongLength;
        bytes32 leaf = RFC6962.leafHash(segment);
        uint256 index = _drawIndex(d.seed, d.id, k, d.rows);
        if (!RFC6962.verifyInclusion(leaf, index, d.rows, proof, d.slotRoot)) {
            return FailReason.InvalidProof;
        }
        return FailReason.None;
    }

    function _void(uint256 id, Challenge storage ch, Commitment storage c) private {
        ch.status = ChallengeStatus.Void;
        c.openChallenge = 0;
        uint256 bond = ch.bond;
        totalBonds -= bond;
        _owe(ch.challenger, bond);
        emit ChallengeVoided(id, ch.host, ch.root, ch.slot);
    }

    function _pass(uint256 id, Challenge storage ch, Commitment storage c) private {
        ch.status = ChallengeStatus.Passed;
        uint64 now_ = uint64(block.timestamp);
        c.lastProvenAt = now_;
        c.faults = 0;
        bytes32 root = ch.root;
        _roots[root].lastProvenAt = now_;
        address host = ch.host;
        _payStorage(host, root, ch.slot, ch.rows, c);
        uint256 bond = ch.bond;
        totalBonds -= bond;
        if (ch.scheduled) {
            _owe(ch.challenger, bond + _takeReward(ch.reward));
        } else {
            _owe(host, bond);
        }
        emit ChallengePassed(id, host, root, ch.slot);
    }

    /// @dev Slashes the host of `ch`: proofSlashBps and termination if `terminate`, else
    /// faultSlashBps. Half of the slash is owed to the challenger of record, the rest goes to the
    /// reward pool; the bond goes back to the challenger (plus the reward if scheduled).
    function _fail(
        uint256 id,
        Challenge storage ch,
        Commitment storage c,
        FailReason reason,
        bool terminate
    ) private {
        ch.status = ChallengeStatus.Failed;
        ch.reason = reason;
        uint256 bps = terminate ? ch.proofSlashBps : ch.faultSlashBps;
        uint256 slashed = (uint256(c.stake) * bps) / BPS;
        c.stake -= uint128(slashed);
        totalStaked -= slashed;
        uint256 bounty = slashed / 2;
        rewardPool += slashed - bounty;
        uint256 bond = ch.bond;
        totalBonds -= bond;
        uint256 reward = ch.scheduled ? _takeReward(ch.reward) : 0;
        _owe(ch.challenger, bounty + bond + reward);
        if (terminate) {
            c.terminated = true;
            uint64 readyAt = uint64(block.timestamp) + ch.exitDelay;
            if (c.readyAt == 0 || c.readyAt > readyAt) {
                c.readyAt = readyAt;
                emit ExitRequested(ch.host, ch.root, ch.slot, readyAt);
            }
        }
        emit ChallengeFailed(id, ch.host, ch.root, ch.slot, reason, slashed, terminate);
    }

    /// @dev Pays the storage accrued since lastPaidAt (capped by the root's budget): fee burnt,
    /// the rest owed to the host, tallied by the receipts epoch of now.
    function _payStorage(address host, bytes32 root, uint8 slot, uint64 rows, Commitment storage c)
        private
    {
        uint64 now_ = uint64(block.timestamp);
        uint256 elapsed = now_ - c.lastPaidAt;
        c.lastPaidAt = now_;
        uint256 budget = storageBudgetOf[root];
        if (budget == 0 || elapsed == 0) return;
        // rate < 2^96, slot bytes < 2^76, elapsed < 2^64: no overflow.
        uint256 amount = (_params.storageRatePerGiBDay * uint256(rows) * SEGMENT_SIZE * elapsed)
            / ((uint256(1) << 30) * 86_400);
        if (amount > budget) amount = budget;
        if (amount == 0) return;
        uint256 fee = (amount * _params.feeBps) / BPS;
        storageBudgetOf[root] = budget - amount;
        totalStorageBudget -= amount;
        totalBurnt += fee;
        _owe(host, amount - fee);
        uint64 epoch = receipts.epochOf(now_);
        storageFeesOf[host][epoch] += fee;
        storagePaidOf[host][epoch] += amount;
        emit StoragePaid(host, root, slot, amount, fee, epoch);
    }

    function _takeReward(uint256 reward) private returns (uint256) {
        uint256 pool = rewardPool;
        if (reward > pool) reward = pool;
        rewardPool = pool - reward;
        return reward;
    }

    function _owe(address to, uint256 amount) private {
        if (amount == 0) return;
        owedTo[to] += amount;
        totalOwed += amount;
    }

    function _checkParams(Params memory p) private pure {
        if (
            p.responseWindow == 0 || p.exitDelay <= p.responseWindow || p.periodBlocks == 0
                || p.dueBps > BPS
                || p.samples == 0 || p.samples > MAX_SAMPLES || p.proofSlashBps > BPS
                || p.faultSlashBps > p.proofSlashBps || p.maxFaults == 0 || p.feeBps > BPS
                || p.minStake > type(uint128).max || p.challengeBond > type(uint128).max
                || p.challengeReward > type(uint128).max || p.storageRatePerGiBDay >= 1 << 96
        ) revert InvalidParams();
    }
}
