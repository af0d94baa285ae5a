// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {DataAvailability} from "./DataAvailability.sol";

/// @title HostDirectory
/// @notice Where to reach a host: one endpoint record per address (`announce`, signed by being
/// `msg.sender`), and the list of hosts holding a root with their records (`providersOf`), so a
/// receiver that knows only a content root and the chain finds who serves it.
/// @dev A contract of its own rather than part of DataAvailability: the records are per host,
/// not per commitment (one transaction covers every root a host holds), they carry no value,
/// and DataAvailability is at the EIP-170 code size limit. The directory reads the commitments
/// through DataAvailability's views, so it cannot disagree with them.
/// WARNING: a record is whatever its host wrote (any bytes up to `MAX_ENDPOINT_LENGTH`). Nothing
/// here checks that it is well formed, reachable, or that the machine behind it answers for
/// the address: clients parse it as hostile input and authenticate the peer at the transport
/// (the Noise handshake proves the address).
contract HostDirectory {
    // ------------------------------------------------------------------ constants

    /// @notice Longest endpoint record (bytes). "host:port" with a 253-byte DNS name does not
    /// fit; an IPv6 literal with a port does, with room for a scheme or a path.
    uint256 public constant MAX_ENDPOINT_LENGTH = 128;

    // ------------------------------------------------------------------ errors

    /// @notice The endpoint is `length` bytes, more than `max`.
    error EndpointTooLong(uint256 length, uint256 max);

    // ------------------------------------------------------------------ events

    /// @notice `host` set its endpoint record to `endpoint` ("" withdraws it).
    event EndpointAnnounced(address indexed host, string endpoint);

    // ------------------------------------------------------------------ storage

    /// @notice The commitments whose hosts the directory lists.
    DataAvailability public immutable availability;

    mapping(address host => string) private _endpoints;

    // ------------------------------------------------------------------ construction

    /// @param availability_ the DataAvailability contract of the suite.
    constructor(DataAvailability availability_) {
        availability = availability_;
    }

    // ------------------------------------------------------------------ records

    /// @notice Set the caller's endpoint record (for example "203.0.113.7:7420"); the empty
    /// string withdraws it. Emits `EndpointAnnounced` every time, also when unchanged (clients
    /// compare with `endpointOf` first to save the transaction).
    function announce(string calldata endpoint) external {
        uint256 length = bytes(endpoint).length;
        if (length > MAX_ENDPOINT_LENGTH) revert EndpointTooLong(length, MAX_ENDPOINT_LENGTH);
        if (length == 0) delete _endpoints[msg.sender];
        else _endpoints[msg.sender] = endpoint;
        emit EndpointAnnounced(msg.sender, endpoint);
    }

    // ------------------------------------------------------------------ views

    /// @notice The endpoint record of `host` ("" if none).
    function endpointOf(address host) external view returns (string memory) {
        return _endpoints[host];
    }

    /// @notice The hosts that hold a slot of `root` now, with their endpoint records ("" where a
    /// host announced none), in slot order. A host is listed while its commitment stands: not
    /// terminated and not past the end of an exit (`readyAt`). Bounded: at most one host per
    /// slot, and a root has at most `ContentRegistry.MAX_SLOTS` (64) slots; empty for an
    /// unregistered root.
    function providersOf(bytes32 root)
        external
        view
        returns (address[] memory hosts, string[] memory endpoints)
    {
        address[] memory bySlot = availability.hostsOf(root);
        uint256 n = bySlot.length;
        hosts = new address[](n);
        uint256 count;
        for (uint256 j; j < n; ++j) {
            address h = bySlot[j];
            if (h == address(0)) continue;
            DataAvailability.Commitment memory c = availability.commitmentOf(root, uint8(j));
            if (c.terminated || (c.readyAt != 0 && block.timestamp >= c.readyAt)) continue;
            hosts[count++] = h;
        }
        assembly {
            mstore(hosts, count) // shrink to the listed hosts (memory past it is left unused)
        }
        endpoints = new string[](count);
        for (uint256 i; i < count; ++i) {
            endpoints[i] = _endpoints[hosts[i]];
        }
    }
}
