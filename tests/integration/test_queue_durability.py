"""kill -9 under load: every answered PUB is consumed at least once after restart."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest

from tests.integration.support.queue import RawClient, body, start_queue
from tests.integration.support.queue_load import RDY, Load, drain


@pytest.mark.parametrize("fsync", ["batch", "never"])
async def test_kill_9_under_load_loses_nothing(tmp_path: Path, fsync: str) -> None:
    queue = start_queue(tmp_path, "--fsync", fsync, "--segment-bytes", "64k")
    try:
        load = Load(queue.tcp_port, "load", "work", producers=3)
        await asyncio.sleep(1.5)
        queue.kill(signal.SIGKILL)  # mid-flight: publishes and FINs on the wire
        await load.stop()
        answered, seen_before = load.answered, load.seen
        assert len(answered) > 100, "the load did not run"
        queue.start()
        seen_after = await drain(queue.tcp_port, "load", "work")
        consumed = set(seen_before) | set(seen_after)
        lost = answered - consumed
        duplicates = len(seen_before) + len(seen_after) - len(consumed)
        print(
            json.dumps(
                {"fsync": fsync, "answered": len(answered), "lost": len(lost), "dups": duplicates}
            )
        )
        assert lost == set()
        # Only messages in flight at the kill (at most RDY) may come again.
        assert duplicates <= RDY
        # FIN'd messages do not come back on a later restart.
        queue.restart(signal.SIGKILL)
        assert await drain(queue.tcp_port, "load", "work", idle=1.0) == []
    finally:
        queue.kill()


async def test_deferred_and_requeued_messages_survive_kill_9(tmp_path: Path) -> None:
    queue = start_queue(tmp_path, "--fsync", "always")
    try:
        client = await RawClient.connect(queue.tcp_port)
        client.send(b"DPUB later 4000\n" + body(b"deferred") + b"PUB later\n" + body(b"req"))
        assert await client.response() == b"OK"
        assert await client.response() == b"OK"
        client.send(b"SUB later c\nRDY 5\n")
        assert await client.response() == b"OK"
        message = await client.message()
        assert message.body == b"req"
        client.send(b"REQ " + message.message_id + b" 4000\n")
        await asyncio.sleep(0.3)
        client.close()
        queue.restart(signal.SIGKILL)
        client = await RawClient.connect(queue.tcp_port)
        client.send(b"SUB later c\nRDY 5\n")
        assert await client.response() == b"OK"
        stats = queue.channel_stats("later", "c")
        assert stats["deferred_count"] == 2
        first = await client.message()
        second = await client.message()
        got = {first.body: first.attempts, second.body: second.attempts}
        assert got == {b"deferred": 1, b"req": 2}
        client.close()
    finally:
        queue.kill()


async def test_max_attempts_moves_to_dead_letter_topic(tmp_path: Path) -> None:
    queue = start_queue(tmp_path, "--max-attempts", "2")
    try:
        client = await RawClient.connect(queue.tcp_port)
        client.send(b"PUB poison\n" + body(b"bad") + b"SUB poison c\nRDY 1\n")
        assert await client.response() == b"OK"
        assert await client.response() == b"OK"
        for attempt in (1, 2):
            message = await client.message()
            assert message.attempts == attempt
            client.send(b"REQ " + message.message_id + b" 0\n")
        dead = await RawClient.connect(queue.tcp_port)
        dead.send(b"SUB poison.dead c\nRDY 1\n")
        assert await dead.response() == b"OK"
        assert (await dead.message()).body == b"bad"
        client.close()
        dead.close()
    finally:
        queue.kill()
