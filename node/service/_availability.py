"""A content segment and its audit path against the content root, from the local store.

Challenges sample a host's *slot* (answered by ``node.store.SlotStore.prove``); this is what a
host that kept only the content (or fetches it on challenge) can produce instead: a proof
against the content root, which the contract rejects as deletion evidence. The demo's
outsourcing host uses it to show exactly that. The path is the segment's path inside its chunk,
followed by the chunk's path in the chunk-root tree, streamed from the index so a terabyte root
(a million chunk roots) needs O(log n) memory.
"""

from __future__ import annotations

from node.content import (
    SEGMENT_SIZE,
    inclusion_proof,
    inclusion_proof_from_ranges,
    leaf_hash,
    segment_leaf_hashes,
    verify_inclusion,
)
from node.store import Store


def prove_segment(store: Store, root: bytes, segment_index: int) -> tuple[bytes, list[bytes]]:
    """Return ``(segment, audit_path)`` for ``segment_index`` of ``root``.

    Raises the store's ``NotFound`` when the content or the chunk is missing, and
    ``CorruptStoredChunk`` when the chunk on disk is damaged: a host that cannot prove must not
    send a wrong answer (the contract slashes wrong answers just like missed ones).
    """
    manifest = store.get_manifest(root)
    per_chunk = manifest.chunk_size // SEGMENT_SIZE
    chunk_index, seg_in_chunk = divmod(segment_index, per_chunk)
    chunk = store.read_chunk(root, chunk_index, verify=True)
    off = seg_in_chunk * SEGMENT_SIZE
    segment = bytes(chunk[off : off + SEGMENT_SIZE])
    inner = inclusion_proof(segment_leaf_hashes(chunk), seg_in_chunk)
    outer = inclusion_proof_from_ranges(
        lambda lo, hi: store.chunk_roots(root, lo, hi), manifest.chunk_count, chunk_index
    )
    proof = inner + outer
    # Check before sending: a wrong answer costs stake.
    verify_inclusion(leaf_hash(segment), segment_index, manifest.segment_count, proof, root)
    return segment, proof
