// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "./utils/Test.sol";
import {ContentRegistry} from "../src/ContentRegistry.sol";

contract ContentRegistryTest is Test {
    ContentRegistry internal registry;
    address internal alice;
    address internal bob;
    bytes32 internal constant ROOT = keccak256("root");
    uint32 internal constant MIB = 1 << 20;

    event ContentRegistered(
        bytes32 indexed root,
        address indexed owner,
        uint64 size,
        uint32 chunkSize,
        uint32 segmentSize,
        string metadataURI
    );
    event MetadataUpdated(bytes32 indexed root, string metadataURI);
    event ContentOwnershipTransferred(bytes32 indexed root, address indexed from, address indexed to);

    function setUp() public {
        registry = new ContentRegistry();
        alice = makeAddr("alice");
        bob = makeAddr("bob");
        vm.warp(1_700_000_000);
    }

    function test_register_storesContentAndEmits() public {
        vm.expectEmit(address(registry));
        emit ContentRegistered(ROOT, alice, 10_000, MIB, 4096, "ipfs://m");
        vm.prank(alice);
        registry.register(ROOT, 10_000, MIB, 4096, "ipfs://m");

        ContentRegistry.Content memory c = registry.getContent(ROOT);
        assertEq(c.owner, alice, "owner");
        assertEq(c.size, 10_000, "size");
        assertEq(c.chunkSize, MIB, "chunk size");
        assertEq(c.segmentSize, 4096, "segment size");
        assertEq(c.registeredAt, 1_700_000_000, "registeredAt");
        assertEq(c.metadataURI, "ipfs://m", "uri");
        assertTrue(registry.isRegistered(ROOT), "registered");
        assertEq(registry.segmentCount(ROOT), 3, "ceil(10000/4096)");
        assertEq(registry.sizeOf(ROOT), 10_000, "sizeOf");
    }

    function test_register_acceptsEmptyContent() public {
        vm.prank(alice);
        registry.register(sha256(""), 0, MIB, 4096, "");
        assertEq(registry.segmentCount(sha256("")), 0, "no segments");
    }

    function testFuzz_segmentCount_isCeilOfSize(uint64 size) public {
        vm.prank(alice);
        registry.register(ROOT, size, MIB, 4096, "");
        uint256 n = registry.segmentCount(ROOT);
        assertGe(n * 4096, size, "covers the size");
        if (size > 0) assertLt((n - 1) * 4096, size, "no extra segment");
    }

    function testFuzz_register_acceptsEveryAllowedChunkSize(uint8 shift) public {
        uint32 chunk = uint32(1) << uint32(bound(shift, 18, 22));
        vm.prank(alice);
        registry.register(ROOT, 1, chunk, 4096, "");
        assertEq(registry.getContent(ROOT).chunkSize, chunk, "chunk size");
    }

    function testFuzz_RevertWhen_register_geometryInvalid(uint32 chunk, uint32 segment) public {
        bool chunkOk = chunk >= 1 << 18 && chunk <= 1 << 22 && chunk & (chunk - 1) == 0;
        vm.assume(!(chunkOk && segment == 4096));
        vm.expectRevert(
            abi.encodeWithSelector(ContentRegistry.InvalidGeometry.selector, uint64(1), chunk, segment)
        );
        registry.register(ROOT, 1, chunk, segment, "");
    }

    function test_RevertWhen_register_twice() public {
        vm.prank(alice);
        registry.register(ROOT, 1, MIB, 4096, "");
        vm.expectRevert(abi.encodeWithSelector(ContentRegistry.AlreadyRegistered.selector, ROOT));
        vm.prank(bob);
        registry.register(ROOT, 2, MIB, 4096, "");
    }

    function test_RevertWhen_getContent_unknown() public {
        vm.expectRevert(abi.encodeWithSelector(ContentRegistry.NotRegistered.selector, ROOT));
        registry.getContent(ROOT);
        vm.expectRevert(abi.encodeWithSelector(ContentRegistry.NotRegistered.selector, ROOT));
        registry.segmentCount(ROOT);
        assertFalse(registry.isRegistered(ROOT), "not registered");
    }

    function test_setMetadataURI_updatesAndEmits() public {
        vm.prank(alice);
        registry.register(ROOT, 1, MIB, 4096, "old");
        vm.expectEmit(address(registry));
        emit MetadataUpdated(ROOT, "new");
        vm.prank(alice);
        registry.setMetadataURI(ROOT, "new");
        assertEq(registry.getContent(ROOT).metadataURI, "new", "uri");
    }

    function test_RevertWhen_setMetadataURI_notOwner() public {
        vm.prank(alice);
        registry.register(ROOT, 1, MIB, 4096, "old");
        vm.expectRevert(abi.encodeWithSelector(ContentRegistry.NotContentOwner.selector, ROOT, bob));
        vm.prank(bob);
        registry.setMetadataURI(ROOT, "new");
    }

    function test_transferContentOwnership_movesOwner() public {
        vm.prank(alice);
        registry.register(ROOT, 1, MIB, 4096, "");
        vm.expectEmit(address(registry));
        emit ContentOwnershipTransferred(ROOT, alice, bob);
        vm.prank(alice);
        registry.transferContentOwnership(ROOT, bob);
        assertEq(registry.getContent(ROOT).owner, bob, "new owner");
        vm.expectRevert(abi.encodeWithSelector(ContentRegistry.NotContentOwner.selector, ROOT, alice));
        vm.prank(alice);
        registry.setMetadataURI(ROOT, "x");
    }

    function test_RevertWhen_transferContentOwnership_toZero() public {
        vm.prank(alice);
        registry.register(ROOT, 1, MIB, 4096, "");
        vm.expectRevert(ContentRegistry.ZeroAddress.selector);
        vm.prank(alice);
        registry.transferContentOwnership(ROOT, address(0));
    }

    function test_RevertWhen_transferContentOwnership_unknownRoot() public {
        vm.expectRevert(abi.encodeWithSelector(ContentRegistry.NotRegistered.selector, ROOT));
        registry.transferContentOwnership(ROOT, bob);
    }
}
