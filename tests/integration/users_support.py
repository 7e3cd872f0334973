"""Helpers shared by the users / tokens / limits / user-events integration tests.

A raw WebSocket client (exact close codes and error replies), a small wrapper
around the centrifuge-python SDK that records every client event, and a plain
aiohttp caller for the server API (for the methods `cent` does not know).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from centrifuge import Client, ClientEventHandler
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import API_KEY, SECRET, ServerProcess, free_port, write_toml

STEP = 5.0  # seconds any single expected event may take


# --- raw WebSocket client ----------------------------------------------------------------


async def open_ws(url: str) -> ClientConnection:
    return await connect(url, max_size=None, open_timeout=STEP, ping_interval=None, close_timeout=1)


async def recv_messages(ws: ClientConnection, within: float = STEP) -> list[dict[str, Any]]:
    """The replies in the next frame (split on newlines); pings are answered."""
    async with asyncio.timeout(within):
        frame = await ws.recv()
    text = frame.decode() if isinstance(frame, bytes) else frame
    messages = [json.loads(line) for line in text.split("\n") if line]
    if {} in messages:
        await ws.send("{}")
    return messages


async def recv_reply(ws: ClientConnection, command_id: int) -> dict[str, Any]:
    """The reply with `command_id`, skipping pushes and pings."""
    async with asyncio.timeout(STEP):
        while True:
            for message in await recv_messages(ws):
                if message.get("id") == command_id:
                    return message


async def send_command(ws: ClientConnection, command_id: int, **request: Any) -> dict[str, Any]:
    """Send `{"id": command_id, <method>: <body>}` and return its reply."""
    await ws.send(json.dumps({"id": command_id, **request}))
    return await recv_reply(ws, command_id)


async def raw_connect(
    url: str, token: str | None, **extra: Any
) -> tuple[ClientConnection, dict[str, Any]]:
    """Open a socket and send connect; the socket and the connect reply."""
    ws = await open_ws(url)
    request: dict[str, Any] = {"name": "raw-test", **extra}
    if token is not None:
        request["token"] = token
    await ws.send(json.dumps({"id": 1, "connect": request}))
    try:
        return ws, await recv_reply(ws, 1)
    except ConnectionClosed:
        return ws, {}


async def connected_ws(url: str, token: str) -> tuple[ClientConnection, dict[str, Any]]:
    ws, reply = await raw_connect(url, token)
    assert "connect" in reply, reply
    assert reply["connect"]["client"]
    return ws, reply["connect"]


async def expect_close(ws: ClientConnection, within: float = STEP) -> int | None:
    """Read until the server closes; the close code it sent (None: no close frame)."""
    try:
        async with asyncio.timeout(within):
            while True:
                await recv_messages(ws, within)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd is not None else None
    except TimeoutError:
        pytest.fail(f"server did not close the connection within {within}s")


async def assert_open(ws: ClientConnection, command_id: int) -> None:
    """The connection still answers commands."""
    reply = await send_command(ws, command_id, ping={})
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


# --- server API ------------------------------------------------------------------------------


async def api_raw(server: ServerProcess, method: str, payload: dict[str, Any]) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=STEP)) as http,
        http.post(
            f"{server.api_url}/{method}", json=payload, headers={"X-API-Key": server.api_key}
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
    return body


async def api_call(server: ServerProcess, method: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The `result` of a successful API call."""
    body = await api_raw(server, method, payload)
    assert "error" not in body, body
    result: dict[str, Any] = body.get("result", {})
    return result


async def refusal_counters(server: ServerProcess) -> dict[str, float]:
    """The `refused.*` metric items of the `info` API method."""
    info = await api_call(server, "info", {})
    items = info["nodes"][0]["metrics"]["items"]
    return {k: v for k, v in items.items() if k.startswith("refused.")}


# --- centrifuge-python SDK -------------------------------------------------------------------


class Recorder:
    """Records (kind, context) events and waits for them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self._changed = asyncio.Event()

    def add(self, kind: str, ctx: Any) -> None:
        self.events.append((kind, ctx))
        self._changed.set()

    def of(self, kind: str) -> list[Any]:
        return [ctx for k, ctx in self.events if k == kind]

    async def wait(
        self,
        kind: str,
        pred: Callable[[Any], bool] = lambda _: True,
        count: int = 1,
        within: float = STEP,
    ) -> list[Any]:
        """The first `count` events of `kind` matching `pred` (waits for them)."""

        async def poll() -> list[Any]:
            while True:
                found = [ctx for ctx in self.of(kind) if pred(ctx)]
                if len(found) >= count:
                    return found[:count]
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(poll(), within)
        except TimeoutError:
            kinds = [k for k, _ in self.events]
            raise AssertionError(f"no {count} x {kind!r} within {within}s; saw {kinds}") from None


def recording_handler(rec: Recorder) -> ClientEventHandler:
    """A ClientEventHandler whose every callback (incl. server-side publications) records."""

    def hook(name: str) -> Callable[..., Any]:
        async def on_event(self: Any, ctx: Any) -> None:
            rec.add(name, ctx)

        return on_event

    names = [n for n in dir(ClientEventHandler) if n.startswith("on_")]
    cls = type("Recording", (ClientEventHandler,), {n: hook(n[3:]) for n in names})
    handler: ClientEventHandler = cls()
    return handler


class Sdk:
    """A centrifuge-python client plus the recorder of its client-level events."""

    def __init__(self, url: str, token: str) -> None:
        self.rec = Recorder()
        self.client = Client(
            url, events=recording_handler(self.rec), token=token, max_reconnect_delay=1.0
        )
        self.id = ""

    async def connect(self) -> Sdk:
        await asyncio.wait_for(self.client.connect(), STEP)
        self.id = (await self.rec.wait("connected"))[0].client
        return self

    def publications(self, channel: str) -> list[Any]:
        return [ctx.pub.data for ctx in self.rec.of("publication") if ctx.channel == channel]

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.disconnect(), STEP)


# --- servers with list settings ----------------------------------------------------------------


def start_with_lists(
    server_factory: Callable[..., ServerProcess],
    tmp_path: Path,
    lists: dict[str, list[str]],
    settings: dict[str, Any] | None = None,
) -> ServerProcess:
    """A server whose TOML file also has list settings (`client_ip_allow`, ...).

    conftest's TOML writer quotes lists, and list settings cannot be flags, so
    this writes a complete config file of its own and passes it as the last
    `--config` (the last one wins).
    """
    port, api_port = free_port(), free_port()
    path = tmp_path / f"lists-{port}.toml"
    write_toml(
        path,
        {
            "address": "127.0.0.1",
            "port": port,
            "api_port": api_port,
            "api_key": API_KEY,
            "token_hmac_secret": SECRET,
            "data_dir": str(tmp_path / "data"),
            **(settings or {}),
        },
    )
    top = "".join(f"{key} = {json.dumps(value)}\n" for key, value in lists.items())
    path.write_text(top + path.read_text())
    server = server_factory({"port": port, "api_port": api_port}, args=["--config", str(path)])
    server.port, server.api_port = port, api_port
    return server
