"""Which chunk to ask which peer for, and when: the receiver's scheduler (sans-IO).

Inputs are what happened (a chunk verified or failed, a peer refused or went away, the time);
outputs are :class:`RequestChunks` and :class:`CancelChunks` actions for the I/O layer. Nothing
here blocks, sleeps or reads a clock: ``now`` is always an argument, so tests can replay any
interleaving and hypothesis can search them.

Rules, per peer (``PeerState``):

- A peer gets requests while its adaptive window (:mod:`._window`, outstanding *bytes*) has
  room, its circuit breaker allows it, and its backoff has expired. Requests to one peer are
  batched into one ``RequestChunks`` per poll; a peer that still has requests outstanding
  gets more only once its window has room for ``request_batch`` chunks (capped at half its
  window), so a steady stream costs one Request per few chunks, not one per chunk.
- Choice of index: lowest-index first (so a partially fetched file fills from the front and
  resumes cheaply); when peers hold different subsets (bitfields), rarest first among the next
  ``lookahead`` candidates, ties to the lowest index.
- Stall: a peer with requests outstanding and no delivery for ``stall_timeout`` seconds loses
  them all (back to the pool), its window halves, its breaker counts a failure and it backs
  off with full jitter. The stall clock runs only while the peer is not *held*: time its data
  waits on this side (a bandwidth shaper's lane, a rate limit: :meth:`Scheduler.hold` /
  :meth:`Scheduler.release`) is ours, not the peer's, and does not count.
- A corrupt chunk (it did not match its verified chunk root) bans the peer for this transfer.
- Order: each poll serves peers by ``rank`` (lower first, e.g. from the persistent peer ledger,
  so a peer known to have cheated is never asked first), rotating among peers of equal rank
  so none of them is always first.
- Endgame: with nothing left to hand out, idle peers duplicate in-flight requests (at most
  ``endgame_copies`` holders per chunk); the first copy to verify cancels the others. A
  holder whose request for the chunk is older than ``ENDGAME_BEHIND`` (4) times the idle
  peer's own pace (``gap``: seconds between its deliveries while busy) is *behind* and does
  not count, up to one copy more: two slow peers holding the copies of a chunk between them
  no longer make a fast peer wait for them (a 32 MiB fetch from one peer at 16 MiB/s and two
  at 1 MiB/s took up to 15 s, not 2).
- Overtaken: a peer with requests outstanding that has delivered nothing since its oldest
  one, while other peers delivered ``overtake_after`` (8) chunks (half the chunk count, at
  least 2, for smaller contents), counts as ``overtaken`` (once per such run). That alone
  does not say whether it is *slow* (honest, far away or busy: it answers, later) or
  *stalled* (it takes Requests and never answers them, a stall the stall timer may never see
  because a faster peer finishes the content first). The verdict:

  - *slow*: bytes of a chunk came from it since its oldest request (before it was overtaken,
    or later: :meth:`Scheduler.on_bytes`); counted in ``slow`` (the ledger deprioritises it
    with a small weight);
  - *stalled*: no byte at all from it for ``stalled_after`` since its oldest request:
    ``max(stalled_floor, stalled_factor x`` the best per-chunk time of the other peers
    that deliver``)`` (2 s and 4x by default; a per-chunk time is from Request to verified
    chunk, held time left out). Handled like a stall: requests back to the pool, a timeout.

  Until the verdict the peer is a *suspect* (``suspect_since``); the I/O layer holds back
  Cancels to a suspect (so an honest peer's answer can still come) and, at the end of the
  transfer, waits briefly for open verdicts (``verdicts_due``; an open one it gives up on is
  *slow*: :meth:`Scheduler.resolve_open`, the benefit of the doubt).
- The transfer fails when every peer is banned or given up: with :class:`CorruptChunk` when
  corruption was the cause, else :class:`PeerFailed` (which a later run can resume).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field

from ._backoff import Backoff
from ._bitmap import Bitmap
from ._breaker import BreakerState, CircuitBreaker
from ._errors import CorruptChunk, PeerFailed, TransferError
from ._window import FlowWindow

PeerId = Hashable

ENDGAME_BEHIND = 4.0
"""An endgame holder whose request is older than this many times the idle peer's own pace
(``PeerState.gap``) is behind: it does not count against ``endgame_copies`` (module
docstring)."""


@dataclass(frozen=True)
class RequestChunks:
    """Send one batched request for ``indices`` to ``peer``."""

    peer: PeerId
    indices: tuple[int, ...]


@dataclass(frozen=True)
class CancelChunks:
    """Tell ``peer`` to stop sending ``indices`` (done elsewhere, or given up on it)."""

    peer: PeerId
    indices: tuple[int, ...]


Action = RequestChunks | CancelChunks


@dataclass
class PeerState:
    peer: PeerId
    window: FlowWindow
    have: Bitmap | None = None  #: ``None``: the peer has every chunk
    outstanding: dict[int, float] = field(default_factory=dict)  #: index -> requested at
    outstanding_bytes: int = 0
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    not_before: float = 0.0
    attempt: int = 0
    last_progress: float = 0.0
    banned: bool = False
    gone: bool = False
    fault: TransferError | None = None
    received_bytes: int = 0
    chunks_ok: int = 0
    chunks_corrupt: int = 0
    timeouts: int = 0
    overtaken: int = 0  #: times it sat on requests while others delivered (module docstring)
    slow: int = 0  #: overtaken, but it answers (the verdict "slow", module docstring)
    suspect_since: float | None = None  #: overtaken with no byte since this (oldest request)
    last_bytes: float = -1.0  #: when the last bytes of a chunk came from it (``on_bytes``)
    chunk_time: float = 0.0  #: EWMA of seconds from Request to verified chunk, held time out
    gap: float = 0.0  #: EWMA of seconds between its deliveries while busy (0: none yet)
    passed_by: int = 0  #: chunks others delivered since its last delivery, while it had requests
    rank: float = 0.0  #: lower is served first (see ``Scheduler.poll``)
    holds: int = 0  #: nested holds now (its data waits on our side: the stall clock stops)
    held_since: float = 0.0  #: when the current hold began (or ``last_progress``, if later)
    held: float = 0.0  #: seconds held since ``last_progress``, not counting the current hold
    hold_began: float = 0.0  #: when the current hold began
    asked_held: dict[int, float] = field(default_factory=dict)  #: index -> held seconds then
    held_total: float = 0.0  #: seconds held in all, ended holds only

    def stall_at(self, timeout: float) -> float | None:
        """When the stall clock runs out (``None``: held now, the clock is stopped)."""
        if self.holds:
            return None
        return self.last_progress + self.held + timeout

    def progress(self, now: float) -> None:
        """Delivery (or a fresh start): the stall clock starts again from ``now``."""
        self.last_progress = now
        self.held = 0.0
        if self.holds:
            self.held_since = now

    def has(self, index: int) -> bool:
        return self.have is None or index in self.have

    @property
    def usable(self) -> bool:
        return not (self.banned or self.gone)


class Scheduler:
    """Chunk assignment across peers for one content root. See the module docstring."""

    def __init__(
        self,
        *,
        chunk_count: int,
        chunk_size: int,
        total_size: int,
        need: Bitmap,
        initial_window: int = 16,
        max_window: int = 64,
        stall_timeout: float = 20.0,
        max_peer_failures: int = 6,
        endgame_copies: int = 2,
        lookahead: int = 64,
        request_batch: int = 1,
        overtake_after: int = 8,
        stalled_floor: float = 2.0,
        stalled_factor: float = 4.0,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if need.size != chunk_count:
            raise ValueError("need bitmap size must equal chunk_count")
        self.chunk_count = chunk_count
        self.chunk_size = chunk_size
        self.total_size = total_size
        self.need = need
        self.initial_window = initial_window
        self.max_window = max_window
        self.stall_timeout = stall_timeout
        self.max_peer_failures = max_peer_failures
        self.endgame_copies = endgame_copies
        self.lookahead = lookahead
        if request_batch < 1:
            raise ValueError("request_batch must be >= 1")
        self.request_batch = request_batch
        self.overtake_after = overtake_after
        self.stalled_floor = stalled_floor
        self.stalled_factor = stalled_factor
        #: small contents have fewer chunks to pass a peer by: half of them (at least 2) will do
        self._overtake_at = min(overtake_after, max(2, chunk_count // 2))
        self.backoff = backoff or Backoff()
        self.rng = rng or random.Random()
        self.peers: dict[PeerId, PeerState] = {}
        self.inflight: dict[int, list[PeerId]] = {}
        self._retry: list[int] = []
        self._next = 0
        self._rotation = 0
        self.duplicates_received = 0

    # -- geometry -------------------------------------------------------------------------

    def chunk_len(self, index: int) -> int:
        if index == self.chunk_count - 1:
            return self.total_size - index * self.chunk_size
        return self.chunk_size

    @property
    def finished(self) -> bool:
        return len(self.need) == 0

    # -- peers ----------------------------------------------------------------------------

    def add_peer(
        self, peer: PeerId, now: float, have: Bitmap | None = None, *, rank: float = 0.0
    ) -> None:
        if peer in self.peers and self.peers[peer].usable:
            raise ValueError(f"peer {peer!r} already added")
        window = FlowWindow(
            self.chunk_size,
            initial_chunks=min(self.initial_window, self.max_window),
            max_chunks=self.max_window,
        )
        self.peers[peer] = PeerState(
            peer=peer, window=window, have=have, last_progress=now, rank=rank
        )

    def set_have(self, peer: PeerId, have: Bitmap | None) -> None:
        self.peers[peer].have = have

    def peer_has(self, peer: PeerId, index: int) -> None:
        st = self.peers[peer]
        if st.have is not None:
            st.have.set(index)

    def remove_peer(self, peer: PeerId, fault: TransferError | None = None) -> None:
        """The connection is gone: its outstanding requests go back to the pool."""
        st = self.peers.get(peer)
        if st is None:
            return
        self._release_all(st)
        st.gone = True
        if fault is not None and st.fault is None:
            st.fault = fault

    def usable_peers(self) -> list[PeerState]:
        return [p for p in self.peers.values() if p.usable]

    # -- events ---------------------------------------------------------------------------

    def on_chunk(self, peer: PeerId, index: int, ok: bool, now: float) -> list[Action]:
        """A chunk from ``peer`` arrived and was checked (``ok``) against its chunk root."""
        st = self.peers[peer]
        nbytes = self.chunk_len(index)
        age = self.request_age(peer, index, now) if ok else None
        st.asked_held.pop(index, None)
        # since its last delivery or since it began to work: its per-chunk pace (if requested)
        gap = max(0.0, now - st.last_progress - st.held)
        requested = st.outstanding.pop(index, None) is not None
        self._heard(st, now)
        if requested:
            st.outstanding_bytes -= nbytes
            self._drop_holder(index, peer)
        st.progress(now)
        if not ok:
            st.chunks_corrupt += 1
            st.banned = True
            st.breaker.trip(now)
            if st.fault is None:
                st.fault = CorruptChunk(index, peer)
            actions: list[Action] = []
            if st.outstanding:
                actions.append(CancelChunks(peer, tuple(st.outstanding)))
            self._release_all(st)
            if index in self.need and index not in self.inflight:
                heapq.heappush(self._retry, index)
            return actions
        st.received_bytes += nbytes
        st.chunks_ok += 1
        if age is not None:
            st.chunk_time = age if not st.chunk_time else 0.8 * st.chunk_time + 0.2 * age
        if requested:
            st.gap = gap if not st.gap else 0.8 * st.gap + 0.2 * gap
        st.attempt = 0
        st.breaker.record_success()
        if requested:
            st.window.on_delivered(nbytes)
        if not self.need.clear(index):
            self.duplicates_received += 1
            return []
        # Peers sitting on requests with nothing delivered since are passed by this chunk;
        # passed ``overtake_after`` times in a row, a peer was overtaken (module docstring).
        st.passed_by = 0
        for ost in self.peers.values():
            sitting = ost is not st and ost.outstanding and ost.usable
            oldest = min(ost.outstanding.values()) if sitting else 0.0
            if sitting and ost.last_progress <= oldest:
                ost.passed_by += 1
                if ost.passed_by == self._overtake_at:
                    ost.overtaken += 1
                    if ost.last_bytes >= oldest:
                        ost.slow += 1  # it answers, slowly: not a staller
                    elif ost.suspect_since is None:
                        ost.suspect_since = oldest
        # Anyone else still fetching this index (endgame copies) can stop.
        others = self.inflight.pop(index, [])
        actions = []
        for other in others:
            ost = self.peers[other]
            ost.asked_held.pop(index, None)
            if ost.outstanding.pop(index, None) is not None:
                ost.outstanding_bytes -= nbytes
                actions.append(CancelChunks(other, (index,)))
        return actions

    def requested(self, peer: PeerId, indices: tuple[int, ...], now: float) -> tuple[int, ...]:
        """``indices`` were asked of ``peer`` before this scheduler existed (an early Request,
        docs/protocol.md 5.13a): from ``now`` they are outstanding there, as if :meth:`poll`
        had handed them out. Returns those it does not take (beyond the content, not needed,
        not held by the peer by its Have, already outstanding there, or the peer unusable):
        the caller forgets their request, and their data is unsolicited."""
        st = self.peers[peer]
        ignored: list[int] = []
        for index in dict.fromkeys(indices):  # a repeat is taken once, not returned
            if (
                not st.usable
                or not 0 <= index < self.chunk_count
                or index not in self.need
                or index in self.inflight
                or not st.has(index)
            ):
                ignored.append(index)
                continue
            if not st.outstanding:
                st.progress(now)
            st.outstanding[index] = now
            st.outstanding_bytes += self.chunk_len(index)
            self.inflight.setdefault(index, []).append(peer)
        return tuple(ignored)

    def on_refused(
        self,
        peer: PeerId,
        indices: tuple[int, ...] | list[int],
        now: float,
        retry_after: float | None = None,
    ) -> None:
        """``peer`` refused (BUSY, error) some requests: back to the pool, back off."""
        st = self.peers[peer]
        for index in indices:
            if st.outstanding.pop(index, None) is not None:
                st.outstanding_bytes -= self.chunk_len(index)
                self._drop_holder(index, peer)
                self._requeue(index)
        st.window.on_congestion()
        st.attempt += 1
        delay = retry_after if retry_after is not None else self.backoff.delay(st.attempt, self.rng)
        st.not_before = max(st.not_before, now + delay)
        st.progress(now)

    def hold(self, peer: PeerId, now: float) -> None:
        """``peer``'s data waits on our side from ``now`` (a shaper lane, a rate limit): its
        stall clock stops until the matching :meth:`release`. Holds nest."""
        st = self.peers.get(peer)
        if st is None:
            return
        if not st.holds:
            st.held_since = st.hold_began = now
        st.holds += 1

    def release(self, peer: PeerId, now: float) -> None:
        """The wait that :meth:`hold` began is over: the stall clock runs again."""
        st = self.peers.get(peer)
        if st is None or not st.holds:
            return
        st.holds -= 1
        if not st.holds:
            st.held += max(0.0, now - st.held_since)
            st.held_total += max(0.0, now - st.hold_began)

    def held_seconds(self, peer: PeerId, now: float) -> float:
        """Seconds ``peer`` has been held in all, the current hold included (a clock that
        per-chunk times can subtract: see ``_fetch``)."""
        st = self.peers.get(peer)
        if st is None:
            return 0.0
        return st.held_total + (max(0.0, now - st.hold_began) if st.holds else 0.0)

    def on_bytes(self, peer: PeerId, now: float) -> bool:
        """Bytes of a chunk came from ``peer`` (any piece, wanted or not): it answers. True
        when that settles an open verdict as *slow* (module docstring)."""
        st = self.peers.get(peer)
        return st is not None and self._heard(st, now)

    def _heard(self, st: PeerState, now: float) -> bool:
        st.last_bytes = now
        if st.suspect_since is None:
            return False
        st.suspect_since = None
        st.slow += 1
        return True

    def stalled_after(self, peer: PeerId) -> float:
        """How long ``peer`` may hold requests without a byte before it counts as stalled:
        ``max(stalled_floor, stalled_factor x`` the best per-chunk time of the other peers``)``.
        """
        times = [
            p.chunk_time
            for p in self.peers.values()
            if p.peer != peer and p.chunk_time > 0 and p.usable
        ]
        return max(self.stalled_floor, self.stalled_factor * min(times, default=0.0))

    def suspects(self) -> list[PeerId]:
        """Usable peers whose verdict (slow or stalled) is still open."""
        return [p.peer for p in self.peers.values() if p.usable and p.suspect_since is not None]

    def verdicts_due(self) -> float | None:
        """When the first open verdict falls due (``None``: none open)."""
        times = [
            st.suspect_since + self.stalled_after(st.peer)
            for st in self.peers.values()
            if st.usable and st.suspect_since is not None
        ]
        return min(times, default=None)

    def resolve_open(self) -> list[PeerId]:
        """Give up waiting: every open verdict is *slow* (the benefit of the doubt)."""
        out = []
        for st in self.peers.values():
            if st.suspect_since is not None:
                st.suspect_since = None
                st.slow += 1
                out.append(st.peer)
        return out

    def request_age(self, peer: PeerId, index: int, now: float) -> float | None:
        """Seconds since ``index`` was asked of ``peer``, less the time ``peer`` was held
        since (the peer's own time to deliver it); ``None`` if it is not outstanding there."""
        st = self.peers.get(peer)
        asked = st.outstanding.get(index) if st is not None else None
        if st is None or asked is None:
            return None
        held = self.held_seconds(peer, now) - st.asked_held.get(index, 0.0)
        return max(0.0, now - asked - held)

    def on_failure(self, peer: PeerId, now: float, fault: TransferError | None = None) -> None:
        """A soft failure (timeout-like) of ``peer``: penalise it and maybe give it up."""
        st = self.peers[peer]
        self._release_all(st)
        st.window.on_congestion()
        st.breaker.record_failure(now)
        st.attempt += 1
        st.not_before = now + self.backoff.delay(st.attempt, self.rng)
        if fault is not None:
            st.fault = fault
        if st.attempt >= self.max_peer_failures:
            st.gone = True

    # -- the clock ------------------------------------------------------------------------

    def poll(self, now: float) -> list[Action]:
        """Handle stalls, then hand out requests. Call after every event and at deadlines."""
        actions: list[Action] = []
        for st in list(self.peers.values()):
            stall_at = st.stall_at(self.stall_timeout)
            if st.usable and st.outstanding and stall_at is not None and now >= stall_at:
                st.suspect_since = None  # the stall timer's verdict
                st.timeouts += 1
                actions.append(CancelChunks(st.peer, tuple(st.outstanding)))
                self.on_failure(st.peer, now, PeerFailed(f"peer {st.peer} stalled"))
            elif (
                st.usable
                and st.suspect_since is not None
                and now >= st.suspect_since + self.stalled_after(st.peer)
            ):
                waited = now - st.suspect_since
                st.suspect_since = None
                st.timeouts += 1
                if st.outstanding:
                    actions.append(CancelChunks(st.peer, tuple(st.outstanding)))
                fault = PeerFailed(f"peer {st.peer} stalled: no byte in {waited:.1f}s")
                self.on_failure(st.peer, now, fault)
        if self.finished:
            return actions
        peers = self.usable_peers()
        if not peers:
            return actions
        # Rotate the starting peer so no peer is always served first.
        self._rotation = (self._rotation + 1) % len(peers)
        order = sorted(peers[self._rotation :] + peers[: self._rotation], key=lambda p: p.rank)
        for st in order:
            if now < st.not_before or not st.breaker.allow(now):
                continue
            if st.outstanding and not self._batch_room(st):
                continue
            batch: list[int] = []
            while True:
                if st.breaker.state is BreakerState.HALF_OPEN and (st.outstanding or batch):
                    break  # one probe at a time
                if not st.window.has_room(st.outstanding_bytes, self.chunk_size):
                    break
                index = self._pick(st, now)
                if index is None:
                    break
                nbytes = self.chunk_len(index)
                if not st.outstanding:
                    st.progress(now)
                st.outstanding[index] = now
                if st.held_total or st.holds:
                    st.asked_held[index] = self.held_seconds(st.peer, now)
                st.outstanding_bytes += nbytes
                self.inflight.setdefault(index, []).append(st.peer)
                batch.append(index)
            if batch:
                actions.append(RequestChunks(st.peer, tuple(batch)))
        return actions

    def next_deadline(self, now: float) -> float | None:
        """When :meth:`poll` should run next if nothing else happens (``None``: no timer).

        Idle peers waiting out a backoff or an open breaker count only while that wait lies
        in the future (an idle peer with nothing to do must not cause a busy loop).
        """
        times: list[float] = []
        due = self.verdicts_due()
        if due is not None:
            times.append(due)
        for st in self.usable_peers():
            if st.outstanding:
                stall_at = st.stall_at(self.stall_timeout)
                if stall_at is not None:  # a held peer: ``release`` is followed by a poll
                    times.append(stall_at)
            elif not self.finished:
                if st.not_before > now:
                    times.append(st.not_before)
                reopen = st.breaker.reopens_at()
                if reopen is not None and reopen > now:
                    times.append(reopen)
        return min(times) if times else None

    @property
    def failure(self) -> TransferError | None:
        """Why the transfer cannot go on (no usable peer left), or ``None``."""
        if self.finished or self.usable_peers():
            return None
        faults = [st.fault for st in self.peers.values() if st.fault is not None]
        for fault in faults:
            if isinstance(fault, CorruptChunk):
                return fault
        return faults[0] if faults else PeerFailed("no peers to fetch from")

    # -- internals ------------------------------------------------------------------------

    def _batch_room(self, st: PeerState) -> bool:
        """Has a busy peer's window room for a whole batch (at most half the window)?"""
        if self.request_batch == 1:
            return True
        batch = min(self.request_batch, max(1, st.window.size // self.chunk_size // 2))
        return st.window.has_room(st.outstanding_bytes, batch * self.chunk_size)

    def _requeue(self, index: int) -> None:
        if index in self.need and index not in self.inflight:
            heapq.heappush(self._retry, index)

    def _drop_holder(self, index: int, peer: PeerId) -> None:
        holders = self.inflight.get(index)
        if holders is not None:
            if peer in holders:
                holders.remove(peer)
            if not holders:
                del self.inflight[index]

    def _release_all(self, st: PeerState) -> None:
        for index in list(st.outstanding):
            self._drop_holder(index, st.peer)
            self._requeue(index)
        st.outstanding.clear()
        st.asked_held.clear()
        st.outstanding_bytes = 0

    def _pending(self) -> Iterator[int]:
        """Indices that are needed and not in flight, lowest first (retry heap, then cursor).

        Stale heap entries are dropped as they surface. Yields lazily; the caller stops early.
        """
        retry = self._retry
        while retry and (retry[0] not in self.need or retry[0] in self.inflight):
            heapq.heappop(retry)
        for index in sorted(set(retry)):
            if index in self.need and index not in self.inflight:
                yield index
        i = self._next
        while True:
            i = self.need.next_set(i)
            if i >= self.chunk_count:
                return
            if i not in self.inflight:
                yield i
            i += 1

    def _advance_cursor(self) -> None:
        i = self._next
        while True:
            i = self.need.next_set(i)
            if i >= self.chunk_count or i not in self.inflight:
                break
            i += 1
        self._next = i

    def _take(self, index: int) -> int:
        if self._retry and self._retry[0] == index:
            heapq.heappop(self._retry)
        if index == self._next:
            self._next += 1
        return index

    def _pick(self, st: PeerState, now: float) -> int | None:
        self._advance_cursor()
        everyone_full = all(p.have is None for p in self.usable_peers())
        best: int | None = None
        best_avail = 0
        for seen, index in enumerate(self._pending()):
            if seen >= self.lookahead and best is not None:
                break
            if not st.has(index):
                continue
            if everyone_full:
                return self._take(index)
            avail = sum(1 for p in self.usable_peers() if p.has(index))
            if best is None or avail < best_avail:
                best, best_avail = index, avail
        if best is not None:
            return self._take(best)
        return self._endgame_pick(st, now)

    def _endgame_pick(self, st: PeerState, now: float) -> int | None:
        """The in-flight chunk ``st`` should copy: fewest holders that count (module
        docstring: a holder *behind* does not), first found on a tie; ``None``: none."""
        choice: int | None = None
        fewest = self.endgame_copies
        behind_after = ENDGAME_BEHIND * st.gap  # 0: not measured yet, none is behind
        for index, holders in self.inflight.items():
            if st.peer in holders or not st.has(index) or len(holders) > self.endgame_copies:
                continue
            count = len(holders)
            if behind_after:
                count -= sum(
                    1
                    for h in holders
                    if now - self.peers[h].outstanding.get(index, now) > behind_after
                )
            if count >= fewest:
                continue
            choice, fewest = index, count
            if fewest == 0 or (fewest == 1 and not behind_after):
                break  # none can count less
        return choice
