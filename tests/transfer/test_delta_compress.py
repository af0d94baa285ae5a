"""Delta fetch and compressed chunks, loopback: real TCP on 127.0.0.1, real LevelDB stores.

Small-scale versions of the issue-12 acceptance runs (benchmarks/delta_compress.py does the
full-size ones): v1 held, v2 with ~5% of its chunks changed in place or with data appended;
a compressible JSON content; random data.
"""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path

import trio
import zstandard

from node.store import Store
from node.transfer import PeerAddr, Provider, fetch, serve_node
from node.transfer._compress import ChunkCompressor
from node.wire import LevelTuner

from .helpers import make_identity, read_all

CHUNK = 256 * 1024
MiB = 1 << 20


async def _fetch(
    provider_stores: list[tuple[Store, Provider]],
    dst: Store,
    root: bytes,
    **kw: object,
):  # type: ignore[no-untyped-def]
    ids = [make_identity() for _ in provider_stores]
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            peers = []
            for ident, (store, prov) in zip(ids, provider_stores, strict=True):
                prov.address = ident.address
                host, port = await nursery.start(
                    lambda task_status, s=store, i=ident, p=prov: serve_node(
                        s, i, provider=p, task_status=task_status
                    )
                )
                peers.append(PeerAddr(host, port, ident.address))
            result = await fetch(dst, make_identity(), root, peers, **kw)  # type: ignore[arg-type]
            nursery.cancel_scope.cancel()
    return result


def _store(path: Path) -> Store:
    return Store.open(path, durable=False)


def _versions(n: int, changed: list[int], appended: int) -> tuple[bytes, bytes]:
    rng = random.Random(12)
    v1 = rng.randbytes(n * CHUNK)
    v2 = bytearray(v1)
    for i in changed:
        v2[i * CHUNK + rng.randrange(CHUNK)] ^= 0xFF  # one byte: the whole chunk is new
    v2 += rng.randbytes(appended)
    return v1, bytes(v2)


async def test_delta_moves_only_the_changed_chunks(tmp_path: Path) -> None:
    n = 64
    changed = [5, 30, 61]  # 3 of 64 chunks: 4.7%
    v1, v2 = _versions(n, changed, 0)
    src = _store(tmp_path / "src")
    m2 = src.add_bytes(v2, chunk_size=CHUNK)
    dst = _store(tmp_path / "dst")
    dst.add_bytes(v1, chunk_size=CHUNK)
    prov = Provider(src, "")
    result = await _fetch([(src, prov)], dst, m2.root)
    assert read_all(dst, m2.root) == v2 and dst.verify(m2.root).ok
    assert result.local_chunks == n - len(changed) and result.local_bytes == (n - 3) * CHUNK
    assert result.fetched_chunks == len(changed) and result.resumed_chunks == 0
    assert result.wire_bytes == len(changed) * CHUNK  # random data: nothing to compress
    assert result.wire_bytes <= 0.06 * len(v2)
    assert prov.stats.bytes_served == len(changed) * CHUNK


async def test_delta_with_data_appended_moves_the_appended_part(tmp_path: Path) -> None:
    v1, v2 = _versions(32, [], 3 * CHUNK + 1000)  # v1's chunks, then 3 new chunks and a tail
    src = _store(tmp_path / "src")
    m2 = src.add_bytes(v2, chunk_size=CHUNK)
    dst = _store(tmp_path / "dst")
    dst.add_bytes(v1, chunk_size=CHUNK)
    result = await _fetch([(src, Provider(src, ""))], dst, m2.root)
    assert read_all(dst, m2.root) == v2
    assert result.wire_bytes == len(v2) - len(v1)  # exactly the appended part
    assert result.local_bytes == len(v1)


async def test_without_delta_everything_crosses_the_wire(tmp_path: Path) -> None:
    v1, v2 = _versions(16, [3], 0)
    src = _store(tmp_path / "src")
    m2 = src.add_bytes(v2, chunk_size=CHUNK)
    dst = _store(tmp_path / "dst")
    dst.add_bytes(v1, chunk_size=CHUNK)
    result = await _fetch([(src, Provider(src, ""))], dst, m2.root, delta=False)
    assert result.local_chunks == 0 and result.wire_bytes == len(v2)
    assert read_all(dst, m2.root) == v2


def json_lines(size: int, seed: int = 0) -> bytes:
    """Log-like JSON lines (a data set's shape: repeated keys, varied values)."""
    rng = random.Random(seed)
    cities = [f"city-{i}" for i in range(300)]
    out, total = [], 0
    i = 0
    while total < size:
        line = json.dumps(
            {
                "id": i,
                "ts": 1_700_000_000 + i * 7,
                "user": f"u{rng.randrange(10**6):06d}",
                "city": rng.choice(cities),
                "amount": round(rng.random() * 1000, 2),
                "ok": rng.random() < 0.9,
            },
            separators=(",", ":"),
        ).encode()
        out.append(line)
        total += len(line) + 1
        i += 1
    return b"\n".join(out)[:size]


async def test_compressible_content_moves_fewer_bytes(tmp_path: Path) -> None:
    data = json_lines(32 * MiB)
    src = _store(tmp_path / "src")
    m = src.add_bytes(data, chunk_size=MiB)
    prov = Provider(src, "")
    dst = _store(tmp_path / "dst")
    result = await _fetch([(src, prov)], dst, m.root)
    assert read_all(dst, m.root) == data and dst.verify(m.root).ok
    assert result.fetched_bytes == len(data)
    assert result.wire_bytes <= 0.8 * len(data), result.wire_bytes / len(data)
    assert prov.stats.compressed_chunks > 0
    assert prov.stats.wire_bytes == result.wire_bytes
    assert prov.stats.bytes_served == len(data)  # receipts/credit count content bytes
    # a receiver that does not ask for compression gets the chunks as they are
    plain = _store(tmp_path / "plain")
    raw = await _fetch([(src, Provider(src, ""))], plain, m.root, compress=False)
    assert raw.wire_bytes == len(data) and read_all(plain, m.root) == data


async def test_random_content_turns_the_compressor_off(tmp_path: Path) -> None:
    data = random.Random(3).randbytes(16 * MiB)
    src = _store(tmp_path / "src")
    m = src.add_bytes(data, chunk_size=CHUNK)
    comp = ChunkCompressor()
    prov = Provider(src, "", compress=comp)
    dst = _store(tmp_path / "dst")
    result = await _fetch([(src, prov)], dst, m.root)
    assert read_all(dst, m.root) == data
    assert result.wire_bytes == len(data)  # never more than the content
    assert comp.stats.compressed_chunks == 0
    assert comp.policy(m.root).mode.value == "off"
    # no chunk compressed whole: 16 KiB samples, backing off (1, 2, 4, ... chunks between)
    assert comp.stats.raw_chunks == m.chunk_count
    assert comp.stats.samples <= 6


class _Hops(ChunkCompressor):
    """Counts the chunks encoded in a worker thread (a thread hop) and in the event loop."""

    def __init__(self) -> None:
        super().__init__()
        self.hops = self.inline = 0

    def encode(self, root, chunk_root, data, tuner: LevelTuner):  # type: ignore[no-untyped-def, override]
        if threading.current_thread() is threading.main_thread():
            self.inline += 1
        else:
            self.hops += 1
        return super().encode(root, chunk_root, data, tuner)


async def test_random_content_takes_a_thread_hop_only_for_a_sample(tmp_path: Path) -> None:
    # while the root's policy backs off, a chunk goes raw from the event loop: no thread hop,
    # no compression work; a hop (and 16 KiB compressed) only for the chunks it samples
    data = random.Random(4).randbytes(16 * MiB)
    src = _store(tmp_path / "src")
    m = src.add_bytes(data, chunk_size=CHUNK)  # 64 chunks
    comp = _Hops()
    prov = Provider(src, "", compress=comp)
    for i in range(2):  # a second fetch (another connection) finds the policy backing off
        dst = _store(tmp_path / f"dst{i}")
        result = await _fetch([(src, prov)], dst, m.root)
        assert read_all(dst, m.root) == data and result.wire_bytes == len(data)
    # a chunk due for a sample whose verdict is cached (sampled by the first fetch) hops too
    assert comp.hops == comp.stats.samples + comp.stats.cache_hits <= 8
    assert comp.inline == 2 * m.chunk_count - comp.hops
    assert comp.stats.compressed_chunks == 0 and comp.stats.compress_seconds < 0.05


class _BombCompressor(ChunkCompressor):
    """Sends every chunk as a frame that declares (and holds) twice the chunk."""

    def encode(self, root, chunk_root, data, tuner: LevelTuner):  # type: ignore[no-untyped-def, override]
        return zstandard.ZstdCompressor().compress(bytes(data) * 2)[: len(data)], True


async def test_a_bad_frame_is_a_bad_chunk_and_the_honest_peer_finishes(tmp_path: Path) -> None:
    data = json_lines(4 * MiB, 1)
    good, evil = _store(tmp_path / "good"), _store(tmp_path / "evil")
    m = good.add_bytes(data, chunk_size=CHUNK)
    evil.add_bytes(data, chunk_size=CHUNK)
    evil_prov = Provider(evil, "", compress=_BombCompressor())
    dst = _store(tmp_path / "dst")
    result = await _fetch([(good, Provider(good, "")), (evil, evil_prov)], dst, m.root)
    assert read_all(dst, m.root) == data
    bad = [r for r in result.providers.values() if r.corrupt_chunks]
    assert len(bad) == 1 and bad[0].address == evil_prov.address
    assert "failed verification" in (bad[0].error or "")


async def test_content_made_only_of_held_chunks_moves_no_chunk(tmp_path: Path) -> None:
    v1, _ = _versions(16, [], 0)
    part = v1[: 8 * CHUNK]  # another content: v1's first half
    src = _store(tmp_path / "src")
    m = src.add_bytes(part, chunk_size=CHUNK)
    dst = _store(tmp_path / "dst")
    dst.add_bytes(v1, chunk_size=CHUNK)
    prov = Provider(src, "")
    result = await _fetch([(src, prov)], dst, m.root)
    assert read_all(dst, m.root) == part and dst.is_complete(m.root)
    assert result.wire_bytes == 0 and result.fetched_chunks == 0
    assert result.local_chunks == 8 and prov.stats.chunks_served == 0
