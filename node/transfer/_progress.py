"""Progress with speed and ETA, time as an argument.

Speed is an exponentially weighted moving average of the rate between samples, with a time
constant of ``tau`` seconds, so short stalls bend the estimate without zeroing it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Progress:
    """A progress sample: fired by the engine after each verified chunk (and on timers)."""

    done_bytes: int
    total_bytes: int
    done_chunks: int
    total_chunks: int
    speed: float  #: bytes per second (EWMA)
    eta: float | None  #: seconds left, ``None`` while the speed is unknown
    elapsed: float

    @property
    def fraction(self) -> float:
        return 1.0 if self.total_bytes == 0 else self.done_bytes / self.total_bytes


@dataclass
class ProgressTracker:
    total_bytes: int
    total_chunks: int
    start: float
    done_bytes: int = 0
    done_chunks: int = 0
    tau: float = 2.0
    speed: float = 0.0
    _last_time: float = field(init=False)
    _last_bytes: int = field(init=False, default=0)
    _fetched: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._last_time = self.start
        self._last_bytes = self.done_bytes

    def advance(self, nbytes: int, now: float, chunks: int = 1) -> Progress:
        self.done_bytes += nbytes
        self.done_chunks += chunks
        self._fetched += nbytes
        return self.sample(now)

    def sample(self, now: float) -> Progress:
        dt = now - self._last_time
        if dt > 0:
            inst = (self.done_bytes - self._last_bytes) / dt
            alpha = 1.0 - math.exp(-dt / self.tau)
            self.speed = inst if self.speed == 0.0 else self.speed + alpha * (inst - self.speed)
            self._last_time = now
            self._last_bytes = self.done_bytes
        left = self.total_bytes - self.done_bytes
        eta = left / self.speed if self.speed > 0 else (0.0 if left == 0 else None)
        return Progress(
            done_bytes=self.done_bytes,
            total_bytes=self.total_bytes,
            done_chunks=self.done_chunks,
            total_chunks=self.total_chunks,
            speed=self.speed,
            eta=eta,
            elapsed=now - self.start,
        )

    def average_speed(self, now: float) -> float:
        """Bytes fetched in this run over wall time (resumed bytes excluded)."""
        elapsed = now - self.start
        return self._fetched / elapsed if elapsed > 0 else 0.0
