"""The chunk buffer pool fetches share (``node.transfer._buffers``): reuse, its byte cap, idle
trimming, and that no buffer is ever handed to two owners."""

from __future__ import annotations

import mmap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.transfer._buffers import BufferPool, new_buffer

from .._hyp import examples

PAGE = mmap.PAGESIZE


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_given_back_buffer_is_taken_again_and_keeps_its_bytes() -> None:
    pool = BufferPool(max_bytes=4 * PAGE)
    buf = pool.take(PAGE)
    assert len(buf) == PAGE and pool.created == 1
    buf[:4] = b"abcd"
    pool.give(buf)
    assert pool.held_bytes == PAGE
    again = pool.take(PAGE)
    assert again is buf and again[:4] == b"abcd"  # the caller overwrites: nothing is cleared
    assert pool.reused == 1 and pool.created == 1 and pool.held_bytes == 0
    other = pool.take(2 * PAGE)  # another size is a new buffer
    assert other is not buf and len(other) == 2 * PAGE and pool.created == 2


def test_taking_a_size_the_pool_lacks_unmaps_the_other_sizes() -> None:
    pool = BufferPool(max_bytes=16 * PAGE)
    small = [pool.take(PAGE) for _ in range(3)]
    for buf in small:
        pool.give(buf)
    big = pool.take(4 * PAGE)  # another get's chunk size: the small ones would only sit there
    assert all(b.closed for b in small) and pool.held_bytes == 0 and pool.dropped == 3
    pool.give(big)
    assert pool.take(4 * PAGE) is big and pool.dropped == 3  # a hit unmaps nothing


def test_buffers_past_the_byte_cap_are_unmapped_at_once() -> None:
    pool = BufferPool(max_bytes=2 * PAGE)
    bufs = [pool.take(PAGE) for _ in range(3)]
    for buf in bufs:
        pool.give(buf)
    assert pool.held_bytes == 2 * PAGE and pool.dropped == 1
    assert bufs[2].closed and not bufs[0].closed and not bufs[1].closed


def test_a_buffer_given_back_twice_is_kept_once() -> None:
    pool = BufferPool(max_bytes=8 * PAGE)
    buf = pool.take(PAGE)
    pool.give(buf)
    pool.give(buf)
    assert pool.held_bytes == PAGE
    first, second = pool.take(PAGE), pool.take(PAGE)
    assert first is buf and second is not buf


def test_a_closed_buffer_is_not_kept() -> None:
    pool = BufferPool()
    buf = new_buffer(PAGE)
    buf.close()
    pool.give(buf)
    assert pool.held_bytes == 0


def test_trim_unmaps_only_the_buffers_idle_past_the_limit() -> None:
    clock = Clock()
    pool = BufferPool(max_bytes=8 * PAGE, idle=30.0, clock=clock)
    old, new = pool.take(PAGE), pool.take(2 * PAGE)
    pool.give(old)
    clock.now += 20
    pool.give(new)
    clock.now += 15  # old idle 35 s, new 15 s
    assert pool.trim() == PAGE
    assert old.closed and not new.closed and pool.held_bytes == 2 * PAGE
    assert pool.trim(0) == 2 * PAGE
    assert new.closed and pool.held_bytes == 0 and pool.dropped == 2


def test_a_buffer_with_a_live_view_is_left_to_its_last_view() -> None:
    pool = BufferPool(max_bytes=0)
    buf = pool.take(PAGE)
    view = memoryview(buf)
    pool.give(buf)  # over the cap, but a view holds it: no error, not counted as dropped
    assert not buf.closed and pool.dropped == 0 and pool.held_bytes == 0
    view.release()


def test_negative_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        BufferPool(max_bytes=-1)
    with pytest.raises(ValueError):
        BufferPool(idle=-1)


@settings(max_examples=examples(60))
@given(
    st.lists(
        st.tuples(st.sampled_from(["take", "give", "trim", "tick"]), st.integers(1, 3)),
        max_size=60,
    )
)
def test_no_buffer_has_two_owners_and_the_pool_stays_under_its_cap(
    ops: list[tuple[str, int]],
) -> None:
    clock = Clock()
    pool = BufferPool(max_bytes=5 * PAGE, idle=10.0, clock=clock)
    out: list[mmap.mmap] = []  # handed out, not given back
    for op, n in ops:
        if op == "take":
            buf = pool.take(n * PAGE)
            assert not buf.closed and len(buf) == n * PAGE
            assert all(b is not buf for b in out), "handed to a second owner"
            out.append(buf)
        elif op == "give" and out:
            pool.give(out.pop(n % len(out)))
        elif op == "trim":
            pool.trim()
        else:
            clock.now += 4 * n
        held = [b for free in pool._free.values() for _, b in free]
        assert pool.held_bytes == sum(len(b) for b in held) <= pool.max_bytes
        assert not any(b.closed for b in held)
        assert not any(b is o for b in held for o in out)
    pool.trim(0)
    assert pool.held_bytes == 0
