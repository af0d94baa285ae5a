// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {RFC6962} from "./RFC6962.sol";

/// @title ContentRegistry
/// @notice Anchors content on chain: its RFC 6962 root (the content ID), its size, proven at
/// registration, its chunk geometry, its erasure-coded slot layout (`dataShards` K, `slotCount`
/// N, `slotsRoot`), owner and a metadata URI. The registrant becomes the owner; size, geometry
/// and slot layout never change.
/// @dev The size is proven: `register` takes the last segment of the content and its RFC 6962
/// audit path as leaf n-1 of a tree of n = ceil(size / 4096) leaves. A leaf hash (0x00 prefix)
/// never equals an interior node hash (0x01 prefix) without a SHA-256 collision, and the audit
/// path's shape is fixed by (n-1, n), so no proof for one size verifies for another: nobody, a
/// front-runner included, can register a root with a wrong size.
/// Storage per root: slot 0 owner (20 bytes) | size (8) | chunkSize (4); slot 1 segmentSize (4)
/// | registeredAt (8) | dataShards (1) | slotCount (1); slot 2 slotsRoot; slot 3+ metadataURI. A
/// root is registered iff its owner is non-zero, which is why ownership cannot be transferred to
/// the zero address.
/// Residual: `slotsRoot` is not checked against the content (that needs the Reed-Solomon code on
/// chain). A registrant that lies about it gets no honest hosts (each host re-encodes its slot
/// and compares roots before committing) and only makes its own content look unavailable.
contract ContentRegistry {
    // ------------------------------------------------------------------ types

    /// @notice What a registrant submits.
    struct Registration {
        bytes32 root;
        uint64 size;
        uint32 chunkSize;
        uint32 segmentSize;
        uint8 dataShards;
        uint8 slotCount;
        bytes32 slotsRoot;
        string metadataURI;
    }

    /// @notice What the registry knows about one content root.
    struct Content {
        address owner;
        uint64 size;
        uint32 chunkSize;
        uint32 segmentSize;
        uint64 registeredAt;
        uint8 dataShards;
        uint8 slotCount;
        bytes32 slotsRoot;
        string metadataURI;
    }

    // ------------------------------------------------------------------ constants

    /// @notice The only segment size of the bcai-transfer tree (the leaves of the RFC 6962 tree).
    uint32 public constant SEGMENT_SIZE = 4096;
    /// @notice Smallest allowed chunk size (256 KiB).
    uint32 public constant MIN_CHUNK_SIZE = 256 * 1024;
    /// @notice Largest allowed chunk size (4 MiB).
    uint32 public constant MAX_CHUNK_SIZE = 4 * 1024 * 1024;
    /// @notice Largest number of data shards K per row.
    uint8 public constant MAX_DATA_SHARDS = 32;
    /// @notice Largest number of slots N per root.
    uint8 public constant MAX_SLOTS = 64;
    /// @notice SHA256(""): the RFC 6962 root of the empty content.
    bytes32 public constant EMPTY_ROOT =
        0xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855;

    // ------------------------------------------------------------------ errors

    /// @notice `root` has been registered before.
    error AlreadyRegistered(bytes32 root);
    /// @notice `root` has never been registered.
    error NotRegistered(bytes32 root);
    /// @notice segmentSize must be 4096 and chunkSize a power of two in [256 KiB, 4 MiB].
    error InvalidGeometry(uint64 size, uint32 chunkSize, uint32 segmentSize);
    /// @notice For size > 0: 1 <= dataShards <= 32, 1 <= slotCount <= 64, dataShards + slotCount
    /// <= 256; for size 0: slotCount == 0.
    error InvalidSlots(uint8 dataShards, uint8 slotCount);
    /// @notice The last segment and its audit path do not prove that `root` has `size` bytes.
    error SizeProofInvalid(bytes32 root, uint64 size);
    /// @notice Only the owner of `root` may do this; `caller` is not.
    error NotContentOwner(bytes32 root, address caller);
    /// @notice Ownership cannot go to the zero address (that would unregister the root).
    error ZeroAddress();

    // ------------------------------------------------------------------ events

    /// @notice `root` was registered by `owner`.
    event ContentRegistered(
        bytes32 indexed root,
        address indexed owner,
        uint64 size,
        uint32 chunkSize,
        uint32 segmentSize,
        uint8 dataShards,
        uint8 slotCount,
        bytes32 slotsRoot,
        string metadataURI
    );
    /// @notice The metadata URI of `root` changed.
    event MetadataUpdated(bytes32 indexed root, string metadataURI);
    /// @notice Ownership of `root` moved from `from` to `to`.
    event ContentOwnershipTransferred(bytes32 indexed root, address indexed from, address indexed to);

    // ------------------------------------------------------------------ storage

    mapping(bytes32 root => Content) private _contents;

    // ------------------------------------------------------------------ logic

    /// @notice Register `reg.root` with its proven size, geometry and slot layout; the caller
    /// becomes its owner.
    /// @dev For size > 0, `lastSegment` must be segment n-1 (n = ceil(size / 4096)) of exactly
    /// `size - (n-1) * 4096` bytes and `lastProof` its audit path to `root` in a tree of n leaves.
    /// For size 0, `root` must be SHA256(""), `lastSegment` and `lastProof` empty, `slotCount` 0
    /// (`dataShards` and `slotsRoot` are stored as given and mean nothing). Checks, in order:
    /// AlreadyRegistered, InvalidGeometry, InvalidSlots, SizeProofInvalid.
    /// @param reg the registration (root, size, chunkSize, segmentSize, dataShards, slotCount,
    /// slotsRoot, metadataURI).
    /// @param lastSegment the content's last segment.
    /// @param lastProof the RFC 6962 audit path of `lastSegment`.
    function register(
        Registration calldata reg,
        bytes calldata lastSegment,
        bytes32[] calldata lastProof
    ) external {
        bytes32 root = reg.root;
        uint64 size = reg.size;
        if (_contents[root].owner != address(0)) revert AlreadyRegistered(root);
        _checkGeometry(size, reg.chunkSize, reg.segmentSize);
        _checkSlots(size, reg.dataShards, reg.slotCount);
        if (!sizeProofValid(root, size, lastSegment, lastProof)) {
            revert SizeProofInvalid(root, size);
        }
        Content storage c = _contents[root];
        c.owner = msg.sender;
        c.size = size;
        c.chunkSize = reg.chunkSize;
        c.segmentSize = reg.segmentSize;
        c.registeredAt = uint64(block.timestamp);
        c.dataShards = reg.dataShards;
        c.slotCount = reg.slotCount;
        c.slotsRoot = reg.slotsRoot;
        c.metadataURI = reg.metadataURI;
        _emitRegistered(reg);
    }

    /// @notice Whether `lastSegment` with audit path `lastProof` proves that the content of
    /// `root` is `size` bytes long (see `register`). Never reverts.
    function sizeProofValid(
        bytes32 root,
        uint64 size,
        bytes calldata lastSegment,
        bytes32[] calldata lastProof
    ) public pure returns (bool) {
        if (size == 0) {
            return root == EMPTY_ROOT && lastSegment.length == 0 && lastProof.length == 0;
        }
        uint256 n = (uint256(size) + SEGMENT_SIZE - 1) / SEGMENT_SIZE;
        if (lastSegment.length != uint256(size) - (n - 1) * SEGMENT_SIZE) return false;
        return RFC6962.verifyInclusion(_leafHashPure(lastSegment), n - 1, n, lastProof, root);
    }

    /// @notice Replace the metadata URI of `root`. Owner only.
    function setMetadataURI(bytes32 root, string calldata uri) external {
        Content storage c = _ownedBy(root, msg.sender);
        c.metadataURI = uri;
        emit MetadataUpdated(root, uri);
    }

    /// @notice Hand `root` to `to`. Owner only; `to` must not be the zero address.
    function transferContentOwnership(bytes32 root, address to) external {
        if (to == address(0)) revert ZeroAddress();
        Content storage c = _ownedBy(root, msg.sender);
        c.owner = to;
        emit ContentOwnershipTransferred(root, msg.sender, to);
    }

    // ------------------------------------------------------------------ views

    /// @notice Everything known about `root`; reverts `NotRegistered` for unknown roots.
    function getContent(bytes32 root) external view returns (Content memory) {
        Content storage c = _contents[root];
        if (c.owner == address(0)) revert NotRegistered(root);
        return c;
    }

    /// @notice Whether `root` has been registered.
    function isRegistered(bytes32 root) external view returns (bool) {
        return _contents[root].owner != address(0);
    }

    /// @notice Size in bytes of `root`; reverts `NotRegistered` for unknown roots.
    function sizeOf(bytes32 root) external view returns (uint64) {
        Content storage c = _contents[root];
        if (c.owner == address(0)) revert NotRegistered(root);
        return c.size;
    }

    /// @notice (registered, size) of `root` in one call that never reverts (size 0 if unknown);
    /// what TransferReceipts asks per receipt.
    function registeredSize(bytes32 root) external view returns (bool registered, uint64 size) {
        Content storage c = _contents[root];
        return (c.owner != address(0), c.size);
    }

    /// @notice Number of 4 KiB segments (leaves of the tree) of `root`: ceil(size / 4096).
    /// Reverts `NotRegistered` for unknown roots.
    function segmentCount(bytes32 root) external view returns (uint256) {
        Content storage c = _contents[root];
        if (c.owner == address(0)) revert NotRegistered(root);
        return (uint256(c.size) + SEGMENT_SIZE - 1) / SEGMENT_SIZE;
    }

    /// @notice The slot layout of `root`: rows = ceil(ceil(size / 4096) / dataShards) (0 for the
    /// empty content); each slot is `rows` segments of 4096 bytes. Reverts `NotRegistered`.
    function layoutOf(bytes32 root)
        external
        view
        returns (uint64 size, uint8 dataShards, uint8 slotCount, bytes32 slotsRoot, uint64 rows)
    {
        Content storage c = _contents[root];
        if (c.owner == address(0)) revert NotRegistered(root);
        size = c.size;
        dataShards = c.dataShards;
        slotCount = c.slotCount;
        slotsRoot = c.slotsRoot;
        if (size != 0) {
            uint256 segments = (uint256(size) + SEGMENT_SIZE - 1) / SEGMENT_SIZE;
            rows = uint64((segments + dataShards - 1) / dataShards);
        }
    }

    // ------------------------------------------------------------------ internals

    function _checkGeometry(uint64 size, uint32 chunkSize, uint32 segmentSize) private pure {
        if (
            segmentSize != SEGMENT_SIZE || chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE
                || chunkSize & (chunkSize - 1) != 0
        ) revert InvalidGeometry(size, chunkSize, segmentSize);
    }

    function _checkSlots(uint64 size, uint8 dataShards, uint8 slotCount) private pure {
        if (size == 0) {
            if (slotCount != 0) revert InvalidSlots(dataShards, slotCount);
            return;
        }
        if (
            dataShards == 0 || dataShards > MAX_DATA_SHARDS || slotCount == 0
                || slotCount > MAX_SLOTS || uint256(dataShards) + slotCount > 256
        ) revert InvalidSlots(dataShards, slotCount);
    }

    function _emitRegistered(Registration calldata reg) private {
        emit ContentRegistered(
            reg.root,
            msg.sender,
            reg.size,
            reg.chunkSize,
            reg.segmentSize,
            reg.dataShards,
            reg.slotCount,
            reg.slotsRoot,
            reg.metadataURI
        );
    }

    /// @dev RFC6962.leafHash is `view` only because it calls the SHA-256 precompile; it is a
    /// pure function, so cast it like RFC6962.verifyInclusion does.
    function _leafHashPure(bytes calldata data) private pure returns (bytes32) {
        function(bytes calldata) internal view returns (bytes32) impl = RFC6962.leafHash;
        function(bytes calldata) internal pure returns (bytes32) asPure;
        assembly ("memory-safe") {
            asPure := impl
        }
        return asPure(data);
    }

    function _ownedBy(bytes32 root, address caller) private view returns (Content storage c) {
        c = _contents[root];
        if (c.owner == address(0)) revert NotRegistered(root);
        if (c.owner != caller) revert NotContentOwner(root, caller);
    }
}
