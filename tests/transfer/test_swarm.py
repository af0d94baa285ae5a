"""The swarm's sans-IO parts: the provider's peer book, Have updates, what a fetch learns, and
the scheduler that spares the origin (no sockets, time as an argument)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from node.transfer._bitmap import Bitmap
from node.transfer._fetch import PeerAddr
from node.transfer._scheduler import RequestChunks
from node.transfer._swarm import (
    BOOK_PER_ROOT,
    SPARE_WINDOW,
    Candidates,
    PeerBook,
    SwarmScheduler,
    have_update,
)
from node.wire import MAX_PEERS_PER_MESSAGE, PeerEntry

from .._hyp import examples

R1, R2 = b"\x01" * 32, b"\x02" * 32
CHUNK = 1 << 20


def addr(i: int) -> str:
    return "0x" + f"{i:040x}"


# -- PeerBook -------------------------------------------------------------------------------------


def test_book_answers_most_recent_first_without_the_asker() -> None:
    book = PeerBook()
    for i in range(1, 4):
        assert book.note(R1, "127.0.0.1", 7000 + i, addr(i), now=float(i))
    got = book.peers(R1, 4.0, exclude=addr(2).upper().replace("0X", "0x"))
    assert [e.port for e in got] == [7003, 7001]
    assert book.peers(R2, 4.0) == []


def test_book_re_announce_replaces_the_endpoint_and_refreshes() -> None:
    book = PeerBook(ttl=10)
    book.note(R1, "10.0.0.1", 1, addr(1), now=0)
    book.note(R1, "10.0.0.2", 2, addr(2), now=1)
    book.note(R1, "10.0.0.9", 9, addr(1), now=8)
    assert [(e.host, e.port) for e in book.peers(R1, 9)] == [("10.0.0.9", 9), ("10.0.0.2", 2)]
    assert [e.port for e in book.peers(R1, 12)] == [9]  # addr 2 expired (seen at 1, ttl 10)


def test_book_is_bounded_per_root_roots_and_answer() -> None:
    book = PeerBook(max_roots=2)
    for i in range(1, BOOK_PER_ROOT + 20):
        book.note(R1, "10.0.0.1", i, addr(i), now=0)
    assert len(book) == BOOK_PER_ROOT
    assert len(book.peers(R1, 0)) == MAX_PEERS_PER_MESSAGE
    assert len(book.peers(R1, 0, limit=10**6)) == MAX_PEERS_PER_MESSAGE
    book.note(R2, "10.0.0.1", 1, addr(1), now=0)
    book.note(b"\x03" * 32, "10.0.0.1", 1, addr(1), now=0)
    assert book.peers(R1, 0) == []  # least recently used root went first


def test_book_refuses_hostile_entries() -> None:
    book = PeerBook()
    assert not book.note(R1, "example.org", 1, addr(1), 0)  # only the IP we saw, never a name
    assert not book.note(R1, "10.0.0.1", 0, addr(1), 0)
    assert not book.note(R1, "10.0.0.1", 70000, addr(1), 0)
    assert not book.note(R1, "0.0.0.0", 1, addr(1), 0)
    assert not book.note(R1, "224.0.0.1", 1, addr(1), 0)
    assert not book.note(R1, "10.0.0.1", 1, "0x1234", 0)
    assert len(book) == 0


# -- Have updates ---------------------------------------------------------------------------------


def test_have_update_states_the_gained_range() -> None:
    sent = bytes([0b1000_0000, 0, 0, 0])
    now = bytes([0b1100_0000, 0, 0b0000_0001, 0])
    (page,) = have_update(R1, sent, now)
    assert (page.start, page.bitfield) == (0, bytes([0b1100_0000, 0, 1]))
    assert have_update(R1, now, now) == []
    assert have_update(R1, now, sent) == []  # nothing gained (a loss is not announced)


@settings(max_examples=examples(200))
@given(st.binary(min_size=1, max_size=300), st.binary(min_size=1, max_size=300))
def test_have_update_adds_exactly_the_gain(a: bytes, b: bytes) -> None:
    n = min(len(a), len(b))
    sent, now = a[:n], bytes(x | y for x, y in zip(a[:n], b[:n], strict=True))
    known = bytearray(sent)
    for page in have_update(R1, sent, now):
        assert page.start % 8 == 0 and 1 <= len(page.bitfield) <= 32 * 1024
        for j, byte in enumerate(page.bitfield):
            known[page.start // 8 + j] |= byte
    assert bytes(known) == now


def test_have_update_pages_a_large_gain() -> None:
    n = 40 * 1024
    pages = have_update(R1, bytes(n), b"\xff" * n)
    assert [p.start for p in pages] == [0, 32 * 1024 * 8]
    assert sum(len(p.bitfield) for p in pages) == n


# -- Candidates -----------------------------------------------------------------------------------


def test_candidates_validate_dedupe_and_cap() -> None:
    c = Candidates(addr(99), max_learned=3)
    added = c.learn(
        [
            PeerEntry("10.0.0.1", 1, addr(1)),
            f"10.0.0.2:2/{addr(2)}",
            "10.0.0.3:3",  # no address: cannot be pinned
            "garbage",
            PeerEntry("10.0.0.9", 9, addr(99)),  # ourselves
            PeerEntry("10.0.0.1", 5, addr(1).upper().replace("0X", "0x")),  # a duplicate
            PeerAddr("10.0.0.4", 4, addr(4)),
            PeerAddr("10.0.0.5", 5, addr(5)),  # over the cap
        ],
        source_host="10.0.0.100",
    )
    assert [a.port for a in added] == [1, 2, 4]
    assert c.skipped == 3
    assert len(c) == 3


def test_loopback_entries_only_from_loopback_or_local_sources() -> None:
    c = Candidates(None)
    assert c.learn([PeerEntry("127.0.0.1", 1, addr(1))], source_host="203.0.113.5") == []
    assert c.learn([PeerEntry("::1", 1, addr(1))], source_host="203.0.113.5") == []
    assert len(c.learn([PeerEntry("127.0.0.1", 1, addr(1))], source_host="127.0.0.1")) == 1
    assert len(c.learn([f"127.0.0.1:2/{addr(2)}"])) == 1  # discovery: a local source


def test_candidates_due_retry_and_give_up() -> None:
    c = Candidates(None, retry_after=2.0, max_attempts=2)
    c.learn([PeerEntry("10.0.0.1", 1, addr(1)), PeerEntry("10.0.0.2", 2, addr(2))])
    assert [a.port for a in c.due(0, connected=[], limit=5)] == [1, 2]
    assert [a.port for a in c.due(0, connected=[addr(2)], limit=5)] == [1]
    assert c.due(0, connected=[], limit=0) == []
    c.dialling(addr(1))
    assert [a.port for a in c.due(0, connected=[], limit=5)] == [2]  # 1 is being dialled
    c.failed(addr(1), 0, retry=True)
    assert [a.port for a in c.due(1, connected=[], limit=5)] == [2]  # 1 waits 2 s
    assert [a.port for a in c.due(2, connected=[], limit=5)] == [1, 2]
    c.dialling(addr(1))
    c.failed(addr(1), 2, retry=True)
    assert [a.port for a in c.due(100, connected=[], limit=5)] == [2]  # 2 attempts: given up
    c.dialling(addr(2))
    c.failed(addr(2), 0, retry=False)
    assert c.due(100, connected=[], limit=5) == []


# -- SwarmScheduler -------------------------------------------------------------------------------


def make(n: int, spare: set[str], seed: int = 0) -> SwarmScheduler:
    return SwarmScheduler(
        spare=spare,
        chunk_count=n,
        chunk_size=CHUNK,
        total_size=n * CHUNK,
        need=Bitmap(n, fill=True),
        rng=random.Random(seed),
    )


def reqs(actions: list) -> dict:
    out: dict = {}
    for a in actions:
        if isinstance(a, RequestChunks):
            out.setdefault(a.peer, []).extend(a.indices)
    return out


def test_the_origin_is_asked_only_for_what_no_learned_peer_has() -> None:
    s = make(64, {"origin"})
    s.add_peer("origin", 0.0)
    s.add_peer("p", 0.0, Bitmap.from_indices(64, range(32)))
    got = reqs(s.poll(0.0))
    assert got["p"] and all(i < 32 for i in got["p"])
    assert got["origin"] and all(i >= 32 for i in got["origin"])


def test_alone_with_the_origin_everything_comes_from_it() -> None:
    s = make(20, {"origin"})
    s.add_peer("origin", 0.0)
    s.add_peer("leech", 0.0, Bitmap(20))  # a learned peer with nothing yet
    got = reqs(s.poll(0.0))
    assert "leech" not in got and len(got["origin"]) == SPARE_WINDOW  # a shallow queue there
    seen = list(got["origin"])
    t = 0.0
    while not s.finished:
        t += 1.0
        for i in reqs(s.poll(t)).get("origin", []) if t > 1 else got["origin"]:
            s.on_chunk("origin", i, True, t)
            if t > 1:
                seen.append(i)
    assert sorted(seen) == list(range(20))


def test_peer_has_update_moves_a_chunk_off_the_origin() -> None:
    s = make(4, {"origin"})
    s.add_peer("origin", 0.0)
    s.add_peer("p", 0.0, Bitmap(4))
    first = reqs(s.poll(0.0))
    assert sorted(first["origin"]) == [0, 1, 2, 3]
    s.on_refused("origin", (3,), 0.0, retry_after=10.0)  # 3 goes back to the pool
    s.peer_has("p", 3)
    assert reqs(s.poll(0.0)) == {"p": [3]}


def test_random_start_spreads_receivers_over_the_content() -> None:
    firsts = []
    for seed in range(16):
        s = make(256, {"origin"}, seed=seed)
        s.add_peer("origin", 0.0)
        firsts.append(reqs(s.poll(0.0))["origin"][0])
    assert len(set(firsts)) >= 12  # not everyone starts at chunk 0


@settings(max_examples=examples(50))
@given(st.integers(1, 80), st.integers(0, 2**32), st.sets(st.integers(0, 79)))
def test_swarm_scheduler_finishes_whatever_the_have_sets(n: int, seed: int, has: set[int]) -> None:
    """Deliver everything asked, in order: every chunk arrives exactly once from someone."""
    s = make(n, {"origin"}, seed=seed)
    s.add_peer("origin", 0.0)
    s.add_peer("p", 0.0, Bitmap.from_indices(n, [i for i in has if i < n]))
    got: list[int] = []
    t = 0.0
    for _ in range(10 * n + 10):
        if s.finished:
            break
        t += 1.0
        for peer, indices in reqs(s.poll(t)).items():
            for i in indices:
                s.on_chunk(peer, i, True, t)
                got.append(i)
    assert s.finished
    assert sorted(set(got)) == list(range(n))
