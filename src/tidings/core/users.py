"""Which users are online on this node, since when, and their online/offline events.

A user is online while they hold at least one connection. "offline" is only
reported after `grace` seconds without any connection, so a quick reconnect
(a flaky mobile network) produces no offline/online pair at all.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from tidings.core.events import Event, EventDispatcher, EventType

#: Users whose last-seen time is remembered after they went offline.
LAST_SEEN_CAPACITY = 1_000_000


@dataclass(frozen=True, slots=True)
class UserStatus:
    user: str
    online: bool
    connections: int
    last_seen: float


class UserDirectory:
    def __init__(
        self,
        events: EventDispatcher,
        grace: float,
        connections: Callable[[str], int],
    ) -> None:
        self._events = events
        self._grace = grace
        self._connections = connections
        self._offline_timers: dict[str, asyncio.TimerHandle] = {}
        self._last_seen: OrderedDict[str, float] = OrderedDict()

    def connected(self, user: str, client_id: str) -> None:
        """`user` opened a connection (call after it is indexed)."""
        if not user:
            return  # anonymous connections are nobody's: no online/offline events
        timer = self._offline_timers.pop(user, None)
        if timer is not None:
            timer.cancel()  # back within the grace period: no events at all
            return
        if self._connections(user) == 1:
            self._emit(EventType.USER_ONLINE, user, client_id)

    def disconnected(self, user: str, client_id: str) -> None:
        """`user` closed a connection (call after it is removed from the index)."""
        if not user or self._connections(user) > 0:
            return
        now = time.time()
        self._last_seen[user] = now
        self._last_seen.move_to_end(user)
        while len(self._last_seen) > LAST_SEEN_CAPACITY:
            self._last_seen.popitem(last=False)
        loop = asyncio.get_running_loop()
        self._offline_timers[user] = loop.call_later(self._grace, self._offline, user, client_id)

    def _offline(self, user: str, client_id: str) -> None:
        self._offline_timers.pop(user, None)
        if self._connections(user) == 0:
            self._emit(EventType.USER_OFFLINE, user, client_id)

    def _emit(self, event_type: EventType, user: str, client_id: str) -> None:
        self._events.emit(Event(event_type, client_id, user, time=time.time()))

    def status(self, user: str) -> UserStatus:
        count = self._connections(user)
        last_seen = time.time() if count else self._last_seen.get(user, 0.0)
        # Online until `offline` is reported: a user within the grace period still counts.
        online = count > 0 or user in self._offline_timers
        return UserStatus(user, online, count, last_seen)

    def close(self) -> None:
        for timer in self._offline_timers.values():
            timer.cancel()
        self._offline_timers.clear()
