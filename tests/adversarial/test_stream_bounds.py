"""Reads never create history streams, and streams per node are bounded.

A client subscribing and unsubscribing ever-new channel names in a namespace
with history (asking for positions and recovery), or reading history and
presence there, used to leave an empty stream behind for each name. Now only
a publication creates a stream, and `history_max_streams` bounds how many
exist: a publish that would create one more fails with 106.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.adversarial.canary import Canary
from tests.conftest import ServerProcess
from tests.core.conftest import Conn, make_settings, settle_client
from tests.integration.support.api import api_raw
from tests.integration.support.ws import STEP, connected_ws, parse_frame
from tidings.core.node import Node
from tidings.errors import ReplyError
from tidings.store.router import StoreRouter

LOOKED_AT: dict[str, Any] = {
    "history_size": 10,
    "history_ttl": "1h",
    "presence": True,
    "allow_subscribe_for_client": True,
    "allow_history_for_client": True,
    "allow_presence_for_client": True,
    "allow_publish_for_client": True,
}

#: Commands sent per frame (the most a frame may carry).
PER_FRAME = 128


def churn_frames(prefix: str, names: int) -> list[bytes]:
    """Frames that subscribe (with recovery) to `names` new channels, read them, leave them."""
    frames: list[bytes] = []
    lines: list[bytes] = []
    command_id = 10
    for n in range(names):
        channel = f"{prefix}{n}"
        sub = {"channel": channel, "recoverable": True, "recover": True, "offset": 0}
        for request in (
            {"subscribe": sub},
            {"history": {"channel": channel, "limit": -1}},
            {"presence_stats": {"channel": channel}},
            {"unsubscribe": {"channel": channel}},
        ):
            lines.append(msgspec.json.encode({"id": command_id, **request}))
            command_id += 1
        if len(lines) >= PER_FRAME:
            frames.append(b"\n".join(lines))
            lines = []
    if lines:
        frames.append(b"\n".join(lines))
    return frames


async def churn(conn: Conn, prefix: str, names: int) -> int:
    """Run `churn_frames` through the client; the number of error replies."""
    errors = 0
    for frame in churn_frames(prefix, names):
        conn.client.handle_frame(frame)
        await settle_client(conn.client)
        replies = conn.transport.take()
        errors += sum(1 for reply in replies if "error" in reply)
        assert conn.closed_with is None, f"the churning client was closed {conn.closed_with}"
    return errors


def unlimited(data_dir: Path, **overrides: Any) -> Node:
    return Node(
        make_settings(
            client_command_rate=0,
            client_history_rate=0,
            namespaces={"room": LOOKED_AT, "vault": {**LOOKED_AT, "durable": True}},
            data_dir=str(data_dir),
            **overrides,
        )
    )


async def test_100k_new_names_subscribed_and_read_leave_no_stream(tmp_path: Path) -> None:
    node = unlimited(tmp_path)
    try:
        conn = Conn(node)
        await conn.connect("churner")
        await node.publish("room:kept", b'{"n":1}')
        before = await node.history.num_streams()
        assert before == 1
        # 100k subscribe/unsubscribe pairs of new names, each with a history and a presence read.
        assert await churn(conn, "room:n", 100_000) == 0
        assert await node.history.num_streams() == before, "reads left streams behind"
        assert node.hub.num_channels == 0
        # A publication still creates its stream, and recovery works in it.
        await node.publish("room:n1", b'{"n":2}')
        assert await node.history.num_streams() == before + 1
    finally:
        await node.stop()


async def test_durable_channels_looked_at_leave_no_row_and_no_cache(tmp_path: Path) -> None:
    node = unlimited(tmp_path)
    try:
        conn = Conn(node)
        await conn.connect("churner")
        await node.publish("vault:kept", b'{"n":1}')
        assert isinstance(node.history, StoreRouter) and node.history.durable_store is not None
        durable = node.history.durable_store
        before = await durable.num_streams()
        assert await churn(conn, "vault:n", 5_000) == 0
        assert await durable.num_streams() == before
        worker = getattr(durable, "_worker", None)
        assert worker is not None and len(worker.streams) <= before, "looks were cached"
    finally:
        await node.stop()


async def test_history_max_streams_refuses_a_new_stream_with_106(tmp_path: Path) -> None:
    node = unlimited(tmp_path, history_max_streams=3)
    try:
        for n in range(3):
            await node.publish(f"room:c{n}", b'{"n":1}')
        with pytest.raises(ReplyError) as refused:
            await node.publish("room:c3", b'{"n":1}')
        assert refused.value.code == 106
        assert "history_max_streams (3)" in refused.value.info.message
        assert node.counters["refused_stream_limit"] == 1
        # Existing streams take publications; a client publishing a new one gets 106.
        await node.publish("room:c0", b'{"n":2}')
        conn = Conn(node)
        await conn.connect("writer")
        reply = await conn.call({"id": 2, "publish": {"channel": "room:new", "data": {}}})
        assert reply["error"]["code"] == 106
        assert (await node.history.read("room:c0"))[1].offset == 2
    finally:
        await node.stop()


# --- through a real server: the refusal on the API, and the blast radius ------------


def _server_settings(**overrides: Any) -> dict[str, Any]:
    return {
        "client_ping_interval": 25,
        "client_command_rate": 0,  # no limit: the churn as fast as the server goes
        "client_history_rate": 0,
        "channel": {"allow_subscribe_for_client": True},
        "namespaces": {"room": LOOKED_AT},
        **overrides,
    }


async def test_api_publish_beyond_history_max_streams_answers_106(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(_server_settings(history_max_streams=2))
    for n in range(2):
        assert "error" not in await api_raw(server, "publish", {"channel": f"room:{n}", "data": {}})
    body = await api_raw(server, "publish", {"channel": "room:2", "data": {}})
    assert body["error"]["code"] == 106, body
    assert "history_max_streams (2)" in body["error"]["message"]
    assert "error" not in await api_raw(server, "publish", {"channel": "room:0", "data": {}})


async def test_churning_client_leaves_the_canary_alone(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(_server_settings())
    async with Canary(server) as canary:
        ws, _ = await connected_ws(server.ws_url, server.token("churner"))
        errors = 0
        for frame in churn_frames("room:x", 50_000):
            if canary.completed >= 6:
                break  # the churn overlapped several canary rounds
            count = frame.count(b"\n") + 1
            await ws.send(frame.decode())
            async with asyncio.timeout(STEP * 2):
                while count:
                    for message in parse_frame(await ws.recv()):
                        if message == {}:
                            await ws.send("{}")
                        elif "id" in message:
                            count -= 1
                            errors += "error" in message
        await ws.close()
        await canary.check(min_rounds=6)
    assert errors == 0
    assert "Traceback" not in server.log()
