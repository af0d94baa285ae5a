// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {ContentRegistry} from "./ContentRegistry.sol";

/// @title TransferReceipts
/// @notice Paid transfer receipts. A receiver prepays an escrow; for every transfer it signs an
/// EIP-712 `Receipt` that names the bytes it received and the `payment` it owes; the provider
/// cashes receipts in batches. An accepted receipt debits the receiver's escrow, burns
/// `feeBps` of the payment (locked here forever, `totalBurnt`) and credits the rest to the
/// provider's `earningsOf`, pulled with `withdrawEarnings`. A receipt is worth something only if
/// its root is registered, its bytes fit the registered size (per receipt and cumulatively per
/// (receiver, provider, root, epoch)) and it pays at least `minPricePerGiB`: a ring that pays
/// itself burns `feeBps` of everything it moves.
/// @dev Every receipt of a batch is judged on its own; a rejected receipt changes nothing and is
/// reported with `ReceiptRejected(index, receiver, nonce, reason)` (the batch reverts only on
/// `LengthMismatch` / `EmptyBatch`), so one bad receipt cannot block a provider's queue.
/// Gas: the batch loop keeps the current nonce bitmap word, escrow balance, pair tally,
/// (provider, epoch) tally and root size in memory, writing each back only when the next receipt
/// moves to another key (and at the end); earnings and burnt fees are written once per batch.
/// Storage: `_nonceWords[receiver][nonce >> 8]` bit `nonce & 255`; `_tallies[provider][epoch]`
/// = servedBytes | receiptCount (slot 0), payments | fees (slot 1), all uint128;
/// `_pairBytes[keccak256(receiver, provider, root, epoch)]`.
/// Value accounting: address(this).balance == sum(escrow balances) + sum(earnings) + totalBurnt.
contract TransferReceipts is EIP712, ReentrancyGuardTransient {
    // ------------------------------------------------------------------ types

    /// @notice A transfer receipt, signed by `receiver` (EIP-712, domain
    /// "BCAI Transfer Receipts" version "2"). `payment` (wei) is what the receiver pays for
    /// `bytesServed` bytes of `contentRoot`.
    struct Receipt {
        bytes32 contentRoot;
        address provider;
        address receiver;
        uint64 bytesServed;
        uint32 chunks;
        uint128 payment;
        uint64 nonce;
        uint64 issuedAt;
    }

    /// @notice Why a receipt was rejected, in the order the checks run.
    enum RejectReason {
        None,
        NotProvider,
        InvalidSignature,
        NonceUsed,
        IssuedInFuture,
        Stale,
        RootNotRegistered,
        Empty,
        ExceedsSize,
        Underpaid,
        InsufficientEscrow
    }

    struct Tally {
        uint128 servedBytes;
        uint128 receiptCount;
        uint128 payments;
        uint128 fees;
    }

    struct Withdrawal {
        uint128 requested;
        uint64 unlockAt;
    }

    /// @dev Batch-local write-back cache (kept in memory to stay clear of stack limits).
    struct Cursor {
        bytes32 domainSeparator;
        uint64 currentEpoch;
        // nonce bitmap word of (wordOwner, wordIndex); wordOwner 0 = none
        address wordOwner;
        uint256 wordIndex;
        uint256 word;
        // escrow balance of payer; payer 0 = none
        address payer;
        uint256 escrow;
        // registry answer for root
        bool haveRoot;
        bytes32 root;
        bool registered;
        uint64 size;
        // cumulative bytes of pairKey; pairKey 0 = none
        bytes32 pairKey;
        uint256 pair;
        // (msg.sender, epoch) tally increments
        bool haveEpoch;
        uint64 epoch;
        uint256 addBytes;
        uint256 addCount;
        uint256 addPayments;
        uint256 addFees;
        // batch totals
        uint256 earned;
        uint256 burnt;
    }

    // ------------------------------------------------------------------ constants

    /// @notice keccak256 of the EIP-712 type string of `Receipt`.
    bytes32 public constant RECEIPT_TYPEHASH = keccak256(
        "Receipt(bytes32 contentRoot,address provider,address receiver,uint64 bytesServed,uint32 chunks,uint128 payment,uint64 nonce,uint64 issuedAt)"
    );
    /// @notice Denominator of `feeBps`.
    uint16 public constant BPS = 10_000;
    /// @notice Bytes per GiB (the unit of `minPricePerGiB`).
    uint256 public constant GIB = 1 << 30;

    // ------------------------------------------------------------------ errors

    /// @notice `receipts` and `signatures` differ in length.
    error LengthMismatch(uint256 receipts, uint256 signatures);
    /// @notice A batch must hold at least one receipt.
    error EmptyBatch();
    /// @notice A constructor parameter is out of range (epochLength 0, feeBps outside
    /// [1, 10000], withdrawDelay below two epochs, minPricePerGiB 0 or above 2^128 - 1).
    error InvalidParams();
    /// @notice Amount must be positive.
    error ZeroAmount();
    /// @notice `receiver` has no pending escrow withdrawal.
    error NoWithdrawalRequested(address receiver);
    /// @notice The escrow withdrawal unlocks at `unlockAt`.
    error WithdrawalLocked(uint64 unlockAt);
    /// @notice The caller has nothing to withdraw.
    error NothingToWithdraw();

    // ------------------------------------------------------------------ events

    /// @notice A receipt was accepted: `payment` debited from `receiver`'s escrow, `fee` burnt,
    /// `payment - fee` credited to `provider`, `bytesServed` counted in `epoch`.
    event ReceiptAccepted(
        address indexed provider,
        address indexed receiver,
        bytes32 indexed contentRoot,
        uint64 bytesServed,
        uint32 chunks,
        uint128 payment,
        uint128 fee,
        uint64 nonce,
        uint64 epoch,
        bytes32 digest
    );
    /// @notice Receipt `index` of a batch was rejected for `reason`; it changed nothing.
    event ReceiptRejected(uint256 index, address receiver, uint64 nonce, RejectReason reason);
    /// @notice `from` added `amount` to `receiver`'s escrow.
    event EscrowDeposited(address indexed receiver, address indexed from, uint256 amount);
    /// @notice `receiver` asked to withdraw `amount` of its escrow from `unlockAt` on.
    event WithdrawalRequested(address indexed receiver, uint256 amount, uint64 unlockAt);
    /// @notice `receiver` withdrew `amount` of its escrow.
    event EscrowWithdrawn(address indexed receiver, uint256 amount);
    /// @notice `provider` pulled `amount` of its earnings.
    event EarningsWithdrawn(address indexed provider, uint256 amount);

    // ------------------------------------------------------------------ storage

    /// @notice The registry receipts' roots must be registered in.
    ContentRegistry public immutable registry;
    /// @notice Timestamp of deployment; epoch 0 starts here.
    uint64 public immutable genesis;
    /// @notice Length of an epoch in seconds.
    uint64 public immutable epochLength;
    /// @notice Smallest accepted price, wei per GiB (2^30 bytes).
    uint256 public immutable minPricePerGiB;
    /// @notice Share of every payment that is burnt, in basis points (1..10000).
    uint16 public immutable feeBps;
    /// @notice Seconds between `requestWithdrawal` and `withdrawEscrow` (>= 2 epochs).
    uint64 public immutable withdrawDelay;

    /// @notice Fees burnt so far (held by this contract forever).
    uint256 public totalBurnt;
    /// @notice Earnings of each provider not yet withdrawn.
    mapping(address provider => uint256) public earningsOf;

    mapping(address receiver => mapping(uint256 wordIndex => uint256 bits)) private _nonceWords;
    mapping(address provider => mapping(uint64 epoch => Tally)) private _tallies;
    mapping(bytes32 pairKey => uint256) private _pairBytes;
    mapping(address receiver => uint256) private _escrow;
    mapping(address receiver => Withdrawal) private _withdrawals;

    // ------------------------------------------------------------------ construction

    /// @param registry_ the ContentRegistry.
    /// @param epochLength_ epoch length in seconds (> 0); epochs count from deployment time.
    /// @param minPricePerGiB_ smallest price, wei per GiB (> 0, < 2^128).
    /// @param feeBps_ burnt share of every payment, basis points in [1, 10000].
    /// @param withdrawDelay_ escrow withdrawal delay in seconds, at least two epochs.
    constructor(
        ContentRegistry registry_,
        uint64 epochLength_,
        uint256 minPricePerGiB_,
        uint16 feeBps_,
        uint64 withdrawDelay_
    ) EIP712("BCAI Transfer Receipts", "2") {
        if (
            epochLength_ == 0 || feeBps_ == 0 || feeBps_ > BPS
                || uint256(withdrawDelay_) < 2 * uint256(epochLength_) || minPricePerGiB_ == 0
                || minPricePerGiB_ > type(uint128).max
        ) revert InvalidParams();
        registry = registry_;
        genesis = uint64(block.timestamp);
        epochLength = epochLength_;
        minPricePerGiB = minPricePerGiB_;
        feeBps = feeBps_;
        withdrawDelay = withdrawDelay_;
    }

    // ------------------------------------------------------------------ escrow

    /// @notice Add `msg.value` to `receiver`'s escrow (anyone may fund a receiver).
    function deposit(address receiver) external payable {
        if (msg.value == 0) revert ZeroAmount();
        _escrow[receiver] += msg.value;
        emit EscrowDeposited(receiver, msg.sender, msg.value);
    }

    /// @notice Ask to withdraw `amount` of the caller's escrow after `withdrawDelay`; replaces any
    /// earlier request. Receipts keep debiting the escrow meanwhile.
    function requestWithdrawal(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        uint64 unlockAt = uint64(block.timestamp) + withdrawDelay;
        // An amount above 2^128 - 1 exceeds any balance; min(requested, balance) is paid anyway.
        uint128 requested = amount > type(uint128).max ? type(uint128).max : uint128(amount);
        _withdrawals[msg.sender] = Withdrawal({requested: requested, unlockAt: unlockAt});
        emit WithdrawalRequested(msg.sender, requested, unlockAt);
    }

    /// @notice Pay the caller min(requested, balance) of its escrow once the request unlocked.
    function withdrawEscrow() external nonReentrant {
        Withdrawal memory w = _withdrawals[msg.sender];
        if (w.unlockAt == 0) revert NoWithdrawalRequested(msg.sender);
        if (block.timestamp < w.unlockAt) revert WithdrawalLocked(w.unlockAt);
        uint256 balance = _escrow[msg.sender];
        uint256 amount = w.requested < balance ? w.requested : balance;
        delete _withdrawals[msg.sender];
        _escrow[msg.sender] = balance - amount;
        emit EscrowWithdrawn(msg.sender, amount);
        if (amount != 0) Address.sendValue(payable(msg.sender), amount);
    }

    /// @notice Escrow of `receiver`: its balance and its pending withdrawal (0, 0 if none).
    function escrowOf(address receiver)
        external
        view
        returns (uint256 balance, uint256 requested, uint64 unlockAt)
    {
        Withdrawal memory w = _withdrawals[receiver];
        return (_escrow[receiver], w.requested, w.unlockAt);
    }

    /// @notice Pay the caller all its earnings.
    function withdrawEarnings() external nonReentrant {
        uint256 amount = earningsOf[msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        earningsOf[msg.sender] = 0;
        emit EarningsWithdrawn(msg.sender, amount);
        Address.sendValue(payable(msg.sender), amount);
    }

    // ------------------------------------------------------------------ receipts

    /// @notice Cash receipts signed by their receivers; the caller is the provider. Each receipt
    /// is judged on its own, in order (see `RejectReason` for the checks and their order): an
    /// accepted one uses its nonce, debits the receiver's escrow, burns the fee and credits the
    /// caller; a rejected one changes nothing and emits `ReceiptRejected`.
    /// @return accepted the number of receipts accepted.
    function submitBatch(Receipt[] calldata receipts, bytes[] calldata signatures)
        external
        returns (uint256 accepted)
    {
        uint256 n = receipts.length;
        if (n != signatures.length) revert LengthMismatch(n, signatures.length);
        if (n == 0) revert EmptyBatch();
        Cursor memory cur;
        cur.domainSeparator = _domainSeparatorV4();
        cur.currentEpoch = epochOf(uint64(block.timestamp));
        for (uint256 i; i < n; ++i) {
            Receipt calldata r = receipts[i];
            (RejectReason reason, bytes32 digest, uint64 epoch) = _judge(cur, r, signatures[i]);
            if (reason != RejectReason.None) {
                emit ReceiptRejected(i, r.receiver, r.nonce, reason);
                continue;
            }
            uint128 fee = _accept(cur, r, epoch);
            _emitAccepted(r, fee, epoch, digest);
            ++accepted;
        }
        _flushWord(cur);
        _flushEscrow(cur);
        _flushPair(cur);
        _flushTally(cur);
        if (cur.earned != 0) earningsOf[msg.sender] += cur.earned;
        if (cur.burnt != 0) totalBurnt += cur.burnt;
    }

    // ------------------------------------------------------------------ views

    /// @notice The EIP-712 digest of `r` that its receiver signs.
    function hashReceipt(Receipt calldata r) external view returns (bytes32) {
        return _hashTypedDataV4(_structHash(r));
    }

    /// @notice Whether `receiver` has used `nonce` in an accepted receipt.
    function isNonceUsed(address receiver, uint64 nonce) external view returns (bool) {
        return _nonceWords[receiver][nonce >> 8] & (1 << (nonce & 0xff)) != 0;
    }

    /// @notice Bytes credited to `provider` by receipts issued in `epoch`.
    function servedBytes(address provider, uint64 epoch) external view returns (uint256) {
        return _tallies[provider][epoch].servedBytes;
    }

    /// @notice Number of receipts credited to `provider` for `epoch`.
    function receiptCount(address provider, uint64 epoch) external view returns (uint256) {
        return _tallies[provider][epoch].receiptCount;
    }

    /// @notice Sum of the payments (fees included) of `provider`'s receipts issued in `epoch`.
    function paymentsOf(address provider, uint64 epoch) external view returns (uint256) {
        return _tallies[provider][epoch].payments;
    }

    /// @notice Fees burnt on `provider`'s receipts issued in `epoch`.
    function feesOf(address provider, uint64 epoch) external view returns (uint256) {
        return _tallies[provider][epoch].fees;
    }

    /// @notice Bytes of `root` credited to `provider` by `receiver`'s receipts issued in `epoch`
    /// (at most the root's size).
    function pairBytes(address receiver, address provider, bytes32 root, uint64 epoch)
        external
        view
        returns (uint256)
    {
        return _pairBytes[_pairKey(receiver, provider, root, epoch)];
    }

    /// @notice The epoch `timestamp` falls in; timestamps before genesis belong to epoch 0.
    function epochOf(uint64 timestamp) public view returns (uint64) {
        if (timestamp <= genesis) return 0;
        return (timestamp - genesis) / epochLength;
    }

    /// @notice The epoch of the current block.
    function currentEpoch() external view returns (uint64) {
        return epochOf(uint64(block.timestamp));
    }

    // ------------------------------------------------------------------ internals

    /// @dev Runs the checks of `RejectReason` in order. It changes no value: it only moves the
    /// caches of `cur` to this receipt's keys (writing back what earlier accepted receipts left
    /// in them). Returns the first failing reason, or None with the digest and epoch.
    function _judge(Cursor memory cur, Receipt calldata r, bytes calldata signature)
        private
        returns (RejectReason, bytes32 digest, uint64 epoch)
    {
        if (r.provider != msg.sender) return (RejectReason.NotProvider, 0, 0);
        address receiver = r.receiver;
        digest = MessageHashUtils.toTypedDataHash(cur.domainSeparator, _structHash(r));
        {
            (address recovered, ECDSA.RecoverError err,) =
                ECDSA.tryRecoverCalldata(digest, signature);
            if (err != ECDSA.RecoverError.NoError || recovered != receiver || receiver == address(0))
            {
                return (RejectReason.InvalidSignature, digest, 0);
            }
        }
        _loadWord(cur, receiver, r.nonce);
        if (cur.word & (1 << (r.nonce & 0xff)) != 0) return (RejectReason.NonceUsed, digest, 0);
        if (r.issuedAt > block.timestamp) return (RejectReason.IssuedInFuture, digest, 0);
        epoch = epochOf(r.issuedAt);
        if (epoch + 1 < cur.currentEpoch) return (RejectReason.Stale, digest, epoch);
        _loadRoot(cur, r.contentRoot);
        if (!cur.registered) return (RejectReason.RootNotRegistered, digest, epoch);
        uint256 bytesServed = r.bytesServed;
        if (bytesServed == 0) return (RejectReason.Empty, digest, epoch);
        if (bytesServed > cur.size) return (RejectReason.ExceedsSize, digest, epoch);
        _loadPair(cur, _pairKey(receiver, msg.sender, r.contentRoot, epoch));
        if (cur.pair + bytesServed > cur.size) return (RejectReason.ExceedsSize, digest, epoch);
        // payment < 2^128 and minPricePerGiB < 2^128: neither product overflows.
        if (uint256(r.payment) * GIB < bytesServed * minPricePerGiB) {
            return (RejectReason.Underpaid, digest, epoch);
        }
        _loadEscrow(cur, receiver);
        if (cur.escrow < r.payment) return (RejectReason.InsufficientEscrow, digest, epoch);
        return (RejectReason.None, digest, epoch);
    }

    /// @dev Applies an accepted receipt to the caches (every cache already holds its key).
    function _accept(Cursor memory cur, Receipt calldata r, uint64 epoch)
        private
        returns (uint128 fee)
    {
        uint128 payment = r.payment;
        fee = uint128((uint256(payment) * feeBps) / BPS);
        cur.word |= 1 << (r.nonce & 0xff);
        cur.escrow -= payment;
        cur.pair += r.bytesServed;
        if (!cur.haveEpoch || cur.epoch != epoch) {
            _flushTally(cur);
            cur.haveEpoch = true;
            cur.epoch = epoch;
        }
        cur.addBytes += r.bytesServed;
        ++cur.addCount;
        cur.addPayments += payment;
        cur.addFees += fee;
        cur.earned += payment - fee;
        cur.burnt += fee;
    }

    function _emitAccepted(Receipt calldata r, uint128 fee, uint64 epoch, bytes32 digest) private {
        emit ReceiptAccepted(
            msg.sender,
            r.receiver,
            r.contentRoot,
            r.bytesServed,
            r.chunks,
            r.payment,
            fee,
            r.nonce,
            epoch,
            digest
        );
    }

    function _loadWord(Cursor memory cur, address receiver, uint64 nonce) private {
        uint256 wordIndex = nonce >> 8;
        if (cur.wordOwner == receiver && cur.wordIndex == wordIndex) return;
        _flushWord(cur);
        cur.wordOwner = receiver;
        cur.wordIndex = wordIndex;
        cur.word = _nonceWords[receiver][wordIndex];
    }

    function _loadEscrow(Cursor memory cur, address receiver) private {
        if (cur.payer == receiver) return;
        _flushEscrow(cur);
        cur.payer = receiver;
        cur.escrow = _escrow[receiver];
    }

    function _loadPair(Cursor memory cur, bytes32 key) private {
        if (cur.pairKey == key) return;
        _flushPair(cur);
        cur.pairKey = key;
        cur.pair = _pairBytes[key];
    }

    function _loadRoot(Cursor memory cur, bytes32 root) private view {
        if (cur.haveRoot && cur.root == root) return;
        (cur.registered, cur.size) = registry.registeredSize(root);
        cur.root = root;
        cur.haveRoot = true;
    }

    function _flushWord(Cursor memory cur) private {
        if (cur.wordOwner != address(0)) _nonceWords[cur.wordOwner][cur.wordIndex] = cur.word;
    }

    function _flushEscrow(Cursor memory cur) private {
        if (cur.payer != address(0)) _escrow[cur.payer] = cur.escrow;
    }

    function _flushPair(Cursor memory cur) private {
        if (cur.pairKey != bytes32(0)) _pairBytes[cur.pairKey] = cur.pair;
    }

    function _flushTally(Cursor memory cur) private {
        if (cur.addCount == 0) return;
        Tally storage t = _tallies[msg.sender][cur.epoch];
        // uint128 cannot overflow: bytes per receipt < 2^64, fewer than 2^64 receipts, payments
        // and fees are bounded by the ETH supply.
        t.servedBytes += uint128(cur.addBytes);
        t.receiptCount += uint128(cur.addCount);
        t.payments += uint128(cur.addPayments);
        t.fees += uint128(cur.addFees);
        cur.addBytes = 0;
        cur.addCount = 0;
        cur.addPayments = 0;
        cur.addFees = 0;
    }

    function _pairKey(address receiver, address provider, bytes32 root, uint64 epoch)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(receiver, provider, root, epoch));
    }

    /// @dev keccak256(abi.encode(RECEIPT_TYPEHASH, r)) over the 8 static words of `r`.
    function _structHash(Receipt calldata r) private pure returns (bytes32 h) {
        bytes32 typeHash = RECEIPT_TYPEHASH;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, typeHash)
            calldatacopy(add(m, 0x20), r, 0x100)
            h := keccak256(m, 0x120)
        }
    }
}
