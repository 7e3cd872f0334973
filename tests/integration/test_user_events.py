"""Online/offline user events POSTed to a webhook by a real `tidings serve` process.

The webhook is a small aiohttp server started by the test on a free port; it
records every POST body (and can fail or stall on purpose).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import OPEN_CHANNEL, ServerProcess, free_port
from tests.integration.support.ws import (
    STEP,
    assert_open,
    closing,
    connected_ws,
    recv_messages,
    send_command,
)

GRACE = 0.5


class Hook:
    """Collects the JSON bodies POSTed to it; the first `fail` POSTs get `fail_status`."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/events"
        self.bodies: list[dict[str, Any]] = []
        self.attempts: list[float] = []
        self.fail = 0
        self.fail_status = 500
        self.stall = 0.0
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/events", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        self.attempts.append(time.monotonic())
        body = await request.json()
        assert request.content_type == "application/json"
        if self.fail > 0:
            self.fail -= 1
            await asyncio.sleep(self.stall)
            return web.Response(status=self.fail_status)
        self.bodies.append(body)
        self._changed.set()
        return web.Response(status=200)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [event for body in self.bodies for event in body["events"]]

    def kinds(self) -> list[tuple[str, str]]:
        return [(e["type"], e["user"]) for e in self.events]

    async def wait(self, count: int, within: float = STEP) -> list[dict[str, Any]]:
        """The first `count` events (waits until that many have arrived)."""

        async def poll() -> list[dict[str, Any]]:
            while len(self.events) < count:
                self._changed.clear()
                await self._changed.wait()
            return self.events[:count]

        try:
            return await asyncio.wait_for(poll(), within)
        except TimeoutError:
            raise AssertionError(f"no {count} events within {within}s: {self.kinds()}") from None


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    receiver = Hook()
    await receiver.start()
    yield receiver
    await receiver.stop()


def start(server_factory: Any, hook: Hook, **settings: Any) -> ServerProcess:
    server: ServerProcess = server_factory(
        {
            "user_events_url": hook.url,
            "user_events_grace": GRACE,
            "channel": OPEN_CHANNEL,
            **settings,
        }
    )
    return server


async def test_online_then_offline_after_grace(server_factory: Any, hook: Hook) -> None:
    server = start(server_factory, hook)
    before = time.time()
    first, result = await connected_ws(server.ws_url, server.token("42"))
    (online,) = await hook.wait(1)
    assert online["type"] == "online"
    assert online["user"] == "42"
    assert online["client"] == result["client"]
    assert before - 1 <= online["time"] <= time.time() + 1
    assert set(online) == {"type", "user", "client", "time"}

    second, second_result = await connected_ws(server.ws_url, server.token("42"))
    await asyncio.sleep(GRACE + 0.3)
    assert hook.kinds() == [("online", "42")]  # a second connection is no news

    await first.close()
    await asyncio.sleep(GRACE + 0.3)
    assert hook.kinds() == [("online", "42")]  # one connection is still open

    await second.close()
    closed_at = time.monotonic()
    online, offline = await hook.wait(2)
    waited = time.monotonic() - closed_at
    assert offline["type"] == "offline"
    assert offline["user"] == "42"
    assert offline["client"] == second_result["client"]
    assert offline["time"] > online["time"]
    assert waited >= GRACE - 0.1, waited  # not before the grace period
    assert waited < GRACE + 3
    await asyncio.sleep(0.3)
    assert hook.kinds() == [("online", "42"), ("offline", "42")]


async def test_quick_reconnect_produces_no_events(server_factory: Any, hook: Hook) -> None:
    server = start(server_factory, hook)
    ws, _ = await connected_ws(server.ws_url, server.token("42"))
    await hook.wait(1)
    await ws.close()
    await asyncio.sleep(0.1)
    ws, _ = await connected_ws(server.ws_url, server.token("42"))
    async with closing(ws):
        await asyncio.sleep(GRACE + 0.5)
        # No offline/online pair for a reconnect within the grace period.
        assert hook.kinds() == [("online", "42")]
    await hook.wait(2)
    assert hook.kinds() == [("online", "42"), ("offline", "42")]


async def test_events_of_several_users_arrive_in_order(server_factory: Any, hook: Hook) -> None:
    server = start(server_factory, hook)
    a, _ = await connected_ws(server.ws_url, server.token("a"))
    b, _ = await connected_ws(server.ws_url, server.token("b"))
    c, _ = await connected_ws(server.ws_url, server.token("c"))
    await hook.wait(3)
    await b.close()
    await asyncio.sleep(0.1)
    await a.close()
    await asyncio.sleep(0.1)
    await c.close()
    events = await hook.wait(6)
    assert [(e["type"], e["user"]) for e in events] == [
        ("online", "a"),
        ("online", "b"),
        ("online", "c"),
        ("offline", "b"),
        ("offline", "a"),
        ("offline", "c"),
    ]
    times = [e["time"] for e in events]
    assert times == sorted(times)
    assert all(isinstance(e["time"], float) for e in events)


async def test_a_burst_of_events_is_batched(server_factory: Any, hook: Hook) -> None:
    server = start(server_factory, hook)
    sockets = await asyncio.gather(
        *(connected_ws(server.ws_url, server.token(f"u{i}")) for i in range(20))
    )
    async with closing(*(ws for ws, _ in sockets)):
        events = await hook.wait(20)
        assert sorted(e["user"] for e in events) == sorted(f"u{i}" for i in range(20))
        assert {e["type"] for e in events} == {"online"}
        assert len(hook.bodies) < 20  # several events share one POST


async def test_failed_posts_are_retried_without_blocking_clients(
    server_factory: Any, hook: Hook
) -> None:
    hook.fail = 2  # two 500s, each after a stall, then 200
    hook.stall = 0.5
    server = start(server_factory, hook)
    first, _ = await connected_ws(server.ws_url, server.token("42"))
    async with closing(first):
        # While the back end fails, other clients connect, subscribe and receive at once.
        started = time.monotonic()
        ws, _ = await connected_ws(server.ws_url, server.token("43"))
        async with closing(ws):
            assert "subscribe" in await send_command(ws, 2, subscribe={"channel": "news"})
            publish = {"id": 3, "publish": {"channel": "news", "data": {"n": 1}}}
            await ws.send(json.dumps(publish))
            seen: list[dict[str, Any]] = []
            async with asyncio.timeout(STEP):
                while not (
                    any(m.get("id") == 3 and "publish" in m for m in seen)
                    and any(m.get("push", {}).get("channel") == "news" for m in seen)
                ):
                    seen += await recv_messages(ws)
            await assert_open(first, 2)
            assert time.monotonic() - started < 0.5, "clients waited for the webhook"
            assert hook.bodies == []  # the back end has not accepted anything yet

            events = await hook.wait(2, within=STEP + 3)
            assert [(e["type"], e["user"]) for e in events] == [("online", "42"), ("online", "43")]
            assert len(hook.attempts) >= 3
            assert "retrying" in server.log()


async def test_unreachable_webhook_does_not_block_clients(server_factory: Any) -> None:
    url = f"http://127.0.0.1:{free_port()}/nobody-listens"
    server = server_factory({"user_events_url": url, "user_events_grace": GRACE})
    started = time.monotonic()
    for user in ("1", "2", "3"):
        ws, _ = await connected_ws(server.ws_url, server.token(user))
        async with closing(ws):
            await assert_open(ws, 2)
    assert time.monotonic() - started < 2.0


async def test_anonymous_connections_are_not_users(server_factory: Any, hook: Hook) -> None:
    server = start(server_factory, hook, allow_anonymous=True)
    anon, _ = await connected_ws(server.ws_url, server.token(""))
    await anon.close()
    ws, _ = await connected_ws(server.ws_url, server.token("42"))
    async with closing(ws):
        await hook.wait(1)
        await asyncio.sleep(GRACE + 0.3)
        assert hook.kinds() == [("online", "42")]
