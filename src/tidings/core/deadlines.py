"""Token expiry without a timer per connection.

Tokens expire at whole seconds (JWT `exp`), so the items due at the same
second share one loop timer: connections that arrive together with tokens of
the same lifetime (the usual case under load) cost a set entry each instead
of a `TimerHandle` (about 500 bytes with its libuv timer). An item alone in
its second is kept without a set.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)
log = logging.getLogger(__name__)

#: Longest a timer is set for: far-future expiries (a token's `exp` in the year
#: 3000) would overflow the loop's timers; the item is simply looked at early,
#: and its owner adds it again.
MAX_DELAY = 86400.0


class Deadlines(Generic[T]):
    """Calls `fire(item)` once the wall clock reaches the second the item was added for."""

    __slots__ = ("_due", "_fire", "_timers")

    def __init__(self, fire: Callable[[T], None]) -> None:
        self._fire = fire
        # second -> the item due then, or a set of them when several are
        self._due: dict[int, T | set[T]] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}

    def __len__(self) -> int:
        return sum(len(v) if isinstance(v, set) else 1 for v in self._due.values())

    def add(self, item: T, at: int) -> None:
        due = self._due.get(at)
        if due is None:
            self._due[at] = item
            delay = min(MAX_DELAY, max(0.0, at - time.time()))
            self._timers[at] = asyncio.get_running_loop().call_later(delay, self._expire, at)
        elif isinstance(due, set):
            due.add(item)
        elif due != item:
            self._due[at] = {due, item}

    def discard(self, item: T, at: int) -> None:
        due = self._due.get(at)
        if due is None:
            return
        if isinstance(due, set):
            due.discard(item)
            if len(due) > 1:
                return
            if due:
                self._due[at] = due.pop()
                return
        elif due != item:
            return
        del self._due[at]
        timer = self._timers.pop(at, None)
        if timer is not None:
            timer.cancel()

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._due.clear()

    def _expire(self, at: int) -> None:
        self._timers.pop(at, None)
        due = self._due.pop(at, None)
        if due is None:
            return
        for item in due if isinstance(due, set) else (due,):
            try:
                self._fire(item)
            except Exception:
                # The items due at the same second must all be looked at.
                log.exception("deadline of %r", item)
