"""Memory a get leaves behind in a long-running node (issue #11: <= 100 MiB per node process).

A fetch run is a graph of objects in reference cycles, which only the cyclic garbage collector
frees; a daemon runs that collector fully once every 10 minutes (``node.app._daemon.gc_policy``
freezes what survives in between). What the run holds must therefore go when ``fetch``
returns, not with the run: its spare chunk buffers (anonymous mmaps of a chunk each) did not,
and a receiver daemon grew 71 -> 106 MiB over 16 gets of 256 MiB (docs/decisions.md D34).
Since D43 the spare buffers go back to the process's bounded pool (``node.transfer._buffers``),
which the next get reuses and the daemon trims when idle: none may be anywhere else.
"""

from __future__ import annotations

import gc
import mmap
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from node.store import Store
from node.transfer import BufferPool, SwarmOptions, _buffers, _fetch, fetch, serve_node
from tests.transfer.helpers import make_identity, store_with

CHUNK = 256 * 1024


@pytest.fixture
def no_cyclic_gc() -> Iterator[None]:
    """As in a daemon between its full collections: cyclic garbage stays."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


async def test_a_finished_fetch_holds_no_chunk_buffer_outside_the_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_cyclic_gc: None
) -> None:
    made: list[weakref.ref[mmap.mmap]] = []
    real = _buffers.new_buffer

    def tracking(size: int) -> mmap.mmap:
        buf = real(size)
        made.append(weakref.ref(buf))
        return buf

    monkeypatch.setattr(_buffers, "new_buffer", tracking)
    pool = BufferPool(max_bytes=64 * CHUNK)
    monkeypatch.setattr(_fetch, "POOL", pool)
    provider_id, receiver_id = make_identity(), make_identity()
    src, root, _data = store_with(tmp_path / "a", 24 * CHUNK, chunk_size=CHUNK)
    src2, root2, _data = store_with(tmp_path / "a2", 24 * CHUNK, chunk_size=CHUNK)
    dst = Store.open(tmp_path / "b", durable=False)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(
                lambda task_status: serve_node(src, provider_id, task_status=task_status)
            )
            host2, port2 = await nursery.start(
                lambda task_status: serve_node(src2, provider_id, task_status=task_status)
            )
            # as a node fetches ([network] swarm = true): the run and its swarm refer to
            # each other, so the run is cyclic garbage once fetch returns
            result = await fetch(
                dst,
                receiver_id,
                root,
                [f"{host}:{port}"],
                output=tmp_path / "out.bin",
                swarm=SwarmOptions(),
            )
            assert made, "full-size chunks are received into mmap buffers"
            alive = sum(ref() is not None for ref in made)
            assert alive * CHUNK == pool.held_bytes, "a buffer outlives the fetch unpooled"
            first, pooled = len(made), pool.held_bytes // CHUNK
            # the next get takes the same buffers: no new mapping while the pool has them
            result2 = await fetch(
                dst, receiver_id, root2, [f"{host2}:{port2}"], output=tmp_path / "out2.bin"
            )
            nursery.cancel_scope.cancel()
    assert result.fetched_chunks == 24 and dst.is_complete(root)
    assert result2.fetched_chunks == 24 and dst.is_complete(root2)
    # the second get took the pooled buffers before mapping any (it may need more at once)
    assert pooled >= 2 and len(made) - first < pooled
    assert pool.trim(0) > 0 and pool.held_bytes == 0
    alive = [ref for ref in made if ref() is not None]
    assert alive == [], f"{len(alive)} of {len(made)} chunk buffers outlive the trim"
