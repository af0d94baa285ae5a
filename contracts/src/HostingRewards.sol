// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";
import {TransferReceipts} from "./TransferReceipts.sol";
import {DataAvailability} from "./DataAvailability.sol";

/// @title HostingRewards
/// @notice Pays hosts per epoch. Anyone funds an epoch (ETH or an ERC-20); a quorum of validators
/// signs an EIP-712 `Allocation`: the root of an OpenZeppelin StandardMerkleTree over
/// (host, amount) computed from the reputation ledger, and its total; each host (or anyone on its
/// behalf) then claims its amount with a Merkle proof, once.
/// ETH claims are capped on chain: a host's ETH claim for epoch e is at most
/// `rebateBps * (receipts.feesOf(host, e) + da.storageFeesOf(host, e)) / 10000`, a fraction
/// (< 1) of the fees burnt on payments it received that epoch, so nothing a host generates for
/// itself earns more than it burnt. Funds an epoch does not pay out are never stuck:
/// `rollover` moves `funded - paid` to a later epoch once the claim window is over (or, for an
/// epoch never posted, at the owner's call), and closes the epoch.
/// @dev token address(0) is ETH. Invariants: paid(e, t) <= allocation total <= funded(e, t); a
/// (epoch, token, host) is paid at most once; balance(t) == sum(funded - paid - rolledOver).
/// Claims follow checks-effects-interactions under a reentrancy guard. Fee-on-transfer tokens
/// are credited with the amount actually received.
contract HostingRewards is Ownable, EIP712, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;
    using EnumerableSet for EnumerableSet.AddressSet;

    // ------------------------------------------------------------------ types

    struct Allocation {
        bytes32 merkleRoot;
        uint256 total;
        uint256 paid;
        bool posted;
        uint64 postedAt;
    }

    // ------------------------------------------------------------------ constants

    /// @notice keccak256 of the EIP-712 type string of `Allocation`.
    bytes32 public constant ALLOCATION_TYPEHASH =
        keccak256("Allocation(uint64 epoch,address token,bytes32 merkleRoot,uint256 total)");

    // ------------------------------------------------------------------ errors

    /// @notice `signer` is not a validator.
    error NotValidator(address signer);
    /// @notice `validator` is a validator already.
    error ValidatorExists(address validator);
    /// @notice Quorum `quorum` is not in [1, validator count = `validators`].
    error InvalidQuorum(uint256 quorum, uint256 validators);
    /// @notice Signers must be strictly ascending; `signer` (signature `index`) is not above the
    /// previous one.
    error SignersNotSorted(uint256 index, address signer);
    /// @notice Only `have` valid signatures, `need` required.
    error QuorumNotMet(uint256 have, uint256 need);
    /// @notice The allocation total exceeds the epoch's funding.
    error AllocationExceedsFunding(uint256 total, uint256 funded);
    /// @notice An allocation for (epoch, token) exists already.
    error AllocationExists(uint64 epoch, address token);
    /// @notice No allocation has been posted for (epoch, token).
    error NoAllocation(uint64 epoch, address token);
    /// @notice `host` already claimed for (epoch, token).
    error AlreadyClaimed(uint64 epoch, address token, address host);
    /// @notice The Merkle proof does not prove (host, amount) under the allocation root.
    error InvalidProof();
    /// @notice Paying `amount` would exceed the allocation's total (`paid` paid so far).
    error AllocationExhausted(uint256 paid, uint256 amount, uint256 total);
    /// @notice Amount must be positive.
    error ZeroAmount();
    /// @notice The zero address is not allowed here.
    error ZeroAddress();
    /// @notice rebateBps must be below 10000.
    error InvalidRebate(uint16 rebateBps);
    /// @notice The host's ETH claim for `epoch` would exceed its fee cap `cap`.
    error ExceedsFeeCap(address host, uint64 epoch, uint256 cap);
    /// @notice (epoch, token) was rolled over and is closed.
    error EpochClosed(uint64 epoch, address token);
    /// @notice `toEpoch` must be later than `epoch`, open and not yet posted.
    error InvalidRolloverTarget(uint64 epoch, uint64 toEpoch);
    /// @notice The claim window of (epoch, token) ends at `endsAt`.
    error ClaimWindowOpen(uint64 epoch, address token, uint64 endsAt);
    /// @notice Only the owner may roll over an epoch that was never posted.
    error NotPosted(uint64 epoch, address token);

    // ------------------------------------------------------------------ events

    /// @notice `from` added `amount` of `token` to `epoch`.
    event EpochFunded(uint64 indexed epoch, address indexed token, address from, uint256 amount);
    /// @notice The validators posted the allocation of (epoch, token).
    event AllocationPosted(
        uint64 indexed epoch, address indexed token, bytes32 merkleRoot, uint256 total
    );
    /// @notice `host` was paid `amount` of `token` for `epoch`.
    event Claimed(uint64 indexed epoch, address indexed token, address indexed host, uint256 amount);
    /// @notice `validator` joined the validator set.
    event ValidatorAdded(address indexed validator);
    /// @notice `validator` left the validator set.
    event ValidatorRemoved(address indexed validator);
    /// @notice The quorum changed to `quorum`.
    event QuorumChanged(uint16 quorum);
    /// @notice `amount` of (epoch, token) not paid out moved to `toEpoch`; `epoch` is closed.
    event RolledOver(
        uint64 indexed epoch, address indexed token, uint64 indexed toEpoch, uint256 amount
    );

    // ------------------------------------------------------------------ storage

    /// @notice The receipts contract (receipt fees per host and epoch).
    TransferReceipts public immutable receipts;
    /// @notice The availability contract (storage fees per host and epoch).
    DataAvailability public immutable da;
    /// @notice ETH claim cap as a share of the host's burnt fees, basis points (< 10000).
    uint16 public immutable rebateBps;
    /// @notice Seconds after an allocation is posted before its remainder can be rolled over.
    uint64 public immutable claimWindow;

    /// @notice Signatures needed on an allocation.
    uint16 public quorum;

    EnumerableSet.AddressSet private _validators;
    mapping(uint64 epoch => mapping(address token => uint256)) private _funded;
    mapping(uint64 epoch => mapping(address token => Allocation)) private _allocations;
    mapping(uint64 epoch => mapping(address token => mapping(address host => bool))) private
        _claimed;
    mapping(uint64 epoch => mapping(address token => uint256)) private _rolledOver;
    mapping(uint64 epoch => mapping(address token => bool)) private _closed;

    // ------------------------------------------------------------------ construction, validators

    /// @dev Quorum starts at 1; add validators, then raise it with `setQuorum`.
    /// @param receipts_ the TransferReceipts (receipt fees).
    /// @param da_ the DataAvailability (storage fees).
    /// @param rebateBps_ ETH claim cap in basis points of the host's fees (< 10000).
    /// @param claimWindow_ seconds hosts have to claim before the remainder can roll over.
    constructor(
        TransferReceipts receipts_,
        DataAvailability da_,
        uint16 rebateBps_,
        uint64 claimWindow_
    ) Ownable(msg.sender) EIP712("BCAI Hosting Rewards", "1") {
        if (rebateBps_ >= 10_000) revert InvalidRebate(rebateBps_);
        receipts = receipts_;
        da = da_;
        rebateBps = rebateBps_;
        claimWindow = claimWindow_;
        quorum = 1;
        emit QuorumChanged(1);
    }

    /// @notice Add `validator`. Owner only.
    function addValidator(address validator) external onlyOwner {
        if (validator == address(0)) revert ZeroAddress();
        if (!_validators.add(validator)) revert ValidatorExists(validator);
        emit ValidatorAdded(validator);
    }

    /// @notice Remove `validator`. Owner only. Reverts if the quorum would become unreachable
    /// (lower the quorum first).
    function removeValidator(address validator) external onlyOwner {
        if (!_validators.remove(validator)) revert NotValidator(validator);
        uint256 n = _validators.length();
        if (n < quorum && n != 0) revert InvalidQuorum(quorum, n);
        emit ValidatorRemoved(validator);
    }

    /// @notice Set the number of validator signatures an allocation needs. Owner only;
    /// 1 <= newQuorum <= number of validators.
    function setQuorum(uint16 newQuorum) external onlyOwner {
        uint256 n = _validators.length();
        if (newQuorum == 0 || newQuorum > n) revert InvalidQuorum(newQuorum, n);
        quorum = newQuorum;
        emit QuorumChanged(newQuorum);
    }

    /// @notice Whether `account` is a validator.
    function isValidator(address account) external view returns (bool) {
        return _validators.contains(account);
    }

    /// @notice All validators (unordered).
    function validators() external view returns (address[] memory) {
        return _validators.values();
    }

    // ------------------------------------------------------------------ funding

    /// @notice Add `msg.value` ETH to the rewards of `epoch`.
    function fundEpoch(uint64 epoch) external payable {
        if (msg.value == 0) revert ZeroAmount();
        if (_closed[epoch][address(0)]) revert EpochClosed(epoch, address(0));
        _funded[epoch][address(0)] += msg.value;
        emit EpochFunded(epoch, address(0), msg.sender, msg.value);
    }

    /// @notice Pull `amount` of `token` from the caller into the rewards of `epoch` (approve
    /// first). Credits what actually arrived.
    function fundEpochToken(uint64 epoch, IERC20 token, uint256 amount) external nonReentrant {
        if (address(token) == address(0)) revert ZeroAddress();
        if (amount == 0) revert ZeroAmount();
        if (_closed[epoch][address(token)]) revert EpochClosed(epoch, address(token));
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = token.balanceOf(address(this)) - before;
        if (received == 0) revert ZeroAmount();
        _funded[epoch][address(token)] += received;
        emit EpochFunded(epoch, address(token), msg.sender, received);
    }

    /// @notice Total funding of (epoch, token); token address(0) is ETH.
    function funded(uint64 epoch, address token) external view returns (uint256) {
        return _funded[epoch][token];
    }

    // ------------------------------------------------------------------ allocation and claims

    /// @notice Post the allocation of (epoch, token): `merkleRoot` of the StandardMerkleTree over
    /// (address host, uint256 amount) leaves, summing to `total`. Needs signatures of at least
    /// `quorum` distinct validators over the EIP-712 `Allocation`, ordered by signer address
    /// (strictly ascending). Anyone may submit. Once per (epoch, token).
    function postAllocation(
        uint64 epoch,
        address token,
        bytes32 merkleRoot,
        uint256 total,
        bytes[] calldata signatures
    ) external {
        Allocation storage a = _allocations[epoch][token];
        if (a.posted) revert AllocationExists(epoch, token);
        if (_closed[epoch][token]) revert EpochClosed(epoch, token);
        uint256 need = quorum;
        if (signatures.length < need) revert QuorumNotMet(signatures.length, need);
        uint256 available = _funded[epoch][token];
        if (total > available) revert AllocationExceedsFunding(total, available);
        bytes32 digest = hashAllocation(epoch, token, merkleRoot, total);
        address previous;
        for (uint256 i; i < signatures.length; ++i) {
            (address signer, ECDSA.RecoverError err,) =
                ECDSA.tryRecoverCalldata(digest, signatures[i]);
            if (err != ECDSA.RecoverError.NoError || !_validators.contains(signer)) {
                revert NotValidator(signer);
            }
            if (signer <= previous) revert SignersNotSorted(i, signer);
            previous = signer;
        }
        a.merkleRoot = merkleRoot;
        a.total = total;
        a.posted = true;
        a.postedAt = uint64(block.timestamp);
        emit AllocationPosted(epoch, token, merkleRoot, total);
    }

    /// @notice Pay `host` its `amount` of (epoch, token), proven by `proof` against the posted
    /// root. Anyone may call; the money always goes to `host`. For ETH, `amount` must not exceed
    /// `feeCapOf(host, epoch)` (else `ExceedsFeeCap`).
    function claim(
        uint64 epoch,
        address token,
        address host,
        uint256 amount,
        bytes32[] calldata proof
    ) external nonReentrant {
        Allocation storage a = _allocations[epoch][token];
        if (!a.posted) revert NoAllocation(epoch, token);
        if (_closed[epoch][token]) revert EpochClosed(epoch, token);
        if (_claimed[epoch][token][host]) revert AlreadyClaimed(epoch, token, host);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(host, amount))));
        if (!MerkleProof.verifyCalldata(proof, a.merkleRoot, leaf)) revert InvalidProof();
        uint256 paidSoFar = a.paid;
        if (paidSoFar + amount > a.total) revert AllocationExhausted(paidSoFar, amount, a.total);
        if (token == address(0)) {
            // One claim per (epoch, token, host): the host's ETH claimed for the epoch is `amount`.
            uint256 cap = feeCapOf(host, epoch);
            if (amount > cap) revert ExceedsFeeCap(host, epoch, cap);
        }
        _claimed[epoch][token][host] = true;
        a.paid = paidSoFar + amount;
        emit Claimed(epoch, token, host, amount);
        if (token == address(0)) {
            Address.sendValue(payable(host), amount);
        } else {
            IERC20(token).safeTransfer(host, amount);
        }
    }

    /// @notice Move what (epoch, token) did not pay out (`funded - paid - already rolled over`) to
    /// `toEpoch` (later than `epoch`, not closed, no allocation posted yet) and close `epoch`:
    /// no further funding, posting or claims. Anyone may call once `claimWindow` has passed since
    /// the allocation was posted; for an epoch never posted, only the owner.
    function rollover(uint64 epoch, address token, uint64 toEpoch) external {
        if (_closed[epoch][token]) revert EpochClosed(epoch, token);
        if (
            toEpoch <= epoch || _closed[toEpoch][token] || _allocations[toEpoch][token].posted
        ) revert InvalidRolloverTarget(epoch, toEpoch);
        Allocation storage a = _allocations[epoch][token];
        if (a.posted) {
            uint64 endsAt = a.postedAt + claimWindow;
            if (block.timestamp < endsAt) revert ClaimWindowOpen(epoch, token, endsAt);
        } else if (msg.sender != owner()) {
            revert NotPosted(epoch, token);
        }
        uint256 amount = _funded[epoch][token] - a.paid;
        _closed[epoch][token] = true;
        _rolledOver[epoch][token] = amount;
        _funded[toEpoch][token] += amount;
        emit RolledOver(epoch, token, toEpoch, amount);
    }

    /// @notice The most ETH `host` may claim for `epoch`: rebateBps * (receipt fees + storage
    /// fees burnt on payments to `host` in `epoch`) / 10000.
    function feeCapOf(address host, uint64 epoch) public view returns (uint256) {
        uint256 fees = receipts.feesOf(host, epoch) + da.storageFeesOf(host, epoch);
        return (fees * rebateBps) / 10_000;
    }

    /// @notice Whether (epoch, token) was rolled over (closed).
    function isClosed(uint64 epoch, address token) external view returns (bool) {
        return _closed[epoch][token];
    }

    /// @notice Amount of (epoch, token) moved to a later epoch by `rollover`.
    function rolledOver(uint64 epoch, address token) external view returns (uint256) {
        return _rolledOver[epoch][token];
    }

    /// @notice Whether `host` has claimed (epoch, token).
    function claimed(uint64 epoch, address token, address host) external view returns (bool) {
        return _claimed[epoch][token][host];
    }

    /// @notice Amount paid out of (epoch, token) so far.
    function paid(uint64 epoch, address token) external view returns (uint256) {
        return _allocations[epoch][token].paid;
    }

    /// @notice The posted allocation of (epoch, token) (posted = false if none).
    function allocationOf(uint64 epoch, address token)
        external
        view
        returns (bytes32 merkleRoot, uint256 total, uint256 paidOut, bool posted)
    {
        Allocation storage a = _allocations[epoch][token];
        return (a.merkleRoot, a.total, a.paid, a.posted);
    }

    /// @notice The EIP-712 digest validators sign for an allocation.
    function hashAllocation(uint64 epoch, address token, bytes32 merkleRoot, uint256 total)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(
            keccak256(abi.encode(ALLOCATION_TYPEHASH, epoch, token, merkleRoot, total))
        );
    }
}
