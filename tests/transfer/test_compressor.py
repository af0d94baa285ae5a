"""The provider's ChunkCompressor: per-root auto-off, the frame cache, thread safety."""

from __future__ import annotations

import hashlib
import threading

from node.transfer._compress import ChunkCompressor, decompress
from node.wire import LevelTuner
from node.wire._compress import DEFAULT_LEVEL
from tests.wire.test_compress import json_chunk, random_chunk

KiB = 1024


def key(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_frames_are_cached_by_chunk_root_and_decode() -> None:
    comp, tuner = ChunkCompressor(cache_bytes=1 << 20), LevelTuner()
    chunk = json_chunk(256 * KiB)
    payload, compressed = comp.encode(b"r1", key(chunk), chunk, tuner)
    assert compressed and len(payload) < 0.5 * len(chunk)
    assert decompress(payload, len(chunk)) == chunk
    seconds = comp.stats.compress_seconds
    again, compressed2 = comp.encode(b"r2", key(chunk), chunk, LevelTuner())  # another root
    assert compressed2 and again is payload and comp.stats.cache_hits == 1
    assert comp.stats.compress_seconds == seconds  # not compressed twice
    assert comp.stats.raw_bytes == 2 * len(chunk) and comp.stats.saving > 0.5


def test_incompressible_chunks_go_raw_and_the_root_turns_off() -> None:
    comp, tuner = ChunkCompressor(), LevelTuner()
    for i in range(20):
        data = random_chunk(256 * KiB, i)
        payload, compressed = comp.encode(b"rnd", key(data), data, tuner)
        assert not compressed and payload is data
    assert comp.policy(b"rnd").mode.value == "off"
    assert comp.stats.wire_bytes == comp.stats.raw_bytes == 20 * 256 * KiB
    assert comp.stats.samples == 5  # chunks 0, 2, 5, 10, 19: back-off 1, 2, 4, 8
    assert comp.cached_bytes == 5 * 64  # five sample verdicts, no frames
    assert comp.policy(b"rnd").compressed_chunks == 0


def test_a_frame_cached_by_another_root_is_served_while_backing_off() -> None:
    comp, tuner = ChunkCompressor(), LevelTuner()
    text = json_chunk(256 * KiB)
    comp.encode(b"txt", key(text), text, tuner)
    rnd = random_chunk(256 * KiB, 1)
    comp.encode(b"mix", key(rnd), rnd, tuner)  # the sample fails: "mix" backs off
    assert comp.policy(b"mix").off
    payload, compressed = comp.encode(b"mix", key(text), text, tuner)
    assert compressed and decompress(payload, len(text)) == text  # the cache, no work


def test_a_content_compressible_only_in_places_costs_samples_not_whole_chunks() -> None:
    comp, tuner = ChunkCompressor(), LevelTuner()
    chunks = [random_chunk(256 * KiB, i) for i in range(40)]
    chunks[30] = json_chunk(256 * KiB, 3)
    sent = [comp.encode(b"m", None, c, tuner)[1] for c in chunks]
    s = comp.stats
    assert s.samples <= 7 and s.compressed_chunks <= 1
    assert sent[:30] == [False] * 30


def test_cache_budget_evicts_least_recently_used() -> None:
    comp = ChunkCompressor(cache_bytes=64 * KiB)  # ~2 frames at level 1
    chunks = [json_chunk(256 * KiB, i) for i in range(6)]
    for c in chunks:
        comp.encode(b"r", key(c), c, LevelTuner(level=DEFAULT_LEVEL))
    assert 0 < comp.cached_bytes <= 64 * KiB
    hits = comp.stats.cache_hits
    comp.encode(b"r", key(chunks[-1]), chunks[-1], LevelTuner(level=DEFAULT_LEVEL))
    comp.encode(b"r", key(chunks[0]), chunks[0], LevelTuner(level=DEFAULT_LEVEL))
    assert comp.stats.cache_hits == hits + 1  # the newest was kept, the oldest evicted


def test_a_tuner_whose_probe_holds_raw_skips_compression() -> None:
    comp, tuner = ChunkCompressor(), LevelTuner()
    tuner.probe.compress = False  # raw measured faster on this connection
    chunk = json_chunk(256 * KiB)
    sent = [comp.encode(b"r", None, chunk, tuner)[1] for _ in range(8)]
    assert sent.count(True) == 0 and comp.stats.compress_seconds == 0.0
    p = comp.policy(b"r")  # skipped chunks judge nothing of the data
    assert p.mode.value == "sample" and p.raw_chunks == 0
    tuner.probe.compress = True
    assert comp.encode(b"r", None, chunk, tuner)[1]
    assert p.mode.value == "on" and p.compressed_chunks == 1


def test_threads_share_one_compressor() -> None:
    comp = ChunkCompressor(cache_bytes=256 * KiB)
    chunks = [json_chunk(128 * KiB, i) for i in range(8)]
    errors: list[BaseException] = []

    def work() -> None:
        tuner = LevelTuner()
        try:
            for c in chunks * 3:
                payload, compressed = comp.encode(b"r", key(c), c, tuner)
                assert (decompress(payload, len(c)) if compressed else payload) == c
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    s = comp.stats
    assert s.compressed_chunks + s.raw_chunks == 4 * 3 * 8 and s.cache_hits > 0
