"""Chain duties that need local content: answering a data-availability challenge from the store.

Kept free of web3 calls itself: it builds ``(segment, proof)`` from anything that looks like
``node.store.Store`` and hands them to a ``ChainPort``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from node.content import SEGMENT_SIZE, Manifest, segment_proof

from .client import Challenge
from .port import ChainPort
from .tx import TxResult

__all__ = ["ContentSource", "answer_challenge", "challenge_answer"]


class ContentSource(Protocol):
    def get_manifest(self, root: bytes) -> Manifest: ...

    def chunk_roots(self, root: bytes, start: int = 0, stop: int | None = None) -> Any: ...

    def read_chunk(self, root: bytes, index: int, *, verify: bool = True) -> bytes: ...


def challenge_answer(
    store: ContentSource, root: bytes, segment_index: int
) -> tuple[bytes, list[bytes]]:
    """The segment ``segment_index`` of ``root`` and its audit path to the content root."""
    manifest = store.get_manifest(root)
    per_chunk = manifest.chunk_size // SEGMENT_SIZE
    chunk_index, in_chunk = divmod(segment_index, per_chunk)
    chunk = store.read_chunk(root, chunk_index)
    roots: Sequence[bytes] = list(store.chunk_roots(root))
    proof = segment_proof(roots, manifest.chunk_size, chunk, chunk_index, in_chunk)
    segment = bytes(chunk[in_chunk * SEGMENT_SIZE : (in_chunk + 1) * SEGMENT_SIZE])
    return segment, proof


def answer_challenge(port: ChainPort, store: ContentSource, challenge: Challenge) -> TxResult:
    """Answer ``challenge`` with data from ``store`` (raises the store's errors if it lacks it)."""
    segment, proof = challenge_answer(store, challenge.root, challenge.segment_index)
    return port.respond(challenge.id, segment, proof)
