// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {MerkleTrees} from "./utils/MerkleTrees.sol";
import {ContentRegistry} from "../src/ContentRegistry.sol";

contract ContentRegistryTest is Fixture {
    function setUp() public {
        deployAll(defaultParams());
    }

    /// @dev A real content of `size` bytes with its RFC 6962 tree (reference builder).
    function _real(uint256 size, bytes32 salt)
        internal
        pure
        returns (bytes memory content, bytes32[] memory leaves, bytes32 root)
    {
        content = filled(size, salt);
        leaves = MerkleTrees.segmentLeaves(content);
        root = MerkleTrees.root(leaves);
    }

    function _reg(bytes32 root, uint64 size) internal pure returns (ContentRegistry.Registration memory) {
        return ContentRegistry.Registration({
            root: root,
            size: size,
            chunkSize: MIB,
            segmentSize: 4096,
            dataShards: 4,
            slotCount: 8,
            slotsRoot: keccak256("slots"),
            metadataURI: "ipfs://m"
        });
    }

    function test_register_storesProvenSizeAndLayout() public {
        (bytes memory content, bytes32[] memory leaves, bytes32 root) = _real(5 * 4096 + 100, "a");
        uint256 last = leaves.length - 1;
        registry.register(
            _reg(root, uint64(content.length)),
            MerkleTrees.segment(content, last),
            MerkleTrees.path(leaves, last)
        );
        ContentRegistry.Content memory c = registry.getContent(root);
        assertEq(c.owner, address(this), "owner");
        assertEq(c.size, content.length, "size");
        assertEq(c.slotsRoot, keccak256("slots"), "slotsRoot");
        (uint64 size, uint8 k, uint8 n, bytes32 slotsRoot, uint64 rows) = registry.layoutOf(root);
        assertEq(size, content.length, "layout size");
        assertEq(k, 4, "K");
        assertEq(n, 8, "N");
        assertEq(slotsRoot, keccak256("slots"), "layout slotsRoot");
        assertEq(rows, 2, "rows = ceil(6 segments / 4)");
        assertEq(registry.segmentCount(root), 6, "segments");
        (bool registered, uint64 s) = registry.registeredSize(root);
        assertTrue(registered && s == content.length, "registeredSize");
    }

    /// @dev Hole: anyone could register (or front-run) a root with a wrong size. Every size
    /// other than the true one fails with the true last segment and path, and with the proof of
    /// any other leaf.
    function testFuzz_RevertWhen_register_wrongSize(uint16 segs, uint64 wrong) public {
        uint256 size = bound(segs, 1, 5) * 4096 - 1000;
        (bytes memory content, bytes32[] memory leaves, bytes32 root) = _real(size, "fz");
        vm.assume(wrong != size && wrong != 0); // size 0 is judged by the empty-content rule
        uint256 last = leaves.length - 1;
        bytes memory seg = MerkleTrees.segment(content, last);
        bytes32[] memory path = MerkleTrees.path(leaves, last);
        vm.expectRevert(
            abi.encodeWithSelector(ContentRegistry.SizeProofInvalid.selector, root, wrong)
        );
        registry.register(_reg(root, wrong), seg, path);
        // The proof of an interior full segment claims a size that ends there: still invalid.
        if (last > 0) {
            uint256 i = uint256(wrong) % last;
            uint64 claimed = uint64((i + 1) * 4096);
            bytes memory s = MerkleTrees.segment(content, i);
            bytes32[] memory p = MerkleTrees.path(leaves, i);
            vm.expectRevert(
                abi.encodeWithSelector(ContentRegistry.SizeProofInvalid.selector, root, claimed)
            );
            registry.register(_reg(root, claimed), s, p);
        }
    }

    /// @dev Front-running: the attacker sees the honest registration in the mempool but cannot
    /// reuse its proof for another size; the honest one then lands.
    function test_register_frontRunWithWrongSizeImpossible() public {
        (bytes memory content, bytes32[] memory leaves, bytes32 root) = _real(3 * 4096 + 7, "fr");
        bytes memory seg = MerkleTrees.segment(content, 3);
        bytes32[] memory path = MerkleTrees.path(leaves, 3);
        address attacker = makeAddr("attacker");
        for (uint64 wrong = uint64(content.length) - 8; wrong < content.length + 4096; wrong += 511) {
            if (wrong == content.length) continue;
            vm.prank(attacker);
            vm.expectRevert(
                abi.encodeWithSelector(ContentRegistry.SizeProofInvalid.selector, root, wrong)
            );
            registry.register(_reg(root, wrong), seg, path);
        }
        registry.register(_reg(root, uint64(content.length)), seg, path);
        assertEq(registry.sizeOf(root), content.length, "true size registered");
    }

    function test_register_emptyContent() public {
        ContentRegistry.Registration memory reg = _reg(sha256(""), 0);
        reg.slotCount = 0;
        registry.register(reg, "", new bytes32[](0));
        assertEq(registry.sizeOf(sha256("")), 0, "size 0");
        (,,,, uint64 rows) = registry.layoutOf(sha256(""));
        assertEq(rows, 0, "no rows");
    }

    function test_RevertWhen_register_emptyWithSlotsOrWrongRoot() public {
        ContentRegistry.Registration memory reg = _reg(sha256(""), 0);
        vm.expectRevert(abi.encodeWithSelector(ContentRegistry.InvalidSlots.selector, 4, 8));
        registry.register(reg, "", new bytes32[](0));
        reg.slotCount = 0;
        reg.root = keccak256("x");
        vm.expectRevert(
            abi.encodeWithSelector(ContentRegistry.SizeProofInvalid.selector, reg.root, 0)
        );
        registry.register(reg, "", new bytes32[](0));
    }

    function test_RevertWhen_register_badGeometryOrSlots() public {
        (ContentRegistry.Registration memory reg, bytes memory last, bytes32[] memory proof) =
            sizedRegistration(10_000, 4, 8, bytes32(0), "g");
        reg.segmentSize = 1024;
        vm.expectRevert(
            abi.encodeWithSelector(ContentRegistry.InvalidGeometry.selector, 10_000, MIB, 1024)
        );
        registry.register(reg, last, proof);
        reg.segmentSize = 4096;
        reg.chunkSize = MIB + 1;
        vm.expectRevert(
            abi.encodeWithSelector(ContentRegistry.InvalidGeometry.selector, 10_000, MIB + 1, 4096)
        );
        registry.register(reg, last, proof);
        reg.chunkSize = MIB;
        uint8[4] memory ks = [0, 33, 4, 4];
        uint8[4] memory ns = [8, 8, 0, 65];
        for (uint256 i; i < 4; ++i) {
            reg.dataShards = ks[i];
            reg.slotCount = ns[i];
            vm.expectRevert(
                abi.encodeWithSelector(ContentRegistry.InvalidSlots.selector, ks[i], ns[i])
            );
            registry.register(reg, last, proof);
        }
        reg.dataShards = 32;
        reg.slotCount = 64;
        registry.register(reg, last, proof);
        vm.expectRevert(abi.encodeWithSelector(ContentRegistry.AlreadyRegistered.selector, reg.root));
        registry.register(reg, last, proof);
    }

    /// @dev The builder used by the other suites agrees with the reference tree.
    function testFuzz_sizedRegistration_matchesReferenceTree(uint64 size) public {
        size = uint64(bound(size, 1, 12 * 4096));
        (ContentRegistry.Registration memory reg, bytes memory last, bytes32[] memory proof) =
            sizedRegistration(size, 4, 8, bytes32(0), "ref");
        uint256 segs = (uint256(size) + 4095) / 4096;
        bytes32[] memory leaves = new bytes32[](segs);
        bytes32 fullLeaf = MerkleTrees.leaf(filled(4096, "ref"));
        for (uint256 i; i + 1 < segs; ++i) leaves[i] = fullLeaf;
        leaves[segs - 1] = MerkleTrees.leaf(last);
        assertEq(reg.root, MerkleTrees.root(leaves), "root");
        bytes32[] memory path = MerkleTrees.path(leaves, segs - 1);
        assertEq(path.length, proof.length, "path length");
        for (uint256 i; i < path.length; ++i) assertEq(path[i], proof[i], "path");
        registry.register(reg, last, proof);
    }

    function test_register_tebibyteSize() public {
        bytes32 root = registerSized(uint64(1) << 40, "tib");
        assertEq(registry.segmentCount(root), 1 << 28, "2^28 segments");
        (,,,, uint64 rows) = registry.layoutOf(root);
        assertEq(rows, 1 << 26, "rows with K = 4");
    }

    function test_ownerFunctions() public {
        bytes32 root = registerSized(5000, "o");
        address other = makeAddr("other");
        vm.prank(other);
        vm.expectRevert(
            abi.encodeWithSelector(ContentRegistry.NotContentOwner.selector, root, other)
        );
        registry.setMetadataURI(root, "x");
        registry.setMetadataURI(root, "ipfs://new");
        assertEq(registry.getContent(root).metadataURI, "ipfs://new", "uri");
        vm.expectRevert(ContentRegistry.ZeroAddress.selector);
        registry.transferContentOwnership(root, address(0));
        registry.transferContentOwnership(root, other);
        assertEq(registry.getContent(root).owner, other, "new owner");
        bytes32 unknown = keccak256("unknown");
        vm.expectRevert(abi.encodeWithSelector(ContentRegistry.NotRegistered.selector, unknown));
        registry.layoutOf(unknown);
    }
}
