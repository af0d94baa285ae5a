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
        registerAs(address(this), _reg(root, uint64(content.length)), spineProofOf(content, leaves));
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

    /// @dev Real contents of 1..20 segments: the reference spine proof verifies for the true
    /// size and for no other size in a window around it.
    /// forge-config: default.fuzz.runs = 200
    function testFuzz_sizeProof_trueSizeOnly(uint16 segs, uint16 tail, int16 delta) public view {
        uint256 size = (bound(segs, 1, 20) - 1) * 4096 + bound(tail, 1, 4096);
        (bytes memory content, bytes32[] memory leaves, bytes32 root) = _real(size, "sp");
        SizeProofData memory p = spineProofOf(content, leaves);
        assertTrue(registry.sizeProofValid(root, uint64(size), p.left, p.edges, p.last), "true");
        int256 other = int256(size) + int256(delta);
        vm.assume(other >= 0 && uint256(other) != size);
        assertFalse(
            registry.sizeProofValid(root, uint64(uint256(other)), p.left, p.edges, p.last), "other"
        );
    }

    /// @dev Hole (found while building slots): the last segment's audit path alone does not
    /// bind the size. A 2-segment content's path also verifies as "segment 3 of 3" (its one
    /// sibling, leaf 0, is read as a 2-leaf subtree). The spine proof makes the forger reveal a
    /// real leaf under that subtree, which it cannot.
    function test_sizeProof_lastPathAloneWasAmbiguous() public view {
        (bytes memory content, bytes32[] memory leaves, bytes32 root) = _real(2 * 4096, "amb");
        bytes32[] memory path = MerkleTrees.path(leaves, 1);
        // The old check: verifyInclusion(leaf(last), 2, 3, path) == root.
        assertEq(MerkleTrees.node(path[0], leaves[1]), root, "old proof reads as 3 leaves");
        SizeProofData memory forged;
        forged.left = new bytes[](1);
        forged.left[0] = MerkleTrees.segment(content, 0);
        forged.edges = new bytes32[](1);
        forged.edges[0] = leaves[1];
        forged.last = MerkleTrees.segment(content, 1);
        assertFalse(
            registry.sizeProofValid(root, 3 * 4096, forged.left, forged.edges, forged.last),
            "spine proof refuses 3 segments"
        );
        SizeProofData memory p = spineProofOf(content, leaves);
        assertTrue(registry.sizeProofValid(root, 2 * 4096, p.left, p.edges, p.last), "true size");
    }

    /// @dev Hole: anyone could register (or front-run) a root with a wrong size. No proof built
    /// from the true content's pieces registers another size.
    /// forge-config: default.fuzz.runs = 200
    function testFuzz_RevertWhen_register_wrongSize(uint16 segs, uint64 wrong) public {
        uint256 size = bound(segs, 1, 9) * 4096 - 1000;
        (bytes memory content, bytes32[] memory leaves, bytes32 root) = _real(size, "fz");
        vm.assume(wrong != size && wrong != 0); // size 0 is judged by the empty-content rule
        SizeProofData memory p = spineProofOf(content, leaves);
        ContentRegistry.Registration memory reg = _reg(root, wrong);
        registry.commitRegistration(registry.registrationCommitment(address(this), reg));
        vm.roll(block.number + 1);
        vm.expectRevert(
            abi.encodeWithSelector(ContentRegistry.SizeProofInvalid.selector, root, wrong)
        );
        registry.register(reg, p.left, p.edges, p.last);
    }

    /// @dev Front-running: an attacker who copies a pending registration (with its own slot
    /// layout) has no commitment from an earlier block, and a commitment made now is too late:
    /// the honest registration lands first.
    function test_register_frontRunImpossible() public {
        (bytes memory content, bytes32[] memory leaves, bytes32 root) = _real(3 * 4096 + 7, "fr");
        SizeProofData memory p = spineProofOf(content, leaves);
        ContentRegistry.Registration memory honest = _reg(root, uint64(content.length));
        registry.commitRegistration(registry.registrationCommitment(address(this), honest));
        vm.roll(block.number + 1);
        // The honest register is now in the mempool; the attacker copies it with bogus slots.
        address attacker = makeAddr("attacker");
        ContentRegistry.Registration memory bogus = _reg(root, uint64(content.length));
        bogus.slotsRoot = keccak256("bogus");
        bytes32 theirs = registry.registrationCommitment(attacker, bogus);
        vm.prank(attacker);
        vm.expectRevert(abi.encodeWithSelector(ContentRegistry.NotCommitted.selector, theirs));
        registry.register(bogus, p.left, p.edges, p.last);
        // Copying the honest layout verbatim does not help either: the commitment names the
        // registrant.
        bytes32 copied = registry.registrationCommitment(attacker, honest);
        vm.prank(attacker);
        vm.expectRevert(abi.encodeWithSelector(ContentRegistry.NotCommitted.selector, copied));
        registry.register(honest, p.left, p.edges, p.last);
        // A commitment in the same block as the register is too late.
        vm.prank(attacker);
        registry.commitRegistration(theirs);
        vm.prank(attacker);
        vm.expectRevert(abi.encodeWithSelector(ContentRegistry.NotCommitted.selector, theirs));
        registry.register(bogus, p.left, p.edges, p.last);
        registry.register(honest, p.left, p.edges, p.last);
        assertEq(registry.getContent(root).slotsRoot, keccak256("slots"), "honest layout");
        assertEq(registry.getContent(root).owner, address(this), "honest owner");
    }

    function test_register_emptyContent() public {
        ContentRegistry.Registration memory reg = _reg(sha256(""), 0);
        reg.slotCount = 0;
        SizeProofData memory none;
        registerAs(address(this), reg, none);
        assertEq(registry.sizeOf(sha256("")), 0, "size 0");
        (,,,, uint64 rows) = registry.layoutOf(sha256(""));
        assertEq(rows, 0, "no rows");
    }

    function test_RevertWhen_register_emptyWithSlotsOrWrongRoot() public {
        ContentRegistry.Registration memory reg = _reg(sha256(""), 0);
        vm.expectRevert(abi.encodeWithSelector(ContentRegistry.InvalidSlots.selector, 4, 8));
        registry.register(reg, new bytes[](0), new bytes32[](0), "");
        reg.slotCount = 0;
        reg.root = keccak256("x");
        registry.commitRegistration(registry.registrationCommitment(address(this), reg));
        vm.roll(block.number + 1);
        vm.expectRevert(
            abi.encodeWithSelector(ContentRegistry.SizeProofInvalid.selector, reg.root, 0)
        );
        registry.register(reg, new bytes[](0), new bytes32[](0), "");
    }

    function test_RevertWhen_register_badGeometryOrSlots() public {
        (ContentRegistry.Registration memory reg, SizeProofData memory p) =
            sizedRegistration(10_000, 4, 8, bytes32(0), "g");
        reg.segmentSize = 1024;
        vm.expectRevert(
            abi.encodeWithSelector(ContentRegistry.InvalidGeometry.selector, 10_000, MIB, 1024)
        );
        registry.register(reg, p.left, p.edges, p.last);
        reg.segmentSize = 4096;
        reg.chunkSize = MIB + 1;
        vm.expectRevert(
            abi.encodeWithSelector(ContentRegistry.InvalidGeometry.selector, 10_000, MIB + 1, 4096)
        );
        registry.register(reg, p.left, p.edges, p.last);
        reg.chunkSize = MIB;
        // K = 0 or 1 (K = 1 makes every slot a plain copy), K > 32, N < K, N > 64.
        uint8[6] memory ks = [0, 1, 33, 4, 4, 8];
        uint8[6] memory ns = [8, 8, 40, 0, 65, 7];
        for (uint256 i; i < ks.length; ++i) {
            reg.dataShards = ks[i];
            reg.slotCount = ns[i];
            vm.expectRevert(
                abi.encodeWithSelector(ContentRegistry.InvalidSlots.selector, ks[i], ns[i])
            );
            registry.register(reg, p.left, p.edges, p.last);
        }
        reg.dataShards = 32;
        reg.slotCount = 64;
        vm.expectRevert(
            abi.encodeWithSelector(
                ContentRegistry.NotCommitted.selector,
                registry.registrationCommitment(address(this), reg)
            )
        );
        registry.register(reg, p.left, p.edges, p.last);
        registerAs(address(this), reg, p);
        vm.expectRevert(abi.encodeWithSelector(ContentRegistry.AlreadyRegistered.selector, reg.root));
        registry.register(reg, p.left, p.edges, p.last);
    }

    /// @dev The builder used by the other suites agrees with the reference tree and the
    /// reference spine builder.
    /// forge-config: default.fuzz.runs = 100
    function testFuzz_sizedRegistration_matchesReferenceTree(uint64 size) public {
        size = uint64(bound(size, 1, 20 * 4096));
        (ContentRegistry.Registration memory reg, SizeProofData memory p) =
            sizedRegistration(size, 4, 8, bytes32(0), "ref");
        uint256 segs = (uint256(size) + 4095) / 4096;
        bytes memory content = new bytes(size);
        bytes memory full = filled(4096, "ref");
        for (uint256 i; i + 1 < segs; ++i) {
            for (uint256 b; b < 4096; ++b) content[i * 4096 + b] = full[b];
        }
        for (uint256 b; b < p.last.length; ++b) content[(segs - 1) * 4096 + b] = p.last[b];
        bytes32[] memory leaves = MerkleTrees.segmentLeaves(content);
        assertEq(reg.root, MerkleTrees.root(leaves), "root");
        SizeProofData memory q = spineProofOf(content, leaves);
        assertEq(p.left.length, q.left.length, "segments");
        assertEq(p.edges.length, q.edges.length, "edges");
        for (uint256 i; i < p.edges.length; ++i) assertEq(p.edges[i], q.edges[i], "edge");
        registerAs(address(this), reg, p);
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
