"""The origin's window in a swarm fetch (issue #11): a daemon's get runs with the swarm on, so
its one given peer used to be held to ``SPARE_WINDOW`` chunks in flight for the whole transfer
although no other peer could take any of them: a shallow queue that woke the receiver twice as
often per GiB. The one given peer alone now starts from the get's usual initial window (not
the shallow one: a 100 MiB get took 8-13 % longer from 4 chunks) and grows it as usual, and is
spared again (shallow window) as soon as a learned peer is usable; several given peers stay
spared."""

from __future__ import annotations

from node.transfer._bitmap import Bitmap
from node.transfer._scheduler import RequestChunks
from node.transfer._swarm import SPARE_WINDOW, SwarmScheduler

from ..transfer.test_swarm import make

CHUNK = 1 << 20


def requested(actions: list, peer: str) -> list[int]:
    return [
        i for a in actions if isinstance(a, RequestChunks) and a.peer == peer for i in a.indices
    ]


def deliver_all(s: SwarmScheduler, peer: str, t: float) -> list[int]:
    """The peer delivers everything it has outstanding; returns what the next poll asks of it."""
    for i in list(s.peers[peer].outstanding):
        s.on_chunk(peer, i, True, t)
    return requested(s.poll(t), peer)


def test_a_lone_origin_grows_its_window_and_is_spared_once_a_learned_peer_is_usable() -> None:
    s = make(512, {"origin"}, seed=1)
    s.add_peer("origin", 0.0)
    first = requested(s.poll(0.0), "origin")
    assert s.initial_window > SPARE_WINDOW
    assert len(first) == s.initial_window  # alone, it starts with the usual window...
    t = 0.0
    for _ in range(4):
        t += 0.01
        deliver_all(s, "origin", t)
    # ...and grows as any single peer's window does (slow start): nobody to spare it for
    assert len(s.peers["origin"].outstanding) > 4 * SPARE_WINDOW
    assert s.peers["origin"].window.size > SPARE_WINDOW * CHUNK

    s.add_peer("learned", t, Bitmap(512))  # a learned peer joins (nothing yet)
    s.poll(t)
    assert s.peers["origin"].window.size == SPARE_WINDOW * CHUNK  # spared again
    deliver_all(s, "origin", t + 0.01)  # its queue drains; refilled only to the shallow depth
    assert len(s.peers["origin"].outstanding) <= SPARE_WINDOW

    s.remove_peer("learned")  # the learned peer is gone: the origin is alone again
    s.poll(t + 0.02)
    assert s.peers["origin"].window.size > SPARE_WINDOW * CHUNK


def test_given_peers_stay_spared_while_another_given_peer_may_join() -> None:
    s = make(256, {"origin", "late"}, seed=1)  # two given peers, the second one not connected yet
    s.add_peer("origin", 0.0)
    t = 0.0
    for _ in range(6):
        t += 0.01
        got = deliver_all(s, "origin", t)
        assert len(s.peers["origin"].outstanding) <= SPARE_WINDOW, got
    assert s.peers["origin"].window.size == SPARE_WINDOW * CHUNK
