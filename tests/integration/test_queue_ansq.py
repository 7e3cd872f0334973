"""ansq (an asyncio NSQ client) against `tidings queue`: its negotiation and commands."""

from __future__ import annotations

import asyncio

import ansq

from tests.integration.support.queue import QueueProcess


async def test_ansq_publishes_and_consumes(queue: QueueProcess) -> None:
    # ansq raises on IDENTIFY features it did not ask for: the negotiation must be exact.
    writer = await ansq.create_writer(nsqd_tcp_addresses=[queue.tcp_address])
    try:
        assert (await writer.pub("ans", "one")).is_ok
        assert (await writer.mpub("ans", "two", "three")).is_ok
        assert (await writer.dpub("ans", "deferred", 300)).is_ok
    finally:
        await writer.close()
    reader = await ansq.create_reader(
        topic="ans", channel="cc", nsqd_tcp_addresses=[queue.tcp_address]
    )
    got: list[tuple[bytes, int]] = []
    try:

        async def consume() -> None:
            async for message in reader.messages():
                got.append((message.body, message.attempts))
                if message.body == b"two" and message.attempts == 1:
                    await message.req(0)
                    continue
                await message.touch()
                await message.fin()
                if len(got) == 5:
                    return

        await asyncio.wait_for(consume(), 20)
    finally:
        await reader.close()
    assert sorted(got) == [
        (b"deferred", 1),
        (b"one", 1),
        (b"three", 1),
        (b"two", 1),
        (b"two", 2),
    ]
