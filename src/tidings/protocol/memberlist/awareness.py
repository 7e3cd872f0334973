"""Lifeguard's local health: a member that misses acks suspects *itself* first.

The score grows when probes fail without the nacks that would show the network
worked, or when the member has to refute a suspicion of itself, and shrinks with
each successful probe. Probe intervals and timeouts are multiplied by score + 1.
"""

from __future__ import annotations


class Awareness:
    __slots__ = ("max_multiplier", "score")

    def __init__(self, max_multiplier: int) -> None:
        self.max_multiplier = max_multiplier
        self.score = 0

    def apply(self, delta: int) -> None:
        self.score = min(max(self.score + delta, 0), self.max_multiplier - 1)

    def scale(self, timeout: float) -> float:
        return timeout * (self.score + 1)
