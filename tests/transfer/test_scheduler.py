"""Sans-IO scheduler: assignment, windows, stalls, corruption, endgame (no sockets, no clock)."""

from __future__ import annotations

import random
from collections.abc import Hashable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.transfer._bitmap import Bitmap
from node.transfer._errors import CorruptChunk, PeerFailed
from node.transfer._scheduler import CancelChunks, RequestChunks, Scheduler

from .._hyp import examples

CHUNK = 1 << 20


def make(n: int, *, size: int | None = None, missing: list[int] | None = None, **kw) -> Scheduler:
    need = Bitmap(n, fill=True) if missing is None else Bitmap.from_indices(n, missing)
    return Scheduler(
        chunk_count=n,
        chunk_size=CHUNK,
        total_size=size if size is not None else n * CHUNK,
        need=need,
        rng=random.Random(0),
        **kw,
    )


def requests(actions: list) -> dict:
    out: dict = {}
    for a in actions:
        if isinstance(a, RequestChunks):
            out.setdefault(a.peer, []).extend(a.indices)
    return out


def test_single_peer_gets_initial_window_in_order() -> None:
    s = make(100)
    s.add_peer("a", 0.0)
    reqs = requests(s.poll(0.0))
    assert reqs == {"a": list(range(16))}
    # Nothing more until something arrives.
    assert s.poll(0.0) == []


def test_delivery_grows_window_and_refills() -> None:
    s = make(100)
    s.add_peer("a", 0.0)
    s.poll(0.0)
    assert s.on_chunk("a", 0, True, 1.0) == []
    reqs = requests(s.poll(1.0))
    # One slot freed, and slow start added one chunk of window: two new requests.
    assert reqs == {"a": [16, 17]}


def test_request_batch_waits_for_room_for_a_batch() -> None:
    s = make(100, request_batch=4)
    s.add_peer("a", 0.0)
    assert requests(s.poll(0.0)) == {"a": list(range(16))}
    s.on_chunk("a", 0, True, 1.0)
    # Room for two (one freed, one of slow-start growth): below the batch, so nothing yet.
    assert s.poll(1.0) == []
    s.on_chunk("a", 1, True, 1.0)
    assert requests(s.poll(1.0)) == {"a": [16, 17, 18, 19]}


def test_request_batch_capped_at_half_a_small_window() -> None:
    s = make(100, request_batch=8, initial_window=2)
    s.add_peer("a", 0.0)
    assert requests(s.poll(0.0)) == {"a": [0, 1]}
    s.on_chunk("a", 0, True, 1.0)  # window 3 chunks, 1 outstanding: batch is min(8, 3 // 2)
    assert requests(s.poll(1.0)) == {"a": [2, 3]}


def test_request_batch_must_be_positive() -> None:
    with pytest.raises(ValueError):
        make(4, request_batch=0)


def test_resume_only_requests_missing() -> None:
    s = make(10, missing=[3, 7])
    s.add_peer("a", 0.0)
    assert requests(s.poll(0.0)) == {"a": [3, 7]}
    s.on_chunk("a", 3, True, 1.0)
    s.on_chunk("a", 7, True, 1.0)
    assert s.finished and s.failure is None


def test_stall_returns_requests_and_backs_off() -> None:
    s = make(4, stall_timeout=10.0)
    s.add_peer("a", 0.0)
    s.poll(0.0)
    assert s.next_deadline(0.0) == 10.0
    actions = s.poll(10.0)
    assert CancelChunks("a", (0, 1, 2, 3)) in actions
    st_a = s.peers["a"]
    assert st_a.timeouts == 1 and not st_a.outstanding and st_a.not_before >= 10.0
    assert st_a.window.size < 16 * CHUNK


def test_corrupt_chunk_single_source_fails_typed() -> None:
    s = make(4)
    s.add_peer("a", 0.0)
    s.poll(0.0)
    actions = s.on_chunk("a", 1, False, 1.0)
    assert actions == [CancelChunks("a", (0, 2, 3))]
    assert isinstance(s.failure, CorruptChunk)
    assert s.failure.index == 1
    assert s.poll(1.0) == []


def test_corrupt_chunk_with_second_source_continues() -> None:
    s = make(4)
    s.add_peer("a", 0.0)
    s.add_peer("b", 0.0)
    s.poll(0.0)
    bad = next(i for i, holders in s.inflight.items() if "a" in holders)
    s.on_chunk("a", bad, False, 1.0)
    assert s.failure is None
    reqs = requests(s.poll(1.0))
    assert "a" not in reqs
    assert bad in reqs.get("b", []) or bad in s.inflight


def test_busy_requeues_with_retry_after() -> None:
    s = make(4)
    s.add_peer("a", 0.0)
    s.poll(0.0)
    s.on_refused("a", [0, 1, 2, 3], 1.0, retry_after=5.0)
    assert s.poll(2.0) == []
    assert s.next_deadline(2.0) == 6.0
    assert requests(s.poll(6.0)) == {"a": [0, 1, 2, 3]}


def test_endgame_duplicates_then_cancels() -> None:
    s = make(2)
    s.add_peer("a", 0.0)
    s.add_peer("b", 0.0)
    reqs = requests(s.poll(0.0))
    # One peer took both chunks; the other, idle, duplicates them (endgame).
    assert sorted(reqs.values()) == [[0, 1], [0, 1]]
    assert all(len(h) == 2 for h in s.inflight.values())
    winner, loser = s.inflight[0]
    assert s.on_chunk(winner, 0, True, 1.0) == [CancelChunks(loser, (0,))]
    # A late copy from the loser is counted as a duplicate and changes nothing.
    assert s.on_chunk(loser, 0, True, 1.5) == []
    assert s.duplicates_received == 1 and 0 not in s.need


def test_a_peer_s_pace_is_the_time_between_its_deliveries() -> None:
    s = make(8)
    s.add_peer("a", 0.0)
    s.poll(0.0)
    assert s.peers["a"].gap == 0.0  # nothing delivered: not measured
    s.on_chunk("a", 0, True, 0.3)
    s.on_chunk("a", 1, True, 0.4)
    assert s.peers["a"].gap == pytest.approx(0.8 * 0.3 + 0.2 * 0.1)


def test_endgame_copies_a_chunk_two_slow_peers_hold_once_they_are_behind() -> None:
    # Two slow peers hold both chunks between them (each copied the other's in the endgame):
    # a fast peer, idle, used to wait for them however slow they were
    s = make(2)
    for p in ("s1", "s2"):
        s.add_peer(p, 0.0)
        s.peers[p].window.size = 2 * CHUNK
    s.poll(0.0)
    assert all(sorted(h) == ["s1", "s2"] for h in s.inflight.values())
    s.add_peer("f", 0.0)
    assert s.poll(5.0) == []  # its pace unknown: no holder counts as behind
    s.peers["f"].gap = 0.1  # one chunk per 0.1 s: a holder is behind after 0.4 s
    s.peers["s1"].outstanding[1] = s.peers["s2"].outstanding[1] = 4.7  # asked again lately
    assert requests(s.poll(5.0)) == {"f": [0]}  # chunk 1's holders are not behind yet
    assert requests(s.poll(5.2)) == {"f": [1]}
    assert all(len(h) == 3 for h in s.inflight.values())
    assert s.poll(9.0) == []  # at most one copy more than endgame_copies
    cancels = s.on_chunk("f", 0, True, 5.3)
    assert sorted(cancels, key=str) == [CancelChunks("s1", (0,)), CancelChunks("s2", (0,))]


def test_rarest_first_with_bitfields() -> None:
    s = make(8)
    s.add_peer("a", 0.0, have=Bitmap(8, fill=True))
    s.add_peer("b", 0.0, have=Bitmap.from_indices(8, range(4)))
    s.peers["a"].window.size = CHUNK  # one request at a time for a
    s._rotation = len(s.peers) - 1  # poll serves "a" first
    reqs = requests(s.poll(0.0))
    # Chunks 4..7 exist only at a: a starts with the rarest, 4.
    assert reqs["a"] == [4]


def test_all_peers_gone_is_peer_failed() -> None:
    s = make(3)
    s.add_peer("a", 0.0)
    s.poll(0.0)
    s.remove_peer("a")
    assert isinstance(s.failure, PeerFailed)
    assert s.inflight == {}


def test_zero_chunks_is_finished() -> None:
    s = make(0, size=0)
    s.add_peer("a", 0.0)
    assert s.finished and s.poll(0.0) == []


@settings(max_examples=examples(150), deadline=None)
@given(
    n=st.integers(1, 60),
    npeers=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
    corrupt_rate=st.sampled_from([0.0, 0.05]),
    batch=st.sampled_from([1, 4]),
)
def test_random_runs_finish_or_fail_cleanly(
    n: int, npeers: int, seed: int, corrupt_rate: float, batch: int
) -> None:
    """Random delivery orders, drops and corruption: invariants hold at every step."""
    rng = random.Random(seed)
    s = make(
        n,
        size=(n - 1) * CHUNK + rng.randint(1, CHUNK),
        stall_timeout=5.0,
        request_batch=batch,
    )
    peers = [f"p{i}" for i in range(npeers)]
    for p in peers:
        s.add_peer(p, 0.0)
    now = 0.0
    received: set[int] = set()
    inflight_wire: list[tuple[Hashable, int]] = []
    for _ in range(5000):
        for a in s.poll(now):
            if isinstance(a, RequestChunks):
                st_ = s.peers[a.peer]
                assert st_.usable
                for i in a.indices:
                    assert i in s.need and i not in received
                    inflight_wire.append((a.peer, i))
                assert st_.outstanding_bytes <= max(st_.window.size, CHUNK)
                # endgame copies: endgame_copies, one more for holders behind; never twice
                # to one peer
                for i in a.indices:
                    holders = s.inflight[i]
                    assert len(holders) <= s.endgame_copies + 1
                    assert len(set(holders)) == len(holders)
            else:
                inflight_wire = [
                    (p, i) for p, i in inflight_wire if not (p == a.peer and i in a.indices)
                ]
        if s.finished or s.failure is not None:
            break
        if not inflight_wire:
            deadline = s.next_deadline(now)
            assert deadline is not None
            now = max(now, deadline)
            continue
        peer, index = inflight_wire.pop(rng.randrange(len(inflight_wire)))
        now += rng.random()
        roll = rng.random()
        if roll < 0.05:
            continue  # lost: the stall timer has to notice
        ok = roll >= 0.05 + corrupt_rate
        if not s.peers[peer].usable:
            continue
        s.on_chunk(peer, index, ok, now)
        if ok:
            received.add(index)
    if s.failure is None:
        assert s.finished
        assert received == set(range(n))
    else:
        assert corrupt_rate > 0 or isinstance(s.failure, PeerFailed)
    assert len(s.need) == n - len(received)


@pytest.mark.parametrize("n", [1, 17, 1000])
def test_cursor_never_rescans_done_prefix(n: int) -> None:
    s = make(n)
    s.add_peer("a", 0.0)
    t = 0.0
    while not s.finished:
        for a in s.poll(t):
            assert isinstance(a, RequestChunks)
            for i in a.indices:
                s.on_chunk("a", i, True, t)
        t += 1
    assert s._next <= n


@pytest.mark.parametrize("polls", [1, 2, 3])
def test_worse_ranked_peer_is_never_asked_first(polls: int) -> None:
    """A peer the ledger ranks lower (it cheated before) gets the front of the file last, and
    in every poll comes after the better one, whatever the rotation."""
    s = make(100, initial_window=4)
    s.add_peer("known-bad", 0.0, rank=1)
    s.add_peer("good", 0.0, rank=0)
    s._rotation = polls - 1  # each rotation start (without ranks, polls=2 puts "known-bad" first)
    actions = [a for a in s.poll(0.0) if isinstance(a, RequestChunks)]
    assert [a.peer for a in actions] == ["good", "known-bad"]
    assert actions[0].indices == (0, 1, 2, 3)


def test_equal_ranks_still_rotate() -> None:
    s = make(100, initial_window=1)
    s.add_peer("a", 0.0)
    s.add_peer("b", 0.0)
    firsts = set()
    for t in range(4):
        acts = [a for a in s.poll(float(t)) if isinstance(a, RequestChunks)]
        if acts:
            firsts.add(acts[0].peer)
        for a in acts:
            for i in a.indices:
                s.on_chunk(a.peer, i, True, float(t))
    assert firsts == {"a", "b"}


# -- requests made before the scheduler existed (the fetch's early Request) ---------------------


def test_requested_indices_are_outstanding_and_not_asked_again() -> None:
    s = make(40)
    s.add_peer("a", 0.0)
    assert s.requested("a", (0, 1, 2, 3), 0.0) == ()
    assert set(s.peers["a"].outstanding) == {0, 1, 2, 3}
    assert s.peers["a"].outstanding_bytes == 4 * CHUNK
    reqs = requests(s.poll(0.0))
    assert reqs == {"a": list(range(4, 16))}  # the rest of the window, none of them again
    assert s.on_chunk("a", 2, True, 0.5) == []  # delivered like any request
    assert s.peers["a"].chunks_ok == 1 and 2 not in s.need and 2 not in s.inflight


def test_requested_returns_what_it_does_not_take() -> None:
    have = Bitmap.from_indices(10, [0, 1, 2, 3, 5])
    s = make(10, missing=[0, 2, 3, 4, 5])  # 1 is held already
    s.add_peer("a", 0.0, have)
    s.add_peer("b", 0.0)
    assert s.requested("b", (3,), 0.0) == ()
    # 1 not needed, 3 in flight at b, 4 not held by a, 11 beyond the content
    assert s.requested("a", (0, 1, 3, 4, 11), 0.0) == (1, 3, 4, 11)
    assert set(s.peers["a"].outstanding) == {0}
    s.remove_peer("b")
    assert s.requested("b", (5,), 0.0) == (5,)  # gone: takes nothing
    assert 3 not in s.inflight  # b's early index went back to the pool with it


@settings(max_examples=examples(60))
@given(
    n=st.integers(1, 64),
    early=st.lists(st.integers(0, 80), max_size=20),
    missing=st.sets(st.integers(0, 63)),
)
def test_requested_then_polled_never_asks_an_index_twice(
    n: int, early: list[int], missing: set[int]
) -> None:
    s = make(n, missing=sorted(i for i in missing if i < n))
    s.add_peer("a", 0.0)
    ignored = s.requested("a", tuple(early), 0.0)
    taken = [i for i in dict.fromkeys(early) if i not in ignored]
    assert all(0 <= i < n and i in s.need for i in taken)
    asked = list(taken)
    now = 0.0
    for _ in range(200):  # deliver in order until done
        asked.extend(requests(s.poll(now)).get("a", []))
        pending = sorted(s.peers["a"].outstanding)
        if not pending:
            break
        now += 0.01
        s.on_chunk("a", pending[0], True, now)
    assert len(asked) == len(set(asked))
    assert s.finished
