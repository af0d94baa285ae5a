"""Content addressing: 4 KiB segments, the RFC 6962 SHA-256 tree, chunk roots, manifests, slots.

Pure functions and small state machines; no I/O except :func:`hash_file`, which only reads.
See docs/content-addressing.md for the tree with a worked example.
"""

from ._errors import ContentError as ContentError
from ._errors import InvalidGeometry as InvalidGeometry
from ._errors import InvalidManifest as InvalidManifest
from ._errors import InvalidProof as InvalidProof
from ._manifest import MANIFEST_VERSION as MANIFEST_VERSION
from ._manifest import MAX_MANIFEST_BYTES as MAX_MANIFEST_BYTES
from ._manifest import Manifest as Manifest
from ._manifest import parse_root as parse_root
from ._manifest import root_hex as root_hex
from ._sizeproof import SizeProof as SizeProof
from ._sizeproof import SizeProofError as SizeProofError
from ._sizeproof import size_proof as size_proof
from ._sizeproof import size_proof_root as size_proof_root
from ._sizeproof import size_proof_shape as size_proof_shape
from ._sizeproof import verify_size_proof as verify_size_proof
from ._slots import BATCH_BUDGET as BATCH_BUDGET
from ._slots import DEFAULT_DATA_SHARDS as DEFAULT_DATA_SHARDS
from ._slots import DEFAULT_SLOT_COUNT as DEFAULT_SLOT_COUNT
from ._slots import MAX_DATA_SHARDS as MAX_DATA_SHARDS
from ._slots import MAX_SLOT_COUNT as MAX_SLOT_COUNT
from ._slots import ReadFn as ReadFn
from ._slots import SlotError as SlotError
from ._slots import SlotLayout as SlotLayout
from ._slots import SlotLayoutError as SlotLayoutError
from ._slots import SlotReadError as SlotReadError
from ._slots import draw_sample_indices as draw_sample_indices
from ._slots import encode_slot as encode_slot
from ._slots import encode_slot_roots as encode_slot_roots
from ._slots import encode_slots as encode_slots
from ._slots import iter_slot_batches as iter_slot_batches
from ._slots import iter_slot_segments as iter_slot_segments
from ._slots import slot_root_proof as slot_root_proof
from ._slots import slots_proof as slots_proof
from ._slots import slots_root_of as slots_root_of
from ._stream import ChunkedHasher as ChunkedHasher
from ._stream import HashResult as HashResult
from ._stream import StreamingTreeHasher as StreamingTreeHasher
from ._stream import hash_file as hash_file
from ._stream import read_full as read_full
from ._tree import DEFAULT_CHUNK_SIZE as DEFAULT_CHUNK_SIZE
from ._tree import EMPTY_ROOT as EMPTY_ROOT
from ._tree import HASH_SIZE as HASH_SIZE
from ._tree import MAX_CHUNK_SIZE as MAX_CHUNK_SIZE
from ._tree import MIN_CHUNK_SIZE as MIN_CHUNK_SIZE
from ._tree import SEGMENT_SIZE as SEGMENT_SIZE
from ._tree import check_chunk_size as check_chunk_size
from ._tree import check_segment as check_segment
from ._tree import chunk_count as chunk_count
from ._tree import chunk_root as chunk_root
from ._tree import inclusion_proof as inclusion_proof
from ._tree import inclusion_proof_from_ranges as inclusion_proof_from_ranges
from ._tree import leaf_hash as leaf_hash
from ._tree import merkle_root as merkle_root
from ._tree import node_hash as node_hash
from ._tree import root_from_inclusion as root_from_inclusion
from ._tree import root_from_subtrees as root_from_subtrees
from ._tree import segment_count as segment_count
from ._tree import segment_leaf_hashes as segment_leaf_hashes
from ._tree import segment_proof as segment_proof
from ._tree import tree_hash as tree_hash
from ._tree import verify_inclusion as verify_inclusion
