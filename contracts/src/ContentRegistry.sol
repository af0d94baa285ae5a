// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title ContentRegistry
/// @notice Anchors content on chain: its RFC 6962 root (the content ID), size, chunk geometry,
/// owner and a metadata URI. The registrant becomes the owner; size and geometry never change.
/// @dev Storage per root: slot 0 owner (20 bytes) | size (8) | chunkSize (4); slot 1 segmentSize (4)
/// | registeredAt (8); slot 2+ metadataURI. A root is registered iff its owner is non-zero, which is
/// why ownership cannot be transferred to the zero address.
contract ContentRegistry {
    // ------------------------------------------------------------------ types

    /// @notice What the registry knows about one content root.
    struct Content {
        address owner;
        uint64 size;
        uint32 chunkSize;
        uint32 segmentSize;
        uint64 registeredAt;
        string metadataURI;
    }

    // ------------------------------------------------------------------ constants

    /// @notice The only segment size of the bcai-transfer tree (the leaves of the RFC 6962 tree).
    uint32 public constant SEGMENT_SIZE = 4096;
    /// @notice Smallest allowed chunk size (256 KiB).
    uint32 public constant MIN_CHUNK_SIZE = 256 * 1024;
    /// @notice Largest allowed chunk size (4 MiB).
    uint32 public constant MAX_CHUNK_SIZE = 4 * 1024 * 1024;

    // ------------------------------------------------------------------ errors

    /// @notice `root` has been registered before.
    error AlreadyRegistered(bytes32 root);
    /// @notice `root` has never been registered.
    error NotRegistered(bytes32 root);
    /// @notice segmentSize must be 4096 and chunkSize a power of two in [256 KiB, 4 MiB].
    error InvalidGeometry(uint64 size, uint32 chunkSize, uint32 segmentSize);
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
        string metadataURI
    );
    /// @notice The metadata URI of `root` changed.
    event MetadataUpdated(bytes32 indexed root, string metadataURI);
    /// @notice Ownership of `root` moved from `from` to `to`.
    event ContentOwnershipTransferred(bytes32 indexed root, address indexed from, address indexed to);

    // ------------------------------------------------------------------ storage

    mapping(bytes32 root => Content) private _contents;

    // ------------------------------------------------------------------ logic

    /// @notice Register `root` with its size and geometry; the caller becomes its owner.
    /// @dev The root itself is not checked against the data (the chain never sees the data); the
    /// DataAvailability contract is what makes a false root costly for hosts that commit to it.
    /// The empty content (size 0, root SHA256("")) may be registered.
    /// @param root RFC 6962 root over the 4 KiB segments.
    /// @param size content size in bytes.
    /// @param chunkSize transfer chunk size: a power of two in [256 KiB, 4 MiB].
    /// @param segmentSize must be 4096.
    /// @param metadataURI free-form pointer to a manifest (ipfs://, https://, ...).
    function register(
        bytes32 root,
        uint64 size,
        uint32 chunkSize,
        uint32 segmentSize,
        string calldata metadataURI
    ) external {
        if (_contents[root].owner != address(0)) revert AlreadyRegistered(root);
        if (
            segmentSize != SEGMENT_SIZE || chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE
                || chunkSize & (chunkSize - 1) != 0
        ) revert InvalidGeometry(size, chunkSize, segmentSize);
        _contents[root] = Content({
            owner: msg.sender,
            size: size,
            chunkSize: chunkSize,
            segmentSize: segmentSize,
            registeredAt: uint64(block.timestamp),
            metadataURI: metadataURI
        });
        emit ContentRegistered(root, msg.sender, size, chunkSize, segmentSize, metadataURI);
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

    /// @notice Number of 4 KiB segments (leaves of the tree) of `root`: ceil(size / 4096).
    /// Reverts `NotRegistered` for unknown roots.
    function segmentCount(bytes32 root) external view returns (uint256) {
        Content storage c = _contents[root];
        if (c.owner == address(0)) revert NotRegistered(root);
        return (uint256(c.size) + SEGMENT_SIZE - 1) / SEGMENT_SIZE;
    }

    function _ownedBy(bytes32 root, address caller) private view returns (Content storage c) {
        c = _contents[root];
        if (c.owner == address(0)) revert NotRegistered(root);
        if (c.owner != caller) revert NotContentOwner(root, caller);
    }
}
