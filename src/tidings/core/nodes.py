"""The live nodes of a cluster, as their heartbeats describe them."""

from __future__ import annotations

import time
from collections.abc import Callable

from tidings.core.control import Heartbeat

#: Most nodes remembered: a flood of forged heartbeats cannot grow memory without bound.
MAX_NODES = 10_000


class NodeTable:
    """Heartbeats of the other nodes; a node silent for `timeout` seconds is gone."""

    def __init__(
        self,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        on_gone: Callable[[str], None] | None = None,
        on_new: Callable[[str], None] | None = None,
    ) -> None:
        self.timeout = timeout
        self._clock = clock
        self._seen: dict[str, tuple[float, Heartbeat]] = {}
        #: Told the uid of a node that fell silent / of a node heard (again) after absence.
        self._on_gone = on_gone
        self._on_new = on_new

    def update(self, heartbeat: Heartbeat) -> None:
        new = heartbeat.uid not in self._seen
        if new and len(self._seen) >= MAX_NODES:
            self.expire()
            if len(self._seen) >= MAX_NODES:
                return
        self._seen[heartbeat.uid] = (self._clock(), heartbeat)
        if new and self._on_new is not None:
            self._on_new(heartbeat.uid)

    def expire(self) -> list[str]:
        """Forget nodes silent for longer than the timeout; returns their uids."""
        deadline = self._clock() - self.timeout
        gone = [uid for uid, (seen, _) in self._seen.items() if seen < deadline]
        for uid in gone:
            del self._seen[uid]
            if self._on_gone is not None:
                self._on_gone(uid)
        return gone

    def knows(self, uid: str) -> bool:
        """Whether node `uid` is live (heard within the timeout)."""
        seen = self._seen.get(uid)
        return seen is not None and seen[0] >= self._clock() - self.timeout

    def live(self) -> list[Heartbeat]:
        """The other live nodes, by name."""
        self.expire()
        return sorted((hb for _, hb in self._seen.values()), key=lambda hb: (hb.name, hb.uid))

    def __len__(self) -> int:
        return len(self._seen)
