"""fetch/serve_node in one trio process over real TCP on 127.0.0.1, real LevelDB stores."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from node.receipt import DEFAULT_PRICE_PER_GIB, SignedReceipt, payment_for, verify_receipt
from node.store import Store
from node.transfer import (
    ContentNotFound,
    CorruptChunk,
    PriceTooHigh,
    ReceiptBox,
    default_receipt_domain,
    fetch,
    serve_node,
)

from .helpers import fetch_served, make_identity, read_all, store_with

CHUNK = 256 * 1024


async def test_fetch_roundtrip_with_receipt(tmp_path: Path) -> None:
    provider_id, receiver_id = make_identity(), make_identity()
    src, root, data = store_with(tmp_path / "a", 5 * CHUNK + 1, chunk_size=CHUNK)
    dst = Store.open(tmp_path / "b", durable=False)
    box = ReceiptBox.open(tmp_path / "receipts")
    domain = default_receipt_domain()
    progress: list[float] = []
    with trio.fail_after(30):
        result = await fetch_served(
            src,
            provider_id,
            dst,
            receiver_id,
            root,
            serve={"receipt_box": box},
            receipt_domain=domain,
            progress=lambda p: progress.append(p.fraction),
        )
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
    assert pending[0].receipt.bytes_served == len(data) and pending[0].receipt.chunks == 6
    assert pending[0].receipt.payment == payment_for(len(data), DEFAULT_PRICE_PER_GIB)
    assert report.price_per_gib == DEFAULT_PRICE_PER_GIB and report.receipts == pending
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


def _present_bytes(store: Store, root: bytes) -> int:
    m = store.get_manifest(root)
    missing = set(store.missing_chunks(root))
    return sum(m.chunk_length(i) for i in range(m.chunk_count) if i not in missing)


def _billed(receipts: list[SignedReceipt]) -> tuple[int, int]:
    return sum(r.receipt.bytes_served for r in receipts), sum(r.receipt.chunks for r in receipts)


async def test_over_priced_provider_dropped_others_used(tmp_path: Path) -> None:
    ids = [make_identity() for _ in range(3)]
    dear, root, data = store_with(tmp_path / "a", 4 * CHUNK, chunk_size=CHUNK)
    cheap = Store.open(tmp_path / "c", durable=False)
    cheap.add_file(tmp_path / "a" / "src.bin", chunk_size=CHUNK)
    box = ReceiptBox.open(tmp_path / "receipts")
    dst = Store.open(tmp_path / "b", durable=False)
    price = DEFAULT_PRICE_PER_GIB // 2
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            h1, p1 = await nursery.start(
                lambda task_status: serve_node(
                    dear, ids[0], price_per_gib=10**16, task_status=task_status
                )
            )
            h2, p2 = await nursery.start(
                lambda task_status: serve_node(
                    cheap, ids[1], receipt_box=box, price_per_gib=price, task_status=task_status
                )
            )
            with pytest.raises(PriceTooHigh) as info:  # the dear one alone: refused, typed
                await fetch(
                    Store.open(tmp_path / "x", durable=False), ids[2], root, [(h1, p1, None)]
                )
            assert info.value.price_per_gib == 10**16
            result = await fetch(
                dst,
                ids[2],
                root,
                [(h1, p1, None), (h2, p2, None)],
                receipt_domain=default_receipt_domain(),
            )
            nursery.cancel_scope.cancel()
    assert read_all(dst, root) == data
    assert list(result.providers) == [ids[1].address]
    assert "PriceTooHigh" in result.refused[ids[0].address]
    (receipt,) = box.pending()
    assert receipt.receipt.payment == payment_for(len(data), price)


async def test_periodic_receipts_cover_each_stretch_once(tmp_path: Path) -> None:
    provider_id, receiver_id = make_identity(), make_identity()
    src, root, data = store_with(tmp_path / "a", 6 * CHUNK + 5, chunk_size=CHUNK)
    dst = Store.open(tmp_path / "b", durable=False)
    box = ReceiptBox.open(tmp_path / "receipts")
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
                [(host, port, None)],
                receipt_domain=default_receipt_domain(),
                receipt_every_chunks=2,
            )
            nursery.cancel_scope.cancel()
    report = result.providers[provider_id.address]
    stored = box.pending()
    assert report.receipt_acked and report.receipts_acked == len(report.receipts) == 4
    assert sorted(stored, key=lambda r: r.receipt.nonce) == sorted(
        report.receipts, key=lambda r: r.receipt.nonce
    )
    assert [r.receipt.chunks for r in report.receipts] == [2, 2, 2, 1]
    assert _billed(stored) == (len(data), 7)  # each byte billed exactly once
    assert len({r.receipt.nonce for r in stored}) == 4
    for r in stored:
        assert r.receipt.payment == payment_for(r.receipt.bytes_served, DEFAULT_PRICE_PER_GIB)


async def test_failed_transfer_still_pays_for_verified_chunks(tmp_path: Path) -> None:
    """A single source that turns out corrupt mid-way: the fetch fails, but the provider gets a
    receipt for exactly the chunks that verified and were stored (it used to earn nothing)."""
    provider_id, receiver_id = make_identity(), make_identity()
    src, root, _ = store_with(tmp_path / "a", 8 * CHUNK, chunk_size=CHUNK)
    _corrupt_chunk_file(src, root, 5)
    dst = Store.open(tmp_path / "b", durable=False)
    box = ReceiptBox.open(tmp_path / "receipts")
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(
                lambda task_status: serve_node(
                    src, provider_id, receipt_box=box, task_status=task_status
                )
            )
            with pytest.raises(CorruptChunk):
                await fetch(
                    dst,
                    receiver_id,
                    root,
                    [(host, port, None)],
                    receipt_domain=default_receipt_domain(),
                    initial_window=2,
                )
            nursery.cancel_scope.cancel()
    present = _present_bytes(dst, root)
    assert 0 < present < 8 * CHUNK and 5 in set(dst.missing_chunks(root))
    billed, chunks = _billed(box.pending())
    # Never more than what verified and was stored; at most one window (2 chunks) less, when a
    # chunk that was mid-store as the corrupt one was judged lands after the last receipt.
    assert billed == chunks * CHUNK and 0 < billed <= present
    assert present - billed <= 2 * CHUNK


async def test_cancelled_transfer_pays_for_what_arrived(tmp_path: Path) -> None:
    """Ctrl-C-like cancellation mid-way: the last receipt is still sent (no ack awaited) and
    covers exactly the verified, stored bytes."""
    provider_id, receiver_id = make_identity(), make_identity()
    n = 24
    src, root, _ = store_with(tmp_path / "a", n * CHUNK, chunk_size=CHUNK)
    dst = Store.open(tmp_path / "b", durable=False)
    box = ReceiptBox.open(tmp_path / "receipts")
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(
                lambda task_status: serve_node(
                    src, provider_id, receipt_box=box, task_status=task_status
                )
            )
            with trio.CancelScope() as scope:

                def on_progress(p: object) -> None:
                    if getattr(p, "done_chunks", 0) >= 6:
                        scope.cancel()

                await fetch(
                    dst,
                    receiver_id,
                    root,
                    [(host, port, None)],
                    receipt_domain=default_receipt_domain(),
                    progress=on_progress,
                    limit_rate=4 * CHUNK,
                    receipt_every_chunks=4,
                )
            assert scope.cancelled_caught
            present = _present_bytes(dst, root)
            assert 0 < present < n * CHUNK
            while _billed(box.pending())[0] < present:  # the provider stores it shortly
                await trio.sleep(0.05)
            await trio.sleep(0.2)
            nursery.cancel_scope.cancel()
    assert _billed(box.pending()) == (present, present // CHUNK)
