"""Token buckets: a rate with a burst allowance, one per connection or per key."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """Allows `rate` events per second on average and `burst` at once."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = max(1.0, float(burst))
        self._tokens = self.burst
        self._last = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return True
        self._tokens = tokens
        return False

    def full(self, now: float) -> bool:
        return self._tokens + (now - self._last) * self.rate >= self.burst


class KeyedBuckets:
    """One bucket per key (an IP, a user), with idle full buckets forgotten.

    At most `max_keys` buckets are kept: when full, buckets that have refilled
    are dropped; if none have, the oldest half is dropped. Memory stays bounded
    whatever the number of distinct keys an attacker uses.
    """

    def __init__(
        self,
        rate: float,
        burst: float,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, key: str) -> bool:
        if self.rate <= 0:
            return True
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._shrink(now)
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
        return bucket.take(now)

    def __len__(self) -> int:
        return len(self._buckets)

    def _shrink(self, now: float) -> None:
        full = [key for key, bucket in self._buckets.items() if bucket.full(now)]
        if len(full) < self._max_keys // 10:
            full = list(self._buckets)[: len(self._buckets) // 2]
        for key in full:
            del self._buckets[key]
