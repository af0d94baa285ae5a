"""The local part of the reputation ledger: how each peer has behaved towards this node.

Latency, throughput, bad chunks and timeouts per peer address, kept as exponentially weighted
moving averages and counters in LevelDB under ``l/``. Nothing here is paid out; it steers peer
selection (the scheduler asks :meth:`LocalLedger.score`). Time comes in as an argument.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import plyvel

ALPHA = 0.2  #: EWMA weight of a new sample


@dataclass
class PeerRecord:
    address: str
    latency_ms: float = 0.0  #: EWMA of request round-trip time
    throughput_bps: float = 0.0  #: EWMA of chunk throughput
    chunks_ok: int = 0
    bad_chunks: int = 0
    timeouts: int = 0
    slow: int = 0  #: overtaken by faster peers, but answering (not a stall)
    last_seen: float = 0.0


class LocalLedger:
    def __init__(self, db: plyvel.DB) -> None:
        self._db = db.prefixed_db(b"l/")

    def get(self, address: str) -> PeerRecord:
        raw = self._db.get(address.lower().encode())
        if raw is None:
            return PeerRecord(address.lower())
        return PeerRecord(**json.loads(raw))

    def _put(self, rec: PeerRecord) -> None:
        self._db.put(rec.address.encode(), json.dumps(asdict(rec)).encode(), sync=False)

    def record_chunk(self, address: str, nbytes: int, seconds: float, now: float) -> None:
        rec = self.get(address)
        bps = nbytes / seconds if seconds > 0 else float(nbytes)
        first = rec.chunks_ok == 0
        rec.throughput_bps = bps if first else (1 - ALPHA) * rec.throughput_bps + ALPHA * bps
        ms = seconds * 1000
        rec.latency_ms = ms if first else (1 - ALPHA) * rec.latency_ms + ALPHA * ms
        rec.chunks_ok += 1
        rec.last_seen = now
        self._put(rec)

    def record_bad_chunk(self, address: str, now: float) -> None:
        rec = self.get(address)
        rec.bad_chunks += 1
        rec.last_seen = now
        self._put(rec)

    def record_timeout(self, address: str, now: float) -> None:
        rec = self.get(address)
        rec.timeouts += 1
        rec.last_seen = now
        self._put(rec)

    def record_slow(self, address: str, now: float) -> None:
        """Overtaken by faster peers while it answered: slower, not stalled (small weight)."""
        rec = self.get(address)
        rec.slow += 1
        rec.last_seen = now
        self._put(rec)

    def score(self, address: str) -> float:
        """Higher is better: throughput discounted by failures (a bad chunk weighs 10, a
        timeout 2, being slow 0.5)."""
        rec = self.get(address)
        good = rec.chunks_ok + 1
        penalty = good / (good + 10 * rec.bad_chunks + 2 * rec.timeouts + 0.5 * rec.slow)
        return (rec.throughput_bps or 1.0) * penalty

    def all(self) -> list[PeerRecord]:
        return [PeerRecord(**json.loads(v)) for _, v in self._db.iterator()]
