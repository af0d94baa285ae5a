"""A daemon's get learns, by peer exchange, the identities its endpoint had before (a provider's
book keeps each announcer for 10 minutes): dialling those is a Noise handshake with itself that
ends in PeerIdentityMismatch, on both sides of one process. Measured in the issue #11 bench
(a fresh receiver identity per run on one port): 14 stale entries, 28 self-handshakes per 1 GiB
get, ~3 ms of CPU each. The swarm now skips its own listening port on loopback, and never dials
again a learned address whose endpoint turned out to be someone else."""

from __future__ import annotations

from typing import Any

import trio

from node.transfer import SwarmOptions
from node.transfer._fetch import PeerAddr
from node.transfer._swarm import Candidates, FetchSwarm
from node.transport import PeerIdentityMismatch

from ..transfer.helpers import make_identity

OURS = 47999


class _FakeFetch:
    """What ``FetchSwarm._join`` uses of a fetch before a peer is connected."""

    def __init__(self) -> None:
        self.me = make_identity()
        self.peers: dict[str, Any] = {}
        self._permanent: set[str] = set()
        self.dialled: list[str] = []

    async def _connect(self, addr: PeerAddr, errors: dict[str, str]) -> None:
        self.dialled.append(str(addr))
        exc = PeerIdentityMismatch(str(addr.address), make_identity().address)
        errors[str(addr)] = str(exc)
        self._permanent.add(str(addr))  # as _Fetch._connect does for a mismatch


def _swarm(fetch: _FakeFetch) -> FetchSwarm:
    sw = FetchSwarm.__new__(FetchSwarm)
    sw.fetch = fetch  # type: ignore[assignment]
    sw.options = SwarmOptions(listen_port=OURS)
    sw.candidates = Candidates(fetch.me.address)
    return sw


def _addr(port: int) -> PeerAddr:
    return PeerAddr("127.0.0.1", port, make_identity().address)


async def test_our_own_port_on_loopback_is_never_dialled() -> None:
    fetch = _FakeFetch()
    sw = _swarm(fetch)
    stale, other = _addr(OURS), _addr(OURS + 1)
    sw.candidates.learn([stale, other])
    for _ in range(3):  # several PEX rounds, long after the retry delay
        for addr in sw.candidates.due(1e9, connected=(), limit=16):
            assert addr.address is not None
            sw.candidates.dialling(addr.address)
            await sw._join(addr)
    assert str(stale) not in fetch.dialled
    assert fetch.dialled == [str(other)]  # someone else's endpoint: tried once, not again


async def test_a_learned_peer_that_failed_otherwise_is_tried_again() -> None:
    fetch = _FakeFetch()

    async def refused(addr: PeerAddr, errors: dict[str, str]) -> None:
        fetch.dialled.append(str(addr))
        errors[str(addr)] = "PeerDisconnected: connection refused"  # transient: not permanent

    fetch._connect = refused  # type: ignore[method-assign]
    sw = _swarm(fetch)
    addr = _addr(OURS + 2)
    sw.candidates.learn([addr])
    for _ in range(2):
        for due in sw.candidates.due(1e9, connected=(), limit=16):
            assert due.address is not None
            sw.candidates.dialling(due.address)
            await sw._join(due)
    assert fetch.dialled == [str(addr), str(addr)]
    await trio.lowlevel.checkpoint()
