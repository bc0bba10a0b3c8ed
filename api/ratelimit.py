"""Per-key request rate limits: a token bucket per API key, in this process.

Each key may send `rate_limit_burst` requests at once and `rate_limit_per_s` on average;
beyond that a request gets 429 `rate_limited` with Retry-After. The buckets live in the
serving process: with N processes behind a balancer a key gets up to N times the rate
(configure accordingly, or put a shared limiter in front).
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

from sqlalchemy import Engine

from api.context import Corridor
from api.problems import ApiError

KEYS_TRACKED_MAX: Final = 100_000


class RateLimiter:
    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        keys_max: int = KEYS_TRACKED_MAX,
    ) -> None:
        assert rate_per_s >= 0 and burst >= 1
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.clock = clock
        self.keys_max = keys_max
        # key id -> (tokens, at): the bucket as of `at`.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate_per_s > 0

    def take(self, key_id: str) -> float | None:
        """Spend one token; None if allowed, else the seconds until one is available."""
        if not self.enabled:
            return None
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.pop(key_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate_per_s)
            if tokens >= 1.0:
                self._buckets[key_id] = (tokens - 1.0, now)
                wait = None
            else:
                self._buckets[key_id] = (tokens, now)
                wait = (1.0 - tokens) / self.rate_per_s
            # A full bucket forgets nothing by being dropped: the oldest go first.
            while len(self._buckets) > self.keys_max:
                self._buckets.popitem(last=False)
        return wait


# One limiter per database (a Corridor is not hashable; its engine is, and lives as long).
_limiters: weakref.WeakKeyDictionary[Engine, RateLimiter] = weakref.WeakKeyDictionary()
_limiters_lock = threading.Lock()


def limiter_for(corridor: Corridor) -> RateLimiter:
    with _limiters_lock:
        found = _limiters.get(corridor.engine)
        if found is None:
            settings = corridor.settings
            found = _limiters[corridor.engine] = RateLimiter(
                settings.rate_limit_per_s, settings.rate_limit_burst
            )
        return found


def enforce_rate_limit(corridor: Corridor, key_id: str) -> None:
    """Raise 429 `rate_limited` (with Retry-After) when this key is over its rate."""
    limiter = limiter_for(corridor)
    wait = limiter.take(key_id)
    if wait is not None:
        retry_after = max(1, math.ceil(wait))
        raise ApiError(
            "rate_limited",
            f"this API key is limited to {limiter.rate_per_s:g} requests/s "
            f"(bursts of {limiter.burst}); retry in {retry_after} s",
            429,
            retry_after_s=retry_after,
        )
