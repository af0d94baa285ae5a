// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";

/// @title TransferReceipts
/// @notice Signed proof that bytes moved: the receiver of a transfer signs an EIP-712 `Receipt`,
/// the provider collects receipts and submits them in batches, and the contract credits the
/// provider's served bytes per epoch. Replay-proof through a per-receiver nonce bitmap.
/// @dev Gas: receipts of one receiver with dense nonces share a 256-bit bitmap word, and the
/// batch loop keeps the current bitmap word and the current (provider, epoch) tally in memory,
/// writing each back to storage only when the next receipt moves to another word or epoch (and
/// at the end). Storage: `_nonceWords[receiver][nonce >> 8]` bit `nonce & 255`;
/// `_tallies[provider][epoch]` = servedBytes (uint128) | receiptCount (uint128) in one slot.
contract TransferReceipts is EIP712 {
    // ------------------------------------------------------------------ types

    /// @notice A transfer receipt, signed by `receiver` (EIP-712, domain
    /// "BCAI Transfer Receipts" version "1").
    struct Receipt {
        bytes32 contentRoot;
        address provider;
        address receiver;
        uint64 bytesServed;
        uint32 chunks;
        uint64 nonce;
        uint64 issuedAt;
    }

    struct Tally {
        uint128 servedBytes;
        uint128 receiptCount;
    }

    /// @dev Batch-local write-back cache (kept in memory to stay clear of stack limits).
    struct Cursor {
        address wordOwner; // receiver whose bitmap word is cached; 0 = none
        uint256 wordIndex;
        uint256 word;
        bool haveEpoch;
        uint64 epoch;
        uint256 addBytes;
        uint256 addCount;
    }

    // ------------------------------------------------------------------ constants

    /// @notice keccak256 of the EIP-712 type string of `Receipt`.
    bytes32 public constant RECEIPT_TYPEHASH = keccak256(
        "Receipt(bytes32 contentRoot,address provider,address receiver,uint64 bytesServed,uint32 chunks,uint64 nonce,uint64 issuedAt)"
    );

    // ------------------------------------------------------------------ errors

    /// @notice `receipts` and `signatures` differ in length.
    error LengthMismatch(uint256 receipts, uint256 signatures);
    /// @notice A batch must hold at least one receipt.
    error EmptyBatch();
    /// @notice Receipt `index` names `provider`, but `sender` submitted it.
    error NotProvider(uint256 index, address provider, address sender);
    /// @notice The signature of receipt `index` recovers to `recovered` (zero if unrecoverable),
    /// not to its non-zero receiver.
    error InvalidSignature(uint256 index, address recovered);
    /// @notice `receiver` already used `nonce` (receipt `index`).
    error NonceUsed(uint256 index, address receiver, uint64 nonce);
    /// @notice Receipt `index` is dated after the current block.
    error IssuedInFuture(uint256 index, uint64 issuedAt);
    /// @notice The epoch length must be positive.
    error InvalidEpochLength();

    // ------------------------------------------------------------------ events

    /// @notice One receipt was accepted and its bytes credited to `provider` in `epoch`.
    event ReceiptAccepted(
        address indexed provider,
        address indexed receiver,
        bytes32 indexed contentRoot,
        uint64 bytesServed,
        uint32 chunks,
        uint64 nonce,
        uint64 epoch
    );

    // ------------------------------------------------------------------ storage

    /// @notice Timestamp of deployment; epoch 0 starts here.
    uint64 public immutable genesis;
    /// @notice Length of an epoch in seconds.
    uint64 public immutable epochLength;

    mapping(address receiver => mapping(uint256 wordIndex => uint256 bits)) private _nonceWords;
    mapping(address provider => mapping(uint64 epoch => Tally)) private _tallies;

    // ------------------------------------------------------------------ logic

    /// @param epochLength_ epoch length in seconds (> 0); epochs count from deployment time.
    constructor(uint64 epochLength_) EIP712("BCAI Transfer Receipts", "1") {
        if (epochLength_ == 0) revert InvalidEpochLength();
        genesis = uint64(block.timestamp);
        epochLength = epochLength_;
    }

    /// @notice Submit receipts signed by their receivers; the caller must be the provider of every
    /// one. All or nothing: any bad receipt reverts the whole batch with an error naming its index
    /// (clients pre-check with `isNonceUsed`/`hashReceipt` and drop bad receipts).
    /// @return accepted the number of receipts credited (= receipts.length).
    function submitBatch(Receipt[] calldata receipts, bytes[] calldata signatures)
        external
        returns (uint256 accepted)
    {
        uint256 n = receipts.length;
        if (n != signatures.length) revert LengthMismatch(n, signatures.length);
        if (n == 0) revert EmptyBatch();
        bytes32 domainSeparator = _domainSeparatorV4();
        Cursor memory cur;
        for (uint256 i; i < n; ++i) {
            Receipt calldata r = receipts[i];
            _checkReceipt(i, r, signatures[i], domainSeparator);
            _useNonce(cur, i, r.receiver, r.nonce);
            uint64 epoch = epochOf(r.issuedAt);
            if (!cur.haveEpoch || cur.epoch != epoch) {
                _flushTally(cur);
                cur.haveEpoch = true;
                cur.epoch = epoch;
            }
            cur.addBytes += r.bytesServed;
            ++cur.addCount;
            emit ReceiptAccepted(
                msg.sender, r.receiver, r.contentRoot, r.bytesServed, r.chunks, r.nonce, epoch
            );
        }
        if (cur.wordOwner != address(0)) _nonceWords[cur.wordOwner][cur.wordIndex] = cur.word;
        _flushTally(cur);
        return n;
    }

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

    function _checkReceipt(
        uint256 i,
        Receipt calldata r,
        bytes calldata signature,
        bytes32 domainSeparator
    ) private view {
        if (r.provider != msg.sender) revert NotProvider(i, r.provider, msg.sender);
        if (r.issuedAt > block.timestamp) revert IssuedInFuture(i, r.issuedAt);
        bytes32 digest = MessageHashUtils.toTypedDataHash(domainSeparator, _structHash(r));
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(digest, signature);
        address receiver = r.receiver;
        if (err != ECDSA.RecoverError.NoError || recovered != receiver || receiver == address(0)) {
            revert InvalidSignature(i, recovered);
        }
    }

    /// @dev Marks `nonce` of `receiver` used in the cached bitmap word, loading/writing back words
    /// as the batch moves between receivers or 256-nonce windows.
    function _useNonce(Cursor memory cur, uint256 i, address receiver, uint64 nonce) private {
        uint256 wordIndex = nonce >> 8;
        if (cur.wordOwner != receiver || cur.wordIndex != wordIndex) {
            if (cur.wordOwner != address(0)) _nonceWords[cur.wordOwner][cur.wordIndex] = cur.word;
            cur.wordOwner = receiver;
            cur.wordIndex = wordIndex;
            cur.word = _nonceWords[receiver][wordIndex];
        }
        uint256 bit = 1 << (nonce & 0xff);
        if (cur.word & bit != 0) revert NonceUsed(i, receiver, nonce);
        cur.word |= bit;
    }

    function _flushTally(Cursor memory cur) private {
        if (cur.addCount == 0) return;
        Tally storage t = _tallies[msg.sender][cur.epoch];
        // uint128 cannot overflow: each receipt adds < 2^64 bytes and there are < 2^64 receipts.
        t.servedBytes += uint128(cur.addBytes);
        t.receiptCount += uint128(cur.addCount);
        cur.addBytes = 0;
        cur.addCount = 0;
    }

    /// @dev keccak256(abi.encode(RECEIPT_TYPEHASH, r)) over the 7 static words of `r`.
    function _structHash(Receipt calldata r) private pure returns (bytes32 h) {
        bytes32 typeHash = RECEIPT_TYPEHASH;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, typeHash)
            calldatacopy(add(m, 0x20), r, 0xe0)
            h := keccak256(m, 0x100)
        }
    }
}
