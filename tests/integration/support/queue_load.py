"""Load on a `tidings queue`: producers that count what was answered, consumers that FIN.

The kill -9 tests run it, kill the server mid-flight, and check that every
answered publication is consumed at least once afterwards (`drain`).
"""

from __future__ import annotations

import asyncio

from tests.integration.support.queue import RawClient, body, mpub_body

RDY = 50


async def producer(
    port: int, topic: str, answered: set[bytes], stop: asyncio.Event, tag: str
) -> None:
    """PUB and MPUB numbered messages until stopped or the server dies."""
    client = await RawClient.connect(port)
    n = 0
    try:
        while not stop.is_set():
            if n % 3 == 0:
                batch = [f"{tag}-{n + i}".encode() for i in range(5)]
                client.send(f"MPUB {topic}\n".encode() + mpub_body(batch))
                n += 5
            else:
                batch = [f"{tag}-{n}".encode()]
                client.send(f"PUB {topic}\n".encode() + body(batch[0]))
                n += 1
            if await client.response(5) != b"OK":
                return
            answered.update(batch)  # only what the server acknowledged counts
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return
    finally:
        client.close()


async def consumer(
    port: int, topic: str, channel: str, seen: list[bytes], stop: asyncio.Event
) -> None:
    client = await RawClient.connect(port)
    try:
        client.send(f"SUB {topic} {channel}\nRDY {RDY}\n".encode())
        assert await client.response() == b"OK"
        while not stop.is_set():
            message = await client.message(5)
            seen.append(message.body)
            client.send(b"FIN " + message.message_id + b"\n")
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return
    finally:
        client.close()


async def drain(port: int, topic: str, channel: str, idle: float = 1.5) -> list[bytes]:
    """Consume until nothing comes for `idle` seconds."""
    client = await RawClient.connect(port)
    got: list[bytes] = []
    try:
        client.send(f"SUB {topic} {channel}\nRDY {RDY}\n".encode())
        assert await client.response() == b"OK"
        while True:
            try:
                message = await client.message(idle)
            except TimeoutError:
                return got
            got.append(message.body)
            client.send(b"FIN " + message.message_id + b"\n")
    finally:
        client.close()


class Load:
    """`producers` producers (tags p0, p1, ...) and one consumer on `topic`/`channel`."""

    def __init__(self, port: int, topic: str, channel: str, producers: int) -> None:
        #: Messages the server acknowledged.
        self.answered: set[bytes] = set()
        #: Messages the consumer got before the load stopped.
        self.seen: list[bytes] = []
        self._stop = asyncio.Event()
        self._tasks = [
            asyncio.create_task(producer(port, topic, self.answered, self._stop, f"p{i}"))
            for i in range(producers)
        ]
        self._tasks.append(
            asyncio.create_task(consumer(port, topic, channel, self.seen, self._stop))
        )

    async def stop(self) -> None:
        """Stop producing and consuming (the server may be dead by now)."""
        self._stop.set()
        await asyncio.gather(*self._tasks)
