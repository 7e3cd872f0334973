"""pynsq's Writer and Reader against `tidings queue` started as a real process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nsq
import pytest

from tests.integration.support.queue import QueueProcess, start_queue
from tests.polling import until


@pytest.fixture
def queue_flags() -> list[str]:
    return ["--fsync", "batch"]


def answer_of(
    loop: asyncio.AbstractEventLoop,
) -> tuple[asyncio.Future[Any], Callable[[Any, Any], None]]:
    """A future, and the pynsq publish callback that sets it to the server's answer."""
    done: asyncio.Future[Any] = loop.create_future()

    def callback(conn: Any, data: Any) -> None:
        if not done.done():
            done.set_result(data)

    return done, callback


async def publish(address: str, topic: str, messages: list[bytes], batch: int = 0) -> None:
    """Publish through pynsq's Writer; raise if any publish fails."""
    writer = nsq.Writer([address])
    loop = asyncio.get_running_loop()
    try:
        for _ in range(100):
            if writer.conns:
                break
            await asyncio.sleep(0.05)
        chunks = (
            [messages[i : i + batch] for i in range(0, len(messages), batch)] if batch else None
        )
        for item in chunks or messages:
            done, callback = answer_of(loop)
            if chunks:
                writer.mpub(topic, item, callback=callback)
            else:
                writer.pub(topic, item, callback=callback)
            result = await asyncio.wait_for(done, 10)
            assert result == b"OK", result
    finally:
        for conn in list(writer.conns.values()):
            conn.close()


def open_reader(
    queue: QueueProcess, topic: str, channel: str, handler: Any, max_in_flight: int, **options: Any
) -> nsq.Reader:
    """A pynsq Reader of `topic`/`channel` on `queue`, handing messages to `handler`."""
    return nsq.Reader(
        topic=topic,
        channel=channel,
        message_handler=handler,
        nsqd_tcp_addresses=[queue.tcp_address],
        max_in_flight=max_in_flight,
        **options,
    )


async def test_publish_and_consume_with_max_in_flight(queue: QueueProcess) -> None:
    messages = [b"message %d" % i for i in range(60)]
    await publish(queue.tcp_address, "orders", messages[:30])
    await publish(queue.tcp_address, "orders", messages[30:], batch=10)
    received: list[bytes] = []
    held: list[Any] = []
    peak = 0

    def handler(message: Any) -> None:
        nonlocal peak
        message.enable_async()
        received.append(message.body)
        held.append(message)
        peak = max(peak, len(held))

    reader = open_reader(queue, "orders", "billing", handler, 4)
    try:
        while len(received) < len(messages):
            await until(lambda: len(held) >= 4 or len(received) == len(messages))
            await asyncio.sleep(0.1)  # a misbehaving server would send more now
            assert len(held) <= 4
            for message in held:
                message.finish()
            held.clear()
    finally:
        reader.close()
    assert sorted(received) == sorted(messages)
    assert peak == 4
    await until(lambda: queue.channel_stats("orders", "billing")["in_flight_count"] == 0)
    stats = queue.channel_stats("orders", "billing")
    assert stats["depth"] == 0 and stats["message_count"] == 60


async def test_requeue_comes_back_with_attempts(queue: QueueProcess) -> None:
    await publish(queue.tcp_address, "jobs", [b"retry me"])
    attempts: list[int] = []

    def handler(message: Any) -> bool:
        attempts.append(message.attempts)
        if message.attempts == 1:
            message.requeue(backoff=False, delay=0)
            return False
        return True

    reader = open_reader(queue, "jobs", "workers", handler, 1)
    try:
        await until(lambda: len(attempts) >= 2)
    finally:
        reader.close()
    assert attempts[:2] == [1, 2]
    await until(lambda: queue.channel_stats("jobs", "workers")["requeue_count"] == 1)


async def test_silent_consumer_messages_go_to_another(queue: QueueProcess) -> None:
    await publish(queue.tcp_address, "tasks", [b"a", b"b", b"c"])
    silent: list[bytes] = []

    def hold(message: Any) -> None:
        message.enable_async()  # never finished: the consumer stopped answering
        silent.append(message.body)

    stuck = open_reader(queue, "tasks", "c", hold, 3, msg_timeout=1)  # msg_timeout: seconds
    await until(lambda: len(silent) == 3)
    healthy: list[tuple[bytes, int]] = []

    def work(message: Any) -> bool:
        healthy.append((message.body, message.attempts))
        return True

    other = open_reader(queue, "tasks", "c", work, 3)
    try:
        await until(lambda: len(healthy) == 3)
    finally:
        stuck.close()
        other.close()
    assert sorted(body for body, _ in healthy) == [b"a", b"b", b"c"]
    assert all(attempts >= 2 for _, attempts in healthy)  # each timed out at least once
    assert queue.channel_stats("tasks", "c")["timeout_count"] >= 3


async def test_kill_9_under_pynsq_load_loses_no_answered_message(tmp_path: Path) -> None:
    queue = start_queue(tmp_path, "--fsync", "batch", name="killed")
    loop = asyncio.get_running_loop()
    answered: set[bytes] = set()
    consumed: list[bytes] = []
    stop = False

    def handler(message: Any) -> None:
        # A slow consumer, so that a backlog is on disk when the server dies.
        message.enable_async()
        consumed.append(message.body)
        loop.call_later(0.05, message.finish)

    def quick(message: Any) -> bool:
        consumed.append(message.body)
        return True

    writer = nsq.Writer([queue.tcp_address])
    reader = open_reader(queue, "pk", "c", handler, 2)

    async def produce(tag: str) -> None:
        n = 0
        while not stop:
            message = f"{tag}-{n}".encode()
            n += 1
            done, callback = answer_of(loop)
            writer.pub("pk", message, callback=callback)
            try:
                result = await asyncio.wait_for(done, 2)
            except TimeoutError:
                continue
            if result == b"OK":
                answered.add(message)
            else:
                await asyncio.sleep(0.05)

    try:
        await until(lambda: bool(writer.conns))
        producers = [asyncio.create_task(produce(f"w{i}")) for i in range(4)]
        await asyncio.sleep(1.5)
        queue.kill()  # SIGKILL mid-load
        stop = True
        await asyncio.gather(*producers)
        reader.close()
        assert len(answered) > 50, "the load did not run"
        assert not answered <= set(consumed), "no backlog at the kill: the test proves nothing"
        queue.start()
        drained = open_reader(queue, "pk", "c", quick, 100)
        try:
            await until(lambda: bool(drained.conns))
            await until(lambda: answered <= set(consumed), within=60)
        finally:
            drained.close()
        print({"answered": len(answered), "duplicates": len(consumed) - len(set(consumed))})
    finally:
        for conn in list(writer.conns.values()):
            conn.close()
        queue.kill()
