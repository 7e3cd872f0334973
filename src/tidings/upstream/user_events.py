"""POSTs users' online/offline events to a business back end, in batches, in order.

The sender reads from its own bounded queue on the node's event dispatcher,
so a slow or dead back end never blocks a client: when the queue is full,
new events are dropped and counted by the dispatcher. A failed POST is
retried with exponential backoff (the batch keeps its place, so the order
of events is preserved).

Body: `{"events": [{"type": "online"|"offline", "user", "client", "time"}]}`
with `time` in Unix seconds (float). Any 2xx answer acknowledges the batch.
The same sender posts other event types when told (the cluster's events, with
their `detail`: see `tidings.cluster.node_gossip`).
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import msgspec

from tidings.core.events import Event, EventDispatcher, EventType
from tidings.core.loop_task import LoopTask

log = logging.getLogger(__name__)


class UserEventSender:
    def __init__(
        self,
        events: EventDispatcher,
        url: str,
        *,
        batch_size: int = 100,
        queue_size: int = 100_000,
        timeout: float = 5.0,
        max_backoff: float = 10.0,
        linger: float = 0.05,
        types: tuple[EventType, ...] = (EventType.USER_ONLINE, EventType.USER_OFFLINE),
    ) -> None:
        self._url = url
        self._batch_size = batch_size
        self._timeout = timeout
        self._max_backoff = max_backoff
        self._linger = linger
        # One queue for all types keeps online/offline of a user in order.
        self._queue: asyncio.Queue[Event] = asyncio.Queue(queue_size)
        self._events = events
        for event_type in types:
            events.add_subscriber(event_type, self._queue)
        self._task = LoopTask(self._run, "user-events")
        self.sent = 0
        self.failures = 0

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                batch = await self._next_batch()
                try:
                    await self._deliver(session, batch)
                except Exception:
                    # One batch that cannot be sent must not end every later report.
                    log.exception("user events: dropping a batch of %d", len(batch))

    async def _next_batch(self) -> list[Event]:
        batch = [await self._queue.get()]
        if self._linger:
            await asyncio.sleep(self._linger)  # let a burst of events share one POST
        while len(batch) < self._batch_size and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _deliver(self, session: aiohttp.ClientSession, batch: list[Event]) -> None:
        body = msgspec.json.encode(
            {
                "events": [
                    {"type": str(e.type), "user": e.user, "client": e.client, "time": e.time}
                    | ({"detail": e.detail} if e.detail else {})
                    for e in batch
                ]
            }
        )
        backoff = 0.1
        while True:
            try:
                async with session.post(
                    self._url, data=body, headers={"Content-Type": "application/json"}
                ) as response:
                    if 200 <= response.status < 300:
                        self.sent += len(batch)
                        return
                    reason = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            self.failures += 1
            log.warning("user events POST failed (%s); retrying in %.1fs", reason, backoff)
            await asyncio.sleep(backoff)
            backoff = min(self._max_backoff, backoff * 2)
