"""Latency histograms kept as plain counters, read by the metrics collector at scrape time.

Observing is a bisect and two additions: cheap enough for every API call and
proxy request, and free of any metrics library on the node's side.
"""

from __future__ import annotations

import bisect
from collections import defaultdict

#: Upper bounds (seconds) of the buckets, as Prometheus' defaults plus finer low end.
BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class LatencyHistogram:
    """Counts of observations per bucket (not cumulative), their sum and count."""

    __slots__ = ("count", "counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound, observations at or below it) pairs, ending with +Inf."""
        out: list[tuple[str, int]] = []
        total = 0
        for bound, count in zip((*map(str, BUCKETS), "+Inf"), self.counts, strict=True):
            total += count
            out.append((bound, total))
        return out


class LatencyTable:
    """One histogram per label value (API method, proxy type, store operation)."""

    def __init__(self) -> None:
        self.by_key: defaultdict[str, LatencyHistogram] = defaultdict(LatencyHistogram)

    def observe(self, key: str, seconds: float) -> None:
        self.by_key[key].observe(seconds)
