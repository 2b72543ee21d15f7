"""A token bucket per key (an organisation, a sign-in address): refusals are 429 with
Retry-After, never silent drops.

Written here rather than taken from a library because the limit's
key is known only *after* reading the request, and the whole thing is a few lines of
arithmetic over a clock the tests control. State is per process: one process per
service today; several would each allow the configured rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class RateLimiter:
    """Allows ``rate_per_s`` requests a second per key, in bursts of up to ``burst``."""

    rate_per_s: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def take(self, key: str) -> float:
        """Spend one token; return 0 if allowed, else the seconds until one is free."""
        now = self.clock()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate_per_s)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / self.rate_per_s


def retry_after_header(wait_s: float) -> str:
    """Retry-After in whole seconds, never 0 for a refusal."""
    return str(max(1, math.ceil(wait_s)))
