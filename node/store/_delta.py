"""Delta fill: take the chunks a partial content needs from chunks the store already holds.

Chunk files are named by their chunk root, so a chunk that any stored content references is
the same bytes whatever content it came from. A node that holds version 1 of a model and
starts fetching version 2 therefore already has every chunk the two share: :func:`adopt_held`
turns each missing index of the partial content whose chunk root is *held* (refcount > 0) into
a present one without copying a byte. Adoption is an index update only, the same batch a
received chunk gets (presence bit, refcount + 1, ``present``, and ``complete`` with the last
bit), so nothing here needs a crash argument of its own:

- A held chunk's file is committed and durable: its first reference was taken by a batch that
  ran after the file's ``fdatasync`` (docs/store.md, "Writing"). Adoption writes no file.
- "Held" is checked again under the index lock, in the batch that takes the new reference
  (``_partial._commit(held_only=True)``); a removal deletes a file only after re-checking,
  under the same lock, that no reference is left, so it cannot delete a file we just took.
- A crash before the batch: nothing happened (the index is as before; the chunks are still
  missing, and the next fetch adopts them again). After it: they are present and referenced.

``verify=True`` (the default) reads and hashes each candidate file before adopting it, in
worker threads, so a chunk damaged on disk is fetched from the network instead of copied into
the new content (its damage is logged; ``bcai verify`` of the content it came from names it).
Chunk roots quarantined in any content are never adopted. ``verify=False`` trusts the files,
as the add and put paths' deduplication do (``ChunkFiles.exists_with_size``).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from node.content import chunk_root, root_hex
from node.log import get_logger

from . import _partial
from ._index import QUARANTINE, iter_prefix, ref_key, unpack_ref
from ._records import State

if TYPE_CHECKING:
    from ._store import Store

log = get_logger(__name__)

#: Missing indices looked at per round (one index batch per round).
ADOPT_GROUP = 1024


@dataclass(frozen=True)
class AdoptReport:
    """What :meth:`Store.adopt_held` did for one content."""

    chunks: int = 0  #: chunks made present from held chunks
    bytes: int = 0  #: their bytes (content bytes that need not cross the wire)
    damaged: int = 0  #: held files that failed verification (left missing: fetched instead)


def holds_chunk(store: Store, chunk_root_: bytes, length: int | None = None) -> bool:
    """True if some stored content references a chunk with this chunk root (and length).

    Such a chunk's file is committed and durable. Unverified: see :func:`adopt_held`.
    """
    store._check_open()
    value = store._db.get(ref_key(chunk_root_))
    if value is None:
        return False
    return length is None or unpack_ref(value)[1] == length


def _quarantined_chunk_roots(store: Store) -> set[bytes]:
    return {bytes(v) for _, v in iter_prefix(store._db, QUARANTINE)}


def _candidates(store: Store, root: bytes, start: int) -> Iterator[tuple[int, bytes, int]]:
    """``(index, chunk root, length)`` of the missing chunks of ``root`` that are held."""
    rec = store._require(root)
    m = rec.manifest
    bad = _quarantined_chunk_roots(store)
    for index in _partial.missing_chunks(store, root, start):
        cr = store._chunk_root_of(rec, index)
        n = m.chunk_length(index)
        if cr not in bad and holds_chunk(store, cr, n):
            yield index, cr, n


def adopt_held(
    store: Store, root: bytes, *, verify: bool = True, group: int = ADOPT_GROUP
) -> AdoptReport:
    """Make every missing chunk of partial ``root`` whose chunk root is held present.

    See the module docstring. Returns what was adopted; the content becomes complete if that
    was the last of it. Raises :class:`NotFound` for an unknown root.
    """
    rec = store._require(root)
    if rec.state is State.COMPLETE:
        return AdoptReport()
    chunks = nbytes = damaged = 0
    pool = ThreadPoolExecutor(store.workers, "store-delta") if verify else None
    try:
        found = _candidates(store, root, 0)
        while True:
            items = [item for _, item in zip(range(group), found, strict=False)]
            if not items:
                break
            if pool is not None:
                ok = list(pool.map(lambda it: _file_ok(store, it[1], it[2]), items))
                for (index, _cr, _n), good in zip(items, ok, strict=True):
                    if not good:
                        damaged += 1
                        log.warning(
                            "held chunk damaged on disk: fetched instead",
                            root=root_hex(root),
                            index=index,
                        )
                items = [it for it, good in zip(items, ok, strict=True) if good]
            taken: list[tuple[int, bytes, int]] = []
            if items:
                _partial._commit(store, root, items, held_only=True, taken=taken)
            chunks += len(taken)
            nbytes += sum(n for _, _, n in taken)
    finally:
        if pool is not None:
            pool.shutdown()
    if chunks:
        store._touch(root)
        log.info(
            "delta: chunks taken from held content",
            root=root_hex(root),
            chunks=chunks,
            bytes=nbytes,
            damaged=damaged,
        )
    return AdoptReport(chunks, nbytes, damaged)


def _file_ok(store: Store, cr: bytes, length: int) -> bool:
    """The chunk's file (either disk tier; the memory tier is not consulted) hashes right."""
    data, _cold = store._files.read_tier(cr, length)
    return data is not None and len(data) == length and chunk_root(data) == cr
