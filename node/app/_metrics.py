"""``Metrics``: the node's Prometheus registry and the dashboard's live numbers.

``Metrics`` implements ``node.transfer``'s ``TransferObserver`` (the hooks the fetch driver and
the provider call on the data path) and offers setters the node calls for what the transfer
layer does not see (chain queue depth, queue depths, active transfers, cache hits). The
hooks' ``wire_bytes`` (a chunk's payload on the wire, a zstd frame or the chunk) feed the wire
counters beside the content ones, so the compression saving is read from a running node.
It owns a private ``CollectorRegistry`` (``self.registry``), never the global one: several nodes
may live in one process (tests, the demo), and each must expose only its own numbers.

Every hook is cheap (a lock, a few additions, a deque append) and never raises: a bad value (a
negative size, NaN seconds) is dropped and counted in ``bcai_metrics_errors_total``.

Label bounds. The only label fed by the outside world is the peer address; a flood of fresh
identities must not grow the exposition or this object without bound. So:

- at most ``max_peer_labels`` peers hold a *label slot* and get their own ``peer="0x.."`` series;
  all traffic of every other peer is counted under ``peer="other"``;
- slots are sticky: a slotted peer keeps its slot until a candidate's recent traffic (bytes,
  decaying with a 10-minute time constant) exceeds twice the weakest slot holder's plus 1 MiB;
  the evicted peer's counts then move into ``other`` and the promoted peer's series starts from
  zero. Traffic counted under ``other`` stays there, so every series only ever increases and
  PromQL ``rate()`` sees no false resets;
- candidates (peers without a slot) are remembered for ranking and the dashboard, at most
  ``max_tracked`` of them (the lowest-traffic ones are forgotten first);
- a chunk rejection reason outside :data:`REJECT_REASONS` is counted as ``"other"``; queue names
  are capped at :data:`MAX_QUEUES`; label values are truncated to 64 characters.

See docs/metrics.md for every metric and what to alert on.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from functools import wraps
from typing import Any, ParamSpec

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

DEFAULT_PEER_LABELS = 16
"""Peers with their own label (top-N by recent traffic); the rest are ``peer="other"``."""
DEFAULT_MAX_TRACKED = 256
"""Peers without a label slot remembered for ranking and the dashboard."""
OTHER = "other"
REJECT_REASONS = ("corrupt", "timeout")
"""Chunk rejection reasons with their own label value; anything else is ``"other"``."""
MAX_QUEUES = 16
"""Distinct ``queue`` label values ``set_queue_depth`` accepts; more are dropped (and counted)."""
MAX_LABEL = 64
RATE_TAU = 5.0
"""Time constant (s) of the dashboard's byte-rate EWMA."""
RATIO_TAU = 60.0
"""Time constant (s) of the recent chunk success ratio."""
SCORE_TAU = 600.0
"""Time constant (s) of the traffic score that ranks peers for label slots."""
PROMOTE_MARGIN = 1 << 20
"""Bytes of recent traffic a candidate needs beyond twice the weakest slot holder's."""
P95_WINDOW = 60.0
"""Seconds of samples behind the computed p95 gauges."""
P95_SAMPLES = 2048
"""At most this many recent samples per p95 window (the newest are kept)."""
LATENCY_ALPHA = 0.2
"""Weight of the newest sample in a peer's latency EWMA."""
CHUNK_SECONDS_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    30.0,
    60.0,
)
"""Histogram buckets for chunk times: loopback (ms) to a slow WAN near the stall timeout (20 s)."""

P = ParamSpec("P")


def _label(value: str) -> str:
    return str(value)[:MAX_LABEL]


def _count(value: float) -> float | None:
    """``value`` if it is a finite non-negative number, else None (the hook drops it)."""
    v = float(value)
    return v if math.isfinite(v) and v >= 0 else None


def _guard(method: Callable[P, None]) -> Callable[P, None]:
    """Run a hook; swallow and count any exception (hooks run on the data path)."""

    @wraps(method)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            method(*args, **kwargs)
        except Exception:
            self = args[0]
            self._errors += 1  # type: ignore[attr-defined]

    return run


class _Decaying:
    """An exponentially decaying sum: ``add(x)`` adds ``x / tau``; a steady input of ``r`` per
    second reads as ``r``. Time is an argument (no clock inside)."""

    __slots__ = ("t", "tau", "value")

    def __init__(self, tau: float) -> None:
        self.tau = tau
        self.value = 0.0
        self.t = 0.0

    def at(self, now: float) -> float:
        dt = now - self.t
        return self.value * math.exp(-dt / self.tau) if dt > 0 else self.value

    def add(self, amount: float, now: float) -> None:
        self.value = self.at(now) + amount / self.tau
        self.t = max(now, self.t)


class _Window:
    """Recent samples (at most ``P95_SAMPLES``, at most ``P95_WINDOW`` seconds old)."""

    __slots__ = ("samples",)

    def __init__(self) -> None:
        self.samples: deque[tuple[float, float]] = deque(maxlen=P95_SAMPLES)

    def add(self, value: float, now: float) -> None:
        self.samples.append((now, value))

    def quantile(self, q: float, now: float) -> float | None:
        """Nearest-rank quantile of the samples younger than ``P95_WINDOW``; None if none."""
        while self.samples and self.samples[0][0] < now - P95_WINDOW:
            self.samples.popleft()
        if not self.samples:
            return None
        values = sorted(v for _, v in self.samples)
        return values[max(0, math.ceil(q * len(values)) - 1)]


_FIELDS = ("bytes_in", "bytes_out", "ok", "bad", "served")


class _Counts:
    """Per-peer (or ``other``) counters."""

    __slots__ = (*_FIELDS, "latency")

    def __init__(self) -> None:
        self.bytes_in = 0
        self.bytes_out = 0
        self.ok = 0
        self.bad = 0
        self.served = 0
        self.latency: float | None = None

    def values(self) -> tuple[int, ...]:
        return tuple(getattr(self, f) for f in _FIELDS)

    def absorb(self, delta: tuple[int, ...]) -> None:
        for f, d in zip(_FIELDS, delta, strict=True):
            setattr(self, f, getattr(self, f) + d)

    def note_latency(self, seconds: float) -> None:
        old = self.latency
        self.latency = seconds if old is None else old + LATENCY_ALPHA * (seconds - old)

    def reliability(self) -> float | None:
        total = self.ok + self.bad
        return self.ok / total if total else None


class _Peer(_Counts):
    __slots__ = ("address", "base", "outstanding", "score", "window")

    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address
        self.score = _Decaying(SCORE_TAU)
        self.base: tuple[int, ...] | None = None
        """Counts when the label slot was given (None: no slot; traffic goes to ``other``)."""
        self.outstanding = 0
        self.window = 0

    def exposed(self) -> tuple[int, ...]:
        """What this peer's labelled series show: counts since it got its slot."""
        assert self.base is not None
        return tuple(v - b for v, b in zip(self.values(), self.base, strict=True))


class Metrics:
    """The node's metrics: TransferObserver hooks, node setters, exposition and snapshot.

    ``clock`` (monotonic seconds) is injectable for tests. ``max_peer_labels`` bounds the
    ``peer`` label values (plus ``"other"``); ``max_tracked`` bounds the peers remembered
    without a slot.
    """

    def __init__(
        self,
        *,
        max_peer_labels: int = DEFAULT_PEER_LABELS,
        max_tracked: int = DEFAULT_MAX_TRACKED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._clock = clock
        self._lock = threading.Lock()
        self._max_labels = max(1, max_peer_labels)
        self._max_tracked = max(1, max_tracked)
        self._errors = 0
        # totals
        self._bytes_in = 0
        self._bytes_out = 0
        self._wire = {"in": 0, "out": 0}  # chunk payload bytes on the wire (frames or raw)
        self._chunks_ok = 0
        self._chunks_served = 0
        self._rejected = dict.fromkeys((*REJECT_REASONS, OTHER), 0)
        self._rate_in = _Decaying(RATE_TAU)
        self._rate_out = _Decaying(RATE_TAU)
        self._recent_ok = _Decaying(RATIO_TAU)
        self._recent_bad = _Decaying(RATIO_TAU)
        self._recv_window = _Window()
        self._serve_window = _Window()
        # peers
        self._peers: dict[str, _Peer] = {}
        self._slots: set[str] = set()
        self._other = _Counts()
        self._conns: dict[str, list[int]] = {}  # peer -> [inbound, outbound]
        self._conn_now = [0, 0]
        self._conn_opened = [0, 0]
        # node-fed
        self._cache = [0, 0]  # hits, misses
        self._chain_queue = 0
        self._queues: dict[str, int] = {}
        self._transfers = {"in": 0, "out": 0}
        self._receive_seconds = Histogram(
            "bcai_chunk_receive_seconds",
            "Seconds from Request to a verified chunk (receiver side).",
            buckets=CHUNK_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self._serve_seconds = Histogram(
            "bcai_chunk_serve_seconds",
            "Seconds from a peer's Request to the chunk's last byte queued (provider side).",
            buckets=CHUNK_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_Collector(self))

    # -- TransferObserver: receiver side -------------------------------------------------------
    @_guard
    def chunk_received(
        self, peer: str, nbytes: int, seconds: float, wire_bytes: int | None = None
    ) -> None:
        n, s = _count(nbytes), _count(seconds)
        if n is None or s is None:
            self._errors += 1
            return
        size = int(n)
        wire = self._wire_of(size, wire_bytes)
        with self._lock:
            now = self._clock()
            self._bytes_in += size
            self._wire["in"] += wire
            self._chunks_ok += 1
            self._rate_in.add(size, now)
            self._recent_ok.add(1, now)
            self._recv_window.add(s, now)
            p = self._peer(peer, now)
            p.bytes_in += size
            p.ok += 1
            p.note_latency(s)
            p.score.add(size, now)
            if p.base is None:
                self._other.bytes_in += size
                self._other.ok += 1
                self._other.note_latency(s)
        self._receive_seconds.observe(s)

    @_guard
    def chunk_rejected(self, peer: str, reason: str) -> None:
        key = reason if reason in REJECT_REASONS else OTHER
        with self._lock:
            now = self._clock()
            self._rejected[key] += 1
            self._recent_bad.add(1, now)
            p = self._peer(peer, now)
            p.bad += 1
            if p.base is None:
                self._other.bad += 1

    @_guard
    def requests_outstanding(self, peer: str, count: int, window: int) -> None:
        c, w = _count(count), _count(window)
        if c is None or w is None:
            self._errors += 1
            return
        with self._lock:
            p = self._peer(peer, self._clock())
            p.outstanding, p.window = int(c), int(w)

    # -- TransferObserver: provider side -------------------------------------------------------
    @_guard
    def chunk_served(
        self, peer: str, nbytes: int, seconds: float, wire_bytes: int | None = None
    ) -> None:
        n, s = _count(nbytes), _count(seconds)
        if n is None or s is None:
            self._errors += 1
            return
        size = int(n)
        wire = self._wire_of(size, wire_bytes)
        with self._lock:
            now = self._clock()
            self._bytes_out += size
            self._wire["out"] += wire
            self._chunks_served += 1
            self._rate_out.add(size, now)
            self._serve_window.add(s, now)
            p = self._peer(peer, now)
            p.bytes_out += size
            p.served += 1
            p.score.add(size, now)
            if p.base is None:
                self._other.bytes_out += size
                self._other.served += 1
        self._serve_seconds.observe(s)

    def _wire_of(self, size: int, wire_bytes: int | None) -> int:
        """A chunk's bytes on the wire: ``wire_bytes``, or ``size`` when not given or not a
        count (then counted as an error; the chunk itself is still counted)."""
        if wire_bytes is None:
            return size
        w = _count(wire_bytes)
        if w is None:
            self._errors += 1
            return size
        return int(w)

    @_guard
    def connection_opened(self, peer: str, inbound: bool) -> None:
        i = 0 if inbound else 1
        key = _label(peer)
        with self._lock:
            self._conn_now[i] += 1
            self._conn_opened[i] += 1
            self._conns.setdefault(key, [0, 0])[i] += 1

    @_guard
    def connection_closed(self, peer: str, inbound: bool) -> None:
        i = 0 if inbound else 1
        key = _label(peer)
        with self._lock:
            counts = self._conns.get(key)
            if counts is None or counts[i] <= 0:
                self._errors += 1  # a close without an open: keep the gauges sane
                return
            counts[i] -= 1
            self._conn_now[i] -= 1
            if counts == [0, 0]:
                del self._conns[key]
            if counts[1] == 0 and (p := self._peers.get(key)) is not None:
                p.outstanding = p.window = 0  # no fetch connection left: nothing in flight

    # -- fed by the node ----------------------------------------------------------------------
    @_guard
    def cache_hit(self, n: int = 1) -> None:
        with self._lock:
            self._cache[0] += max(0, int(n))

    @_guard
    def cache_miss(self, n: int = 1) -> None:
        with self._lock:
            self._cache[1] += max(0, int(n))

    @_guard
    def set_chain_queue(self, n: int) -> None:
        """Items waiting for a chain transaction (receipt batches, challenge answers, ...)."""
        self._chain_queue = max(0, int(n))

    @_guard
    def set_queue_depth(self, queue: str, n: int) -> None:
        """Depth of a named internal queue (e.g. ``"serve"``, ``"receipts"``, ``"answers"``)."""
        key = _label(queue)
        with self._lock:
            if key not in self._queues and len(self._queues) >= MAX_QUEUES:
                self._errors += 1
                return
            self._queues[key] = max(0, int(n))

    @_guard
    def set_active_transfers(self, incoming: int, outgoing: int) -> None:
        """Transfers running now: ``incoming`` (we fetch), ``outgoing`` (we serve a fetch)."""
        self._transfers = {"in": max(0, int(incoming)), "out": max(0, int(outgoing))}

    # -- reading -------------------------------------------------------------------------------
    @property
    def errors(self) -> int:
        """Hook calls dropped for bad values or internal errors."""
        return self._errors

    def snapshot(self, *, peers: int = 50) -> dict[str, Any]:
        """A JSON-ready summary for the dashboard (rates in bytes/s, times in ms)."""
        with self._lock:
            now = self._clock()
            self._rebalance(now)
            ok, bad = self._recent_ok.at(now), self._recent_bad.at(now)
            hits, misses = self._cache
            table = sorted(self._peers.values(), key=lambda p: -p.score.at(now))
            connected_first = sorted(table, key=lambda p: p.address not in self._conns)
            idle = [_Peer(a) for a in self._conns if a not in self._peers]  # no traffic yet
            rows = [self._row(p) for p in (idle + connected_first)[: max(0, peers)]]
            rp95 = self._recv_window.quantile(0.95, now)
            sp95 = self._serve_window.quantile(0.95, now)
            return {
                "bytes_in": self._bytes_in,
                "bytes_out": self._bytes_out,
                "rate_in": self._rate_in.at(now),
                "rate_out": self._rate_out.at(now),
                "chunks_ok": self._chunks_ok,
                "chunks_served": self._chunks_served,
                "chunks_rejected": dict(self._rejected),
                "chunk_success_ratio": ok / (ok + bad) if ok + bad > 1e-9 else None,
                "receive_p95_ms": None if rp95 is None else rp95 * 1000,
                "serve_p95_ms": None if sp95 is None else sp95 * 1000,
                "cache_hit_ratio": hits / (hits + misses) if hits + misses else None,
                "wire_bytes_in": self._wire["in"],
                "wire_bytes_out": self._wire["out"],
                "compression_ratio": self._compression_ratio(),
                "requests_outstanding": sum(p.outstanding for p in self._peers.values()),
                "window_chunks": sum(p.window for p in self._peers.values()),
                "connections": {"inbound": self._conn_now[0], "outbound": self._conn_now[1]},
                "queues": dict(self._queues),
                "chain_queue": self._chain_queue,
                "transfers_active": dict(self._transfers),
                "peers_tracked": len(self._peers),
                "peers": rows,
            }

    def _compression_ratio(self) -> float:
        """Content / wire bytes of the chunks counted, both directions (1.0 before any)."""
        wire = self._wire["in"] + self._wire["out"]
        content = self._bytes_in + self._bytes_out
        return content / wire if wire else 1.0

    def _row(self, p: _Peer) -> dict[str, Any]:
        conns = self._conns.get(p.address, [0, 0])
        return {
            "address": p.address,
            "inbound": conns[0] > 0,
            "outbound": conns[1] > 0,
            "connected": conns != [0, 0],
            "labelled": p.base is not None,
            "bytes_in": p.bytes_in,
            "bytes_out": p.bytes_out,
            "chunks_ok": p.ok,
            "chunks_bad": p.bad,
            "chunks_served": p.served,
            "reliability": p.reliability(),
            "latency_ms": None if p.latency is None else p.latency * 1000,
            "outstanding": p.outstanding,
            "window": p.window,
        }

    # -- peer table (call with the lock held) --------------------------------------------------
    def _peer(self, peer: str, now: float) -> _Peer:
        key = _label(peer)
        p = self._peers.get(key)
        if p is not None:
            return p
        p = self._peers[key] = _Peer(key)
        p.score.t = now
        if len(self._slots) < self._max_labels and key != OTHER:
            p.base = p.values()
            self._slots.add(key)
        elif len(self._peers) > self._max_labels + 2 * self._max_tracked:
            self._forget(now)
        return p

    def _forget(self, now: float) -> None:
        """Drop the weakest slotless peers down to ``max_tracked`` (their traffic is already
        counted in ``other``). Amortised: runs once per ``max_tracked`` new peers."""
        slotless = [p for p in self._peers.values() if p.base is None]
        slotless.sort(key=lambda p: p.score.at(now))
        for p in slotless[: len(slotless) - self._max_tracked]:
            del self._peers[p.address]

    def _rebalance(self, now: float) -> None:
        """Give label slots to candidates whose recent traffic clearly beats a holder's."""
        candidates = [p for p in self._peers.values() if p.base is None and p.address != OTHER]
        if not candidates:
            return
        candidates.sort(key=lambda p: -p.score.at(now))
        for cand in candidates[: self._max_labels]:
            if len(self._slots) < self._max_labels:
                weakest = None
            else:
                weakest = min((self._peers[a] for a in self._slots), key=lambda p: p.score.at(now))
                if cand.score.at(now) <= 2 * weakest.score.at(now) + PROMOTE_MARGIN / SCORE_TAU:
                    break
            if weakest is not None:
                self._other.absorb(weakest.exposed())
                weakest.base = None
                self._slots.discard(weakest.address)
            cand.base = cand.values()
            self._slots.add(cand.address)

    # -- exposition ----------------------------------------------------------------------------
    def _families(self) -> list[Metric]:
        with self._lock:
            now = self._clock()
            self._rebalance(now)
            return list(self._build(now))

    def _build(self, now: float) -> Iterator[Metric]:
        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, value=value)

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, value=value)

        nan = float("nan")
        yield counter("bcai_received_bytes", "Verified chunk bytes received.", self._bytes_in)
        yield counter("bcai_sent_bytes", "Chunk bytes served to peers.", self._bytes_out)
        yield gauge(
            "bcai_receive_rate_bytes_per_second",
            f"Receive rate, bytes/s (EWMA, {RATE_TAU:g} s); prefer rate() in PromQL.",
            self._rate_in.at(now),
        )
        yield gauge(
            "bcai_send_rate_bytes_per_second",
            f"Send rate, bytes/s (EWMA, {RATE_TAU:g} s); prefer rate() in PromQL.",
            self._rate_out.at(now),
        )
        yield counter("bcai_chunks_received", "Chunks received and verified.", self._chunks_ok)
        yield counter("bcai_chunks_served", "Chunks served to peers.", self._chunks_served)
        rej = CounterMetricFamily(
            "bcai_chunks_rejected", "Chunks rejected, by reason.", labels=["reason"]
        )
        for reason, n in self._rejected.items():
            rej.add_metric([reason], n)
        yield rej
        ok, bad = self._recent_ok.at(now), self._recent_bad.at(now)
        yield gauge(
            "bcai_chunk_success_ratio",
            f"Verified / (verified + rejected) chunks, recent (EWMA, {RATIO_TAU:g} s); "
            "NaN before any chunk.",
            ok / (ok + bad) if ok + bad > 1e-9 else nan,
        )
        for name, window, what in (
            ("bcai_chunk_receive_p95_seconds", self._recv_window, "received"),
            ("bcai_chunk_serve_p95_seconds", self._serve_window, "served"),
        ):
            q = window.quantile(0.95, now)
            yield gauge(
                name,
                f"p95 seconds per {what} chunk over the last {P95_WINDOW:g} s "
                "(NaN without samples); histogram_quantile() on the histogram is the PromQL way.",
                nan if q is None else q,
            )
        hits, misses = self._cache
        yield counter("bcai_cache_hits", "Chunk reads served from the cache tier.", hits)
        yield counter("bcai_cache_misses", "Chunk reads that missed the cache tier.", misses)
        yield gauge(
            "bcai_cache_hit_ratio",
            "Cache hits / reads since start (NaN before any read).",
            hits / (hits + misses) if hits + misses else nan,
        )
        wire = CounterMetricFamily(
            "bcai_chunk_wire_bytes",
            "Chunk payload bytes on the wire (zstd frames or raw), by direction.",
            labels=["direction"],
        )
        content = CounterMetricFamily(
            "bcai_chunk_content_bytes",
            "Content bytes of the same chunks (before compression), by direction.",
            labels=["direction"],
        )
        for direction, n in (("in", self._bytes_in), ("out", self._bytes_out)):
            wire.add_metric([direction], self._wire[direction])
            content.add_metric([direction], n)
        yield wire
        yield content
        yield gauge(
            "bcai_compression_ratio",
            "Content / wire bytes of the chunks received and served (1.0: nothing saved).",
            self._compression_ratio(),
        )
        peers = list(self._peers.values())
        yield gauge(
            "bcai_requests_outstanding",
            "Chunks requested from peers and not yet answered.",
            sum(p.outstanding for p in peers),
        )
        yield gauge(
            "bcai_window_chunks",
            "Sum of the per-peer request windows (chunks allowed in flight).",
            sum(p.window for p in peers),
        )
        conns = GaugeMetricFamily(
            "bcai_connections", "Open peer connections, by direction.", labels=["direction"]
        )
        opened = CounterMetricFamily(
            "bcai_connections_opened", "Peer connections opened.", labels=["direction"]
        )
        for i, direction in enumerate(("inbound", "outbound")):
            conns.add_metric([direction], self._conn_now[i])
            opened.add_metric([direction], self._conn_opened[i])
        yield conns
        yield opened
        queues = GaugeMetricFamily(
            "bcai_queue_depth", "Items waiting in a node queue.", labels=["queue"]
        )
        for name, n in sorted(self._queues.items()):
            queues.add_metric([name], n)
        yield queues
        yield gauge(
            "bcai_chain_queue_depth",
            "Items waiting for a chain transaction (receipts, answers, ...).",
            self._chain_queue,
        )
        transfers = GaugeMetricFamily(
            "bcai_transfers_active", "Transfers running, by direction.", labels=["direction"]
        )
        for direction, n in self._transfers.items():
            transfers.add_metric([direction], n)
        yield transfers
        yield from self._peer_families(peers)
        yield gauge("bcai_peers_tracked", "Peers remembered (with or without a label).", len(peers))
        yield counter(
            "bcai_metrics_errors", "Observer hook calls dropped (bad values).", self._errors
        )

    def _peer_families(self, peers: list[_Peer]) -> Iterator[Metric]:
        lab = ["peer"]
        fams = {
            "bytes_in": CounterMetricFamily(
                "bcai_peer_received_bytes", "Verified bytes from a peer.", labels=lab
            ),
            "bytes_out": CounterMetricFamily(
                "bcai_peer_sent_bytes", "Bytes served to a peer.", labels=lab
            ),
            "ok": CounterMetricFamily(
                "bcai_peer_chunks_received", "Verified chunks from a peer.", labels=lab
            ),
            "bad": CounterMetricFamily(
                "bcai_peer_chunks_rejected", "Rejected chunks from a peer.", labels=lab
            ),
            "served": CounterMetricFamily(
                "bcai_peer_chunks_served", "Chunks served to a peer.", labels=lab
            ),
        }
        reliability = GaugeMetricFamily(
            "bcai_peer_reliability_ratio",
            "Verified / (verified + rejected) chunks from a peer since it was first seen.",
            labels=lab,
        )
        latency = GaugeMetricFamily(
            "bcai_peer_latency_seconds",
            f"Seconds per received chunk from a peer (EWMA, alpha {LATENCY_ALPHA:g}).",
            labels=lab,
        )
        outstanding = GaugeMetricFamily(
            "bcai_peer_requests_outstanding", "Chunks requested, not answered.", labels=lab
        )
        window = GaugeMetricFamily(
            "bcai_peer_window_chunks", "A peer's request window (chunks).", labels=lab
        )
        slotted = sorted((p for p in peers if p.base is not None), key=lambda p: p.address)
        for p in slotted:
            for field, value in zip(_FIELDS, p.exposed(), strict=True):
                fams[field].add_metric([p.address], value)
            if (r := p.reliability()) is not None:
                reliability.add_metric([p.address], r)
            if p.latency is not None:
                latency.add_metric([p.address], p.latency)
            outstanding.add_metric([p.address], p.outstanding)
            window.add_metric([p.address], p.window)
        o = self._other
        for field, value in zip(_FIELDS, o.values(), strict=True):
            fams[field].add_metric([OTHER], value)
        if (r := o.reliability()) is not None:
            reliability.add_metric([OTHER], r)
        if o.latency is not None:
            latency.add_metric([OTHER], o.latency)
        rest = [p for p in peers if p.base is None]
        outstanding.add_metric([OTHER], sum(p.outstanding for p in rest))
        window.add_metric([OTHER], sum(p.window for p in rest))
        yield from fams.values()
        yield from (reliability, latency, outstanding, window)


class _Collector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self._metrics._families())


__all__ = ["CHUNK_SECONDS_BUCKETS", "DEFAULT_PEER_LABELS", "OTHER", "REJECT_REASONS", "Metrics"]
