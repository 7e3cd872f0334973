"""The node's internal events and the dispatcher that hands them out by type.

Modelled on a p2p message dispatcher: producers put events into one bounded
inbound queue without waiting; a loop hands each event to every subscriber
of its type with a non-blocking put. A full queue, inbound or a subscriber's,
drops the event and counts the drop; nothing here ever blocks the node.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tidings.core.loop_task import LoopTask

log = logging.getLogger(__name__)


class EventType(StrEnum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    PUBLISHED = "published"
    USER_ONLINE = "online"
    USER_OFFLINE = "offline"
    # Gossip membership (tidings.cluster.node_gossip): detail is the member.
    MEMBER_JOINED = "member_joined"
    MEMBER_UPDATED = "member_updated"
    MEMBER_SUSPECT = "member_suspect"
    MEMBER_DEAD = "member_dead"
    MEMBER_LEFT = "member_left"
    # A Serf user event (`serf event NAME PAYLOAD`): detail has name, payload, ltime.
    CLUSTER_USER_EVENT = "cluster_user_event"


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    client: str = ""
    user: str = ""
    channel: str = ""
    time: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)


class EventDispatcher:
    """Routes events to per-type subscriber queues; drops, never waits."""

    def __init__(self, inbound_size: int = 65_536) -> None:
        self._inbound: asyncio.Queue[Event] = asyncio.Queue(inbound_size)
        self._subscribers: dict[EventType, list[asyncio.Queue[Event]]] = {}
        self._task = LoopTask(self._loop, "events")
        #: Events dropped, by type, because a queue was full.
        self.dropped: Counter[str] = Counter()
        self.dispatched: Counter[str] = Counter()

    def subscribe(self, event_type: EventType, maxsize: int = 1024) -> asyncio.Queue[Event]:
        """A new bounded queue that receives every later event of `event_type`."""
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.add_subscriber(event_type, queue)
        return queue

    def add_subscriber(self, event_type: EventType, queue: asyncio.Queue[Event]) -> None:
        """Deliver later events of `event_type` into `queue` (which may take several types)."""
        self._subscribers.setdefault(event_type, []).append(queue)

    def unsubscribe(self, event_type: EventType, queue: asyncio.Queue[Event]) -> None:
        queues = self._subscribers.get(event_type, [])
        if queue in queues:
            queues.remove(queue)

    def wants(self, event_type: EventType) -> bool:
        """Whether anyone listens to `event_type` (lets producers skip building events)."""
        return bool(self._subscribers.get(event_type))

    def emit(self, event: Event) -> None:
        """Queue `event` for dispatch; drops it (counted) when the inbound queue is full."""
        if not self._subscribers.get(event.type):
            return
        try:
            self._inbound.put_nowait(event)
        except asyncio.QueueFull:
            self._drop(event, "inbound")

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def _loop(self) -> None:
        while True:
            event = await self._inbound.get()
            try:
                self._deliver(event)
            except Exception:
                log.exception("dispatching %s", event.type)  # the loop serves every event

    def _deliver(self, event: Event) -> None:
        for queue in self._subscribers.get(event.type, ()):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self._drop(event, "subscriber")
            else:
                self.dispatched[event.type] += 1

    def _drop(self, event: Event, where: str) -> None:
        self.dropped[event.type] += 1
        count = self.dropped[event.type]
        if count & (count - 1) == 0:  # log at 1, 2, 4, 8 ... drops, not every one
            log.warning("dropped %s event (%s queue full), %d so far", event.type, where, count)
