"""Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And Jitter").

``delay = uniform(0, min(cap, base * 2**attempt))``. Full jitter spreads retries of many
receivers that failed together, which is what a provider that just answered BUSY wants.
Sans-IO: the random source is an argument, nothing sleeps here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Backoff policy. ``base`` and ``cap`` in seconds."""

    base: float = 0.25
    cap: float = 30.0

    def ceiling(self, attempt: int) -> float:
        """Upper bound of the delay before retry number ``attempt`` (0-based)."""
        if attempt < 0:
            raise ValueError("attempt must be >= 0")
        # 2**attempt overflows float for huge attempts; the cap is reached long before.
        return min(self.cap, self.base * (2.0 ** min(attempt, 64)))

    def delay(self, attempt: int, rng: random.Random) -> float:
        """A delay drawn uniformly from ``[0, ceiling(attempt)]``."""
        return rng.uniform(0.0, self.ceiling(attempt))
