"""Content-addressed chunk store: chunk files on disk, a LevelDB index, quota, pins, GC.

Layout of the package (see docs/store.md for the on-disk format and the crash-safety argument):

- ``_store``    :class:`Store`: open/close, reads, pins, listing, stats (the public face)
- ``_add``      adding a file: read, hash in worker threads, write, index in batches
- ``_partial``  partial content for the transfer engine: begin, put_chunk, missing_chunks
- ``_delta``    delta fill: missing chunks of a partial content taken from held chunks
- ``_maint``    jobs, removal, LRU eviction, gc, the recovery pass, verify
- ``_slots``    :class:`SlotStore`: erasure-coded slots a host keeps and proves from
- ``_files``    chunk files (atomic write, read, sweep); ``_index``: LevelDB key schema
- ``_cache``    the memory tier: a SIEVE cache of verified chunks keyed by chunk root
- ``_tier``     the cold tier: crash-safe moves between two directories, sweep, the mover
- ``_records``  persisted records and returned reports; ``_errors``: the error tree

Typical use::

    with Store.open(data_dir / "store", quota=50 << 30) as store:
        manifest = store.add_file("model.bin", pin=True)
        for chunk in store.iter_verified(manifest.root):
            ...
"""

from ._delta import AdoptReport as AdoptReport
from ._errors import ChunkMismatch as ChunkMismatch
from ._errors import CorruptChunk as CorruptChunk
from ._errors import CorruptStoredChunk as CorruptStoredChunk
from ._errors import IncompleteContent as IncompleteContent
from ._errors import InvalidChunkRoots as InvalidChunkRoots
from ._errors import NotFound as NotFound
from ._errors import NotLinkable as NotLinkable
from ._errors import StoreCorrupt as StoreCorrupt
from ._errors import StoreError as StoreError
from ._errors import StoreFull as StoreFull
from ._errors import StoreLocked as StoreLocked
from ._errors import WouldBlock as WouldBlock
from ._links import LinkedFile as LinkedFile
from ._links import LinkTarget as LinkTarget
from ._partial import PartialWriter as PartialWriter
from ._partial import PutResult as PutResult
from ._records import ContentInfo as ContentInfo
from ._records import EvictReport as EvictReport
from ._records import GcReport as GcReport
from ._records import State as State
from ._records import StoreStats as StoreStats
from ._records import VerifyReport as VerifyReport
from ._slots import CorruptSlot as CorruptSlot
from ._slots import SlotError as SlotError
from ._slots import SlotInfo as SlotInfo
from ._slots import SlotMismatch as SlotMismatch
from ._slots import SlotMissing as SlotMissing
from ._slots import SlotStore as SlotStore
from ._store import ProgressCallback as ProgressCallback
from ._store import Store as Store

__all__ = [
    "AdoptReport",
    "ChunkMismatch",
    "ContentInfo",
    "CorruptChunk",
    "CorruptSlot",
    "CorruptStoredChunk",
    "EvictReport",
    "GcReport",
    "IncompleteContent",
    "InvalidChunkRoots",
    "LinkTarget",
    "LinkedFile",
    "NotFound",
    "NotLinkable",
    "PartialWriter",
    "ProgressCallback",
    "PutResult",
    "SlotError",
    "SlotInfo",
    "SlotMismatch",
    "SlotMissing",
    "SlotStore",
    "State",
    "Store",
    "StoreCorrupt",
    "StoreError",
    "StoreFull",
    "StoreLocked",
    "StoreStats",
    "VerifyReport",
    "WouldBlock",
]
