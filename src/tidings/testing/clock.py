"""A clock that stands still until a test moves it."""

from __future__ import annotations


class FakeClock:
    """A callable returning a time in seconds that changes only through `advance`.

    Pass it where an implementation takes `clock: Callable[[], float]`
    (e.g. `MemoryHistoryStore(clock=...)`) to test expiry without sleeping.
    """

    __slots__ = ("now",)

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward (never backward: monotonic clocks do not)."""
        if seconds < 0:
            raise ValueError("a monotonic clock does not go backward")
        self.now += seconds
