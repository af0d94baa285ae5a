"""Per-chunk compression on the wire (zstd), sans-IO: the codec, the auto-off rule, the level.

What travels (docs/protocol.md 5.14a): a provider whose peer's Hello has ``COMPRESS`` may send
a chunk as ONE zstd frame (RFC 8878) of the whole chunk, cut into ``ChunkData`` pieces marked
``compressed`` (kind 0x25). The frame MUST declare its content size, and that size MUST be the
chunk's length from the manifest. Content roots and chunk roots stay over the original bytes:
the receiver decompresses, then verifies the chunk root, so proofs and addresses do not change.

Receiving is the hostile side, so :meth:`ChunkCodec.decompress` admits a frame only if

- its header parses and declares a content size equal to ``expected_len`` (<= 4 MiB): it is
  then decoded in one shot into an output buffer of that size, allocated from a number we
  already trust, so a decompression bomb has nowhere to go (zstd refuses to write past the
  buffer; a one-shot decode needs no window buffer, so the window the frame asks for does not
  matter either);
- it decodes whole (a truncated frame is an error), with no byte after it (a second frame or
  trailing garbage is an error), to exactly ``expected_len`` bytes.

Anything else raises :class:`CompressedChunkError` (:class:`CompressedSizeMismatch` for a size
that is not the chunk's, :class:`CorruptCompressedChunk` for the rest): the peer's fault,
answered as a chunk that failed verification (``BAD_CHUNK``).

Sending is a cost/benefit call. :class:`CompressionPolicy` (one per content root) decides per
chunk whether to compress, from what compressing earlier chunks of that root saved, so that
incompressible data (random, already compressed, encrypted) costs almost nothing:

- ``sample`` (a root not seen yet, or after a back-off): a sample of the chunk is compressed
  first (:func:`sample_of`: 4 slices of 4 KiB spread over it, at the fastest level). If it
  saves less than ``MIN_SAVING`` (5%) the chunk goes raw and the policy backs off; else the
  whole chunk is compressed.
- ``on`` (the last whole frame saved >= ``MIN_SAVING``): the next chunk is compressed whole
  with no sample (compressible data pays nothing for the check). A frame that saves less is
  thrown away (the chunk goes raw) and the policy backs off.
- ``off`` (backing off): chunks go raw with no compression work at all. The number of raw
  chunks between two samples doubles with each failure (1, 2, 4, ... up to ``MAX_BACKOFF``,
  64) and starts again from 1 after a frame that paid off, so a content that turns
  compressible is noticed within 64 chunks, and random data costs one 16 KiB sample per 64
  chunks (about 20 samples for 1 GiB of 1 MiB chunks; measured 0.5-1 ms of CPU per GiB).

:class:`LevelTuner` picks the zstd level from measured speeds: compressing must keep ahead of
sending or it slows the transfer down. From the seconds spent compressing and sending each
chunk it steps the level down (faster) when compressing runs at less than twice the send
rate, up (smaller) when it runs at more than eight times it, within ``LEVELS``; at the fastest
level and still slower than sending it says compression does not pay (:attr:`LevelTuner.worth_it`).

Nothing here touches sockets, clocks or threads: times come in as arguments, and a
:class:`ChunkCodec` holds zstd contexts that one thread at a time may use.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

import zstandard

from ._codes import ErrorCode
from ._errors import RemoteProtocolError
from ._limits import MAX_CHUNK_SIZE

Buffer = bytes | bytearray | memoryview

LEVELS: Final = (-5, -1, 1, 3)
"""zstd levels the tuner moves between, fastest first (measured on the build VM, one core,
1 MiB chunks of JSON: -5 ~650 MB/s, 1 ~400 MB/s, 3 ~250 MB/s; CSV about 0.6x that)."""
DEFAULT_LEVEL: Final = 1
MIN_SAVING: Final = 0.05
"""A frame is sent only if it is at least 5% smaller than the chunk."""
SAMPLE_SLICES: Final = 4
SAMPLE_SLICE: Final = 4 * 1024
"""A sample is 4 slices of 4 KiB spread over the chunk (16 KiB), compressed at ``SAMPLE_LEVEL``."""
SAMPLE_LEVEL: Final = LEVELS[0]
MAX_BACKOFF: Final = 64
"""At most this many chunks of a root go raw, untested, between two samples."""
MAX_WINDOW: Final = MAX_CHUNK_SIZE


class CompressedChunkError(RemoteProtocolError):
    """A compressed chunk from the peer does not decode to its chunk (answer ``BAD_CHUNK``)."""

    code = ErrorCode.BAD_CHUNK
    recoverable = True


class CompressedSizeMismatch(CompressedChunkError):
    """The frame declares no content size, or one that is not the chunk's length."""


class CorruptCompressedChunk(CompressedChunkError):
    """The frame does not parse, is truncated, or has bytes after it."""


class ChunkCodec:
    """zstd contexts for compressing and decompressing chunks; one thread at a time."""

    def __init__(self) -> None:
        self._compressors: dict[int, zstandard.ZstdCompressor] = {}
        self._decompressor = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW)

    def _compressor(self, level: int) -> zstandard.ZstdCompressor:
        c = self._compressors.get(level)
        if c is None:
            c = self._compressors[level] = zstandard.ZstdCompressor(
                level=level, write_content_size=True, write_checksum=False
            )
        return c

    def compress(
        self, data: Buffer, level: int = DEFAULT_LEVEL, *, min_saving: float = MIN_SAVING
    ) -> bytes | None:
        """One zstd frame of ``data`` (content size declared), or ``None`` if it would save
        less than ``min_saving`` of ``len(data)`` (send the chunk raw)."""
        if not data:
            return None
        frame = self._compressor(level).compress(data)
        return frame if len(frame) <= len(data) * (1.0 - min_saving) else None

    def saving(self, sample: Buffer, level: int = DEFAULT_LEVEL) -> float:
        """Fraction of ``sample`` that compressing it saves (negative: it grew)."""
        if not sample:
            return 0.0
        return 1.0 - len(self._compressor(level).compress(sample)) / len(sample)

    def sample_saving(self, data: Buffer, level: int = SAMPLE_LEVEL) -> float:
        """:meth:`saving` of :func:`sample_of` ``data``: a cheap estimate of what compressing
        the whole of ``data`` would save (16 KiB at the fastest level)."""
        return self.saving(sample_of(data), level)

    def decompress(self, frame: Buffer, expected_len: int) -> bytes:
        """The chunk ``frame`` encodes, checked as the module docstring says."""
        if not 0 < expected_len <= MAX_CHUNK_SIZE:
            raise CompressedSizeMismatch(f"a compressed chunk of {expected_len} bytes")
        try:
            declared = zstandard.frame_content_size(frame)
        except zstandard.ZstdError:
            raise CorruptCompressedChunk(
                "compressed chunk has no valid zstd frame header"
            ) from None
        if declared != expected_len:
            what = "no size" if declared < 0 else f"{declared} bytes"
            raise CompressedSizeMismatch(
                f"compressed chunk declares {what}, the chunk has {expected_len}"
            )
        try:
            out = self._decompressor.decompress(
                frame, max_output_size=expected_len, allow_extra_data=False
            )
        except zstandard.ZstdError as exc:
            raise CorruptCompressedChunk(f"compressed chunk does not decode: {exc}") from None
        if len(out) != expected_len:  # zstd checks this itself; kept as a second line
            raise CompressedSizeMismatch(
                f"compressed chunk decodes to {len(out)} bytes, the chunk has {expected_len}"
            )
        return out


def compress_chunk(data: Buffer, level: int = DEFAULT_LEVEL) -> bytes | None:
    """:meth:`ChunkCodec.compress` with fresh contexts (tests, one-off use)."""
    return ChunkCodec().compress(data, level)


def decompress_chunk(frame: Buffer, expected_len: int) -> bytes:
    """:meth:`ChunkCodec.decompress` with fresh contexts (tests, one-off use)."""
    return ChunkCodec().decompress(frame, expected_len)


class CompressPlan(enum.Enum):
    """What :meth:`CompressionPolicy.plan` says to do with the next chunk."""

    RAW = "raw"  #: send it as it is, no compression work (backing off)
    COMPRESS = "compress"  #: compress it whole; send the frame if it saves enough
    SAMPLE = "sample"  #: compress a sample first (:func:`sample_of`); the whole chunk only if
    #: the sample saves enough (:meth:`CompressionPolicy.record_sample`), else send it raw


class Mode(enum.Enum):
    SAMPLE = "sample"  #: nothing known (or the last whole frame paid off then a chunk did not)
    ON = "on"  #: the last chunk compressed well: compress the next one whole
    OFF = "off"  #: incompressible lately: ``skip`` chunks go raw, then a sample


def sample_of(data: Buffer) -> Buffer:
    """``SAMPLE_SLICES`` slices of ``SAMPLE_SLICE`` bytes spread evenly over ``data`` (first
    and last included), joined; ``data`` itself if it is no longer than that."""
    n = len(data)
    if n <= SAMPLE_SLICES * SAMPLE_SLICE:
        return data
    view = memoryview(data)
    step = (n - SAMPLE_SLICE) // (SAMPLE_SLICES - 1)
    return b"".join(view[i * step : i * step + SAMPLE_SLICE] for i in range(SAMPLE_SLICES))


@dataclass
class CompressionPolicy:
    """Auto-off for one content root (module docstring): ``plan``, then ``record_sample``
    after a sample, ``record`` for every chunk sent (``whole=True`` if it was compressed
    whole, so the outcome is judged).

    Counters are in raw (uncompressed) bytes; ``saved_bytes`` counts only frames sent.
    """

    mode: Mode = Mode.SAMPLE
    backoff: int = 0  #: raw chunks after the next failure (doubles per failure, to MAX_BACKOFF)
    skip: int = 0  #: raw chunks left before the next sample (mode OFF)
    samples: int = 0  #: samples compressed
    failures: int = 0  #: samples or whole frames that saved less than ``MIN_SAVING``
    compressed_chunks: int = 0  #: chunks sent compressed
    raw_chunks: int = 0  #: chunks sent raw (skipped, a failed sample, a frame not worth sending)
    saved_bytes: int = 0

    @property
    def off(self) -> bool:
        """The next chunk goes raw with no compression work at all (backing off)."""
        return self.mode is Mode.OFF and self.skip > 0

    def plan(self) -> CompressPlan:
        if self.mode is Mode.ON:
            return CompressPlan.COMPRESS
        if self.mode is Mode.OFF and self.skip > 0:
            self.skip -= 1
            return CompressPlan.RAW
        return CompressPlan.SAMPLE

    def record_sample(self, saving: float) -> bool:
        """After :attr:`CompressPlan.SAMPLE`, the sample's saving: True if the whole chunk
        should now be compressed (then ``record(n, frame_len, whole=True)``), False if it
        goes raw (``record(n, None)``; the policy backs off)."""
        self.samples += 1
        if saving >= MIN_SAVING:
            return True
        self._fail()
        return False

    def record(self, raw_len: int, frame_len: int | None, *, whole: bool = False) -> None:
        """One chunk sent: ``frame_len`` the frame's size, ``None`` if it went raw.
        ``whole``: it was compressed whole (after COMPRESS, or a SAMPLE that passed); a
        frame is judged: sent (it saved >= ``MIN_SAVING``) turns the policy on, not sent
        (``None``) backs off."""
        if frame_len is None:
            self.raw_chunks += 1
        else:
            self.compressed_chunks += 1
            self.saved_bytes += raw_len - frame_len
        if not whole:
            return
        if frame_len is None:
            self._fail()
        else:
            self.mode, self.backoff, self.skip = Mode.ON, 0, 0

    def _fail(self) -> None:
        self.failures += 1
        self.backoff = min(MAX_BACKOFF, max(1, 2 * self.backoff))
        self.mode, self.skip = Mode.OFF, self.backoff


@dataclass
class LevelTuner:
    """The zstd level from measured compress and send speeds (module docstring).

    Tell it the bytes and seconds of every compression (:meth:`observe_compress`, raw bytes)
    and of every chunk send (:meth:`observe_send`, bytes on the wire, raw or compressed: the
    link's pace, rate limits included). Every ``every`` compressions it compares the two rates
    and moves the level one step. When even the fastest level compresses slower than the link
    sends, :attr:`worth_it` turns False and :meth:`should_compress` answers True only for one
    chunk in ``every`` (to keep measuring: the link may slow down).
    """

    level: int = DEFAULT_LEVEL
    every: int = 16
    worth_it: bool = True
    _n: int = 0
    _skipped: int = 0
    _c_bytes: int = 0
    _c_seconds: float = 0.0
    _s_bytes: int = 0
    _s_seconds: float = 0.0

    def skips_next(self) -> bool:
        """:meth:`should_compress` will answer False next time (a cheap peek, no change)."""
        return not self.worth_it and self._skipped + 1 < self.every

    def should_compress(self) -> bool:
        if self.worth_it:
            return True
        self._skipped += 1
        if self._skipped >= self.every:
            self._skipped = 0
            return True
        return False

    def observe_send(self, nbytes: int, seconds: float) -> None:
        self._s_bytes += nbytes
        self._s_seconds += max(0.0, seconds)

    def observe_compress(self, raw_bytes: int, seconds: float) -> None:
        self._c_bytes += raw_bytes
        self._c_seconds += max(0.0, seconds)
        self._n += 1
        if self._n >= (self.every if self.worth_it else 1):
            self._decide()

    @property
    def speed_ratio(self) -> float:
        """Compress rate over send rate, from the samples since the last decision."""
        if self._c_seconds <= 0 or self._c_bytes <= 0:
            return float("inf")
        if self._s_seconds <= 0 or self._s_bytes <= 0:
            return float("inf")  # no send measured: nothing says compressing lags
        return (self._c_bytes / self._c_seconds) / (self._s_bytes / self._s_seconds)

    def _decide(self) -> None:
        ratio = self.speed_ratio
        i = LEVELS.index(self.level) if self.level in LEVELS else LEVELS.index(DEFAULT_LEVEL)
        if ratio < 2.0 and i > 0:
            self.level = LEVELS[i - 1]
        elif ratio > 8.0 and i < len(LEVELS) - 1:
            self.level = LEVELS[i + 1]
        self.worth_it = not (ratio < 1.0 and i == 0)
        self._n = 0
        self._c_bytes = self._s_bytes = 0
        self._c_seconds = self._s_seconds = 0.0
