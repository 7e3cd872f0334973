"""Heartbeats, ephemeral topics and channels, state kept across restarts."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

from tests.integration.support.queue import QueueProcess, RawClient, body, start_queue
from tidings.protocol.nsq import FrameType


async def test_heartbeats_then_disconnect_after_two_missed(queue: QueueProcess) -> None:
    client = await RawClient.connect(queue.tcp_port)
    client.send(b"IDENTIFY\n" + body(json.dumps({"heartbeat_interval": 1000}).encode()))
    assert await client.response() == b"OK"
    frame = await client.frame(within=5)
    assert (frame.frame_type, frame.data) == (FrameType.RESPONSE, b"_heartbeat_")
    answered = await RawClient.connect(queue.tcp_port)
    answered.send(b"IDENTIFY\n" + body(json.dumps({"heartbeat_interval": 1000}).encode()))
    assert await answered.response() == b"OK"
    # The silent one is closed; the one answering NOP stays.
    for _ in range(4):
        frame = await answered.frame(within=5)
        assert frame.data == b"_heartbeat_"
        answered.send(b"NOP\n")
    assert await client.closed(within=5)
    answered.send(b"PUB alive\n" + body(b"x"))
    assert await answered.response() == b"OK"
    answered.close()


async def test_ephemeral_channel_and_topic_go_with_their_last_consumer(
    queue: QueueProcess,
) -> None:
    def channels() -> dict[str, list[str]]:
        return {
            t["topic_name"]: [c["channel_name"] for c in t["channels"]]
            for t in queue.stats()["topics"] or []
        }

    async def until(condition: object) -> None:
        for _ in range(50):
            if callable(condition) and condition():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"not reached: {channels()}")

    client = await RawClient.connect(queue.tcp_port)
    client.send(b"SUB news c#ephemeral\n")
    assert await client.response() == b"OK"
    assert channels() == {"news": ["c#ephemeral"]}
    client.close()
    await until(lambda: channels() == {"news": []})
    other = await RawClient.connect(queue.tcp_port)
    other.send(b"SUB temp#ephemeral c\nRDY 1\nPUB temp#ephemeral\n" + body(b"m"))
    frames = [await other.frame() for _ in range(3)]
    assert [f.frame_type for f in frames].count(FrameType.MESSAGE) == 1
    assert "temp#ephemeral" in channels()
    other.close()
    await until(lambda: "temp#ephemeral" not in channels())
    assert not any(
        "ephemeral" in name for _, dirs, files in os.walk(queue.data_path) for name in dirs + files
    )


async def test_channels_and_pauses_survive_a_restart(queue: QueueProcess) -> None:
    assert queue.http("POST", "/topic/create?topic=kept")[0] == 200
    assert queue.http("POST", "/channel/create?topic=kept&channel=a")[0] == 200
    assert queue.http("POST", "/pub?topic=kept", b"for a")[0] == 200
    assert queue.http("POST", "/channel/pause?topic=kept&channel=a")[0] == 200
    await asyncio.sleep(0.1)
    queue.restart(signal.SIGTERM)
    stats = queue.channel_stats("kept", "a")
    assert stats["paused"] and stats["depth"] == 1
    assert queue.http("POST", "/channel/unpause?topic=kept&channel=a")[0] == 200
    client = await RawClient.connect(queue.tcp_port)
    client.send(b"SUB kept a\nRDY 1\n")
    assert await client.response() == b"OK"
    assert (await client.message()).body == b"for a"
    client.close()


async def test_lookupd_option_registers_or_warns(tmp_path: Path) -> None:
    # With the lookup registration module (tidings.queue.lookup_peer) the node connects
    # to lookupd and speaks "  V1"; without it, it says so and still serves.
    greetings: list[bytes] = []

    async def lookupd(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        greetings.append(await reader.read(4))
        writer.close()

    server = await asyncio.start_server(lookupd, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    queue = start_queue(tmp_path, "--lookupd-tcp-address", f"127.0.0.1:{port}", name="lk")
    try:
        assert queue.http("POST", "/pub?topic=announced", b"x")[0] == 200
        for _ in range(50):
            if greetings or "lookup registration is not available" in queue.log():
                break
            await asyncio.sleep(0.1)
        assert greetings[:1] == [b"  V1"] or "lookup registration is not available" in queue.log()
    finally:
        queue.kill()
        server.close()
