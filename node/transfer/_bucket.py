"""Token bucket rate limiting, sans-IO: ``consume(n, now)`` says how long to wait.

The bucket may go into debt: a 1 MiB chunk under a 100 KiB/s limit is allowed at once and the
*next* caller waits until the debt is paid. That keeps large sends whole (no splitting) while
the long-run rate stays exact. ``rate`` is bytes per second; ``burst`` the bucket depth.
``set_rate`` changes both at run time (``node.transfer._shaper`` uses it for caps set through
the API). Time only moves forward: a ``now`` earlier than the last one (another clock) restarts
the count from there without refilling.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    rate: float
    burst: float
    tokens: float = field(init=False)
    updated: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.tokens = self.burst

    def _refill(self, now: float) -> None:
        if self.updated is not None and now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def set_rate(self, rate: float, now: float, burst: float | None = None) -> None:
        """Refill at the old rate up to ``now``, then use ``rate`` (and ``burst``, if given).

        A debt is scaled by ``min(1, rate / old rate)``: a higher rate pays the bytes owed
        sooner, a lower one never makes the remaining wait longer than it already was (the
        bytes behind it were sent under the old rate). Tokens are clipped to the new burst.
        """
        if rate <= 0 or (burst is not None and burst <= 0):
            raise ValueError("rate and burst must be positive")
        self._refill(now)
        if self.tokens < 0:
            self.tokens *= min(1.0, rate / self.rate)
        self.rate = rate
        if burst is not None:
            self.burst = burst
        self.tokens = min(self.tokens, self.burst)

    def level(self, now: float) -> float:
        """Tokens at ``now`` (negative: debt), without changing the bucket."""
        if self.updated is not None and now > self.updated:
            return min(self.burst, self.tokens + (now - self.updated) * self.rate)
        return self.tokens

    def time_until(self, level: float, now: float) -> float:
        """Seconds from ``now`` until the bucket holds ``level`` tokens (``level <= burst``)."""
        return max(0.0, (level - self.level(now)) / self.rate)

    def wait_at(self, now: float) -> float:
        """What :meth:`delay_for` would answer at ``now``, without changing the bucket."""
        return self.time_until(0.0, now)

    def delay_for(self, now: float) -> float:
        """Seconds until the bucket is out of debt (0 when a send may start now)."""
        self._refill(now)
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def consume(self, nbytes: int, now: float) -> float:
        """Take ``nbytes``; returns how long the caller must wait *before* sending them."""
        wait = self.delay_for(now)
        self.tokens -= nbytes
        return wait


_SUFFIXES = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def parse_rate(text: str) -> int:
    """Parse ``--limit-rate`` values as curl does: ``500K``, ``50M``, ``1G``, ``1048576``."""
    s = text.strip().upper().removesuffix("B").removesuffix("/S")
    unit = s[-1:] if s[-1:] in _SUFFIXES and s[-1:] else ""
    number = s[: -len(unit)] if unit else s
    try:
        value = float(number) * _SUFFIXES[unit]
    except ValueError:
        raise ValueError(f"bad rate {text!r}: use e.g. 500K, 50M, 1G") from None
    if value <= 0:
        raise ValueError(f"rate must be positive: {text!r}")
    return int(value)
