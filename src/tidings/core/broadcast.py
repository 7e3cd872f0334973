"""Broadcasts paced to a rate, so sending to everyone never becomes a burst.

A global broadcast reaches every user's personal channel at `rate` users per
second, in the background; the business servers that clients call back when
they get a message see a steady flow instead of a spike.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

from tidings.errors import ReplyError

log = logging.getLogger(__name__)

#: Sends the broadcast to one user.
SendTo = Callable[[str], Awaitable[object]]


class PacedBroadcasts:
    """Running paced broadcasts and their progress (shown by the `info` API)."""

    def __init__(self) -> None:
        #: task id -> {"users", "sent", "failed", "rate"}
        self.progress: dict[str, dict[str, float]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, users: list[str], send: SendTo, rate: float) -> str:
        """Call `send(user)` for each user, `rate` a second; returns the task id."""
        task_id = uuid.uuid4().hex[:12]
        progress = {"users": float(len(users)), "sent": 0.0, "failed": 0.0, "rate": rate}
        self.progress[task_id] = progress
        task = asyncio.get_running_loop().create_task(
            self._run(task_id, users, send, rate, progress), name=f"broadcast-{task_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task_id

    async def _run(
        self,
        task_id: str,
        users: list[str],
        send: SendTo,
        rate: float,
        progress: dict[str, float],
    ) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            for index, user in enumerate(users):
                # Pace against the start time so the average rate holds without drift.
                delay = started + index / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                try:
                    await send(user)
                except ReplyError as exc:
                    progress["failed"] += 1
                    log.warning("broadcast_all %s: %s: %s", task_id, user, exc.info.message)
                except Exception:
                    # One user's failure must not end the broadcast for everyone after them.
                    progress["failed"] += 1
                    log.exception("broadcast_all %s: %s", task_id, user)
                progress["sent"] = index + 1.0
        finally:
            self.progress.pop(task_id, None)

    async def join(self) -> None:
        """Wait until every running broadcast has finished."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()
