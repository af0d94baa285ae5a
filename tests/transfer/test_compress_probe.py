"""The provider's rate probe on real TCP (127.0.0.1, real LevelDB stores): whether a
connection compresses is decided by what each mode delivers (node.wire._compress.RateProbe;
the sans-IO cases are in tests/wire/test_compress_probe.py).

- a rate-capped link (the provider's upload cap, paced on wire bytes): compressing
  delivers more content per second, so the probe ends compressed, and the fetch is faster
  than the same fetch without compression;
- a link where compressing is the slower mode (here: compression made slow on purpose, as on
  a loopback whose two ends share the CPU): the probe ends raw, and the compressed chunks are
  only those of its probe.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import trio

from node.store import Store
from node.transfer import Provider
from node.transfer._compress import ChunkCompressor
from node.transfer._shaper import Shaper
from node.wire import LevelTuner
from node.wire._compress import Phase, RateProbe

from .helpers import read_all
from .test_delta_compress import _fetch, _store, json_lines

MiB = 1 << 20


class _Recording(ChunkCompressor):
    """Keeps each connection's tuner; ``slow`` seconds added to every chunk compressed."""

    def __init__(self, *, slow: float = 0.0, steady: bool = False) -> None:
        super().__init__(cache_bytes=0)  # every probe compresses (no frame served twice)
        self.slow = slow
        self.steady = steady
        self.tuners: list[LevelTuner] = []

    def encode(self, root, chunk_root, data, tuner: LevelTuner):  # type: ignore[no-untyped-def, override]
        if not any(t is tuner for t in self.tuners):
            self.tuners.append(tuner)
            if self.steady:  # before its first chunk is sent: the initial A/B only (no
                # re-probe when a loaded runner's windows swing by more than 30%, or sag
                # below the other mode's probed rate while they confirm the choice), with a
                # 4 MiB settle: even when a loaded runner's pace never steadies (settle up
                # to 4x), both probes end within the 64 MiB content (the default 8 MiB
                # could take 2 x (32 + 8) MiB: a test once ended still settling under xdist)
                tuner.probe = RateProbe(change=100.0, confirm_bytes=0, settle_bytes=4 * MiB)
        payload, compressed = super().encode(root, chunk_root, data, tuner)
        if compressed and self.slow:
            time.sleep(self.slow)  # a worker thread: the sender waits for its read-ahead
        return payload, compressed


def probe_bound(probe: RateProbe) -> int:
    """Most chunks (of 1 MiB) one probe of a mode can take: its settle (at most four times
    ``settle_bytes`` of content, when the pace will not steady), its window, the chunk read
    ahead when it ended, and the one sent before the first was timed."""
    return (4 * probe.settle_bytes + probe.window_bytes) // MiB + 2


@functools.cache
def _json(size: int) -> bytes:
    return json_lines(size, 4)  # ~6 s for 64 MiB here: made once for the module


def _content(tmp_path: Path, size: int) -> tuple[Store, bytes, bytes]:
    data = _json(size)
    src = _store(tmp_path / "src")
    return src, data, src.add_bytes(data, chunk_size=MiB).root


async def test_a_capped_link_turns_compression_on_and_is_faster(tmp_path: Path) -> None:
    cap = 16_000_000  # the provider's upload cap (its shaper paces wire bytes)
    src, data, root = _content(tmp_path, 64 * MiB)
    comp = _Recording(steady=True)
    prov = Provider(src, "", compress=comp, upload=Shaper(upload=cap))
    dst = _store(tmp_path / "on")
    t0 = trio.current_time()
    result = await _fetch([(src, prov)], dst, root)
    on = trio.current_time() - t0
    assert read_all(dst, root) == data
    (tuner,) = comp.tuners
    probe = tuner.probe
    assert probe.raw_rate is not None and probe.compressed_rate is not None
    assert probe.raw_rate < 1.2 * cap  # content = wire when raw
    assert probe.compressed_rate > 1.5 * probe.raw_rate
    assert probe.phase is Phase.HOLD and probe.compress
    # the raw probe is 16 MiB (8 to settle, 8 timed, a few more if the pace is not steady);
    # the rest went compressed
    assert prov.stats.compressed_chunks >= 64 - 16 - 8
    assert result.wire_bytes <= 0.6 * len(data)
    raw_prov = Provider(src, "", compress=False, upload=Shaper(upload=cap))
    t0 = trio.current_time()
    raw = await _fetch([(src, raw_prov)], _store(tmp_path / "off"), root)
    off = trio.current_time() - t0
    assert raw.wire_bytes == len(data)
    assert on < 0.8 * off, (on, off)


async def test_where_compressing_is_slower_the_probe_ends_raw(tmp_path: Path) -> None:
    src, data, root = _content(tmp_path, 64 * MiB)
    comp = _Recording(slow=0.08, steady=True)  # compressed: at most 12.5 chunks (MiB) per second
    prov = Provider(src, "", compress=comp)
    dst = _store(tmp_path / "dst")
    result = await _fetch([(src, prov)], dst, root)
    assert read_all(dst, root) == data
    (tuner,) = comp.tuners
    probe = tuner.probe
    assert probe.raw_rate is not None and probe.compressed_rate is not None
    assert probe.raw_rate > probe.compressed_rate
    assert not probe.compress, (probe.raw_rate, probe.compressed_rate, probe.probes, probe.flips)
    # only the compressed probe's chunks
    assert prov.stats.compressed_chunks <= probe_bound(probe)
    assert result.wire_bytes > 0.6 * len(data)


async def test_uncapped_loopback_ends_in_the_mode_it_measured_faster(tmp_path: Path) -> None:
    # The real compressor, no cap: in one process, compressing may or may not pay (zstd runs
    # in worker threads beside the event loop). Whichever it is, the probe holds the mode it
    # measured faster, and if that is raw, compression cost no more than its one probe.
    src, data, root = _content(tmp_path, 64 * MiB)
    comp = _Recording(steady=True)
    prov = Provider(src, "", compress=comp)
    dst = _store(tmp_path / "dst")
    await _fetch([(src, prov)], dst, root)
    assert read_all(dst, root) == data
    (tuner,) = comp.tuners
    probe = tuner.probe
    assert probe.raw_rate is not None and probe.compressed_rate is not None
    if probe.compress:
        assert probe.compressed_rate > (1 + probe.margin) * probe.raw_rate
    else:
        assert probe.compressed_rate <= (1 + probe.margin) * probe.raw_rate
        assert prov.stats.compressed_chunks <= probe_bound(probe)  # its one probe
