"""The :class:`Store`: open/close, records, reads, pins, listing. Writers live next door.

Thread-safety: one :class:`Store` may be used from several threads (the transfer engine runs it
through ``trio.to_thread``). Index read-modify-write sequences hold ``_lock``; hashing, chunk
file I/O and verification run outside it. One process per store: LevelDB's lock file enforces
it and a second opener gets :class:`StoreLocked`.
"""

from __future__ import annotations

import collections
import contextlib
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

import plyvel

from node.content import (
    DEFAULT_CHUNK_SIZE,
    Manifest,
    StreamingTreeHasher,
    auto_chunk_size,
    chunk_root,
    root_hex,
)
from node.log import get_logger

from . import _add, _delta, _maint, _partial, _tier
from ._cache import CacheObserver, ChunkCache
from ._errors import (
    CorruptStoredChunk,
    IncompleteContent,
    NotFound,
    NotLinkable,
    StoreCorrupt,
    StoreError,
)
from ._files import ChunkFiles
from ._index import (
    ACCESS,
    CONTENT,
    META,
    access_key,
    content_key,
    dumps,
    get_meta_int,
    iter_prefix,
    loads,
    open_db,
    pack_time,
    ref_key,
    roots_key,
    roots_prefix,
    u64,
    unpack_time,
)
from ._links import LinkedFile, Links, LinkTarget
from ._partial import CopyTarget, PartialWriter, PutResult
from ._records import (
    ContentInfo,
    ContentRecord,
    EvictReport,
    GcReport,
    State,
    StoreStats,
    VerifyReport,
)

log = get_logger(__name__)

ProgressCallback = Callable[[int], None]
"""Called with the number of bytes consumed so far (from the calling thread)."""

_ACCESS_WRITE_INTERVAL = 1.0  # seconds between persisted last-access updates per root


PARSED_RECORDS = 256
"""Parsed content records kept by :meth:`Store._record` (FIFO)."""


class Store:
    """A content-addressed chunk store with a LevelDB index. Open with :meth:`open`.

    ``path`` is the store directory (the CLI uses ``<data dir>/store``); it holds ``index/``
    (LevelDB), ``chunks/`` and ``tmp/``. ``quota`` (bytes, ``None`` for no limit) bounds the
    deduplicated chunk bytes of unpinned content: :meth:`evict_to_quota` removes least recently
    used unpinned content until the store fits, and :meth:`add_file` calls it after each add.
    ``durable=False`` skips every fsync (tests and throw-away caches only).

    Tiers (docs/store.md, "Tiers"): ``memory_cache`` (bytes, 0: off) keeps verified chunks in
    memory ahead of the disk (:class:`~node.store._cache.ChunkCache`; ``cache_observer`` is
    told of every hit and miss); ``cold_dir`` adds a cold tier on another directory, and
    ``hot_limit`` bounds the bytes kept in the hot one (least recently used content is demoted,
    chunks read cold are promoted back).

    ``add_cached`` (bytes): each added content's first ``add_cached`` bytes are written through
    the page cache, so a node that serves what it just added reads it from memory; the rest
    (and every chunk a fetch writes) goes to the disk with ``O_DIRECT``, leaving no page cache
    behind. 0 (the default here; the node's config sets 256 MiB): all ``O_DIRECT``.
    """

    def __init__(
        self,
        path: Path,
        *,
        quota: int | None,
        durable: bool,
        workers: int,
        memory_cache: int = 0,
        cold_dir: Path | None = None,
        hot_limit: int | None = None,
        cache_observer: CacheObserver | None = None,
        add_cached: int = 0,
    ) -> None:
        self.path = path
        self.quota = quota
        self.add_cached = max(0, add_cached)
        self.workers = max(1, workers)
        self.hot_limit = hot_limit
        self._cache = ChunkCache(memory_cache, cache_observer) if memory_cache > 0 else None
        #: moves between the tiers (``demoted``, ``promoted``) since open
        self.tier_counts: collections.Counter[str] = collections.Counter()
        self._tier_lock = threading.Lock()
        self._mover: _tier.TierMover | None = None
        self._lock = threading.RLock()
        self._inflight: collections.Counter[bytes] = collections.Counter()
        self._access: dict[bytes, float] = {}  # in-process last access (exact LRU order)
        self._access_written: dict[bytes, float] = {}
        self._quarantined: set[tuple[bytes, int]] = set()
        #: chunk files a PartialWriter wrote but has not committed (swept at close if orphaned)
        self._uncommitted: set[bytes] = set()
        #: root -> (the record's stored bytes, the record parsed from them): every chunk read
        #: and write looks the record up; parsing its JSON each time was 2-10 % of a serving
        #: node's CPU. Keyed by the bytes themselves, so a changed record is simply re-parsed.
        self._parsed: dict[bytes, tuple[bytes, ContentRecord]] = {}
        self._closed = False
        path.mkdir(parents=True, exist_ok=True)
        self._db: plyvel.DB = open_db(path / "index")
        try:
            cold_dir = self._resolve_cold_dir(cold_dir)
            if hot_limit is not None and cold_dir is None:
                raise ValueError("hot_limit needs a cold tier (cold_dir)")
            self._files = ChunkFiles(path, durable=durable, cold_dir=cold_dir)
            self._files.links = self._links = Links(self._db, durable=durable)
            _maint.recover(self)
            self._quarantined = _maint.load_quarantine(self)
            if cold_dir is not None:
                self._mover = _tier.TierMover(self)
        except BaseException:
            self._db.close()
            raise

    def _resolve_cold_dir(self, cold_dir: Path | None) -> Path | None:
        """The cold tier's directory: as given (and then recorded in the index), else recorded.

        Recording it makes the store self-describing: a command that opens the store without
        the config (``verify``, ``gc``) still finds the chunks in the cold tier.
        """
        recorded_raw = self._db.get(META + b"cold_dir")
        recorded = Path(recorded_raw.decode()) if recorded_raw else None
        if cold_dir is None:
            return recorded
        cold_dir = Path(cold_dir).absolute()
        if cold_dir != recorded:
            if recorded is not None:
                log.warning("cold tier directory changed", old=str(recorded), new=str(cold_dir))
            self._db.put(META + b"cold_dir", str(cold_dir).encode(), sync=True)
        return cold_dir

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        quota: int | None = None,
        durable: bool = True,
        workers: int = 4,
        memory_cache: int = 0,
        cold_dir: str | os.PathLike[str] | None = None,
        hot_limit: int | None = None,
        cache_observer: CacheObserver | None = None,
        add_cached: int = 0,
    ) -> Store:
        """Open (creating if needed) the store at ``path`` and run the recovery pass.

        ``memory_cache``, ``cold_dir``, ``hot_limit``, ``cache_observer`` and ``add_cached``: see
        :class:`Store`. Raises :class:`StoreLocked` when another process has it open.
        """
        return cls(
            Path(path),
            quota=quota,
            durable=durable,
            workers=workers,
            memory_cache=memory_cache,
            cold_dir=None if cold_dir is None else Path(cold_dir),
            hot_limit=hot_limit,
            cache_observer=cache_observer,
            add_cached=add_cached,
        )

    def close(self) -> None:
        """Mark a clean shutdown and close the index. Idempotent."""
        if self._closed:
            return
        if self._mover is not None:
            self._mover.stop()
        with self._lock:
            try:
                self._sweep_uncommitted()
            finally:
                self._closed = True
            try:
                self._flush_access()
                self._db.put(META + b"open", u64(0), sync=True)
            finally:
                self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def durable(self) -> bool:
        """False when opened with ``durable=False`` (no fsync of files or index batches)."""
        return self._files.durable

    # -- adding ----------------------------------------------------------------------------

    def add_file(
        self,
        source: str | os.PathLike[str] | BinaryIO,
        *,
        name: str | None = None,
        media_type: str = "application/octet-stream",
        chunk_size: int | None = None,
        pin: bool = False,
        progress_cb: ProgressCallback | None = None,
        link: bool = False,
    ) -> Manifest:
        """Add a file (a path, or a binary stream such as stdin) and return its manifest.

        Streams: memory stays bounded by a few chunks whatever the size. Chunks are hashed in
        a thread pool while this thread reads; identical chunks are stored once. If the content
        is already complete in the store, the stored manifest is returned (and pinned if asked).
        ``link`` (a path to a regular file): the store links to the file's chunks instead of
        copying them (``_links``; the file must then stay as it is). ``chunk_size`` ``None``:
        :func:`~node.content.auto_chunk_size` of a regular file's size, else the default.
        """
        if isinstance(source, (str, os.PathLike)):
            p = Path(source)
            if link and not stat.S_ISREG(os.stat(p).st_mode):  # (a FIFO's open would block)
                raise NotLinkable(f"--link needs a regular file: {p} is not one")
            with open(p, "rb", buffering=0) as f:
                linked = None
                if link:
                    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                        raise NotLinkable(f"--link needs a regular file: {p} is not one")
                    linked = self._links.register(f.fileno(), p)
                try:
                    return _add.ingest(
                        self,
                        f,
                        name=p.name if name is None else name,
                        media_type=media_type,
                        chunk_size=_chunk_size_for(f, chunk_size),
                        pin=pin,
                        progress_cb=progress_cb,
                        link=linked,
                    )
                finally:
                    if linked is not None:
                        self._links.release(linked.file_id)
        if link:
            raise NotLinkable("--link needs a file path, not a stream")
        return _add.ingest(
            self,
            source,
            name=name or "",
            media_type=media_type,
            chunk_size=_chunk_size_for(source, chunk_size),
            pin=pin,
            progress_cb=progress_cb,
        )

    def add_bytes(
        self,
        data: bytes | bytearray | memoryview,
        *,
        name: str = "",
        media_type: str = "application/octet-stream",
        chunk_size: int | None = None,
        pin: bool = False,
    ) -> Manifest:
        """Add in-memory bytes (small content; tests). Same result as :meth:`add_file`."""
        import io

        return _add.ingest(
            self,
            io.BytesIO(bytes(data)),
            name=name,
            media_type=media_type,
            chunk_size=auto_chunk_size(len(data)) if chunk_size is None else chunk_size,
            pin=pin,
            progress_cb=None,
        )

    # -- partial content (the transfer engine's side) --------------------------------------

    def begin_partial(self, manifest: Manifest, chunk_roots: Iterable[bytes]) -> ContentInfo:
        """Record content we are about to receive: its manifest and chunk-root list.

        The list is streamed into the index while it is checked to hash to ``manifest.root``
        (and to have ``manifest.chunk_count`` entries); on mismatch nothing is kept and
        :class:`InvalidChunkRoots` is raised. If the root is already known (partial or
        complete) this is a no-op and ``chunk_roots`` is not consumed: resume with
        :meth:`missing_chunks`.
        """
        return _partial.begin(self, manifest, chunk_roots)

    def put_chunk(self, root: bytes, index: int, data: bytes | bytearray | memoryview) -> bool:
        """Verify chunk ``index`` against its chunk root, then store it durably.

        Returns ``True`` if stored now, ``False`` if it was already present. Raises
        :class:`ChunkMismatch` (wrong bytes, wrong length or index out of range: the sender's
        fault) before anything is written, :class:`NotFound` if :meth:`begin_partial` was not
        called, :class:`StoreFull` if the disk is full. When the last chunk arrives the
        content becomes complete.
        """
        return _partial.put_chunk(self, root, index, data)

    def put_chunks(
        self, root: bytes, chunks: Iterable[tuple[int, bytes | bytearray | memoryview]]
    ) -> list[PutResult]:
        """Verify and store many chunks of ``root`` with one group commit; one result each.

        Each chunk is checked against its chunk root before its file is written; a mismatch
        is reported in its :class:`PutResult` (``error``) and does not stop the others. Then
        one ``fdatasync`` pass over the written files and ONE index batch make them present.
        """
        return _partial.put_chunks(self, root, chunks)

    def partial_writer(
        self,
        root: bytes,
        *,
        group_bytes: int = _partial.GROUP_BYTES,
        group_seconds: float = _partial.GROUP_SECONDS,
        link: LinkTarget | None = None,
        copy: CopyTarget | None = None,
    ) -> PartialWriter:
        """A thread-safe group-commit writer for ``root`` (see :class:`PartialWriter`).

        The transfer engine puts chunks as they arrive and the writer commits them every
        ``group_bytes`` or ``group_seconds``; a crash loses at most the uncommitted group.
        With ``link`` (a file registered with :meth:`link_file`), each verified chunk is
        written into that file only and the store links to it instead of keeping a chunk
        file of its own (``_links``: ``bcai get -o FILE --link``). With ``copy`` instead, each
        chunk the writer takes is also written there (``bcai get -o FILE``).
        """
        return _partial.PartialWriter(
            self,
            root,
            group_bytes=group_bytes,
            group_seconds=group_seconds,
            link=link,
            copy=copy,
        )

    def link_file(self, fd: int, path: str | os.PathLike[str]) -> LinkedFile:
        """Register the open regular file ``fd`` at ``path`` as a target for linked chunks."""
        self._check_open()
        return self._links.register(fd, Path(path))

    def link_moved(self, linked: LinkedFile, path: str | os.PathLike[str]) -> LinkedFile:
        """A linked file was renamed to ``path`` (the same inode); later reads look there."""
        self._check_open()
        return self._links.moved(linked, Path(path))

    def linked_file_at(self, path: str | os.PathLike[str]) -> LinkedFile | None:
        """The linked file now at ``path`` (never to be replaced: links point at its inode)."""
        return self._links.file_at(Path(path))

    def is_linked_at(self, root: bytes, index: int, linked: LinkedFile) -> bool:
        """Chunk ``index`` of ``root`` lives in ``linked`` at its own offset (no copy needed)."""
        rec = self._require(root)
        at = self._links.link_of(self._chunk_root_of(rec, index))
        return at == (linked.file_id, index * rec.manifest.chunk_size)

    def link_done(self, linked: LinkedFile) -> None:
        """No more chunks will be linked into ``linked`` by this process (``gc`` may forget
        its record once no link uses it)."""
        self._links.release(linked.file_id)

    def holds_chunk(self, chunk_root_: bytes, length: int | None = None) -> bool:
        """True if stored content (any root) references a chunk with this chunk root.

        Such a chunk's file is committed and durable; ``length`` also checks its length.
        """
        return _delta.holds_chunk(self, chunk_root_, length)

    def adopt_held(self, root: bytes, *, verify: bool = True) -> _delta.AdoptReport:
        """Delta fill: make every missing chunk of partial ``root`` that the store already
        holds (same chunk root, from any content) present, by reference, without a copy.

        An index update per group of 1024 chunks (presence bits and refcounts, one atomic
        batch, as for received chunks); with ``verify`` each held file is read and hashed
        first and a damaged one is left missing (fetched instead). Returns an
        :class:`~node.store.AdoptReport`; docs/store.md, "Delta fill".
        """
        return _delta.adopt_held(self, root, verify=verify)

    def missing_chunks(self, root: bytes, start: int = 0) -> Iterator[int]:
        """Indices of chunks not yet present, ascending, from ``start`` (lazy, O(1) memory)."""
        return _partial.missing_chunks(self, root, start)

    def is_complete(self, root: bytes) -> bool:
        """True if every chunk is present; :class:`NotFound` if the root is unknown."""
        return self._require(root).state is State.COMPLETE

    def has_content(self, root: bytes, *, partial: bool = False) -> bool:
        """True if the root is stored complete (or at all, with ``partial=True``)."""
        rec = self._record(root)
        return rec is not None and (partial or rec.state is State.COMPLETE)

    # -- reading ---------------------------------------------------------------------------

    def get_manifest(self, root: bytes) -> Manifest:
        """The manifest of a stored (complete or partial) root; :class:`NotFound` otherwise."""
        return self._require(root).manifest

    def info(self, root: bytes) -> ContentInfo:
        """State, pin and presence of one root; :class:`NotFound` if unknown."""
        return self._info(self._require(root))

    def chunk_roots(self, root: bytes, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        """The chunk-root list, read lazily from the index (fine for a 1 TB content)."""
        rec = self._require(root)
        n = rec.manifest.chunk_count
        stop = n if stop is None else min(stop, n)
        prefix = roots_prefix(rec.list_id)
        expected = start
        if start >= stop:
            return
        with self._db.iterator(
            start=roots_key(rec.list_id, start), stop=roots_key(rec.list_id, stop)
        ) as it:
            for key, value in it:
                index = int.from_bytes(key[len(prefix) :], "big")
                if index != expected or len(value) != 32:
                    raise StoreCorrupt(
                        f"chunk-root list of {root_hex(root)} has a hole at {expected}"
                    )
                expected += 1
                yield value
        if expected != stop:
            raise StoreCorrupt(f"chunk-root list of {root_hex(root)} ends at {expected} of {stop}")

    def chunk_root_at(self, root: bytes, index: int) -> bytes:
        """Chunk root ``index`` of ``root``."""
        rec = self._require(root)
        return self._chunk_root_of(rec, index)

    def read_chunk(
        self, root: bytes, index: int, *, verify: bool = True, nowait: bool = False
    ) -> bytes:
        """Bytes of chunk ``index``; checked against its chunk root unless ``verify=False``.

        Raises :class:`NotFound` (unknown root, or a chunk of partial content not yet present)
        and :class:`CorruptStoredChunk` naming the index when the file is damaged or gone.
        ``nowait=True`` (an event loop's thread): raises :class:`WouldBlock` instead of
        waiting for the disk, when the bytes are in neither the memory tier nor the page
        cache; read again from a worker thread then.
        """
        rec = self._require(root)
        if rec.state is State.PARTIAL and not _partial.is_present(self, rec, index):
            raise NotFound(f"chunk {index} of {root_hex(root)} is not present yet")
        self._check_quarantine(root, index)
        cr = self._chunk_root_of(rec, index)
        if self._cache is not None:
            data, _hit = self._cache.get_or_load(
                cr,
                lambda: self._read_chunk(rec, index, cr, True, nowait),
                None if verify else lambda: self._read_chunk(rec, index, cr, False, nowait),
                nowait=nowait,
            )
        else:
            data = self._read_chunk(rec, index, cr, verify, nowait)
        self._touch(root)
        return data

    def prefetch(self, root: bytes, indices: Iterable[int]) -> None:
        """Start reading chunks ``indices`` of ``root`` into the page cache (the kernel reads
        them while the caller does something else; chunks in the memory tier, unknown roots
        and indices, and chunks not present are skipped). For a reader that is about to read
        them and found the disk cold (``read_chunk(nowait=True)`` raised ``WouldBlock``)."""
        try:
            rec = self._require(root)
        except NotFound:
            return
        for index in indices:
            if not 0 <= index < rec.manifest.chunk_count:
                continue
            if rec.state is State.PARTIAL and not _partial.is_present(self, rec, index):
                continue
            cr = self._chunk_root_of(rec, index)
            if self._cache is not None and self._cache.has(cr):
                continue
            self._files.prefetch(cr, rec.manifest.chunk_length(index))

    def read_chunk_into(
        self, root: bytes, index: int, buf: bytearray | memoryview, *, verify: bool = False
    ) -> int:
        """Read chunk ``index`` into ``buf`` (a reusable buffer); return its length.

        ``buf`` must hold the chunk (give it one spare byte to also catch a file that grew).
        Unverified by default (a provider's receiver verifies); ``verify=True`` checks it
        against its chunk root. Errors as :meth:`read_chunk`.
        """
        rec = self._require(root)
        if rec.state is State.PARTIAL and not _partial.is_present(self, rec, index):
            raise NotFound(f"chunk {index} of {root_hex(root)} is not present yet")
        self._check_quarantine(root, index)
        cr = self._chunk_root_of(rec, index)
        expected = rec.manifest.chunk_length(index)
        view = memoryview(buf).cast("B")
        if len(view) < expected:
            raise ValueError(f"buffer of {len(view)} bytes for a chunk of {expected}")
        if self._cache is not None:
            data, _hit = self._cache.get_or_load(
                cr,
                lambda: self._read_chunk(rec, index, cr, True),
                None if verify else lambda: self._read_chunk(rec, index, cr, False),
            )
            view[: len(data)] = data
            self._touch(root)
            return len(data)
        n = self._files.read_into(cr, view[: expected + 1])
        if n is None:
            raise CorruptStoredChunk(
                f"chunk {index} of {root_hex(root)} is missing from disk", root=root, index=index
            )
        if n != expected or (verify and chunk_root(view[:n]) != cr):
            raise CorruptStoredChunk(
                f"chunk {index} of {root_hex(root)} is corrupt on disk "
                f"(file {self._files.path(cr)})",
                root=root,
                index=index,
            )
        self._touch(root)
        return n

    def iter_verified(self, root: bytes, start: int = 0) -> Iterator[bytes]:
        """Every chunk of complete content from ``start``, each verified before it is yielded.

        Reading and hashing run a few chunks ahead in worker threads. Raises
        :class:`IncompleteContent` for partial content and :class:`CorruptStoredChunk` at the
        first bad chunk (nothing of that chunk is yielded).
        """
        rec = self._require(root)
        if rec.state is not State.COMPLETE:
            missing = rec.manifest.chunk_count - rec.present
            raise IncompleteContent(
                f"{root_hex(root)} is missing {missing} chunks", missing=missing
            )
        self._touch(root)
        return self._iter_verified(rec, start)

    def _iter_verified(self, rec: ContentRecord, start: int) -> Iterator[bytes]:
        ahead = _add.pending_chunks(self.workers, rec.manifest.chunk_size)
        pending: collections.deque[Future[bytes]] = collections.deque()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="store-read") as pool:
            try:
                for index, cr in enumerate(self.chunk_roots(rec.manifest.root, start), start):
                    pending.append(pool.submit(self._read_cached, rec, index, cr, True))
                    if len(pending) >= ahead:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:
                for fut in pending:
                    fut.cancel()

    def reader(self, root: bytes, *, verify: bool = True) -> Callable[[int, int], bytes]:
        """A ``read(offset, length)`` over complete content, for the slot encoder.

        Returns the bytes at ``offset`` (shorter only at the end of the content, empty past
        it). Each chunk is read once per visit and checked against its chunk root unless
        ``verify=False``; the last chunk read is cached, so sequential reads of any length cost
        one chunk read each. Raises :class:`IncompleteContent` for partial content now and
        :class:`CorruptStoredChunk` from ``read``. Not thread-safe: one reader per thread.
        """
        rec = self._require(root)
        if rec.state is not State.COMPLETE:
            missing = rec.manifest.chunk_count - rec.present
            raise IncompleteContent(
                f"{root_hex(root)} is missing {missing} chunks", missing=missing
            )
        size, cs = rec.manifest.size, rec.manifest.chunk_size
        cached: list[tuple[int, bytes]] = []  # at most one (index, chunk bytes)

        def chunk(index: int) -> bytes:
            if cached and cached[0][0] == index:
                return cached[0][1]
            data = self._read_cached(rec, index, self._chunk_root_of(rec, index), verify)
            cached[:] = [(index, data)]
            return data

        def read(offset: int, length: int) -> bytes:
            if offset < 0 or length < 0:
                raise ValueError(f"read({offset}, {length}) outside the content")
            end = min(size, offset + length)
            parts = []
            while offset < end:
                index, skip = divmod(offset, cs)
                take = min(cs - skip, end - offset)
                parts.append(chunk(index)[skip : skip + take])
                offset += take
            if not parts:
                return b""
            self._touch(root)
            return parts[0] if len(parts) == 1 else b"".join(parts)

        return read

    def export(self, root: bytes, dest: str | os.PathLike[str]) -> int:
        """Write verified content to ``dest`` atomically (temp file + rename); return its size.

        On any error the temp file is removed and ``dest`` is left untouched. A device or FIFO
        is written in place and never renamed over (``node._fs.write_output``, the CLI's writer).
        """
        from ._export import export_file

        return export_file(self, root, Path(dest))

    def verify(self, root: bytes) -> VerifyReport:
        """Re-hash every present chunk and the chunk-root list; name the bad chunks."""
        return _maint.verify(self, root)

    # -- pins, listing, stats --------------------------------------------------------------

    def pin(self, root: bytes) -> None:
        """Protect content (complete or partial) from eviction."""
        self._set_pin(root, True)

    def unpin(self, root: bytes) -> None:
        """Make content evictable again (it stays until the quota or ``gc`` removes it)."""
        self._set_pin(root, False)

    def _set_pin(self, root: bytes, pinned: bool) -> None:
        with self._lock:
            rec = self._require(root)
            if rec.pinned != pinned:
                self._db.put(
                    content_key(root), dumps(rec.replace(pinned=pinned).to_json()), sync=True
                )

    def list_content(self) -> Iterator[ContentInfo]:
        """Every stored root (complete and partial), in root order."""
        for _key, value in iter_prefix(self._db, CONTENT):
            yield self._info(ContentRecord.from_json(loads(value)))

    def stats(self) -> StoreStats:
        n = complete = partial = pinned = 0
        pinned_bytes = logical = 0
        for info in self.list_content():
            n += 1
            logical += info.manifest.size
            if info.complete:
                complete += 1
            else:
                partial += 1
            if info.pinned:
                pinned += 1
                pinned_bytes += info.manifest.size
        return StoreStats(
            path=str(self.path),
            contents=n,
            complete=complete,
            partial=partial,
            pinned=pinned,
            used_bytes=self.used_bytes,
            pinned_bytes=pinned_bytes,
            logical_bytes=logical,
            quota=self.quota,
            linked_files=sorted(str(f.path) for f in self._links.files()),
        )

    @property
    def used_bytes(self) -> int:
        """Distinct chunk bytes referenced by stored content (what the quota bounds)."""
        return get_meta_int(self._db, b"used")

    # -- removal and space -----------------------------------------------------------------

    def remove(self, root: bytes) -> EvictReport:
        """Remove content (pinned or not) and delete chunk files nobody else references."""
        return _maint.remove(self, root)

    def evict_to_quota(
        self, quota: int | None = None, *, protect: Iterable[bytes] = ()
    ) -> EvictReport:
        """Remove least recently used unpinned content until ``used_bytes <= quota``.

        ``quota`` defaults to the store's; roots in ``protect`` are kept. Pinned content is
        never evicted, so the store may stay above quota when pins alone exceed it.
        """
        return _maint.evict_to_quota(self, self.quota if quota is None else quota, set(protect))

    def gc(self) -> GcReport:
        """Delete chunk files no content references (left by crashes or removals).

        With a cold tier it also reconciles both tiers with the index (``_tier.sweep``).
        """
        return _maint.gc(self)

    # -- tiers: memory cache and cold directory ---------------------------------------------

    def demote(self, root: bytes) -> int:
        """Move every hot chunk of ``root`` to the cold tier; return the bytes moved.

        Promotions of its chunks still waiting (reads from the cold tier before this) are
        dropped: they would bring the chunks back."""
        self._require_tiers()
        if self._mover is not None:
            self._mover.drop(set(self.chunk_roots(root)))
        return _tier.demote_root(self, root)

    def promote(self, root: bytes) -> int:
        """Move every cold chunk of ``root`` back to the hot tier; return the bytes moved."""
        self._require_tiers()
        return _tier.promote_root(self, root)

    def rebalance_tiers(self, *, protect: Iterable[bytes] = ()) -> int:
        """One pass of the tier policy now (the background mover runs it every second)."""
        self._require_tiers()
        return _tier.rebalance(self, protect=protect)

    def chunk_tier(self, chunk_root_: bytes) -> str:
        """``"cold"`` or ``"hot"``: where the index says a chunk's file lives."""
        return "cold" if _tier.is_cold(self, chunk_root_) else "hot"

    def _require_tiers(self) -> None:
        if not self._files.tiered:
            raise StoreError("this store has no cold tier ([node] cold_dir)")

    def tier_stats(self) -> dict[str, object]:
        """Counters of the memory tier, the disk reads and the two disk tiers (JSON-able)."""
        c = self._cache.stats() if self._cache is not None else None
        f = self._files
        cold = _tier.cold_bytes(self) if f.tiered else 0
        return {
            "memory": None
            if c is None
            else {
                "budget": c.budget,
                "bytes": c.used,
                "entries": c.entries,
                "hits": c.hits,
                "misses": c.misses,
                "hit_ratio": c.hit_ratio,
                "evictions": c.evictions,
            },
            "disk_reads": f.reads,
            "disk_read_bytes": f.read_bytes,
            "cold_reads": f.cold_reads,
            "hot_bytes": max(0, self.used_bytes - cold),
            "cold_bytes": cold,
            "hot_limit": self.hot_limit,
            "cold_dir": None if f.cold_chunks_dir is None else str(f.cold_chunks_dir.parent),
            "demoted": self.tier_counts["demoted"],
            "promoted": self.tier_counts["promoted"],
        }

    # -- damaged chunks: quarantine and repair ----------------------------------------------

    def quarantine(self, root: bytes, index: int) -> bool:
        """Record (durably, in the index) that chunk ``index`` of ``root`` is damaged here.

        A quarantined chunk is never read out again: :meth:`read_chunk` and
        :meth:`read_chunk_into` raise :class:`NotFound` for it, also after a restart, so a
        provider stops serving it; :meth:`verify` names it (and fails). :meth:`repair` (what
        ``bcai get`` does) turns it into a missing chunk for a re-fetch. Returns ``False`` if it
        was already quarantined; :class:`NotFound`/``IndexError`` for an unknown chunk.
        """
        return _maint.quarantine(self, root, index)

    def quarantined(self, root: bytes) -> list[int]:
        """Indices of ``root`` that are quarantined, ascending."""
        return sorted(i for r, i in self._quarantined if r == root)

    def mark_missing(self, root: bytes, indices: Iterable[int]) -> list[int]:
        """Make present chunks missing again (complete content becomes partial); see repair."""
        return _maint.mark_missing(self, root, indices)

    def repair(self, root: bytes, *, check: bool = True) -> list[int]:
        """Mark every damaged chunk of ``root`` missing, so a resumed fetch re-fetches just them.

        Damaged means quarantined, or (with ``check``, a full :meth:`verify` pass) failing
        verification now. Returns the indices marked missing; ``[]`` when nothing is damaged.
        """
        damaged = set(self.quarantined(root))
        if check:
            damaged.update(self.verify(root).bad)
        return self.mark_missing(root, damaged) if damaged else []

    def _check_quarantine(self, root: bytes, index: int) -> None:
        if (root, index) in self._quarantined:
            raise NotFound(f"chunk {index} of {root_hex(root)} is quarantined (damaged here)")

    def _sweep_uncommitted(self) -> None:
        """Delete chunk files a writer left uncommitted (a failed or abandoned transfer).

        Nothing references them, so they would otherwise wait for ``gc`` or an unclean-stop
        sweep; a resumed fetch asks for those chunks again anyway. Call with ``_lock`` held.
        """
        swept = 0
        for cr in self._uncommitted:
            if self._db.get(ref_key(cr)) is None and self._delete_chunk_files(cr):
                swept += 1
        self._uncommitted.clear()
        if swept:
            log.info("swept uncommitted chunk files", files=swept)

    # -- internals shared with the writer modules ------------------------------------------

    def _record(self, root: bytes) -> ContentRecord | None:
        self._check_open()
        value = self._db.get(content_key(root))
        if value is None:
            return None
        cached = self._parsed.get(root)
        if cached is not None and cached[0] == value:
            return cached[1]  # records are frozen: sharing one is safe
        rec = ContentRecord.from_json(loads(value))
        self._parsed[root] = (value, rec)
        if len(self._parsed) > PARSED_RECORDS:  # worker threads share it: best effort
            with contextlib.suppress(RuntimeError, StopIteration):
                self._parsed.pop(next(iter(self._parsed)), None)
        return rec

    def _require(self, root: bytes) -> ContentRecord:
        rec = self._record(root)
        if rec is None:
            raise NotFound(f"no content {root_hex(root)} in this store")
        return rec

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    def _info(self, rec: ContentRecord) -> ContentInfo:
        return ContentInfo(
            manifest=rec.manifest,
            state=rec.state,
            pinned=rec.pinned,
            present_chunks=rec.present,
            last_access=self._last_access(rec),
        )

    def _chunk_root_of(self, rec: ContentRecord, index: int) -> bytes:
        n = rec.manifest.chunk_count
        if not 0 <= index < n:
            raise IndexError(f"chunk {index} outside 0..{n - 1}")
        value = self._db.get(roots_key(rec.list_id, index))
        if value is None or len(value) != 32:
            raise StoreCorrupt(f"chunk-root list of {rec.manifest.root_hex} lacks entry {index}")
        return bytes(value)

    def _read_cached(self, rec: ContentRecord, index: int, cr: bytes, verify: bool) -> bytes:
        """A scan's read: served from the memory tier if there, else from disk, not admitted."""
        if self._cache is not None:
            data = self._cache.get(cr)
            if data is not None:
                return data
        return self._read_chunk(rec, index, cr, verify)

    def _read_chunk(
        self, rec: ContentRecord, index: int, cr: bytes, verify: bool, nowait: bool = False
    ) -> bytes:
        """Read from disk (either tier; never the memory tier) and check length (and hash)."""
        expected = rec.manifest.chunk_length(index)
        data, cold = self._files.read_tier(cr, expected, nowait=nowait)
        if cold and self._mover is not None:
            self._mover.request_promotion(cr)
        root = rec.manifest.root
        if data is None:
            raise CorruptStoredChunk(
                f"chunk {index} of {root_hex(root)} is missing from disk", root=root, index=index
            )
        if len(data) != expected or (verify and chunk_root(data) != cr):
            raise CorruptStoredChunk(
                f"chunk {index} of {root_hex(root)} is corrupt on disk "
                f"(file {self._files.path(cr)})",
                root=root,
                index=index,
            )
        return data

    def _delete_chunk_files(self, cr: bytes) -> int:
        """Delete a chunk's files in both tiers, its tier record and its cached bytes.

        Call with ``_lock`` held; the caller decided nothing may keep it. Returns bytes freed.
        """
        if self._cache is not None:
            self._cache.invalidate(cr)
        freed = self._files.delete(cr)
        if self._files.tiered:
            _tier.forget(self, cr)
        return freed

    def _invalidate_cached(self, chunk_roots: Iterable[bytes]) -> None:
        if self._cache is not None:
            for cr in chunk_roots:
                self._cache.invalidate(cr)

    def _release(self, chunk_roots: Iterable[bytes]) -> None:
        """Drop in-flight markers (call with ``_lock`` held)."""
        for cr in chunk_roots:
            self._inflight[cr] -= 1
            if self._inflight[cr] <= 0:
                del self._inflight[cr]

    def _touch(self, root: bytes, *, force: bool = False) -> None:
        """Note an access for LRU: kept in memory, persisted at most once a second per root."""
        now = time.time()
        with self._lock:
            last = self._access.get(root)
            self._access[root] = now if last is None else max(now, last)
            if force or now - self._access_written.get(root, 0.0) >= _ACCESS_WRITE_INTERVAL:
                self._access_written[root] = now
                self._db.put(access_key(root), pack_time(self._access[root]))

    def _last_access(self, rec: ContentRecord) -> float:
        root = rec.manifest.root
        t = self._db.get(access_key(root))
        stored = unpack_time(t) if t else rec.added
        return max(stored, self._access.get(root, 0.0))

    def _flush_access(self) -> None:
        for root, t in self._access.items():
            if self._access_written.get(root) != t and self._db.get(content_key(root)):
                self._db.put(access_key(root), pack_time(t))

    def _content_roots_tree(self, root: bytes) -> bytes:
        tree = StreamingTreeHasher()
        tree.extend(self.chunk_roots(root))
        return tree.root()


def _chunk_size_for(source: BinaryIO, chunk_size: int | None) -> int:
    """``chunk_size``, or for ``None`` the automatic size of a regular file (its size now;
    :func:`~node.content.auto_chunk_size`) and the default for a pipe or other stream."""
    if chunk_size is not None:
        return chunk_size
    try:
        st = os.fstat(source.fileno())
    except (AttributeError, OSError, ValueError):  # io.BytesIO has no fileno; closed: ValueError
        return DEFAULT_CHUNK_SIZE
    return auto_chunk_size(st.st_size) if stat.S_ISREG(st.st_mode) else DEFAULT_CHUNK_SIZE


__all__ = ["ACCESS", "PartialWriter", "ProgressCallback", "PutResult", "Store"]
