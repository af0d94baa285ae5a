"""The serving node's GC policy (node.app._daemon.gc_policy, issue 11): survivors frozen, young
collections rarer, frozen cycles freed by the periodic full collection, all restored after."""

from __future__ import annotations

import gc
import weakref

import trio

from node.app._daemon import GC_THRESHOLD0, gc_policy, trim_buffers
from node.transfer import BufferPool


class _Cycle:
    def __init__(self) -> None:
        self.me = self


async def test_gc_policy_freezes_survivors_frees_frozen_cycles_and_restores() -> None:
    old = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(gc_policy, 0.05, 0.3)
        await trio.sleep(0.01)
        assert gc.get_threshold()[0] == GC_THRESHOLD0
        frozen_at_start = gc.get_freeze_count()
        assert frozen_at_start > 1000  # everything alive at start is out of the collector's way
        garbage = _Cycle()
        ref = weakref.ref(garbage)
        await trio.sleep(0.12)  # a freeze round: the cycle (still referenced) is frozen
        del garbage  # now cyclic garbage inside the frozen set: no young collection frees it
        gc.collect(1)
        assert ref() is not None
        with trio.fail_after(3):
            while ref() is not None:  # ... the full round (every 0.3 s here) does
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == old


async def test_the_daemon_unmaps_chunk_buffers_its_gets_left_idle() -> None:
    pool = BufferPool(idle=0.5)
    kept, fresh = pool.take(1 << 20), pool.take(1 << 20)
    pool.give(kept)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trim_buffers, pool, 0.05)
        await trio.sleep(0.8)
        assert kept.closed and pool.held_bytes == 0  # idle past 0.5 s: unmapped
        pool.give(fresh)
        await trio.sleep(0.1)  # a trim or two ran since
        assert not fresh.closed and pool.held_bytes == 1 << 20  # just given back: kept
        nursery.cancel_scope.cancel()
