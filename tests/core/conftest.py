"""A real Node driven through in-memory transports: no sockets, no server process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import jwt
import msgspec
import pytest

from tidings.config import build
from tidings.core.client import Client
from tidings.core.node import Node
from tidings.settings import Settings
from tidings.testing import MemoryTransport

SECRET = "unit-secret-0123456789-0123456789-abcdef"

OPEN: dict[str, Any] = {
    "history_size": 10,
    "history_ttl": "5m",
    "presence": True,
    "join_leave": True,
    "allow_subscribe_for_client": True,
    "allow_publish_for_client": True,
    "allow_presence_for_subscriber": True,
    "allow_history_for_subscriber": True,
}


def make_settings(**overrides: Any) -> Settings:
    """Settings as `tidings serve` would build them: an HMAC secret and an open `[channel]`."""
    raw: dict[str, Any] = {
        "token_hmac_secret": SECRET,
        "channel": dict(OPEN),
        # Personal channels are durable (SQLite under data_dir); tests that want one ask.
        "personal_channel": False,
    }
    raw.update(overrides)
    return build(raw)


def token(user: str, ttl: float | None = 3600, secret: str = SECRET, **claims: Any) -> str:
    payload: dict[str, Any] = {"sub": user, **claims}
    if ttl is not None:
        payload["exp"] = int(time.time() + ttl)
    return jwt.encode(payload, secret, algorithm="HS256")


async def settle(turns: int = 20) -> None:
    """Let workers, flushes and callbacks scheduled now run to completion."""
    for _ in range(turns):
        await asyncio.sleep(0)


async def settle_client(client: Client) -> None:
    """`settle`, then wait (a store may answer from a thread) until the client is idle."""
    await settle()
    for _ in range(5000):  # up to ~5 s
        if client._worker is None and not client._dirty:
            break
        await asyncio.sleep(0.001)
    else:
        raise AssertionError("client still busy after 5 s")
    await settle()


class Conn:
    """One client on the node and the transport it writes to."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.transport = MemoryTransport()
        self.client: Client = node.accept(self.transport)

    async def send(self, *commands: dict[str, Any] | bytes) -> list[dict[str, Any]]:
        """Send the commands in one frame; return what arrived since the last call."""
        parts = [c if isinstance(c, bytes) else msgspec.json.encode(c) for c in commands]
        self.client.handle_frame(b"\n".join(parts))
        await settle_client(self.client)
        return self.transport.take()

    async def call(self, command: dict[str, Any]) -> dict[str, Any]:
        """Send one command with an id; return its reply (pushes stay in `pushes`)."""
        replies = await self.send(command)
        mine = [r for r in replies if r.get("id") == command["id"]]
        self.pushes = [r for r in replies if "id" not in r]
        assert len(mine) == 1, f"expected one reply to id {command['id']}, got {replies}"
        return mine[0]

    async def connect(self, user: str | None = "u1", **claims: Any) -> dict[str, Any]:
        req: dict[str, Any] = {} if user is None else {"token": token(user, **claims)}
        reply = await self.call({"id": 1, "connect": req})
        assert "connect" in reply, reply
        return reply

    async def subscribe(self, channel: str, cid: int = 2, **req: Any) -> dict[str, Any]:
        return await self.call({"id": cid, "subscribe": {"channel": channel, **req}})

    @property
    def closed_with(self) -> int | None:
        return self.transport.close_code


@pytest.fixture
async def node_factory() -> AsyncIterator[Callable[..., Node]]:
    nodes: list[Node] = []

    def factory(**overrides: Any) -> Node:
        created = Node(make_settings(**overrides))
        nodes.append(created)
        return created

    yield factory
    for created in nodes:
        await created.stop()


@pytest.fixture
def node(node_factory: Callable[..., Node]) -> Node:
    return node_factory()


@pytest.fixture
def conn(node: Node) -> Callable[[], Conn]:
    return lambda: Conn(node)
