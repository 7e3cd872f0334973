"""Paced broadcasts keep their rate, report progress, and survive failing sends."""

from __future__ import annotations

import asyncio
import time

from tidings.core.broadcast import PacedBroadcasts
from tidings.errors import ReplyError
from tidings.protocol.centrifuge.codes import ErrorCode


async def test_sends_to_every_user_at_the_rate() -> None:
    broadcasts = PacedBroadcasts()
    sent: list[tuple[str, float]] = []

    async def send(user: str) -> None:
        sent.append((user, time.monotonic()))

    started = time.monotonic()
    task_id = broadcasts.start([f"u{i}" for i in range(11)], send, rate=50.0)
    assert broadcasts.progress[task_id]["users"] == 11
    await broadcasts.join()
    assert not broadcasts.progress, "a finished broadcast leaves no progress entry"
    assert [user for user, _ in sent] == [f"u{i}" for i in range(11)]
    assert sent[-1][1] - started >= 0.18, "11 users at 50/s take at least 0.2 s, not a burst"


async def test_a_failing_send_is_counted_and_the_rest_go_on() -> None:
    broadcasts = PacedBroadcasts()
    reached: list[str] = []
    seen: dict[str, float] = {}

    async def send(user: str) -> None:
        if user == "bad":
            raise ReplyError(ErrorCode.INTERNAL, "store full")
        reached.append(user)
        seen.update(broadcasts.progress[task_id])

    task_id = broadcasts.start(["a", "bad", "b"], send, rate=1000.0)
    await broadcasts.join()
    assert reached == ["a", "b"]
    assert seen["failed"] == 1.0, "the failure was counted before the next user"


async def test_cancel_stops_running_broadcasts() -> None:
    broadcasts = PacedBroadcasts()
    reached: list[str] = []

    async def send(user: str) -> None:
        reached.append(user)

    broadcasts.start([f"u{i}" for i in range(100)], send, rate=10.0)
    await asyncio.sleep(0.05)
    broadcasts.cancel()
    await asyncio.sleep(0.3)
    assert len(reached) < 5
    assert not broadcasts.progress
