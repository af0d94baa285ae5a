// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {SizeProof} from "./SizeProof.sol";

/// @title ContentRegistry
/// @notice Anchors content on chain: its RFC 6962 root (the content ID), its size, proven at
/// registration, its chunk geometry, its erasure-coded slot layout (`dataShards` K, `slotCount`
/// N, `slotsRoot`), owner and a metadata URI. The registrant becomes the owner; size, geometry
/// and slot layout never change.
/// @dev The size is proven with a spine proof (`SizeProof`): the last segment plus, for each
/// perfect subtree on the right spine of the tree, its leftmost segment and left edge. The last
/// segment's audit path alone would not do (its siblings are opaque hashes: the path of the last
/// of n leaves also verifies for any n' with popcount(n'-1) == popcount(n-1)). So nobody can
/// register a root with a wrong size.
/// Registration is commit-then-reveal: `commitRegistration(keccak256(abi.encode(registrant,
/// root, dataShards, slotCount, slotsRoot)))` in an earlier block than `register`, so a
/// front-runner who copies a pending `register` (with another slot layout) cannot get its own
/// registration in first.
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
    /// @notice For size > 0: 2 <= dataShards <= slotCount <= 64, dataShards <= 32 (one data shard
    /// would make every slot a plain copy; fewer slots than data shards could not rebuild the
    /// content); for size 0: slotCount == 0.
    error InvalidSlots(uint8 dataShards, uint8 slotCount);
    /// @notice The size proof does not prove that `root` has `size` bytes.
    error SizeProofInvalid(bytes32 root, uint64 size);
    /// @notice No registration commitment `commitment` from the caller in an earlier block.
    error NotCommitted(bytes32 commitment);
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
    /// @notice `registrant` committed to a registration (see `registrationCommitment`).
    event RegistrationCommitted(address indexed registrant, bytes32 indexed commitment);
    /// @notice The metadata URI of `root` changed.
    event MetadataUpdated(bytes32 indexed root, string metadataURI);
    /// @notice Ownership of `root` moved from `from` to `to`.
    event ContentOwnershipTransferred(bytes32 indexed root, address indexed from, address indexed to);

    // ------------------------------------------------------------------ storage

    mapping(bytes32 root => Content) private _contents;
    mapping(bytes32 commitment => uint256 blockNumber) private _commitments;

    // ------------------------------------------------------------------ logic

    /// @notice First step of a registration: commit to (caller, root, layout) without revealing
    /// them. `register` is accepted from the next block on. Committing again is harmless.
    function commitRegistration(bytes32 commitment) external {
        if (_commitments[commitment] == 0) _commitments[commitment] = block.number;
        emit RegistrationCommitted(msg.sender, commitment);
    }

    /// @notice The commitment `registrant` must make before registering `reg`.
    function registrationCommitment(address registrant, Registration calldata reg)
        public
        pure
        returns (bytes32)
    {
        return keccak256(
            abi.encode(registrant, reg.root, reg.dataShards, reg.slotCount, reg.slotsRoot)
        );
    }

    /// @notice Register `reg.root` with its proven size, geometry and slot layout; the caller
    /// becomes its owner.
    /// @dev Needs `commitRegistration(registrationCommitment(msg.sender, reg))` in an earlier
    /// block. For size > 0 the spine proof (`SizeProof.verify`) must prove `size`; for size 0,
    /// `root` must be SHA256(""), the proof empty and `slotCount` 0 (`dataShards` and `slotsRoot`
    /// are stored as given and mean nothing). Checks, in order: AlreadyRegistered,
    /// InvalidGeometry, InvalidSlots, NotCommitted, SizeProofInvalid.
    /// @param reg the registration (root, size, chunkSize, segmentSize, dataShards, slotCount,
    /// slotsRoot, metadataURI).
    /// @param leftSegments leftmost segment of each right-spine subtree, bottom-up.
    /// @param edgeHashes each subtree's left-edge siblings, bottom-up, concatenated.
    /// @param lastSegment the content's last segment.
    function register(
        Registration calldata reg,
        bytes[] calldata leftSegments,
        bytes32[] calldata edgeHashes,
        bytes calldata lastSegment
    ) external {
        bytes32 root = reg.root;
        uint64 size = reg.size;
        if (_contents[root].owner != address(0)) revert AlreadyRegistered(root);
        _checkGeometry(size, reg.chunkSize, reg.segmentSize);
        _checkSlots(size, reg.dataShards, reg.slotCount);
        bytes32 commitment = registrationCommitment(msg.sender, reg);
        uint256 committedAt = _commitments[commitment];
        if (committedAt == 0 || committedAt >= block.number) revert NotCommitted(commitment);
        if (!SizeProof.verify(root, size, leftSegments, edgeHashes, lastSegment)) {
            revert SizeProofInvalid(root, size);
        }
        delete _commitments[commitment];
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

    /// @notice Whether the spine proof shows that `root`'s content is `size` bytes (see
    /// `SizeProof`). Never reverts.
    function sizeProofValid(
        bytes32 root,
        uint64 size,
        bytes[] calldata leftSegments,
        bytes32[] calldata edgeHashes,
        bytes calldata lastSegment
    ) external view returns (bool) {
        return SizeProof.verify(root, size, leftSegments, edgeHashes, lastSegment);
    }

    /// @notice Block of the registration commitment `commitment` (0 if none or used).
    function commitmentBlock(bytes32 commitment) external view returns (uint256) {
        return _commitments[commitment];
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
            dataShards < 2 || dataShards > MAX_DATA_SHARDS || slotCount < dataShards
                || slotCount > MAX_SLOTS
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

    function _ownedBy(bytes32 root, address caller) private view returns (Content storage c) {
        c = _contents[root];
        if (c.owner == address(0)) revert NotRegistered(root);
        if (c.owner != caller) revert NotContentOwner(root, caller);
    }
}
