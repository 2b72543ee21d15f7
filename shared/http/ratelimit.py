"""A token bucket per key (an organisation, a sign-in address): refusals are 429 with
Retry-After, never silent drops.

Written here rather than taken from a library because the limit's
key is known only *after* reading the request, and the whole thing is a few lines of
arithmetic over a clock the tests control. State is per process: one process per
service today; several would each allow the configured rate.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.requests import HTTPConnection

# Buckets kept before the full ones are forgotten. Keyed by source address, the table
# would otherwise grow with every address that ever failed once.
_PRUNE_AT = 4096
# IPv6 clients are counted per /64: one subscriber is usually given a whole /64 (or
# more), and could otherwise take a fresh budget from each of its 2**64 addresses.
_IPV6_PREFIX = 64


@dataclass
class RateLimiter:
    """Allows ``rate_per_s`` requests a second per key, in bursts of up to ``burst``."""

    rate_per_s: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    _prune_at: int = field(default=_PRUNE_AT, init=False, repr=False)

    def _tokens(self, key: str, now: float) -> float:
        tokens, last = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - last) * self.rate_per_s)

    def take(self, key: str) -> float:
        """Spend one token; return 0 if allowed, else the seconds until one is free."""
        now = self.clock()
        self._prune(now)
        tokens = self._tokens(key, now)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / self.rate_per_s

    def wait(self, key: str) -> float:
        """Seconds until ``key`` has a token, without spending one (0: it has one now).

        For limits charged only on failure: a held key is refused before any work is
        done for it, and a request that then succeeds costs it nothing."""
        tokens = self._tokens(key, self.clock())
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate_per_s

    def __len__(self) -> int:
        return len(self._buckets)

    def _prune(self, now: float) -> None:
        """Forget buckets that have refilled: a full bucket and no bucket are the same.

        Runs when the table doubles past its last size, so its cost per request stays
        constant however many keys are live."""
        if len(self._buckets) < self._prune_at:
            return
        self._buckets = {
            key: (tokens, last)
            for key, (tokens, last) in self._buckets.items()
            if tokens + (now - last) * self.rate_per_s < self.burst
        }
        self._prune_at = max(_PRUNE_AT, 2 * len(self._buckets))


def client_key(connection: HTTPConnection) -> str:
    """The address a request is limited by: the connection's own peer, or the client a
    configured trusted proxy named (uvicorn rewrites the peer only for those, see
    ``shared.http.server``); an IPv6 address stands for its /64."""
    host = connection.client.host if connection.client else ""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # not an address (a proxy may forward "unknown"): kept as it came
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)  # an IPv4 client of a dual-stack socket
        return str(ipaddress.ip_network(f"{address}/{_IPV6_PREFIX}", strict=False))
    return str(address)


def retry_after_header(wait_s: float) -> str:
    """Retry-After in whole seconds, never 0 for a refusal."""
    return str(max(1, math.ceil(wait_s)))
