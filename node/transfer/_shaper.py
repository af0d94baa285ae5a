"""Node-wide bandwidth shaping: caps, per-transfer caps, weighted fair sharing by priority.

Theory of operation
-------------------
Two layers, as elsewhere in ``node.transfer``:

:class:`FairQueue` (sans-IO, one per direction) holds the direction's cap as a token bucket
that may go into debt (``_bucket.TokenBucket``: a 1 MiB chunk under a 100 KiB/s cap is granted
whole and the *next* grant waits until the debt is paid), and the lanes (one per transfer or per
serving connection), each with a weight and an optional bucket of its own (a per-transfer cap).
A caller :meth:`~FairQueue.submit`\\ s a ticket ``(lane, nbytes)``; :meth:`~FairQueue.poll`
``(now)`` grants tickets, in order; :meth:`~FairQueue.next_deadline` ``(now)`` says when polling
can grant the next one. Time is always an argument.

Order is start-time fair queueing (SFQ; Goyal, Vin and Cheng, 1996). A ticket's start tag is
``max(V, the lane's last finish tag)``, its finish tag ``start + nbytes / weight``; among lanes
with a waiting ticket and no debt on their own bucket, the head ticket with the smallest start
tag is granted; ``V`` is the largest start tag granted so far. What that gives:

- work conservation: whenever the cap has tokens and some lane may send, a ticket is granted.
  A lone lane gets the whole cap; an idle (or per-transfer-capped) lane's share goes to the rest.
- weighted fairness: two lanes that both wait over an interval are served ``W_i / w_i`` and
  ``W_j / w_j`` within ``l_max / w_i + l_max / w_j`` of each other (``l_max`` the largest
  ticket), plus what the cap's burst let through unordered at the start.
- no credit for idleness (a returning lane starts at ``V``), and no starvation: a waiting lane
  gets at least ``w / sum(w)`` of the cap, so ``bulk`` (1) still moves beside ``critical`` (8).
- cheap: a grant costs a scan of the lanes that have a ticket waiting (a handful).

Anticipation. A transfer asks for one piece at a time: between a grant and its next ticket
its lane has nothing queued for a moment (it reads the next 64 KiB from its socket). Plain SFQ
would hand the tokens to whoever *is* queued at that instant, so on a busy event loop the lane
that is back first wins, whatever its weight: measured over TCP, 4:2 came out 1.6 and 8:1 came
out 3.6. So a lane granted less than :data:`GRACE` ago, with nothing queued and no debt on its
own cap, counts as coming back: if its next start tag is ahead of the best waiting ticket,
the size of its last ticket is *reserved* in the bucket, and the waiting ticket is granted
only from tokens beyond the reservations (at most half the bucket). Reserving rather than
blocking keeps the bucket below its depth, so nothing is lost even when many slow lanes are
reserved for: those tokens are spent as soon as the reservations lapse. With no cap on the
direction nothing is reserved.

A cap change (:meth:`FairQueue.set_rate`) applies at once: tokens are refilled at the old rate
up to ``now`` and a debt is scaled so that a higher cap pays it sooner and a lower one never
lengthens the wait already announced (``TokenBucket.set_rate``).

:class:`Shaper` and :class:`Lane` are the trio adapter: ``await lane.acquire(nbytes)`` submits
a ticket and returns once it is granted (at once when there is room). Waiters sleep until the
queue's next deadline and whoever wakes first polls, waking the task whose ticket was granted.
:meth:`Shaper.set_limits` and :meth:`Lane.set_rate` poll and wake every waiter to re-time its
sleep, so a change takes effect within milliseconds even for a lane in a 100 s wait. Use a
Shaper from the trio thread that runs the transfers (it holds trio Events).

Priorities and weights (:data:`PRIORITY_WEIGHTS`): critical 8, high 4, normal 2, bulk 1.
See docs/bandwidth.md.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Literal

import trio

from ._bucket import TokenBucket, parse_rate
from ._errors import InvalidArgument, LocalTransferError

PRIORITY_WEIGHTS: Final[dict[str, int]] = {"critical": 8, "high": 4, "normal": 2, "bulk": 1}
"""Weight of each transfer priority (the seed design's names): shares under a cap are in
these proportions among the lanes that want to send."""

DIRECTIONS: Final = ("download", "upload")
Direction = Literal["download", "upload"]

MIN_BURST: Final = 64 * 1024
"""Smallest bucket depth in bytes (see :func:`default_burst`)."""

BURST_SECONDS: Final = 0.1
"""Bucket depth in seconds of the rate: a waiter that wakes up to this late loses nothing."""

GRACE: Final = 0.04
"""Seconds a just-served lane is expected back (see Anticipation in the module docstring)."""

_SLACK: Final = 1e-6
"""Seconds of remaining debt treated as none (float rounding at a deadline)."""


def default_burst(rate: float) -> float:
    """Bucket depth for a cap: ``max(rate * BURST_SECONDS, MIN_BURST)`` bytes."""
    return max(rate * BURST_SECONDS, MIN_BURST)


def check_rate(value: object, what: str = "rate") -> float | None:
    """``None`` (unlimited), a positive finite number of bytes/s, or a string such as ``"50M"``."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return float(parse_rate(value))
        except ValueError as exc:
            raise InvalidArgument(f"{what}: {exc}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(f"{what} must be bytes per second or null, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise InvalidArgument(f"{what} must be positive bytes per second (null: unlimited)")
    return float(value)


def weight_of(priority: str) -> int:
    try:
        return PRIORITY_WEIGHTS[priority]
    except (KeyError, TypeError):
        names = ", ".join(PRIORITY_WEIGHTS)
        raise InvalidArgument(f"unknown priority {priority!r}: use one of {names}") from None


class LaneClosed(LocalTransferError):
    """``acquire`` on a lane that was closed (or closed while waiting)."""


# -- sans-IO core -------------------------------------------------------------------------------


@dataclass(eq=False)
class Ticket:
    """A request to send ``nbytes`` on a lane; ``granted`` once :meth:`FairQueue.poll` says so."""

    lane: LaneState
    nbytes: int
    start: float  #: SFQ start tag
    seq: int  #: submission order (ties)
    granted: bool = False
    cancelled: bool = False


@dataclass(eq=False)
class LaneState:
    """One lane of a :class:`FairQueue` (a transfer, or a serving connection)."""

    weight: float
    bucket: TokenBucket | None = None  #: its own cap, if any
    queue: deque[Ticket] = field(default_factory=deque)
    finish: float = 0.0  #: finish tag of its last ticket
    last_grant: float = -math.inf  #: when a ticket of it was last granted
    last_nbytes: int = 0  #: and its size (reserved for it while it is expected back)
    granted_bytes: int = 0
    closed: bool = False


class FairQueue:
    """Weighted fair sharing of one direction's cap. See the module docstring."""

    def __init__(self, rate: float | None = None, *, burst: float | None = None) -> None:
        self._bucket: TokenBucket | None = None
        self._fixed_burst = burst
        self._waiting: dict[LaneState, None] = {}  #: lanes with a ticket queued (ordered set)
        self._recent: dict[LaneState, None] = {}  #: lanes granted within GRACE (anticipated)
        self._vtime = 0.0
        self._seq = 0
        self.granted_bytes = 0
        self.set_rate(rate, 0.0)

    @property
    def rate(self) -> float | None:
        return None if self._bucket is None else self._bucket.rate

    @property
    def waiting(self) -> int:
        """Tickets waiting, over all lanes."""
        return sum(len(lane.queue) for lane in self._waiting)

    def set_rate(self, rate: float | None, now: float) -> None:
        """Cap the direction at ``rate`` bytes/s from ``now`` on (``None``: unlimited)."""
        self._bucket = _rebucket(self._bucket, rate, now, self._fixed_burst)

    def open_lane(self, weight: float, rate: float | None = None, *, now: float = 0.0) -> LaneState:
        if weight <= 0:
            raise ValueError("weight must be positive")
        return LaneState(weight=weight, bucket=_rebucket(None, rate, now, None))

    def set_lane_rate(self, lane: LaneState, rate: float | None, now: float) -> None:
        lane.bucket = _rebucket(lane.bucket, rate, now, None)

    def set_weight(self, lane: LaneState, weight: float) -> None:
        """Takes effect for tickets submitted from now on."""
        if weight <= 0:
            raise ValueError("weight must be positive")
        lane.weight = weight

    def close_lane(self, lane: LaneState) -> list[Ticket]:
        """Close ``lane``; its waiting tickets are cancelled and returned."""
        lane.closed = True
        dropped = list(lane.queue)
        for t in dropped:
            t.cancelled = True
        lane.queue.clear()
        self._waiting.pop(lane, None)
        self._recent.pop(lane, None)
        return dropped

    def submit(self, lane: LaneState, nbytes: int, now: float) -> Ticket:
        """Queue ``nbytes`` on ``lane``; :meth:`poll` grants it (``now`` kept for symmetry)."""
        if nbytes < 0:
            raise ValueError("nbytes must be >= 0")
        if lane.closed:
            raise LaneClosed("lane is closed")
        start = max(self._vtime, lane.finish)
        lane.finish = start + nbytes / lane.weight
        self._seq += 1
        ticket = Ticket(lane, nbytes, start, self._seq)
        lane.queue.append(ticket)
        self._waiting[lane] = None
        return ticket

    def cancel(self, ticket: Ticket) -> None:
        """Withdraw a waiting ticket (a no-op once granted)."""
        if ticket.granted or ticket.cancelled:
            return
        ticket.cancelled = True
        lane = ticket.lane
        was_last = lane.queue[-1] is ticket
        lane.queue.remove(ticket)
        if was_last:  # give back its place: the lane's next ticket starts where this one did
            lane.finish = ticket.start
        if not lane.queue:
            self._waiting.pop(lane, None)

    def poll(self, now: float) -> list[Ticket]:
        """Grant what may be sent at ``now``, in order (usually one ticket, or none)."""
        granted: list[Ticket] = []
        bucket = self._bucket
        for lane in [lane for lane in self._recent if lane.last_grant + GRACE <= now]:
            del self._recent[lane]
        while self._waiting:
            if bucket is not None and bucket.wait_at(now) > _SLACK:
                break
            best = self._best(now)
            if best is None:
                break
            if bucket is not None:
                need, _ = self._reserved(best, now)
                if need and bucket.time_until(need, now) > _SLACK:
                    break
            self._grant(best, now)
            granted.append(best)
        return granted

    def _best(self, now: float) -> Ticket | None:
        """The head ticket with the smallest start tag among lanes not in debt at ``now``."""
        best: Ticket | None = None
        for lane in self._waiting:
            if lane.bucket is not None and lane.bucket.wait_at(now) > _SLACK:
                continue
            head = lane.queue[0]
            if best is None or (head.start, head.seq) < (best.start, best.seq):
                best = head
        return best

    def _reserved(self, best: Ticket, now: float) -> tuple[float, float]:
        """Tokens kept for just-served lanes that would come before ``best`` (Anticipation in
        the module docstring), and when the first of those reservations lapses."""
        assert self._bucket is not None
        need, lapses, hold = 0.0, math.inf, self._bucket.rate * GRACE
        for lane in self._recent:
            expires = lane.last_grant + GRACE
            if expires <= now:
                continue
            if lane.queue or (lane.bucket is not None and lane.bucket.wait_at(now) > _SLACK):
                continue  # queued: a candidate itself; in debt: could not use the tokens
            if max(self._vtime, lane.finish) < best.start:
                need += max(lane.last_nbytes, hold)
                lapses = min(lapses, expires)
        return min(need, self._bucket.burst / 2), lapses

    def next_deadline(self, now: float) -> float | None:
        """When :meth:`poll` can grant next (``now``: at once; None: nothing waits)."""
        if not self._waiting:
            return None
        lane_wait = min(
            0.0 if lane.bucket is None else lane.bucket.wait_at(now) for lane in self._waiting
        )
        bucket = self._bucket
        if bucket is None:
            return now + lane_wait
        at = now + lane_wait
        best = self._best(at)
        free = at + bucket.wait_at(at)  # out of debt
        if best is None:
            return free
        need, lapses = self._reserved(best, at)
        if not need:
            return free
        return min(at + bucket.time_until(need, at), max(lapses, free))

    def _grant(self, ticket: Ticket, now: float) -> None:
        lane = ticket.lane
        lane.queue.popleft()
        if not lane.queue:
            del self._waiting[lane]
        ticket.granted = True
        lane.last_grant = now
        lane.last_nbytes = ticket.nbytes
        self._recent[lane] = None
        self._vtime = max(self._vtime, ticket.start)
        n = ticket.nbytes
        if self._bucket is not None:
            self._bucket.consume(n, now)
        if lane.bucket is not None:
            lane.bucket.consume(n, now)
        lane.granted_bytes += n
        self.granted_bytes += n


def _rebucket(
    bucket: TokenBucket | None, rate: float | None, now: float, burst: float | None
) -> TokenBucket | None:
    """The bucket for ``rate`` after a change at ``now`` (keeps a debt, see TokenBucket)."""
    if rate is None:
        return None
    depth = burst if burst is not None else default_burst(rate)
    if bucket is None:
        fresh = TokenBucket(rate, depth)
        fresh.updated = now
        return fresh
    bucket.set_rate(rate, now, depth)
    return bucket


# -- trio adapter -------------------------------------------------------------------------------


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final = _Keep()
"""``set_limits`` default: leave that direction's cap as it is."""


class _Side:
    """One direction: its FairQueue and the trio tasks waiting on it."""

    def __init__(self, rate: float | None) -> None:
        self.core = FairQueue(rate)
        self.limit: int | float | None = _as_reported(rate)
        self.waiters: dict[Ticket, trio.Event] = {}
        self.lanes = 0
        self.last_now = 0.0

    def now(self) -> float:
        with contextlib.suppress(RuntimeError):  # outside a trio run: nobody can be waiting
            self.last_now = trio.current_time()
        return self.last_now

    def pump(self, now: float, *, retime: bool = False) -> None:
        """Grant what can go now and wake its tasks; ``retime``: wake every waiter too."""
        for ticket in self.core.poll(now):
            ev = self.waiters.pop(ticket, None)
            if ev is not None:
                ev.set()
        if retime:
            for ev in self.waiters.values():
                ev.set()


def _as_reported(rate: float | None) -> int | float | None:
    if rate is None:
        return None
    return int(rate) if float(rate).is_integer() else rate


class Shaper:
    """Node-wide upload and download caps with weighted fair lanes. See the module docstring.

    ``download`` / ``upload``: bytes per second, or ``None`` for unlimited.
    """

    def __init__(
        self, download: float | str | None = None, upload: float | str | None = None
    ) -> None:
        self._sides: dict[str, _Side] = {
            "download": _Side(check_rate(download, "download")),
            "upload": _Side(check_rate(upload, "upload")),
        }

    def limits(self) -> dict[str, int | float | None]:
        """``{"upload": bytes/s | None, "download": ...}`` (the shape of ``status()["limits"]``)."""
        return {"upload": self._sides["upload"].limit, "download": self._sides["download"].limit}

    def set_limits(
        self,
        *,
        download: float | str | _Keep | None = KEEP,
        upload: float | str | _Keep | None = KEEP,
    ) -> None:
        """Change caps at run time (``None``: unlimited; omitted: unchanged).

        Effective at once: waiting lanes are re-timed (a lower cap never lengthens a wait
        already running, a higher one shortens it). Raises :class:`InvalidArgument` and changes
        nothing if either value is bad.
        """
        changes = []
        for name, value in (("download", download), ("upload", upload)):
            if not isinstance(value, _Keep):
                changes.append((self._sides[name], check_rate(value, name)))
        for side, rate in changes:
            now = side.now()
            side.core.set_rate(rate, now)
            side.limit = _as_reported(rate)
            side.pump(now, retime=True)

    def lane(
        self, direction: Direction, priority: str = "normal", rate: float | str | None = None
    ) -> Lane:
        """A lane for one transfer (or serving connection); close it (or use ``with``) after."""
        side = self._sides.get(direction)
        if side is None:
            raise InvalidArgument(f"direction must be one of {', '.join(DIRECTIONS)}")
        weight = weight_of(priority)
        cap = check_rate(rate, "per-transfer rate")
        state = side.core.open_lane(weight, cap, now=side.now())
        side.lanes += 1
        return Lane(side, direction, priority, state, _as_reported(cap))

    def stats(self) -> dict[str, dict[str, float | int | None]]:
        """Per direction: cap, open lanes, waiting tickets, bytes granted so far."""
        return {
            name: {
                "limit": side.limit,
                "lanes": side.lanes,
                "waiting": side.core.waiting,
                "bytes": side.core.granted_bytes,
            }
            for name, side in self._sides.items()
        }


class Lane:
    """One transfer's share of a direction. ``await acquire(n)`` before sending/after receiving
    ``n`` bytes; it returns at once while there is room and otherwise when it is this lane's
    turn."""

    def __init__(
        self,
        side: _Side,
        direction: str,
        priority: str,
        state: LaneState,
        rate: int | float | None,
    ) -> None:
        self._side = side
        self._state = state
        self.direction = direction
        self._priority = priority
        self._rate = rate

    @property
    def priority(self) -> str:
        return self._priority

    @property
    def weight(self) -> float:
        return self._state.weight

    @property
    def rate(self) -> int | float | None:
        """This lane's own cap (bytes/s), None if only the direction's cap applies."""
        return self._rate

    @property
    def granted_bytes(self) -> int:
        return self._state.granted_bytes

    @property
    def unlimited(self) -> bool:
        """No cap applies now (neither this lane's own nor its direction's): :meth:`acquire`
        would grant at once, so a hot path may skip it (a fetch does, per 64 KiB piece; the
        cap is looked up again for every piece, so one set at run time applies at once)."""
        return self._state.bucket is None and self._side.core.rate is None

    @property
    def closed(self) -> bool:
        return self._state.closed

    def set_rate(self, rate: float | str | None) -> None:
        """Change this transfer's own cap at run time (``None``: none)."""
        cap = check_rate(rate, "per-transfer rate")
        side = self._side
        now = side.now()
        side.core.set_lane_rate(self._state, cap, now)
        self._rate = _as_reported(cap)
        side.pump(now, retime=True)

    def set_priority(self, priority: str) -> None:
        """Change the weight for what this lane asks from now on."""
        self._side.core.set_weight(self._state, weight_of(priority))
        self._priority = priority

    async def acquire(self, nbytes: int) -> None:
        """Wait for this lane's turn to move ``nbytes`` (debt allowed: see the module docstring).

        Raises :class:`LaneClosed` if the lane is (or gets) closed. Cancelling a waiting call
        withdraws its request.
        """
        side = self._side
        now = trio.current_time()
        side.last_now = now
        ticket = side.core.submit(self._state, nbytes, now)
        side.pump(now)
        if ticket.granted:
            await trio.lowlevel.checkpoint()
            return
        try:
            while not ticket.granted:
                if ticket.cancelled:
                    raise LaneClosed("lane closed while waiting")
                wake = side.waiters[ticket] = trio.Event()
                deadline = side.core.next_deadline(now)
                with trio.move_on_at(math.inf if deadline is None else deadline):
                    await wake.wait()
                now = trio.current_time()
                side.last_now = now
                if not ticket.granted:
                    side.pump(now)
        finally:
            side.waiters.pop(ticket, None)
            if not ticket.granted:
                side.core.cancel(ticket)

    def close(self) -> None:
        """Stop sharing; waiting ``acquire`` calls raise :class:`LaneClosed`. Idempotent."""
        if self._state.closed:
            return
        side = self._side
        side.lanes -= 1
        for ticket in side.core.close_lane(self._state):
            ev = side.waiters.pop(ticket, None)
            if ev is not None:
                ev.set()
        side.pump(side.now())

    def __enter__(self) -> Lane:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


__all__ = [
    "DIRECTIONS",
    "KEEP",
    "PRIORITY_WEIGHTS",
    "FairQueue",
    "Lane",
    "LaneClosed",
    "LaneState",
    "Shaper",
    "Ticket",
    "default_burst",
]
