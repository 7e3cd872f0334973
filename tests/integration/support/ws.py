"""A raw WebSocket client of the Centrifuge v2 JSON protocol.

Server pings (`{}`) are answered by default (`pong=True`); tests of the ping
and pong deadlines pass `pong=False` and answer, or not, themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

STEP = 5.0  # seconds any single expected event may take


async def open_ws(url: str, **options: Any) -> ClientConnection:
    """A socket to `url` (no client pings, no size limit); `options` go to `connect`."""
    return await connect(
        url,
        **{"max_size": None, "open_timeout": STEP, "ping_interval": None, "close_timeout": 1}
        | options,
    )


def parse_frame(frame: str | bytes) -> list[dict[str, Any]]:
    """The messages of one frame (split on newlines)."""
    text = frame.decode() if isinstance(frame, bytes) else frame
    return [json.loads(line) for line in text.split("\n") if line]


async def recv_messages(
    ws: ClientConnection, within: float = STEP, *, pong: bool = True
) -> list[dict[str, Any]]:
    """The replies in the next frame; with `pong`, a ping among them is answered."""
    async with asyncio.timeout(within):
        frame = await ws.recv()
    messages = parse_frame(frame)
    if pong and {} in messages:
        await ws.send("{}")
    return messages


async def recv_reply(ws: ClientConnection, command_id: int, *, pong: bool = True) -> dict[str, Any]:
    """The reply with `command_id`, skipping pushes and pings."""
    async with asyncio.timeout(STEP):
        while True:
            for message in await recv_messages(ws, pong=pong):
                if message.get("id") == command_id:
                    return message


async def send_command(ws: ClientConnection, command_id: int, **request: Any) -> dict[str, Any]:
    """Send `{"id": command_id, <method>: <body>}` and return its reply."""
    await ws.send(json.dumps({"id": command_id, **request}))
    return await recv_reply(ws, command_id)


async def send_connect(ws: ClientConnection, token: str | None, **extra: Any) -> dict[str, Any]:
    """Send connect (command id 1) on an open socket; its reply."""
    request: dict[str, Any] = {"name": "raw-test", **extra}
    if token is not None:
        request["token"] = token
    return await send_command(ws, 1, connect=request)


async def raw_connect(
    url: str, token: str | None, **extra: Any
) -> tuple[ClientConnection, dict[str, Any]]:
    """Open a socket and send connect; the socket and the connect reply ({}: closed)."""
    ws = await open_ws(url)
    try:
        return ws, await send_connect(ws, token, **extra)
    except ConnectionClosed:
        return ws, {}


async def connected_ws(
    url: str, token: str, ws: ClientConnection | None = None
) -> tuple[ClientConnection, dict[str, Any]]:
    """A connected socket (opened unless given) and its connect result."""
    ws = ws or await open_ws(url)
    reply = await send_connect(ws, token)
    assert "error" not in reply, reply
    assert "connect" in reply, reply
    assert reply["connect"]["client"]
    return ws, reply["connect"]


async def subscribe(ws: ClientConnection, channel: str, command_id: int = 2) -> None:
    """Subscribe to `channel`; the reply must not be an error."""
    reply = await send_command(ws, command_id, subscribe={"channel": channel})
    assert "error" not in reply, reply


async def expect_close(
    ws: ClientConnection, within: float = STEP, *, pong: bool = True
) -> int | None:
    """Read until the server closes; the close code it sent (None: no close frame)."""
    try:
        async with asyncio.timeout(within):
            while True:
                await recv_messages(ws, within, pong=pong)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd is not None else None
    except TimeoutError:
        pytest.fail(f"server did not close the connection within {within}s")


async def assert_open(ws: ClientConnection, command_id: int) -> None:
    """The connection still answers commands."""
    reply = await send_command(ws, command_id, ping={})
    assert "error" not in reply, reply
    assert "ping" in reply, reply


async def stays_open(ws: ClientConnection, seconds: float) -> None:
    """Nothing closes `ws` for `seconds` (pings are answered meanwhile)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            await recv_messages(ws, left)
        except TimeoutError:
            return
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            pytest.fail(f"connection closed with {code} within {seconds}s")


@asynccontextmanager
async def closing(*sockets: ClientConnection) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for ws in sockets:
            with contextlib.suppress(Exception):
                await ws.close()
