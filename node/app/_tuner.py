"""What bounds a transfer now, and the knobs the next one is given (the seed's PerformanceMonitor:
``AnalyzeBottlenecks``, ``AutoTune``).

Theory of operation
-------------------
Three parts, from pure to I/O (docs/tuning.md has the rules with their numbers):

:func:`analyse` (sans-IO) takes a few seconds of :class:`Sample`\\ s of one running transfer and
returns a :class:`Verdict`: ``bound`` is one of ``"rate_cap"``, ``"cpu"``, ``"disk"``,
``"peer:<address>"``, ``"network"`` or ``"none"``, with the measured ``evidence`` and a
``suggestion``. It reads only measured signals, in this order:

- ``rate_cap``: a download cap applies (the node's, or this transfer's own) and the transfer
  runs at >= 85 % of it, or the shaper had tickets waiting in half the samples or more;
- ``cpu``: the process used >= 0.85 of a core (CPU time plus run-queue wait of all its threads,
  ``getrusage`` and ``/proc/self/task/*/schedstat``): decrypting and hashing at the speed the
  bytes come, on a GIL-bound receiver, is the limit (on loopback it nearly always is);
- ``disk``: our TCP receive queues held >= 64 KiB in half the samples or more (the peers sent
  faster than we read: ``/proc/net/tcp`` for this process's sockets) while the CPU was not
  busy: the store's verify-and-write pipeline (``put_workers``) is what the reader waits for;
- otherwise the transfer waits on its peers. Among the peers that had requests outstanding in
  half the samples or more, a peer delivering at most a quarter of the fastest one's rate is
  ``peer:<address>`` (a slow peer: it holds chunks the others could serve); one peer alone is
  ``peer:<address>`` too; several alike are ``network`` (the path or our link).

:class:`Tuner` (sans-IO, one per node) turns the verdicts of a finished transfer into bounded
changes of the knobs the *next* fetch is given (``initial_window``, ``put_workers``,
``request_batch``: the parameters ``node.transfer.fetch`` already takes; a running fetch has no
live knob). A bound must be the dominant verdict of a transfer for at least two ticks before it
changes anything (hysteresis; every ``peer:`` verdict counts as one kind, whichever peer it
names, and the latest names the peer), every change stays inside ``[tuning]``'s bounds, and
every decision (holds included) is logged and kept for ``status()["tuning"]``:

- a slow peer beside faster ones: ``initial_window`` down to what the slow peer delivers in
  ``horizon`` seconds (at least ``min_window``), so that it no longer takes 16 chunks at the
  start that the fast peers then serve twice in the endgame; a later transfer without a slow
  peer doubles it back towards the default, one step per transfer;
- ``disk``: ``put_workers`` doubled (a write that waits is overlapped with others);
- ``network`` (peers alike, window-bound): ``initial_window`` doubled (pipeline depth);
- ``cpu``, ``rate_cap``, one slow peer alone, ``none``: held (more depth or workers would add
  work, not throughput; the cap is the operator's).

:class:`Watch` is the trio adapter for one transfer: a :class:`TransferObserver` tee (per-peer
bytes, requests in flight and windows of *this* transfer, forwarded to the node's metrics), a
sampler of process CPU, receive backlog and shaper state every ``TICK`` seconds, and the loop
that puts the verdict into the transfer's ``bottleneck``. :func:`watching` runs it around a
fetch and hands the transfer's verdicts to the tuner at the end.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import resource
import socket
import sys
import termios
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import trio

from node.log import get_logger
from node.transfer import DEFAULT_PUT_WORKERS

log = get_logger("node.app.tuner")

TICK = 0.5
"""Seconds between samples of a running transfer."""
SPAN = 3.0
"""Seconds of samples a verdict looks at (the newest ones)."""
MIN_SPAN = 1.0
"""A verdict needs samples at least this far apart (else ``none``: warming up)."""
CAP_NEAR = 0.85
"""A transfer at this fraction of its download cap is bound by the cap."""
WAIT_SHARE = 0.5
"""... as is one during which the shaper had tickets waiting in this share of the samples."""
CPU_BUSY = 0.85
"""Cores of CPU (plus run-queue wait) at which the receiver counts as CPU-bound."""
BACKLOG_BYTES = 64 * 1024
"""Bytes in our TCP receive queues that count as a backlog (we read slower than peers send)."""
BACKLOG_SHARE = 0.5
"""Share of samples with a backlog at which the local pipeline (the disk) is the bound."""
BUSY_SHARE = 0.5
"""A peer with requests outstanding in this share of the samples is working for us."""
SLOW_RATIO = 4.0
"""A peer this many times slower than the fastest working peer is a slow peer."""
CONFIRM = 2
"""Ticks a bound must be the verdict in a transfer before the tuner acts on it."""
DEFAULT_WINDOW = 16
"""``node.transfer.fetch``'s initial window; a caller passing it lets the tuner choose."""


# -- samples and verdicts -------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerSample:
    """One peer of one transfer at one instant (from the fetch's observer hooks)."""

    address: str
    bytes: int  #: verified bytes it delivered to this transfer so far
    outstanding: int  #: chunks requested from it, not yet delivered
    window: int  #: its request window, in chunks
    busy: float = 0.0  #: seconds it had requests outstanding so far (0: not known)


@dataclass(frozen=True)
class Sample:
    """One transfer and this process at one instant. Cumulative counters, so that a verdict
    reads rates between any two samples."""

    t: float  #: monotonic seconds
    done_bytes: int  #: verified bytes of the transfer so far
    peers: tuple[PeerSample, ...] = ()
    cpu: float = 0.0  #: process CPU seconds (user + system, all threads)
    runq: float = 0.0  #: seconds this process's threads waited for a CPU (0: not known)
    rx_backlog: int | None = None  #: bytes in our TCP receive queues (None: not known)
    lane_waiting: int = 0  #: shaper download tickets waiting now
    cap: float | None = None  #: download cap that applies to the transfer (bytes/s)
    chunk_size: int = 0


@dataclass(frozen=True)
class Verdict:
    """What bounds a transfer now: ``bound`` (see the module docstring), the measured
    ``evidence`` and a ``suggestion`` for the operator."""

    bound: str
    summary: str
    suggestion: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _mib(rate: float) -> str:
    return f"{rate / (1 << 20):.1f} MiB/s"


def _share(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def _rate_busy(first: PeerSample, last: PeerSample, dt: float, share: float) -> int:
    """Bytes/s a peer delivered while it had requests outstanding, from ``first`` to ``last``."""
    delivered = max(0, last.bytes - first.bytes)
    busy = last.busy - first.busy
    if dt <= 0:
        return 0
    if busy > 0.05 * dt:
        return round(delivered / busy)
    return round(delivered / (dt * share)) if share else 0


def analyse(samples: Sequence[Sample], history: Sample | None = None) -> Verdict:
    """The verdict on ``samples`` of one transfer, oldest first (module docstring).

    ``history`` (an older sample, e.g. the transfer's first) gives each peer's rate while busy
    over a longer run: a fast peer left idle now (every chunk is held by slower ones) is still
    the yardstick a slow peer is measured against."""
    if len(samples) < 2 or samples[-1].t - samples[0].t < MIN_SPAN:
        return Verdict("none", "warming up: not enough samples yet")
    first, last = samples[0], samples[-1]
    dt = last.t - first.t
    rate = max(0, last.done_bytes - first.done_bytes) / dt
    cores = max(0.0, last.cpu - first.cpu) / dt
    busy = cores + max(0.0, last.runq - first.runq) / dt
    backlog = _share([s.rx_backlog >= BACKLOG_BYTES for s in samples if s.rx_backlog is not None])
    waits = _share([s.lane_waiting > 0 for s in samples]) or 0.0
    peers: dict[str, dict[str, Any]] = {}
    for p in last.peers:
        seen = [q for s in samples for q in s.peers if q.address == p.address]
        share = _share([q.outstanding > 0 for q in seen]) or 0.0
        delivered = max(0, p.bytes - seen[0].bytes)
        old = [q for q in history.peers if q.address == p.address] if history else []
        peers[p.address] = {
            "rate": round(delivered / dt),
            "rate_busy": _rate_busy(seen[0], p, dt, share),
            "rate_busy_run": _rate_busy(old[0], p, p.busy - old[0].busy, 1.0) if old else None,
            "busy": round(share, 2),
            "outstanding": p.outstanding,
            "window": p.window,
        }
    evidence: dict[str, Any] = {
        "rate": round(rate),
        "cpu_cores": round(cores, 2),
        "cpu_busy": round(busy, 2),
        "rx_backlog_share": None if backlog is None else round(backlog, 2),
        "lane_wait_share": round(waits, 2),
        "cap": last.cap,
        "span": round(dt, 2),
        "peers": peers,
    }
    if rate == 0 and not any(p["busy"] for p in peers.values()):
        return Verdict("none", "idle: nothing received, nothing requested", evidence=evidence)
    cap = last.cap
    if cap and (rate >= CAP_NEAR * cap or waits >= WAIT_SHARE):
        return Verdict(
            "rate_cap",
            f"download cap: {_mib(rate)} of {_mib(cap)}, shaper waits in {waits:.0%} of samples",
            "raise the cap (`bcai limits --download`, or the transfer's own limit)",
            evidence,
        )
    if busy >= CPU_BUSY:
        return Verdict(
            "cpu",
            f"receiver CPU: {busy:.2f} cores busy (decrypt + verify hash) at {_mib(rate)}",
            "more windows or workers would not help: fewer concurrent transfers or a faster CPU",
            evidence,
        )
    if backlog is not None and backlog >= BACKLOG_SHARE:
        return Verdict(
            "disk",
            f"store writes: data waits in our receive queues in {backlog:.0%} of samples "
            f"with the CPU at {busy:.2f} cores",
            "more put_workers (writes overlap), or a faster disk for the store",
            evidence,
        )
    working = {a: p for a, p in peers.items() if p["busy"] >= BUSY_SHARE}
    if not working:
        return Verdict("none", "waiting: no peer has had requests outstanding", evidence=evidence)
    slowest = min(working, key=lambda a: working[a]["rate_busy"])
    slow_rate = working[slowest]["rate_busy"]

    def best(a: str) -> int:
        p = peers[a]
        return max(p["rate_busy"] if a in working else 0, p["rate_busy_run"] or 0)

    fastest = max((a for a in peers if a != slowest), key=best, default=slowest)
    fast_rate = best(fastest)
    if slow_rate * SLOW_RATIO <= fast_rate and fastest != slowest:
        return Verdict(
            f"peer:{slowest}",
            f"slow peer: {slowest} delivers {_mib(slow_rate)}, {fastest} {_mib(fast_rate)}",
            "smaller windows for the slow peer (the tuner lowers initial_window next time)",
            evidence,
        )
    if len(working) == 1:
        return Verdict(
            f"peer:{slowest}",
            f"one peer: {slowest} delivers {_mib(slow_rate)} with our side idle",
            "add peers that hold the content",
            evidence,
        )
    return Verdict(
        "network",
        f"{len(working)} peers alike at {_mib(rate)} in all, our side idle",
        "a deeper pipeline (larger windows) if the path is long; more peers",
        evidence,
    )


# -- the tuner -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Knobs:
    """What the next fetch is given (``node.transfer.fetch`` parameters)."""

    initial_window: int = DEFAULT_WINDOW
    put_workers: int = DEFAULT_PUT_WORKERS
    request_batch: int = 4


@dataclass(frozen=True)
class Bounds:
    """``[tuning]``: whether the tuner changes anything, and the range of each knob."""

    enabled: bool = True
    min_window: int = 2
    max_window: int = 64
    min_put_workers: int = 1
    max_put_workers: int = 12
    min_request_batch: int = 1
    max_request_batch: int = 16
    horizon: float = 1.0

    @classmethod
    def from_config(cls, cfg: Any) -> Bounds:
        if cfg is None:
            return cls()
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{n: getattr(cfg, n) for n in names if hasattr(cfg, n)})


@dataclass(frozen=True)
class Decision:
    """One outcome of a transfer's verdicts: a knob changed (``old`` -> ``new``) or held."""

    at: float  #: wall-clock time
    transfer: str
    bound: str
    knob: str  #: a :class:`Knobs` field, or ``"none"`` for a hold
    old: int | None
    new: int | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


class Tuner:
    """The node's auto-tuner: the knobs for the next fetch, learned from the verdicts of the
    finished ones (module docstring). Sans-IO apart from the log; ``clock`` is wall time."""

    def __init__(
        self,
        bounds: Bounds | None = None,
        *,
        defaults: Knobs | None = None,
        keep: int = 50,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bounds = bounds or Bounds()
        b = self.bounds
        d = defaults or Knobs()
        self.defaults = Knobs(
            _clamp(d.initial_window, b.min_window, b.max_window),
            _clamp(d.put_workers, b.min_put_workers, b.max_put_workers),
            _clamp(d.request_batch, b.min_request_batch, b.max_request_batch),
        )
        self.knobs = self.defaults
        self.decisions: deque[Decision] = deque(maxlen=keep)
        self._clock = clock

    @classmethod
    def from_config(cls, config: Any) -> Tuner:
        return cls(Bounds.from_config(getattr(config, "tuning", None)))

    @property
    def enabled(self) -> bool:
        return self.bounds.enabled

    def window_for(self, requested: int) -> int:
        """The initial window for a fetch whose caller asked for ``requested``: the tuner's
        when the caller left the default (``DEFAULT_WINDOW``) and tuning is on."""
        if self.enabled and requested == DEFAULT_WINDOW:
            return self.knobs.initial_window
        return requested

    def fetch_kwargs(self, accepts: Callable[[str], bool]) -> dict[str, int]:
        """``put_workers`` and ``request_batch`` for the next fetch (those it ``accepts``)."""
        if not self.enabled:
            return {}
        k = self.knobs
        return {
            n: v
            for n, v in (("put_workers", k.put_workers), ("request_batch", k.request_batch))
            if accepts(n)
        }

    def finish(self, transfer: str, verdicts: Sequence[Verdict]) -> list[Decision]:
        """A transfer ended; ``verdicts`` are its tick verdicts. Returns (and logs, keeps) the
        decisions: the knob changes for the next fetch, or a hold."""
        # Every "peer:" verdict is one kind: two slow peers alike are named by turns, and
        # counted apart they lost to a minority of "network" ticks (their window was doubled)
        counts = Counter(_kind(v.bound) for v in verdicts if v.bound != "none")
        if not counts:
            return []
        kind, ticks = counts.most_common(1)[0]
        latest = next(v for v in reversed(verdicts) if _kind(v.bound) == kind)
        bound = latest.bound  # a peer kind: the peer named last
        out: list[Decision] = []
        b, k = self.bounds, self.knobs

        def change(knob: str, new: int, reason: str) -> None:
            old = getattr(self.knobs, knob)
            if new != old:
                out.append(Decision(self._clock(), transfer, bound, knob, old, new, reason))
                self.knobs = replace(self.knobs, **{knob: new})

        if ticks < CONFIRM:
            reason = f"{bound} in {ticks} tick(s) only: not confirmed (needs {CONFIRM})"
        elif not self.enabled:
            reason = "tuning disabled ([tuning] enabled = false)"
        elif bound.startswith("peer:") and len(_working(latest)) > 1:
            slow = latest.evidence["peers"][bound[5:]]
            chunk = max(1, int(latest.evidence.get("chunk_size") or 1 << 20))
            want = math.ceil(slow["rate_busy"] * b.horizon / chunk)
            change(
                "initial_window",
                _clamp(min(want, k.initial_window), b.min_window, b.max_window),
                f"slow peer {bound[5:]} at {_mib(slow['rate_busy'])}: it may hold "
                f"{b.horizon:g} s of its own work, not {k.initial_window} chunks",
            )
            reason = "initial window already at the slow peer's share"
        elif bound == "disk":
            change(
                "put_workers",
                _clamp(k.put_workers * 2, b.min_put_workers, b.max_put_workers),
                "store writes bound the transfer: overlap more of them",
            )
            reason = "put_workers already at [tuning] max_put_workers"
        elif bound == "network":
            change(
                "initial_window",
                _clamp(k.initial_window * 2, b.min_window, b.max_window),
                "peers alike and window-bound: a deeper pipeline",
            )
            reason = "initial window already at [tuning] max_window"
        else:
            reason = {
                "cpu": "CPU-bound: more depth or workers would add work, not throughput",
                "rate_cap": "the download cap bounds it: the operator's setting",
            }.get(bound, "one peer alone: nothing to shift its work to")
        relax = (
            self.enabled
            and not (bound.startswith("peer:") and len(_working(latest)) > 1)
            and bound != "network"
            and k.initial_window < self.defaults.initial_window
        )
        if relax and ticks >= CONFIRM:
            change(
                "initial_window",
                min(self.defaults.initial_window, k.initial_window * 2),
                "no slow peer in this transfer: back towards the default",
            )
        if not out:
            out.append(Decision(self._clock(), transfer, bound, "none", None, None, reason))
        for d in out:
            log.info(
                "tuning decision",
                transfer=d.transfer,
                bound=d.bound,
                knob=d.knob,
                old=d.old,
                new=d.new,
                reason=d.reason,
            )
            self.decisions.append(d)
        return out

    def status(self) -> dict[str, Any]:
        """``status()["tuning"]``: bounds, the knobs the next fetch gets, recent decisions."""
        return {
            "enabled": self.enabled,
            "bounds": asdict(self.bounds),
            "defaults": asdict(self.defaults),
            "next": asdict(self.knobs),
            "decisions": [d.to_json() for d in self.decisions],
        }


def _kind(bound: str) -> str:
    """What a verdict is counted as in :meth:`Tuner.finish`: ``peer:`` for any peer."""
    return "peer:" if bound.startswith("peer:") else bound


def _working(v: Verdict) -> list[str]:
    peers = v.evidence.get("peers", {})
    return [a for a, p in peers.items() if p.get("busy", 0) >= BUSY_SHARE]


# -- measuring this process ------------------------------------------------------------------------


def process_cpu() -> float:
    """CPU seconds (user + system) of this process, all threads."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def process_runq() -> float:
    """Seconds this process's threads have waited on a run queue (Linux; 0.0 elsewhere)."""
    total = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 0.0
    for tid in tasks:
        with (
            contextlib.suppress(OSError, ValueError, IndexError),
            open(f"/proc/self/task/{tid}/schedstat") as f,
        ):
            total += int(f.read().split()[1])
    return total / 1e9


def rx_backlog() -> int | None:
    """Bytes waiting in the receive queues of this process's connected TCP sockets (Linux:
    ``SIOCINQ`` on each socket fd in ``/proc/self/fd``; None where that is not listable).

    Per fd of this process, not per line of ``/proc/net/tcp``: that table lists every socket
    of the network namespace (thousands in TIME_WAIT on a busy host; reading it took ~30 ms,
    on the event loop, at the start and end of every fetch).
    """
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return None
    total = 0
    buf = bytearray(4)
    for name in fds:
        with contextlib.suppress(OSError, ValueError):
            fd = int(name)
            # a probe object on the fd (detached below, never closed): ENOTSOCK for files
            probe = socket.socket(fileno=fd)
            try:
                if probe.type != socket.SOCK_STREAM or probe.family not in _INET:
                    continue
                fcntl.ioctl(fd, termios.FIONREAD, buf)  # listening: EINVAL, skipped
                total += int.from_bytes(buf, sys.byteorder)
            finally:
                probe.detach()
    return total


_INET = (socket.AF_INET, socket.AF_INET6)


# -- one transfer, watched -------------------------------------------------------------------------


class _Tee:
    """A ``TransferObserver`` that records one transfer's per-peer numbers and forwards every
    hook to ``inner`` (the node's metrics)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        #: address -> [bytes, outstanding, window, busy seconds, since (monotonic)]
        self.peers: dict[str, list[Any]] = {}
        self.done_bytes = 0
        self.chunk_size = 0

    def _peer(self, peer: str) -> list[Any]:
        p = self.peers.get(peer)
        if p is None:
            p = self.peers[peer] = [0, 0, 0, 0.0, time.monotonic()]
        return p

    @staticmethod
    def busy(p: list[Any], now: float) -> float:
        """Busy seconds of peer row ``p`` up to ``now`` (time with requests outstanding)."""
        return float(p[3] + (now - p[4] if p[1] > 0 else 0.0))

    def chunk_received(
        self, peer: str, nbytes: int, seconds: float, wire_bytes: int | None = None
    ) -> None:
        self._peer(peer)[0] += nbytes
        self.done_bytes += nbytes
        self.chunk_size = max(self.chunk_size, nbytes)
        self.inner.chunk_received(peer, nbytes, seconds, wire_bytes)

    def chunk_rejected(self, peer: str, reason: str) -> None:
        self.inner.chunk_rejected(peer, reason)

    def requests_outstanding(self, peer: str, count: int, window: int) -> None:
        p = self._peer(peer)
        now = time.monotonic()
        p[3], p[4] = self.busy(p, now), now
        p[1], p[2] = count, window
        self.inner.requests_outstanding(peer, count, window)

    def chunk_served(
        self, peer: str, nbytes: int, seconds: float, wire_bytes: int | None = None
    ) -> None:
        self.inner.chunk_served(peer, nbytes, seconds, wire_bytes)

    def connection_opened(self, peer: str, inbound: bool) -> None:
        self.inner.connection_opened(peer, inbound)

    def connection_closed(self, peer: str, inbound: bool) -> None:
        self.inner.connection_closed(peer, inbound)


class Watch:
    """Samples one running transfer every ``interval`` seconds and keeps its verdicts.

    ``observer(inner)`` is the observer to give the fetch; ``verdict`` the latest verdict;
    ``on_verdict`` is called with each (the node puts it into the transfer's status)."""

    def __init__(
        self,
        *,
        shaper: Any = None,
        lane: Any = None,
        interval: float = TICK,
        on_verdict: Callable[[Verdict], None] | None = None,
    ) -> None:
        self.shaper = shaper
        self.lane = lane
        self.interval = interval
        self.on_verdict = on_verdict
        self.tee: _Tee | None = None
        self.samples: deque[Sample] = deque(maxlen=int(SPAN / interval) + 1)
        self.first: Sample | None = None
        #: each peer's first sample: the history a verdict measures a peer's run rate from
        #: (the transfer's first sample is taken before any peer is connected)
        self.first_seen: dict[str, PeerSample] = {}
        self.verdicts: list[Verdict] = []
        self.verdict: Verdict | None = None

    def observer(self, inner: Any) -> Any:
        from node.transfer import NULL_OBSERVER

        self.tee = _Tee(inner if inner is not None else NULL_OBSERVER)
        return self.tee

    def sample(self, *, backlog: bool = True) -> Sample:
        tee = self.tee
        waiting, cap = 0, None
        if self.shaper is not None:
            with contextlib.suppress(Exception):
                waiting = int(self.shaper.stats()["download"]["waiting"])
                cap = self.shaper.limits().get("download")
        lane_rate = getattr(self.lane, "rate", None)
        if lane_rate:
            cap = min(cap, lane_rate) if cap else lane_rate
        now = time.monotonic()
        peers = tuple(
            PeerSample(a, p[0], p[1], p[2], _Tee.busy(p, now))
            for a, p in (tee.peers.items() if tee else ())
        )
        return Sample(
            t=now,
            done_bytes=tee.done_bytes if tee else 0,
            peers=peers,
            cpu=process_cpu(),
            runq=process_runq(),
            rx_backlog=rx_backlog() if backlog else None,
            lane_waiting=waiting,
            cap=float(cap) if cap else None,
            chunk_size=tee.chunk_size if tee else 0,
        )

    def tick(self, *, backlog: bool = True) -> Verdict:
        s = self.sample(backlog=backlog)
        if self.first is None:
            self.first = s
        for p in s.peers:
            self.first_seen.setdefault(p.address, p)
        self.samples.append(s)
        history = replace(self.first, peers=tuple(self.first_seen.values()))
        verdict = analyse(list(self.samples), history)
        if verdict.evidence:
            verdict.evidence["chunk_size"] = s.chunk_size
        self.verdict = verdict
        if verdict.bound != "none":
            self.verdicts.append(verdict)
        if self.on_verdict is not None:
            self.on_verdict(verdict)
        return verdict

    def overall(self) -> Verdict:
        """The verdict over the whole transfer (first sample to now)."""
        s = self.sample()
        v = analyse([self.first, s] if self.first is not None else [s])
        if v.evidence:
            v.evidence["chunk_size"] = s.chunk_size
        return v

    async def run(self) -> None:
        # the first sample without rx_backlog (~0.3 ms): nothing is queued before the fetch
        # starts, and a small fetch is over before the next sample
        self.tick(backlog=False)
        while True:
            await trio.sleep(self.interval)
            self.tick()


@contextlib.asynccontextmanager
async def watching(
    tuner: Tuner | None,
    transfer: str,
    *,
    shaper: Any = None,
    lane: Any = None,
    on_verdict: Callable[[Verdict], None] | None = None,
    interval: float = TICK,
) -> AsyncIterator[Watch]:
    """Watch one transfer while the body runs (give the fetch ``watch.observer(metrics)``);
    at the end its verdicts go to ``tuner.finish`` (also when the fetch failed)."""
    watch = Watch(shaper=shaper, lane=lane, interval=interval, on_verdict=on_verdict)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch.run)
            try:
                yield watch
            finally:
                nursery.cancel_scope.cancel()
    finally:
        first = watch.first
        # shorter than MIN_SPAN: the verdict would be "none" (analyse); skip its sample
        if (
            watch.tee is not None
            and watch.tee.done_bytes
            and first is not None
            and time.monotonic() - first.t >= MIN_SPAN
        ):
            final = watch.overall()
            if not watch.verdicts and final.bound != "none":
                watch.verdict = final
                if on_verdict is not None:
                    on_verdict(final)
        if tuner is not None:
            tuner.finish(transfer, watch.verdicts)


__all__ = [
    "Bounds",
    "Decision",
    "Knobs",
    "PeerSample",
    "Sample",
    "Tuner",
    "Verdict",
    "Watch",
    "analyse",
    "watching",
]
