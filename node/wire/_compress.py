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

Whether to compress at all is a per-connection call, made by :class:`RateProbe` from what
the transfer achieves in each mode (content bytes delivered per second, A/B probes, the
faster one held, re-probed periodically, when the rate changes, and when the held mode's
first windows do not confirm the choice): on a link or under a rate cap compressing pays; on
loopback, where both ends share the CPU, it costs. A probe of the compressed mode is skipped
or cut short where it cannot win: its rate cannot exceed the root's measured compress speed
(:meth:`CompressionPolicy.speed`, the probe's ceiling), so once raw runs faster than that
by less than the margin, compressing would not be chosen anyway. Within the
compressed mode :class:`LevelTuner` picks the zstd level from measured speeds: compressing
must keep ahead of sending. From the seconds spent compressing and sending each chunk it
steps the level down (faster) when compressing runs at less than twice the send rate, up
(smaller) when it runs at more than eight times it, within ``LEVELS``.

Nothing here touches sockets, clocks or threads: times come in as arguments, and a
:class:`ChunkCodec` holds zstd contexts that one thread at a time may use.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
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
START_LEVEL: Final = LEVELS[0]
"""A connection's first level: probes time compression at its cheapest (where compressing is
the slower mode, its probe costs least; where it wins, the level climbs while held)."""
MIN_SAVING: Final = 0.05
"""A frame is sent only if it is at least 5% smaller than the chunk."""
SAMPLE_SLICES: Final = 4
SAMPLE_SLICE: Final = 4 * 1024
"""A sample is 4 slices of 4 KiB spread over the chunk (16 KiB), compressed at ``SAMPLE_LEVEL``."""
SAMPLE_LEVEL: Final = LEVELS[0]
MAX_BACKOFF: Final = 64
"""At most this many chunks of a root go raw, untested, between two samples."""
MAX_WINDOW: Final = MAX_CHUNK_SIZE
STEADY: Final = 0.25
"""A :class:`RateProbe` settles until two steps of its settle run within 25% of each other."""
SPEED_KEEP: Final = 4
"""A root's compress speed at a level is that of its last 4 whole-chunk compressions there
(:meth:`CompressionPolicy.speed`)."""
_MIB: Final = 1 << 20


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
    _timed: dict[int, list[tuple[int, float]]] = field(default_factory=dict)

    def timed(self, level: int, raw_len: int, seconds: float) -> None:
        """A chunk of ``raw_len`` bytes was compressed whole at ``level`` in ``seconds`` of
        wall time (the provider's worker thread, beside whatever else runs on its cores)."""
        log = self._timed.setdefault(level, [])
        log.append((raw_len, max(seconds, 1e-9)))
        del log[:-SPEED_KEEP]

    def speed(self, level: int) -> float | None:
        """Raw bytes per second of this root's last ``SPEED_KEEP`` compressions at ``level``
        (``None``: none yet): what one compression at a time, as a connection's read-ahead
        runs them, can deliver at most (a :class:`RateProbe`'s ``ceiling``)."""
        log = self._timed.get(level)
        if not log:
            return None
        return sum(n for n, _ in log) / sum(t for _, t in log)

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


class Phase(enum.Enum):
    """Where a :class:`RateProbe` is."""

    SETTLE = "settle"  #: a mode just started: its first bytes refill the pipeline, not timed
    MEASURE = "measure"  #: a probe's timed window of the mode
    HOLD = "hold"  #: the faster mode chosen; its windows are still timed (rate changes)


@dataclass
class RateProbe:
    """Raw or compressed, for one connection, by the rate each mode achieves (A/B).

    Compressing pays when the link (or the receiver's rate cap) bounds the transfer, and costs
    when CPU does (on loopback both ends share the cores: the provider's zstd and the
    receiver's decompression take CPU the transfer needed). Rather than guess which, the
    provider tries both: after each chunk is sent it calls :meth:`on_sent` with the chunk's
    content and wire bytes and the time, and asks :attr:`compress` for the next chunk. The
    rate is content bytes per second of wall time between sends, so it includes every wait:
    for the peer's next Request (a receiver paces its Requests by what it verified), for the
    socket (TCP backpressure from a receiver busy decompressing, hashing, writing), for the
    upload cap: what the transfer achieves, not how long a send call took.

    - A probe of one mode is a settle, not timed: ``settle_bytes`` of wire bytes (the socket
      buffers and the receiver's pipeline still hold the previous mode's chunks, whose pace
      says nothing of this mode's; at most twice that in content, for data that compresses
      very well), longer until the pace is steady (buffers the previous mode left empty, or a
      rate cap's burst, take bytes faster than the link), at most four times it; then a
      window of ``window_bytes`` of content, timed.
    - Both modes probed, the faster one is held: compressed only if its rate beats raw by
      more than ``margin`` (a near tie goes raw: it spends no CPU), or raw if the compressed
      window saved less than ``MIN_SAVING`` of its bytes (nothing to gain). Compressed is
      probed first while nothing bounds it (a connection's first chunks, and a short
      transfer's, go compressed and time the compressor); raw first (:meth:`start_raw`)
      where a ``ceiling`` is known before the first chunk.
    - The ``ceiling``: content bytes per second the compressed mode cannot exceed here. The
      provider compresses one chunk at a time per connection (its read-ahead), so the recent
      compress speed of the root's chunks at the connection's level (wall time, on the cores
      the transfer shares; ``CompressionPolicy.speed``) bounds it. Since compressed is held
      only if it beats raw by ``margin``, once ``ceiling <= raw_rate * (1 + margin)`` a probe
      of it cannot change the choice: the probe is skipped (after a raw probe, or when raw's
      held windows fell off its rate) or, when it runs (the ceiling was not known, or above;
      a periodic re-probe, which refreshes the ceiling), cut short as soon as
      ``calibration`` compressions timed in it bring the ceiling down to that. The
      compressed rate is then the ceiling (an upper bound, compared like a measured rate:
      raw's held windows falling below it by the margin re-probe compressed). Where
      compressing cannot win (loopback on two shared cores: raw 450-600 MB/s, zstd -5 at
      200-400 in the worker thread beside the transfer) no chunk is compressed once the
      root's speed is known; where it can (a link or a rate cap well below the compressor)
      nothing changes.
    - While holding, windows are still timed. Two in a row off the held mode's probed rate by
      more than ``change`` (the link got congested, or freed) re-probe the other mode at once
      (the held mode's rate is then the mean of those two). So do two in a row, within the
      first ``confirm_bytes`` of content held, that the other mode's probed rate beat by more
      than ``margin``: the choice must stand on the held mode's sustained pace, not only on
      its probe window, which can read high (a receiver's rate limiter refills its burst
      while compressed chunks run under the cap, and the raw probe that follows spends it:
      it read 122-400 MB/s at a 100 MB/s cap, then held at the cap);
      otherwise the other mode is re-probed after ``interval`` bytes of content, an interval
      that doubles each time the choice stands (up to ``max_interval``) and starts again from
      ``first_interval`` when it flips.
    - A gap between two sends longer than ``idle`` seconds and 8 times the window's mean (the
      peer asked for nothing: between transfers) restarts the window being timed.

    Sans-IO: times come in as arguments; one connection's sender calls it (no lock).
    """

    settle_bytes: int = 8 * _MIB
    window_bytes: int = 8 * _MIB
    margin: float = 0.1
    change: float = 0.3
    confirm_bytes: int = 48 * _MIB
    first_interval: int = 256 * _MIB
    max_interval: int = 1024 * _MIB
    idle: float = 0.5
    calibration: int = 2
    compress: bool = True  #: the mode for the next chunk
    ceiling: float | None = None  #: content bytes/s compressed cannot exceed (None: not known)
    phase: Phase = Phase.SETTLE
    raw_rate: float | None = None  #: content bytes/s last measured raw
    compressed_rate: float | None = None  #: ... compressed (None: not measured, or no saving)
    probes: int = 0  #: probe windows timed
    flips: int = 0  #: times the held mode changed
    bounded: int = 0  #: compressed probes skipped or cut short by the ceiling
    interval: int = 0  #: content bytes to hold before the next probe (0: first_interval)
    _todo: list[bool] = field(default_factory=lambda: [False])  #: modes left to probe
    _then: Phase = Phase.MEASURE  #: the phase after SETTLE
    _choice: bool | None = None  #: the mode last chosen
    _settled: int = 0
    _settled_content: int = 0
    _step_start: float | None = None
    _step_rate: float | None = None
    _step_content: int = 0
    _start: float | None = None
    _last: float | None = None
    _content: int = 0
    _wire: int = 0
    _chunks: int = 0
    _held: int = 0
    _off_rates: list[float] = field(default_factory=list)  #: the held windows off its rate
    _fresh: int = 0  #: compressions timed in the current compressed probe

    def start_raw(self) -> bool:
        """Before the first chunk: probe raw first, then compressed unless the ceiling rules
        it out. False (nothing changed) once a chunk was sent."""
        if self._last is not None or self.probes or not self.compress:
            return False
        self.compress, self._todo = False, [True]
        return True

    def compressed(self, ceiling: float | None) -> None:
        """A chunk was compressed whole for this connection; ``ceiling`` is the bound now
        (the root's recent speed, this compression included)."""
        self.ceiling = ceiling
        if self._probing_compressed():
            self._fresh += 1

    def _probing_compressed(self) -> bool:
        return self.compress and self.phase is not Phase.HOLD and self._then is Phase.MEASURE

    def _bounded(self) -> bool:
        """Compressed cannot beat raw's rate by the margin: its ceiling is below that."""
        c, r = self.ceiling, self.raw_rate
        return c is not None and r is not None and c <= r * (1.0 + self.margin)

    def on_sent(self, content: int, wire: int, now: float) -> None:
        """A chunk of ``content`` bytes went out as ``wire`` bytes; its send returned at ``now``."""
        last, self._last = self._last, now
        if last is not None and self._start is not None and self._chunks:
            mean = (last - self._start) / self._chunks
            if now - last > max(self.idle, 8 * mean):  # nothing was asked for a while
                self._restart(now)
                return
        if self._probing_compressed() and self._fresh >= self.calibration and self._bounded():
            self.compressed_rate = self.ceiling  # cut short: it cannot win
            self.bounded += 1
            self._next_probe()
            return
        if self.phase is Phase.SETTLE:
            self._settle(content, wire, last, now)
            return
        if self._start is None:
            self._restart(now)
            return
        self._content += content
        self._wire += wire
        self._chunks += 1
        if self.phase is Phase.HOLD:
            self._held += content
        if self._content < self.window_bytes:
            return
        rate = self._content / max(now - self._start, 1e-9)
        saving = 1.0 - self._wire / self._content
        self._restart(now)
        if self.phase is Phase.MEASURE:
            self.probes += 1
            if self.compress:
                self.compressed_rate = rate if saving >= MIN_SAVING else None
            else:
                self.raw_rate = rate
            self._next_probe()
            return
        ref = self.compressed_rate if self.compress else self.raw_rate
        other = self.raw_rate if self.compress else self.compressed_rate
        off = ref is None or abs(rate / ref - 1.0) > self.change
        if not off and other is not None and self._held <= self.confirm_bytes:
            off = rate * (1.0 + self.margin) < other  # the choice does not stand on the held
            # mode's own pace: its probe read high (e.g. a rate cap's burst left by the other)
        self._off_rates = [*self._off_rates, rate] if off else []
        if len(self._off_rates) >= 2 or self._held >= (self.interval or self.first_interval):
            periodic = len(self._off_rates) < 2
            if not periodic:  # the held mode's rate as it is now
                rate = sum(self._off_rates) / len(self._off_rates)
            if self.compress:  # then probe the other mode
                self.compressed_rate = rate if saving >= MIN_SAVING else None
            else:
                self.raw_rate = rate
            self._todo = [not self.compress]
            self._next_probe(periodic=periodic)

    def _settle(self, content: int, wire: int, last: float | None, now: float) -> None:
        """Settling: over when the pipeline holds this mode (``settle_bytes`` of wire, or
        twice that of content) and the pace is steady (two steps of a quarter of it within
        ``STEADY`` of each other: buffers that were filling, a rate cap's burst, are past),
        or at four times ``settle_bytes`` of content whatever the pace."""
        self._settled += wire
        self._settled_content += content
        if self._step_start is None:
            self._step_start = last if last is not None else now
            if last is None:
                return  # the first chunk ever: nothing to time it from
        self._step_content += content
        if self._step_content < max(1, self.settle_bytes // 4):
            return
        rate = self._step_content / max(now - self._step_start, 1e-9)
        steady = self._step_rate is not None and abs(rate / self._step_rate - 1.0) <= STEADY
        self._step_rate, self._step_content, self._step_start = rate, 0, now
        filled = (
            self._settled >= self.settle_bytes or self._settled_content >= 2 * self.settle_bytes
        )
        if (filled and steady) or self._settled_content >= 4 * self.settle_bytes:
            self.phase = self._then
            self._restart(now)

    def _restart(self, now: float) -> None:
        self._start = now
        self._content = self._wire = self._chunks = 0

    def _switch(self, mode: bool, then: Phase) -> None:
        if mode == self.compress and then is Phase.HOLD:
            self.phase = Phase.HOLD  # the pipeline already holds this mode: nothing to settle
        else:
            self.compress, self.phase, self._then = mode, Phase.SETTLE, then
            self._settled = self._settled_content = self._step_content = 0
            self._step_start = self._step_rate = None
        self._start = None

    def _next_probe(self, *, periodic: bool = False) -> None:
        while self._todo:
            mode = self._todo.pop(0)
            if mode and not periodic and self._bounded():  # it cannot change the choice
                self.compressed_rate = self.ceiling
                self.bounded += 1
                continue
            self._fresh = 0
            self._switch(mode, Phase.MEASURE)
            return
        r, c = self.raw_rate, self.compressed_rate
        choice = c is not None and (r is None or c > r * (1.0 + self.margin))
        if self._choice is not None and choice == self._choice and self.interval:
            self.interval = min(self.max_interval, 2 * self.interval)
        else:
            self.interval = self.first_interval
        if self._choice is not None and choice != self._choice:
            self.flips += 1
        self._choice = choice
        self._held = 0
        self._off_rates = []
        self._switch(choice, Phase.HOLD)


@dataclass
class LevelTuner:
    """Per connection: whether to compress (its :class:`RateProbe`) and the zstd level.

    Whether: :meth:`should_compress` is the probe's mode; tell it every chunk sent
    (:meth:`sent`). The level, while the probe holds compressed (during a probe it stays,
    so both modes are timed at one level), from measured speeds: tell it the bytes and
    seconds of every compression (:meth:`observe_compress`, raw bytes) and of every chunk
    sent (:meth:`sent` feeds :meth:`observe_send`: content bytes and the time since the
    previous send). Every ``every`` compressions it compares the two rates and moves the
    level one step: faster below 2x, smaller above 8x. The probe's ceiling comes from the
    root's compress speeds (:meth:`bound` before each chunk, :meth:`compressed` after each
    whole-chunk compression, which also feeds :meth:`observe_compress`).
    """

    level: int = START_LEVEL
    every: int = 16
    probe: RateProbe = field(default_factory=RateProbe)
    _bound: bool = False  #: :meth:`bound` was called (the first chunk)
    _last_sent: float | None = None
    _n: int = 0
    _c_bytes: int = 0
    _c_seconds: float = 0.0
    _s_bytes: int = 0
    _s_seconds: float = 0.0

    def bound(self, speed: float | None) -> None:
        """Before each chunk: the root's recent compress speed at :attr:`level` (raw bytes
        per second, ``CompressionPolicy.speed``; ``None``: not known) is the probe's
        ``ceiling``. At the connection's first chunk a known speed starts the probe raw
        (:meth:`RateProbe.start_raw`): raw's rate is then measured first, and compressed
        probed only if that speed could beat it."""
        if not self._bound:
            self._bound = True
            if speed is not None:
                self.probe.start_raw()
        self.probe.ceiling = speed

    def compressed(self, raw_bytes: int, seconds: float, speed: float | None) -> None:
        """A chunk of ``raw_bytes`` was compressed whole in ``seconds``; ``speed`` the root's
        speed at this level now (this compression included): :meth:`observe_compress`, and
        the probe's ceiling (:meth:`RateProbe.compressed`)."""
        self.observe_compress(raw_bytes, seconds)
        self.probe.compressed(speed)

    def skips_next(self) -> bool:
        """:meth:`should_compress` will answer False next time (a cheap peek, no change)."""
        return not self.probe.compress

    def should_compress(self) -> bool:
        return self.probe.compress

    def sent(self, content: int, wire: int, now: float) -> None:
        """A chunk's send returned at ``now``: the probe is told (:meth:`RateProbe.on_sent`),
        and the wall time since the previous send is this chunk's time for the level
        (:meth:`observe_send` of its content bytes: the pace the peer takes content at, not
        how long the send call took, nor the frame's size, which would make a better ratio
        look like a slower link; a gap longer than the probe's ``idle`` is between
        transfers: left out)."""
        self.probe.on_sent(content, wire, now)
        last, self._last_sent = self._last_sent, now
        if last is not None and now - last <= self.probe.idle:
            self.observe_send(content, now - last)

    def observe_send(self, nbytes: int, seconds: float) -> None:
        self._s_bytes += nbytes
        self._s_seconds += max(0.0, seconds)

    def observe_compress(self, raw_bytes: int, seconds: float) -> None:
        self._c_bytes += raw_bytes
        self._c_seconds += max(0.0, seconds)
        self._n += 1
        if self._n >= self.every:
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
        steady = self.probe.phase is Phase.HOLD and self.probe.compress
        if not steady:
            pass  # probing: both modes are timed at one level (and a young connection's
            # pace, in the receiver's slow start, would read as a slow link)
        elif ratio < 2.0 and i > 0:
            self.level = LEVELS[i - 1]
        elif ratio > 8.0 and i < len(LEVELS) - 1:
            self.level = LEVELS[i + 1]
        self._n = 0
        self._c_bytes = self._s_bytes = 0
        self._c_seconds = self._s_seconds = 0.0
