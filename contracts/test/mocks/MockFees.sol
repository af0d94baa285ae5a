// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @notice Stands in for TransferReceipts.feesOf and DataAvailability.storageFeesOf in unit tests
/// of HostingRewards: every (host, epoch) has `defaultFees` receipt fees unless set.
contract MockFees {
    uint256 public defaultFees = 1_000_000 ether;
    mapping(address => mapping(uint64 => uint256)) internal _receipt;
    mapping(address => mapping(uint64 => uint256)) internal _storage;
    mapping(address => mapping(uint64 => bool)) internal _set;

    function setFees(address host, uint64 epoch, uint256 receiptFees, uint256 storageFees) external {
        _receipt[host][epoch] = receiptFees;
        _storage[host][epoch] = storageFees;
        _set[host][epoch] = true;
    }

    function feesOf(address host, uint64 epoch) external view returns (uint256) {
        return _set[host][epoch] ? _receipt[host][epoch] : defaultFees;
    }

    function storageFeesOf(address host, uint64 epoch) external view returns (uint256) {
        return _set[host][epoch] ? _storage[host][epoch] : 0;
    }
}
