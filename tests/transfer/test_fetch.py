"""fetch/serve_node in one trio process over real TCP on 127.0.0.1, real LevelDB stores."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from node.receipt import verify_receipt
from node.store import Store
from node.transfer import (
    ContentNotFound,
    CorruptChunk,
    PeerAddr,
    ReceiptBox,
    default_receipt_domain,
    fetch,
    serve_node,
)

from .helpers import make_identity, read_all, store_with

CHUNK = 256 * 1024


async def test_fetch_roundtrip_with_receipt(tmp_path: Path) -> None:
    provider_id, receiver_id = make_identity(), make_identity()
    src, root, data = store_with(tmp_path / "a", 5 * CHUNK + 1, chunk_size=CHUNK)
    dst = Store.open(tmp_path / "b", durable=False)
    box = ReceiptBox.open(tmp_path / "receipts")
    domain = default_receipt_domain()
    progress: list[float] = []
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(
                lambda task_status: serve_node(
                    src, provider_id, receipt_box=box, task_status=task_status
                )
            )
            result = await fetch(
                dst,
                receiver_id,
                root,
                [PeerAddr(host, port, provider_id.address)],
                receipt_domain=domain,
                progress=lambda p: progress.append(p.fraction),
            )
            nursery.cancel_scope.cancel()
    assert read_all(dst, root) == data
    assert result.fetched_chunks == 6 and result.resumed_chunks == 0
    assert result.fetched_bytes == len(data)
    report = result.providers[provider_id.address]
    assert report.receipt_acked and report.bytes == len(data)
    assert progress and progress[-1] == 1.0
    pending = box.pending()
    assert len(pending) == 1
    assert verify_receipt(pending[0], domain, expected_provider=provider_id.address)
    assert pending[0].receipt.receiver == receiver_id.address
    assert box.counts()["pending"] == 1


async def test_fetch_empty_and_resume(tmp_path: Path) -> None:
    provider_id, receiver_id = make_identity(), make_identity()
    src, root, _data = store_with(tmp_path / "a", 0)
    dst = Store.open(tmp_path / "b", durable=False)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(
                lambda task_status: serve_node(src, provider_id, task_status=task_status)
            )
            result = await fetch(dst, receiver_id, root, [f"{host}:{port}"])
            again = await fetch(dst, receiver_id, root, [f"{host}:{port}"])
            nursery.cancel_scope.cancel()
    assert result.fetched_chunks == 0 and dst.is_complete(root)
    assert again.fetched_chunks == 0


async def test_partial_store_resumes_only_missing(tmp_path: Path) -> None:
    provider_id, receiver_id = make_identity(), make_identity()
    src, root, data = store_with(tmp_path / "a", 8 * CHUNK, chunk_size=CHUNK)
    dst = Store.open(tmp_path / "b", durable=False)
    manifest = src.get_manifest(root)
    dst.begin_partial(manifest, src.chunk_roots(root))
    for i in (0, 3, 7):
        dst.put_chunk(root, i, src.read_chunk(root, i))
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(
                lambda task_status: serve_node(src, provider_id, task_status=task_status)
            )
            result = await fetch(dst, receiver_id, root, [(host, port, None)])
            nursery.cancel_scope.cancel()
    assert result.resumed_chunks == 3 and result.fetched_chunks == 5
    assert read_all(dst, root) == data


async def test_not_found(tmp_path: Path) -> None:
    provider_id, receiver_id = make_identity(), make_identity()
    src, _root, _ = store_with(tmp_path / "a", 10)
    dst = Store.open(tmp_path / "b", durable=False)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(
                lambda task_status: serve_node(src, provider_id, task_status=task_status)
            )
            with pytest.raises(ContentNotFound):
                await fetch(dst, receiver_id, b"\x01" * 32, [(host, port, None)])
            nursery.cancel_scope.cancel()


def _corrupt_chunk_file(store: Store, root: bytes, index: int) -> None:
    cr = store.chunk_root_at(root, index)
    path = store._files.path(cr)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


async def test_corrupt_single_source_fails_typed_nothing_written(tmp_path: Path) -> None:
    provider_id, receiver_id = make_identity(), make_identity()
    src, root, _ = store_with(tmp_path / "a", 4 * CHUNK, chunk_size=CHUNK)
    _corrupt_chunk_file(src, root, 2)
    dst = Store.open(tmp_path / "b", durable=False)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(
                lambda task_status: serve_node(src, provider_id, task_status=task_status)
            )
            with pytest.raises(CorruptChunk) as info:
                await fetch(dst, receiver_id, root, [(host, port, None)])
            nursery.cancel_scope.cancel()
    assert info.value.index == 2
    assert 2 in set(dst.missing_chunks(root))


async def test_corrupt_with_second_source_completes(tmp_path: Path) -> None:
    ids = [make_identity() for _ in range(3)]
    bad, root, data = store_with(tmp_path / "a", 4 * CHUNK, chunk_size=CHUNK)
    good = Store.open(tmp_path / "g", durable=False)
    good.add_file(tmp_path / "a" / "src.bin", chunk_size=CHUNK)
    for i in range(4):
        _corrupt_chunk_file(bad, root, i)
    dst = Store.open(tmp_path / "b", durable=False)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            h1, p1 = await nursery.start(
                lambda task_status: serve_node(bad, ids[0], task_status=task_status)
            )
            h2, p2 = await nursery.start(
                lambda task_status: serve_node(good, ids[1], task_status=task_status)
            )
            result = await fetch(dst, ids[2], root, [(h1, p1, None), (h2, p2, None)])
            nursery.cancel_scope.cancel()
    assert read_all(dst, root) == data
    assert result.providers[ids[1].address].chunks >= 1
