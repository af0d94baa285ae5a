// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";
import {ContentRegistry} from "./ContentRegistry.sol";
import {RFC6962} from "./RFC6962.sol";

/// @title DataAvailability
/// @notice Hosts stake ETH on holding a registered root. Anyone may challenge a host: the hash
/// of the block after the challenge's block picks a 4 KiB segment, and the host must answer
/// with the segment and its RFC 6962 audit path within the response window, or lose `slashBps`
/// of its stake. Other contracts ask `isAvailable(root, minHosts, maxAge)`.
/// @dev Commit-then-reveal: `challenge` fixes only the seed block (`block.number + 1`), whose
/// hash does not exist when the challenge is sent, so a host challenging itself from another
/// address cannot pick a segment it still holds. The index is known from block seedBlock + 1 on
/// (`segmentIndexOf`) and `respond` reverts `SeedNotReady` before that. If the seed's hash has
/// left the 256-block `blockhash` window before the host answers, `respond` voids the challenge
/// (no slash, no proof recorded); a deadline that passed first still slashes.
/// @dev Lifecycle of a commitment (host, root): commit (stake >= minStake, top-ups allowed) ->
/// active (counted in `hostsOf`) -> requestExit or a failed challenge -> exiting (still
/// challengeable, not counted) -> withdraw after `exitDelay` with no open challenge. Committing
/// again while exiting re-activates.
/// Storage: `_commitments[host][root]` is one slot: stake (uint128) | exitRequestedAt (uint64) |
/// lastProvenAt (uint64). A challenge is three slots: host | deadline | status, root,
/// challenger | seedBlock (uint64). `_roots[root]` is one slot:
/// the registry's (immutable) size, cached at the first commit so `respond` makes no external
/// call, and the root's lastProvenAt.
/// Value accounting: address(this).balance == totalStaked + treasuryBalance at all times.
contract DataAvailability is Ownable, ReentrancyGuardTransient {
    using EnumerableSet for EnumerableSet.AddressSet;

    // ------------------------------------------------------------------ types

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

    /// @notice A challenge as returned by `getChallenge`. `segmentIndex` is meaningful only when
    /// `indexReady` (the seed block is mined and its hash still available).
    struct Challenge {
        address host;
        bytes32 root;
        uint256 segmentIndex;
        uint64 deadline;
        ChallengeStatus status;
        uint64 seedBlock;
        bool indexReady;
    }

    struct Commitment {
        uint128 stake;
        uint64 exitRequestedAt;
        uint64 lastProvenAt;
    }

    /// @dev One slot per root: the size is cached at the first commit, so the slot is non-zero
    /// before `respond` writes lastProvenAt into it (a 2.9k instead of a 22.1k SSTORE).
    struct RootInfo {
        uint64 size;
        uint64 lastProvenAt;
    }

    struct StoredChallenge {
        address host;
        uint64 deadline;
        ChallengeStatus status;
        bytes32 root;
        address challenger;
        uint64 seedBlock;
    }

    // ------------------------------------------------------------------ constants

    /// @notice Segment size of the tree (bytes).
    uint256 public constant SEGMENT_SIZE = 4096;
    /// @notice Denominator of `slashBps`.
    uint16 public constant BPS = 10_000;

    // ------------------------------------------------------------------ errors

    /// @notice `root` is not registered in the ContentRegistry.
    error RootNotRegistered(bytes32 root);
    /// @notice `root` has size 0: there is nothing to hold or prove.
    error EmptyContent(bytes32 root);
    /// @notice The stake after this call (`stake`) would be below `minStake`.
    error InsufficientStake(uint256 stake, uint256 minStake);
    /// @notice `host` has no stake on `root`.
    error NotCommitted(address host, bytes32 root);
    /// @notice `host` already asked to exit `root`.
    error ExitAlreadyRequested(address host, bytes32 root);
    /// @notice `host` has not asked to exit `root`.
    error ExitNotRequested(address host, bytes32 root);
    /// @notice Withdrawal possible from `readyAt`.
    error ExitDelayNotElapsed(uint64 readyAt);
    /// @notice Challenge `id` on (host, root) is still open.
    error ChallengeStillOpen(uint256 id);
    /// @notice (host, root) already has open challenge `id`.
    error ChallengeAlreadyOpen(address host, bytes32 root, uint256 id);
    /// @notice Challenge `id` is not open (its status is `status`).
    error ChallengeNotOpen(uint256 id, ChallengeStatus status);
    /// @notice Only the challenged host may respond to challenge `id`; `caller` is not it.
    error NotChallengedHost(uint256 id, address caller);
    /// @notice Challenge `id`'s segment is drawn from block `seedBlock`'s hash: answer from block
    /// seedBlock + 1 on.
    error SeedNotReady(uint256 id, uint64 seedBlock);
    /// @notice Challenge `id` passed its deadline.
    error ChallengeExpired(uint256 id, uint64 deadline);
    /// @notice Challenge `id` can be slashed only after `deadline`.
    error ChallengeNotExpired(uint256 id, uint64 deadline);
    /// @notice A parameter is out of range (slashBps > 10000, responseWindow or exitDelay 0).
    error InvalidParams();
    /// @notice Amount must be positive.
    error ZeroAmount();

    // ------------------------------------------------------------------ events

    /// @notice `host` committed to `root`; `stake` is its total stake after this call.
    event Committed(address indexed host, bytes32 indexed root, uint256 stake);
    /// @notice `host` will be able to withdraw from `root` at `withdrawableAt`.
    event ExitRequested(address indexed host, bytes32 indexed root, uint64 withdrawableAt);
    /// @notice `host` withdrew `amount` and left `root`.
    event Withdrawn(address indexed host, bytes32 indexed root, uint256 amount);
    /// @notice Challenge `id` asks `host` for a segment of `root` by `deadline`; the segment is
    /// drawn from the hash of block `seedBlock` (see `segmentIndexOf`).
    event ChallengeIssued(
        uint256 indexed id,
        address indexed host,
        bytes32 indexed root,
        uint64 seedBlock,
        uint64 deadline
    );
    /// @notice Challenge `id` was voided: block `seedBlock`'s hash left the 256-block window
    /// before the host answered, so its segment can no longer be drawn. No slash, no proof.
    event ChallengeVoided(
        uint256 indexed id, address indexed host, bytes32 indexed root, uint64 seedBlock
    );
    /// @notice `host` answered challenge `id` correctly.
    event ChallengePassed(uint256 indexed id, address indexed host, bytes32 indexed root);
    /// @notice Challenge `id` failed for `reason`; the host is slashed and forced to exit.
    event ChallengeFailed(
        uint256 indexed id, address indexed host, bytes32 indexed root, FailReason reason
    );
    /// @notice `amount` of `host`'s stake on `root` was slashed.
    event HostSlashed(address indexed host, bytes32 indexed root, uint256 amount);
    /// @notice The owner changed the parameters.
    event ParamsUpdated(uint256 minStake, uint64 responseWindow, uint16 slashBps, uint64 exitDelay);
    /// @notice The owner took `amount` of slashed funds to `to`.
    event TreasuryWithdrawn(address indexed to, uint256 amount);

    // ------------------------------------------------------------------ storage

    /// @notice The registry roots must be registered in.
    ContentRegistry public immutable registry;

    /// @notice Minimum total stake of a commitment (wei).
    uint256 public minStake;
    /// @notice Seconds a host has to answer a challenge.
    uint64 public responseWindow;
    /// @notice Share of the stake slashed per failed challenge, in basis points.
    uint16 public slashBps;
    /// @notice Seconds between requestExit and withdraw.
    uint64 public exitDelay;
    /// @notice Number of challenges issued so far (ids are 1..challengeCount).
    uint256 public challengeCount;
    /// @notice Sum of all stakes.
    uint256 public totalStaked;
    /// @notice Slashed funds owed to the owner's treasury (pulled with `withdrawTreasury`).
    uint256 public treasuryBalance;

    mapping(address host => mapping(bytes32 root => Commitment)) private _commitments;
    mapping(address host => mapping(bytes32 root => uint256 id)) private _openChallenge;
    mapping(uint256 id => StoredChallenge) private _challenges;
    mapping(bytes32 root => EnumerableSet.AddressSet) private _hosts;
    mapping(bytes32 root => RootInfo) private _roots;

    // ------------------------------------------------------------------ construction and admin

    /// @param registry_ the ContentRegistry.
    /// @param minStake_ minimum stake per commitment (wei).
    /// @param responseWindow_ seconds to answer a challenge (> 0).
    /// @param slashBps_ basis points of the stake slashed per failure (<= 10000).
    /// @param exitDelay_ seconds between requestExit and withdraw (> 0, >= responseWindow advised).
    constructor(
        ContentRegistry registry_,
        uint256 minStake_,
        uint64 responseWindow_,
        uint16 slashBps_,
        uint64 exitDelay_
    ) Ownable(msg.sender) {
        registry = registry_;
        _setParams(minStake_, responseWindow_, slashBps_, exitDelay_);
    }

    /// @notice Change the parameters. Owner only. Applies to new challenges and exits; open
    /// challenges keep their deadline.
    function setParams(
        uint256 minStake_,
        uint64 responseWindow_,
        uint16 slashBps_,
        uint64 exitDelay_
    ) external onlyOwner {
        _setParams(minStake_, responseWindow_, slashBps_, exitDelay_);
    }

    /// @notice Send `amount` of the slashed funds to `to`. Owner only.
    function withdrawTreasury(address payable to, uint256 amount) external onlyOwner nonReentrant {
        if (amount == 0) revert ZeroAmount();
        treasuryBalance -= amount; // reverts (underflow) if more than the treasury holds
        emit TreasuryWithdrawn(to, amount);
        Address.sendValue(to, amount);
    }

    // ------------------------------------------------------------------ hosts

    /// @notice Stake `msg.value` on holding `root` (first commit or top-up). The total stake must
    /// reach `minStake`. Re-activates a commitment that was exiting.
    function commit(bytes32 root) external payable {
        if (msg.value == 0) revert ZeroAmount();
        RootInfo storage info = _roots[root];
        if (info.size == 0) {
            if (!registry.isRegistered(root)) revert RootNotRegistered(root);
            uint64 size = registry.sizeOf(root);
            if (size == 0) revert EmptyContent(root);
            info.size = size;
        }
        Commitment storage c = _commitments[msg.sender][root];
        uint256 stake = uint256(c.stake) + msg.value;
        if (stake < minStake) revert InsufficientStake(stake, minStake);
        c.stake = uint128(stake); // total ETH supply < 2^128 wei
        c.exitRequestedAt = 0;
        totalStaked += msg.value;
        _hosts[root].add(msg.sender);
        emit Committed(msg.sender, root, stake);
    }

    /// @notice Start leaving `root`: the host stops counting as available at once and may
    /// withdraw after `exitDelay` (it stays challengeable until then).
    function requestExit(bytes32 root) external {
        Commitment storage c = _commitments[msg.sender][root];
        if (c.stake == 0) revert NotCommitted(msg.sender, root);
        if (c.exitRequestedAt != 0) revert ExitAlreadyRequested(msg.sender, root);
        _beginExit(msg.sender, root, c);
    }

    /// @notice Take the whole stake on `root` back, `exitDelay` after requestExit and with no
    /// open challenge.
    function withdraw(bytes32 root) external nonReentrant {
        Commitment storage c = _commitments[msg.sender][root];
        uint256 stake = c.stake;
        if (stake == 0) revert NotCommitted(msg.sender, root);
        uint64 requestedAt = c.exitRequestedAt;
        if (requestedAt == 0) revert ExitNotRequested(msg.sender, root);
        uint64 readyAt = requestedAt + exitDelay;
        if (block.timestamp < readyAt) revert ExitDelayNotElapsed(readyAt);
        uint256 open = _openChallenge[msg.sender][root];
        if (open != 0) revert ChallengeStillOpen(open);
        delete _commitments[msg.sender][root];
        totalStaked -= stake;
        emit Withdrawn(msg.sender, root, stake);
        Address.sendValue(payable(msg.sender), stake);
    }

    // ------------------------------------------------------------------ challenges

    /// @notice Challenge `host` to prove it holds `root`. Anyone may call; one open challenge per
    /// (host, root). Only the seed block (the next block) is fixed here: the segment is drawn
    /// from its hash, which nobody knows when this transaction is sent, so neither the host nor
    /// the challenger picks it (see docs/contracts.md for the residual bias).
    /// @return challengeId the new challenge's id (ids start at 1).
    function challenge(address host, bytes32 root) external returns (uint256 challengeId) {
        if (_commitments[host][root].stake == 0) revert NotCommitted(host, root);
        uint256 open = _openChallenge[host][root];
        if (open != 0) revert ChallengeAlreadyOpen(host, root, open);
        challengeId = ++challengeCount;
        uint64 seedBlock = uint64(block.number) + 1;
        uint64 deadline = uint64(block.timestamp) + responseWindow;
        _challenges[challengeId] = StoredChallenge({
            host: host,
            deadline: deadline,
            status: ChallengeStatus.Open,
            root: root,
            challenger: msg.sender,
            seedBlock: seedBlock
        });
        _openChallenge[host][root] = challengeId;
        emit ChallengeIssued(challengeId, host, root, seedBlock, deadline);
    }

    /// @notice Answer challenge `challengeId` with the segment and its RFC 6962 audit path
    /// against the root. Host only, before the deadline, after the seed block is mined (else
    /// `SeedNotReady`). A wrong answer does not revert: it fails the challenge and slashes (half
    /// to the challenger, half to the treasury). If the seed block's hash is no longer available
    /// (more than 256 blocks ago), the challenge is voided instead: `ChallengeVoided`, no slash,
    /// no proof recorded; the arguments are ignored.
    /// @param segment the 4096-byte segment (the tail length for the last segment).
    /// @param proof audit path from the segment's leaf to the root.
    function respond(uint256 challengeId, bytes calldata segment, bytes32[] calldata proof)
        external
        nonReentrant
    {
        StoredChallenge storage ch = _challenges[challengeId];
        address host = ch.host;
        {
            (uint64 deadline, ChallengeStatus status) = (ch.deadline, ch.status);
            if (status != ChallengeStatus.Open) revert ChallengeNotOpen(challengeId, status);
            if (msg.sender != host) revert NotChallengedHost(challengeId, msg.sender);
            if (block.timestamp > deadline) revert ChallengeExpired(challengeId, deadline);
            uint64 seedBlock = ch.seedBlock;
            if (block.number <= seedBlock) revert SeedNotReady(challengeId, seedBlock);
        }
        bytes32 root = ch.root;
        delete _openChallenge[host][root];
        (bool drawn, uint256 index) = _indexOf(ch, challengeId);
        if (!drawn) {
            // Past its seed block, so not drawn means the seed's hash is gone (> 256 blocks).
            ch.status = ChallengeStatus.Void;
            emit ChallengeVoided(challengeId, host, root, ch.seedBlock);
            return;
        }
        FailReason reason = _judge(root, index, segment, proof);
        if (reason == FailReason.None) {
            ch.status = ChallengeStatus.Passed;
            uint64 now_ = uint64(block.timestamp);
            _commitments[host][root].lastProvenAt = now_;
            _roots[root].lastProvenAt = now_;
            emit ChallengePassed(challengeId, host, root);
        } else {
            _fail(challengeId, ch, host, root, reason, ch.challenger);
        }
    }

    /// @notice Slash the host of challenge `challengeId` after its deadline passed unanswered.
    /// Anyone may call: half of the slashed amount goes to the caller (to the treasury if the
    /// caller is the host itself), the rest to the treasury.
    function slashExpired(uint256 challengeId) external nonReentrant {
        StoredChallenge storage ch = _challenges[challengeId];
        if (ch.status != ChallengeStatus.Open) revert ChallengeNotOpen(challengeId, ch.status);
        if (block.timestamp <= ch.deadline) revert ChallengeNotExpired(challengeId, ch.deadline);
        address host = ch.host;
        bytes32 root = ch.root;
        delete _openChallenge[host][root];
        _fail(challengeId, ch, host, root, FailReason.Expired, msg.sender);
    }

    // ------------------------------------------------------------------ views

    /// @notice Challenge `id` (status None for ids never issued). `segmentIndex` is 0 unless
    /// `indexReady`.
    function getChallenge(uint256 id) external view returns (Challenge memory) {
        StoredChallenge storage ch = _challenges[id];
        (bool ready, uint256 index) = segmentIndexOf(id);
        return Challenge({
            host: ch.host,
            root: ch.root,
            segmentIndex: index,
            deadline: ch.deadline,
            status: ch.status,
            seedBlock: ch.seedBlock,
            indexReady: ready
        });
    }

    /// @notice The segment challenge `id` asks for. `ready` is false (and `index` 0) for ids
    /// never issued, before block seedBlock + 1, and once the seed's hash is older than 256
    /// blocks. Stays readable after the challenge is closed (within that window).
    function segmentIndexOf(uint256 id) public view returns (bool ready, uint256 index) {
        return _indexOf(_challenges[id], id);
    }

    /// @notice The open challenge on (host, root), 0 if none.
    function openChallenge(address host, bytes32 root) external view returns (uint256) {
        return _openChallenge[host][root];
    }

    /// @notice Stake of `host` on `root` (wei), including while exiting.
    function stakeOf(address host, bytes32 root) external view returns (uint256) {
        return _commitments[host][root].stake;
    }

    /// @notice Commitment details of `host` on `root`.
    function commitmentOf(address host, bytes32 root)
        external
        view
        returns (uint256 stake, uint64 exitRequestedAt, uint64 lastProvenAt)
    {
        Commitment storage c = _commitments[host][root];
        return (c.stake, c.exitRequestedAt, c.lastProvenAt);
    }

    /// @notice Active (committed, not exiting) hosts of `root` and the last time any host proved
    /// a segment of it (0 if never).
    function availability(bytes32 root) external view returns (uint32 hosts, uint64 lastProvenAt) {
        return (uint32(_hosts[root].length()), _roots[root].lastProvenAt);
    }

    /// @notice Whether at least `minHosts` active hosts of `root` each passed a challenge within
    /// the last `maxAge` seconds.
    /// @dev Iterates the active hosts (stops at `minHosts`); cost grows with the host count.
    function isAvailable(bytes32 root, uint32 minHosts, uint64 maxAge) external view returns (bool) {
        if (minHosts == 0) return true;
        EnumerableSet.AddressSet storage set = _hosts[root];
        uint256 n = set.length();
        if (n < minHosts) return false;
        uint256 fresh;
        for (uint256 i; i < n; ++i) {
            uint64 provenAt = _commitments[set.at(i)][root].lastProvenAt;
            if (provenAt != 0 && block.timestamp - provenAt <= maxAge) {
                if (++fresh >= minHosts) return true;
            }
        }
        return false;
    }

    /// @notice The active hosts of `root`.
    function hostsOf(bytes32 root) external view returns (address[] memory) {
        return _hosts[root].values();
    }

    // ------------------------------------------------------------------ internals

    /// @dev The segment of challenge `id` (stored in `ch`):
    /// keccak256(abi.encode(blockhash(seedBlock), host, root, id)) % segmentCount(root), or
    /// (false, 0) if the challenge does not exist, its seed block is not mined yet (readable
    /// from block seedBlock + 1), or the seed's hash left the 256-block window.
    function _indexOf(StoredChallenge storage ch, uint256 id)
        private
        view
        returns (bool ready, uint256 index)
    {
        uint64 seedBlock = ch.seedBlock;
        if (seedBlock == 0 || block.number <= seedBlock) return (false, 0);
        bytes32 seed = blockhash(seedBlock);
        if (seed == bytes32(0)) return (false, 0);
        bytes32 root = ch.root;
        uint256 segments = (uint256(_roots[root].size) + SEGMENT_SIZE - 1) / SEGMENT_SIZE;
        return (true, uint256(keccak256(abi.encode(seed, ch.host, root, id))) % segments);
    }

    /// @dev FailReason.None iff `segment` is segment `index` of `root`, proven by `proof`.
    function _judge(bytes32 root, uint256 index, bytes calldata segment, bytes32[] calldata proof)
        private
        view
        returns (FailReason)
    {
        uint256 size = _roots[root].size;
        uint256 segments = (size + SEGMENT_SIZE - 1) / SEGMENT_SIZE;
        uint256 expectedLength = index + 1 < segments ? SEGMENT_SIZE : size - index * SEGMENT_SIZE;
        if (segment.length != expectedLength) return FailReason.WrongLength;
        if (!RFC6962.verifyInclusion(RFC6962.leafHash(segment), index, segments, proof, root)) {
            return FailReason.InvalidProof;
        }
        return FailReason.None;
    }

    function _fail(
        uint256 challengeId,
        StoredChallenge storage ch,
        address host,
        bytes32 root,
        FailReason reason,
        address bountyTo
    ) private {
        ch.status = ChallengeStatus.Failed;
        Commitment storage c = _commitments[host][root];
        uint256 amount = (uint256(c.stake) * slashBps) / BPS;
        c.stake -= uint128(amount);
        totalStaked -= amount;
        uint256 bounty = bountyTo == host ? 0 : amount / 2;
        treasuryBalance += amount - bounty;
        emit ChallengeFailed(challengeId, host, root, reason);
        emit HostSlashed(host, root, amount);
        if (c.exitRequestedAt == 0) _beginExit(host, root, c);
        if (bounty != 0) Address.sendValue(payable(bountyTo), bounty);
    }

    function _beginExit(address host, bytes32 root, Commitment storage c) private {
        uint64 now_ = uint64(block.timestamp);
        c.exitRequestedAt = now_;
        _hosts[root].remove(host);
        emit ExitRequested(host, root, now_ + exitDelay);
    }

    function _setParams(
        uint256 minStake_,
        uint64 responseWindow_,
        uint16 slashBps_,
        uint64 exitDelay_
    ) private {
        if (slashBps_ > BPS || responseWindow_ == 0 || exitDelay_ == 0) revert InvalidParams();
        minStake = minStake_;
        responseWindow = responseWindow_;
        slashBps = slashBps_;
        exitDelay = exitDelay_;
        emit ParamsUpdated(minStake_, responseWindow_, slashBps_, exitDelay_);
    }
}
