"""Per-chunk zstd on the wire: the codec's guards, the auto-off policy and the level tuner."""

from __future__ import annotations

import itertools
import json
import random

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from node.wire import ErrorCode
from node.wire._compress import (
    DEFAULT_LEVEL,
    LEVELS,
    MAX_BACKOFF,
    MIN_SAVING,
    SAMPLE_SLICE,
    SAMPLE_SLICES,
    ChunkCodec,
    CompressedChunkError,
    CompressedSizeMismatch,
    CompressionPolicy,
    CompressPlan,
    CorruptCompressedChunk,
    LevelTuner,
    Mode,
    Phase,
    compress_chunk,
    decompress_chunk,
    sample_of,
)
from tests._hyp import examples

MiB = 1 << 20


def json_chunk(n: int = MiB, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    rows = (
        json.dumps({"id": i, "user": f"u{rng.randrange(10**5)}", "score": rng.random()})
        for i in range(10**6)
    )
    out = bytearray()
    for row in rows:
        out += row.encode() + b"\n"
        if len(out) >= n:
            return bytes(out[:n])
    raise AssertionError("unreachable")


def random_chunk(n: int = MiB, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


# -- the codec ---------------------------------------------------------------------------------


def test_roundtrip_saves_on_text_and_declines_random_data() -> None:
    data = json_chunk()
    frame = compress_chunk(data)
    assert frame is not None and len(frame) < 0.8 * len(data)
    assert zstandard.frame_content_size(frame) == len(data)  # the size the receiver checks
    assert decompress_chunk(frame, len(data)) == data
    assert compress_chunk(random_chunk()) is None  # would not save 5%: send it raw
    assert compress_chunk(b"") is None
    for level in LEVELS:
        f = ChunkCodec().compress(data, level)
        assert f is not None and decompress_chunk(f, len(data)) == data


def test_a_frame_is_kept_only_when_it_saves_min_saving() -> None:
    half = json_chunk(MiB // 2) + random_chunk(MiB // 2)
    codec = ChunkCodec()
    assert codec.compress(half) is not None  # ~40% saved
    assert codec.compress(half, min_saving=0.9) is None


@pytest.mark.parametrize(
    ("frame_of", "expected", "error"),
    [
        # a bomb: declares (and holds) more than the chunk
        (lambda d: zstandard.ZstdCompressor().compress(d + d), MiB, CompressedSizeMismatch),
        # declares less than the chunk
        (lambda d: zstandard.ZstdCompressor().compress(d[:-1]), MiB, CompressedSizeMismatch),
        # declares no size at all (a streaming frame): refused before any decoding
        (
            lambda d: zstandard.ZstdCompressor(write_content_size=False).compress(d),
            MiB,
            CompressedSizeMismatch,
        ),
        # truncated
        (lambda d: zstandard.ZstdCompressor().compress(d)[:-7], MiB, CorruptCompressedChunk),
        # trailing bytes, and a second frame, after a good one
        (lambda d: zstandard.ZstdCompressor().compress(d) + b"\0", MiB, CorruptCompressedChunk),
        (
            lambda d: zstandard.ZstdCompressor().compress(d) * 2,
            MiB,
            CorruptCompressedChunk,
        ),
        # not zstd at all
        (lambda d: d[:4096], MiB, CorruptCompressedChunk),
        # an expected length no chunk can have
        (lambda d: zstandard.ZstdCompressor().compress(d), 5 * MiB, CompressedSizeMismatch),
    ],
    ids=["bomb", "short", "no-size", "truncated", "trailing", "two-frames", "garbage", "huge"],
)
def test_hostile_frames_are_typed_errors(frame_of, expected: int, error: type) -> None:  # type: ignore[no-untyped-def]
    frame = frame_of(json_chunk())
    with pytest.raises(error) as info:
        decompress_chunk(frame, expected)
    assert isinstance(info.value, CompressedChunkError)
    assert info.value.code is ErrorCode.BAD_CHUNK and info.value.recoverable
    assert "\n" not in str(info.value)


def test_a_corrupted_block_is_caught_by_zstd_or_by_the_chunk_root() -> None:
    """Flipping a byte inside the blocks either fails to decode or decodes to other bytes; the
    receiver verifies the chunk root over the decompressed bytes, so the second case is caught
    there (the codec guarantees only the length)."""
    data = json_chunk()
    frame = bytearray(compress_chunk(data) or b"")
    frame[len(frame) // 2] ^= 0x55
    try:
        out = decompress_chunk(bytes(frame), len(data))
    except CorruptCompressedChunk:
        return
    assert len(out) == len(data) and out != data


@settings(max_examples=examples(200))
@given(st.binary(max_size=4096), st.integers(min_value=1, max_value=4 << 20))
def test_any_input_is_decoded_or_refused_with_a_typed_error(frame: bytes, expected: int) -> None:
    try:
        out = decompress_chunk(frame, expected)
    except CompressedChunkError:
        return
    assert len(out) == expected


@settings(max_examples=examples(50))
@given(st.binary(min_size=1, max_size=20000), st.sampled_from(LEVELS))
def test_roundtrip_any_bytes(data: bytes, level: int) -> None:
    frame = ChunkCodec().compress(data, level, min_saving=-10.0)  # always keep the frame
    assert frame is not None and decompress_chunk(frame, len(data)) == data


# -- auto-off ----------------------------------------------------------------------------------


def drive(policy: CompressionPolicy, chunks: list[bytes], codec: ChunkCodec) -> list[CompressPlan]:
    """What a provider does per chunk: plan, (sample,) (compress whole,) record."""
    plans = []
    for data in chunks:
        plan = policy.plan()
        plans.append(plan)
        if plan is CompressPlan.RAW or (
            plan is CompressPlan.SAMPLE and not policy.record_sample(codec.sample_saving(data))
        ):
            policy.record(len(data), None)
            continue
        frame = codec.compress(data)
        policy.record(len(data), None if frame is None else len(frame), whole=True)
    return plans


def sampled_at(plans: list[CompressPlan]) -> list[int]:
    return [i for i, p in enumerate(plans) if p is CompressPlan.SAMPLE]


def test_random_data_is_sampled_with_exponential_back_off_and_never_compressed_whole() -> None:
    codec, policy = ChunkCodec(), CompressionPolicy()
    n = 300
    plans = drive(policy, [random_chunk(256 * 1024, i % 16) for i in range(n)], codec)
    assert CompressPlan.COMPRESS not in plans  # no whole-chunk compression, not even a probe
    at = sampled_at(plans)
    gaps = [b - a - 1 for a, b in itertools.pairwise(at)]
    assert gaps[:7] == [1, 2, 4, 8, 16, 32, 64] and set(gaps[7:]) == {MAX_BACKOFF}
    assert policy.mode is Mode.OFF and policy.samples == len(at) <= 12
    assert policy.compressed_chunks == 0 and policy.raw_chunks == n


def test_compressible_data_is_sampled_once_then_compressed_whole() -> None:
    codec, policy = ChunkCodec(), CompressionPolicy()
    text = [json_chunk(256 * 1024, i) for i in range(8)]
    plans = drive(policy, text, codec)
    assert plans == [CompressPlan.SAMPLE] + [CompressPlan.COMPRESS] * 7
    assert policy.mode is Mode.ON and policy.compressed_chunks == 8
    assert policy.saved_bytes > 0.5 * 8 * 256 * 1024


def test_a_switch_to_random_backs_off_and_a_switch_back_is_noticed_within_max_back_off() -> None:
    codec, policy = ChunkCodec(), CompressionPolicy()
    drive(policy, [json_chunk(256 * 1024, i) for i in range(4)], codec)
    plans = drive(policy, [random_chunk(256 * 1024, i) for i in range(200)], codec)
    assert plans[0] is CompressPlan.COMPRESS  # one whole chunk wasted at the switch, no more
    assert plans[1:].count(CompressPlan.COMPRESS) == 0 and policy.mode is Mode.OFF
    text = json_chunk(256 * 1024, 9)
    plans = drive(policy, [text] * (MAX_BACKOFF + 2), codec)
    first = plans.index(CompressPlan.SAMPLE)
    assert first <= MAX_BACKOFF and policy.mode is Mode.ON
    assert plans[first + 1] is CompressPlan.COMPRESS and policy.backoff == 0  # reset


def test_a_sample_that_passes_but_a_frame_that_does_not_backs_off() -> None:
    policy = CompressionPolicy()
    assert policy.plan() is CompressPlan.SAMPLE and policy.record_sample(0.5)
    policy.record(1000, None, whole=True)  # the whole frame saved too little
    assert policy.mode is Mode.OFF and policy.off and policy.skip == 1
    assert policy.plan() is CompressPlan.RAW and not policy.off
    assert policy.plan() is CompressPlan.SAMPLE


def test_a_sample_just_below_min_saving_goes_raw() -> None:
    policy = CompressionPolicy()
    assert policy.plan() is CompressPlan.SAMPLE
    assert not policy.record_sample(MIN_SAVING * 0.99)
    assert policy.mode is Mode.OFF and policy.failures == 1


def test_samples_are_spread_over_the_chunk() -> None:
    data = bytes(range(256)) * 1024  # 256 KiB
    s = sample_of(data)
    assert len(s) == SAMPLE_SLICES * SAMPLE_SLICE
    assert s[:SAMPLE_SLICE] == data[:SAMPLE_SLICE] and s[-SAMPLE_SLICE:] == data[-SAMPLE_SLICE:]
    small = b"x" * 100
    assert sample_of(small) is small
    # compressible only in its last quarter: the sample sees it
    mixed = random_chunk(192 * 1024) + b"a" * (64 * 1024)
    assert ChunkCodec().sample_saving(mixed) > MIN_SAVING


@settings(max_examples=examples(200))
@given(st.lists(st.sampled_from(["good", "bad", "raw-sample"]), max_size=400))
def test_policy_invariants_under_any_outcomes(outcomes: list[str]) -> None:
    """Whatever the samples and frames say: the back-off stays within 0..MAX_BACKOFF, no more
    than MAX_BACKOFF raw chunks go untested in a row, and a good frame turns the policy on."""
    policy = CompressionPolicy()
    untested = 0
    for outcome in outcomes:
        plan = policy.plan()
        assert 0 <= policy.backoff <= MAX_BACKOFF and 0 <= policy.skip <= MAX_BACKOFF
        if plan is CompressPlan.RAW:
            untested += 1
            assert untested <= MAX_BACKOFF
            policy.record(100, None)
            continue
        untested = 0
        if plan is CompressPlan.SAMPLE and not policy.record_sample(
            0.0 if outcome == "raw-sample" else 0.5
        ):
            assert policy.mode is Mode.OFF and policy.skip == policy.backoff >= 1
            policy.record(100, None)
            continue
        policy.record(100, 50 if outcome == "good" else None, whole=True)
        if outcome == "good":
            assert policy.mode is Mode.ON and policy.backoff == 0
        else:
            assert policy.mode is Mode.OFF
    assert policy.compressed_chunks + policy.raw_chunks == len(outcomes)


# -- the level tuner ---------------------------------------------------------------------------


def steady() -> LevelTuner:
    """A tuner whose probe holds compressed (the level moves only then)."""
    tuner = LevelTuner(level=DEFAULT_LEVEL)
    tuner.probe.phase = Phase.HOLD
    return tuner


def feed(tuner: LevelTuner, compress_rate: float, send_rate: float, n: int = 16) -> None:
    for _ in range(n):
        tuner.observe_send(MiB, MiB / send_rate)
        tuner.observe_compress(MiB, MiB / compress_rate)


def test_level_steps_down_when_compressing_lags_and_up_when_the_link_is_slow() -> None:
    tuner = steady()
    assert tuner.level == DEFAULT_LEVEL
    feed(tuner, compress_rate=300e6, send_rate=10e6)  # 30x: afford a smaller output
    assert tuner.level == 3
    feed(tuner, compress_rate=300e6, send_rate=10e6)
    assert tuner.level == 3  # the top
    feed(tuner, compress_rate=300e6, send_rate=100e6)  # 3x: keep
    assert tuner.level == 3
    feed(tuner, compress_rate=150e6, send_rate=100e6)  # 1.5x: faster
    assert tuner.level == 1


def test_the_level_reads_the_pace_between_sends_not_the_send_call() -> None:
    tuner = steady()
    t = 0.0
    for _ in range(16):  # the peer takes 1 MiB every 50 ms (20 MiB/s): zstd is far ahead
        t += 0.05
        tuner.sent(MiB, MiB, t)
        tuner.observe_compress(MiB, MiB / 300e6)
    assert tuner.level > DEFAULT_LEVEL
    tuner, t = steady(), 0.0
    for i in range(16):  # 1 GB/s between sends; a 10 s gap (between transfers) is left out
        t += 10.0 if i == 8 else MiB / 1e9
        tuner.sent(MiB, MiB, t)
        tuner.observe_compress(MiB, MiB / 400e6)
    assert tuner.level < DEFAULT_LEVEL
    tuner, t = steady(), 0.0
    for _ in range(16):  # 200 MB/s of content in frames of a fifth: the link is not slow
        t += MiB / 200e6
        tuner.sent(MiB, MiB // 5, t)
        tuner.observe_compress(MiB, MiB / 1000e6)
    assert tuner.level == DEFAULT_LEVEL  # 5x: keep (on frame bytes it would read 25x: up)


def test_compressing_slower_than_sending_steps_to_the_fastest_level_and_stays_there() -> None:
    tuner = steady()
    for _ in range(5):
        feed(tuner, compress_rate=400e6, send_rate=1000e6)
    assert tuner.level == LEVELS[0]  # whether to compress at all is the rate probe's call
    assert tuner.should_compress()  # (tests/wire/test_compress_probe.py)


# -- ChunkDataZ on the wire ----------------------------------------------------------------------


def test_chunk_data_z_encodes_as_kind_0x25_and_decodes_on_both_paths() -> None:
    from node import wire

    root = bytes(range(32))
    msg = wire.ChunkDataZ(root, 7, 0, 3, b"abc")
    raw = wire.encode(msg)
    assert raw[4] == 0x25 and raw[5:] == wire.encode(wire.ChunkData(root, 7, 0, 3, b"abc"))[5:]
    assert isinstance(msg, wire.ChunkData) and msg.compressed and msg.is_last
    fast = wire.decode_chunk_piece(raw)
    assert fast == msg and type(fast) is wire.ChunkDataZ
    dec = wire.MessageDecoder()
    dec.receive_data(raw)
    assert dec.next_event() == msg
    assert wire.ChunkData(root, 7, 0, 3, b"abc") != msg  # the form is part of the message


def test_the_last_compressed_piece_ends_the_outstanding_index() -> None:
    from node import wire

    root = bytes(32)
    state = wire.ProtocolState()
    for side in (wire.Side.US, wire.Side.THEM):
        state.process(side, wire.Hello())
    state.process(wire.Side.US, wire.Request(root, 1, (4, 5)))
    state.process(wire.Side.THEM, wire.ChunkDataZ(root, 4, 0, 10, b"12345"))
    assert state.outstanding(wire.Side.US) == 2
    state.process(wire.Side.THEM, wire.ChunkDataZ(root, 4, 5, 10, b"67890"))
    assert state.outstanding(wire.Side.US) == 1


def test_the_level_stays_while_the_probe_probes() -> None:
    tuner = LevelTuner()  # a new connection: probing, compressed first, at the cheapest level
    feed(tuner, compress_rate=300e6, send_rate=10e6)  # the receiver's slow start: a slow pace
    assert tuner.level == LEVELS[0]
    tuner.probe.phase = Phase.HOLD
    feed(tuner, compress_rate=300e6, send_rate=10e6)
    assert tuner.level > LEVELS[0]


def test_skips_next_predicts_should_compress() -> None:
    tuner = LevelTuner()
    assert not tuner.skips_next() and tuner.should_compress()  # a probe starts compressed
    tuner.probe.compress = False
    assert tuner.skips_next() and not tuner.should_compress()
