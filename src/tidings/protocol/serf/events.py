"""Serf gossips a user event several times and from several members: remember recent
ones so each reaches the application once (Serf keys them by Lamport time, name and
payload, and ignores events older than its 512-entry buffer)."""

from __future__ import annotations

from tidings.protocol.serf.messages import UserEvent

EVENT_BUFFER = 512


class RecentUserEvents:
    __slots__ = ("_by_ltime", "_newest", "window")

    def __init__(self, window: int = EVENT_BUFFER) -> None:
        self.window = window
        self._by_ltime: dict[int, set[tuple[str, bytes]]] = {}
        self._newest = 0

    def first_time(self, event: UserEvent) -> bool:
        """True the first time this event is seen and it is not too old to judge."""
        if event.ltime + self.window <= self._newest:
            return False
        seen = self._by_ltime.setdefault(event.ltime, set())
        key = (event.name, event.payload)
        if key in seen:
            return False
        seen.add(key)
        if event.ltime > self._newest:
            self._newest = event.ltime
            oldest = self._newest - self.window
            for ltime in [t for t in self._by_ltime if t <= oldest]:
                del self._by_ltime[ltime]
        return True
