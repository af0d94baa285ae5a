"""Compression on the data path: the provider's :class:`ChunkCompressor` and the receiver's
:func:`decompress`. The codec and the rules are sans-IO in ``node.wire._compress``; this adds
what needs threads and memory: per-thread zstd contexts, one auto-off policy per content root,
and a bounded cache of frames keyed by chunk root (docs/protocol.md 5.14a, docs/transfer.md).

A provider serving one root to many peers compresses each chunk once: the frame (or the
verdict "not worth compressing") is cached by chunk root under a byte budget, least recently
used first out, so identical chunks of several contents share an entry, as in the store's
memory tier. Methods are called from worker threads; state changes hold one lock, compression
runs outside it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from node.wire import ChunkCodec, CompressionPolicy, CompressPlan, LevelTuner

Buffer = bytes | bytearray | memoryview

DEFAULT_CACHE_BYTES = 32 << 20
MAX_ROOTS = 256  #: policies kept (least recently used roots forgotten first)
_VERDICT_COST = 64  #: budget charged for a cached "send raw" verdict

_local = threading.local()


def _codec() -> ChunkCodec:
    codec: ChunkCodec | None = getattr(_local, "codec", None)
    if codec is None:
        codec = _local.codec = ChunkCodec()
    return codec


def decompress(frame: Buffer, expected_len: int) -> bytes:
    """Receiver: the chunk ``frame`` encodes (``ChunkCodec.decompress``; this thread's
    contexts). Raises ``node.wire._compress.CompressedChunkError`` (the peer's fault)."""
    return _codec().decompress(frame, expected_len)


@dataclass
class CompressStats:
    """What a :class:`ChunkCompressor` did (raw = uncompressed bytes)."""

    compressed_chunks: int = 0  #: chunks sent as frames
    raw_chunks: int = 0  #: chunks sent as they are
    raw_bytes: int = 0  #: content bytes of every chunk encoded
    wire_bytes: int = 0  #: payload bytes handed to the wire (frames or raw)
    compress_seconds: float = 0.0  #: time spent compressing (frames kept or not, samples)
    samples: int = 0  #: chunks whose sample was compressed (``CompressPlan.SAMPLE``)
    cache_hits: int = 0

    @property
    def saving(self) -> float:
        return 1.0 - self.wire_bytes / self.raw_bytes if self.raw_bytes else 0.0


class ChunkCompressor:
    """Decides per chunk whether to send a frame, compresses, caches (module docstring).

    ``cache_bytes``: budget of the frame cache (0: no cache). ``level``: a fixed zstd level,
    or ``None`` to take each connection's :class:`LevelTuner` level.
    """

    def __init__(self, *, cache_bytes: int = DEFAULT_CACHE_BYTES, level: int | None = None) -> None:
        self.cache_bytes = cache_bytes
        self.level = level
        self.stats = CompressStats()
        self._lock = threading.Lock()
        self._policies: OrderedDict[bytes, CompressionPolicy] = OrderedDict()
        self._cache: OrderedDict[bytes, bytes | None] = OrderedDict()
        self._cache_used = 0

    def policy(self, root: bytes) -> CompressionPolicy:
        """The auto-off state of ``root`` (created on first use)."""
        with self._lock:
            return self._policy(root)

    def _policy(self, root: bytes) -> CompressionPolicy:
        p = self._policies.get(root)
        if p is None:
            p = self._policies[root] = CompressionPolicy()
            while len(self._policies) > MAX_ROOTS:
                self._policies.popitem(last=False)
        else:
            self._policies.move_to_end(root)
        return p

    def encode(
        self, root: bytes, chunk_root: bytes | None, data: Buffer, tuner: LevelTuner
    ) -> tuple[Buffer, bool]:
        """Worker thread: ``(payload, compressed)`` for one chunk of ``root``.

        ``chunk_root`` keys the cache (``None``: not cached). ``tuner`` is the connection's:
        it says whether this connection compresses now (its rate probe) and at which level,
        and is told how long compressing took, and the root's compress speed (its probe's
        ceiling: the root's last whole-chunk compressions on any connection, wall time).
        """
        n = len(data)
        with self._lock:
            policy = self._policy(root)
            level = self.level if self.level is not None else tuner.level
            tuner.bound(policy.speed(level))  # the probe's ceiling (at the first chunk: whether
            # raw is probed first)
            if chunk_root is not None and chunk_root in self._cache:
                self._cache.move_to_end(chunk_root)
                frame = self._cache[chunk_root]
                self.stats.cache_hits += 1
                return self._sent(policy, data, frame, record=False)
            if not tuner.should_compress():  # raw is faster on this connection now: says
                return self._sent(policy, data, None, record=False)  # nothing of the data
            plan = policy.plan()
            if plan is CompressPlan.RAW:  # backing off: no compression work at all
                return self._sent(policy, data, None)
        codec = _codec()
        t0 = time.perf_counter()
        if plan is CompressPlan.SAMPLE:
            saving = codec.sample_saving(data)
            seconds = time.perf_counter() - t0
            with self._lock:
                self.stats.samples += 1
                self.stats.compress_seconds += seconds
                if not policy.record_sample(saving):
                    if chunk_root is not None:
                        self._admit(chunk_root, None)
                    return self._sent(policy, data, None)
            t0 = time.perf_counter()
        frame = codec.compress(data, level)
        seconds = time.perf_counter() - t0
        with self._lock:
            policy.timed(level, n, seconds)
            tuner.compressed(n, seconds, policy.speed(level))
            self.stats.compress_seconds += seconds
            if chunk_root is not None:
                self._admit(chunk_root, frame)
            return self._sent(policy, data, frame, whole=True)

    def _sent(
        self,
        policy: CompressionPolicy,
        data: Buffer,
        frame: bytes | None,
        *,
        record: bool = True,
        whole: bool = False,
    ) -> tuple[Buffer, bool]:
        n = len(data)
        if record:
            policy.record(n, None if frame is None else len(frame), whole=whole)
        s = self.stats
        s.raw_bytes += n
        if frame is None:
            s.raw_chunks += 1
            s.wire_bytes += n
            return data, False
        s.compressed_chunks += 1
        s.wire_bytes += len(frame)
        return frame, True

    def _admit(self, chunk_root: bytes, frame: bytes | None) -> None:
        cost = _VERDICT_COST if frame is None else len(frame)
        if cost > self.cache_bytes or chunk_root in self._cache:
            return
        self._cache[chunk_root] = frame
        self._cache_used += cost
        while self._cache_used > self.cache_bytes:
            _, old = self._cache.popitem(last=False)
            self._cache_used -= _VERDICT_COST if old is None else len(old)

    @property
    def cached_bytes(self) -> int:
        return self._cache_used
