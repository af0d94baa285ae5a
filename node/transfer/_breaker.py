"""A per-peer circuit breaker (closed -> open -> half-open), time as an argument.

- CLOSED: requests flow; ``threshold`` consecutive failures open the circuit.
- OPEN: nothing is sent to the peer until ``reset_after`` seconds have passed.
- HALF_OPEN: one probe is allowed; success closes the circuit, failure re-opens it and
  doubles ``reset_after`` (up to ``max_reset_after``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    threshold: int = 5
    reset_after: float = 5.0
    max_reset_after: float = 120.0
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    _current_reset: float = field(default=0.0, repr=False)

    def allow(self, now: float) -> bool:
        """May a request go to this peer at ``now``? Moves OPEN -> HALF_OPEN when due."""
        if self.state is BreakerState.OPEN:
            if now >= self.opened_at + (self._current_reset or self.reset_after):
                self.state = BreakerState.HALF_OPEN
                return True
            return False
        return True

    def record_success(self) -> None:
        self.state = BreakerState.CLOSED
        self.failures = 0
        self._current_reset = 0.0

    def record_failure(self, now: float) -> None:
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN:
            self._current_reset = min(
                self.max_reset_after, 2 * (self._current_reset or self.reset_after)
            )
            self._open(now)
        elif self.failures >= self.threshold:
            self._open(now)

    def trip(self, now: float) -> None:
        """Open the circuit at once (for faults that need no second chance)."""
        self._open(now)

    def _open(self, now: float) -> None:
        self.state = BreakerState.OPEN
        self.opened_at = now

    def reopens_at(self) -> float | None:
        if self.state is not BreakerState.OPEN:
            return None
        return self.opened_at + (self._current_reset or self.reset_after)
