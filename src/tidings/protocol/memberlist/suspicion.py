"""Lifeguard's suspicion timer: the more members independently confirm a
suspicion, the sooner it turns into a death.

It starts at `max` (or `min` when too few members exist to confirm, k < 1) and,
after n of the k expected confirmations, lasts
`max - log(n + 1) / log(k + 1) * (max - min)`, never less than `min`.
"""

from __future__ import annotations

import math


class Suspicion:
    __slots__ = ("confirmations", "deadline", "k", "maximum", "minimum", "n", "start")

    def __init__(self, source: str, k: int, minimum: float, maximum: float, now: float) -> None:
        self.k = k
        self.n = 0
        self.minimum = minimum
        self.maximum = maximum
        self.start = now
        self.confirmations = {source}
        self.deadline = now + (maximum if k >= 1 else minimum)

    def confirm(self, source: str) -> bool:
        """Count an independent confirmation; False if it adds nothing."""
        if self.n >= self.k or source in self.confirmations:
            return False
        self.confirmations.add(source)
        self.n += 1
        self.deadline = self.start + remaining_timeout(self.n, self.k, self.minimum, self.maximum)
        return True


def remaining_timeout(n: int, k: int, minimum: float, maximum: float) -> float:
    """The suspicion length after n confirmations (milliseconds floor, as memberlist)."""
    fraction = math.log(n + 1.0) / math.log(k + 1.0)
    raw = maximum - fraction * (maximum - minimum)
    return max(math.floor(1000.0 * raw) / 1000.0, minimum)
