"""The local part of the reputation ledger: how each peer has behaved towards this node.

Latency, throughput, bad chunks and timeouts per peer address, kept as exponentially weighted
moving averages and counters in LevelDB under ``l/``. Nothing here is paid out; it steers peer
selection (the scheduler asks :meth:`LocalLedger.score`). Time comes in as an argument.

Records are cached in memory and a peer's chunk samples are written back at most once per
``WRITE_INTERVAL`` seconds of the given time (a 1 GiB fetch of 1 MiB chunks read, decoded,
encoded and wrote the peer's JSON record 1,024 times on the event loop: ~5 % of a receiving
node's Python time); bad chunks, timeouts and slowness are written at once. :meth:`flush`
writes what is left (the node calls it at close); a crash loses at most the last interval's
samples of an advisory average.
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


WRITE_INTERVAL = 1.0  #: seconds between write-backs of one peer's chunk samples
CACHED = 4096  #: records kept in memory (clean ones dropped first when full)


class LocalLedger:
    def __init__(self, db: plyvel.DB) -> None:
        self._db = db.prefixed_db(b"l/")
        self._cache: dict[str, PeerRecord] = {}
        self._written: dict[str, float] = {}  # address -> the time of its last write
        self._dirty: set[str] = set()

    def get(self, address: str) -> PeerRecord:
        key = address.lower()
        rec = self._cache.get(key)
        if rec is not None:
            return rec
        raw = self._db.get(key.encode())
        rec = PeerRecord(key) if raw is None else PeerRecord(**json.loads(raw))
        if len(self._cache) >= CACHED:
            for old in [a for a in self._cache if a not in self._dirty][: CACHED // 4]:
                del self._cache[old]
                self._written.pop(old, None)
        self._cache[key] = rec
        return rec

    def _put(self, rec: PeerRecord) -> None:
        self._db.put(rec.address.encode(), json.dumps(asdict(rec)).encode(), sync=False)
        self._dirty.discard(rec.address)
        self._written[rec.address] = rec.last_seen

    def flush(self) -> None:
        """Write every record changed since its last write."""
        for address in list(self._dirty):
            rec = self._cache.get(address)
            if rec is not None:
                self._put(rec)
        self._dirty.clear()

    def record_chunk(self, address: str, nbytes: int, seconds: float, now: float) -> None:
        rec = self.get(address)
        bps = nbytes / seconds if seconds > 0 else float(nbytes)
        first = rec.chunks_ok == 0
        rec.throughput_bps = bps if first else (1 - ALPHA) * rec.throughput_bps + ALPHA * bps
        ms = seconds * 1000
        rec.latency_ms = ms if first else (1 - ALPHA) * rec.latency_ms + ALPHA * ms
        rec.chunks_ok += 1
        rec.last_seen = now
        if now - self._written.get(rec.address, float("-inf")) >= WRITE_INTERVAL:
            self._put(rec)
        else:
            self._dirty.add(rec.address)

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
        self.flush()
        return [PeerRecord(**json.loads(v)) for _, v in self._db.iterator()]
