"""centrifuge-python clients whose every event (client and subscription) is recorded."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Self

from centrifuge import Client, ClientEventHandler, SubscriptionEventHandler

from tests.conftest import ServerProcess
from tests.integration.support.ws import STEP

TIMEOUT = 15.0  # seconds the SDK tests allow any single step


def loads(data: bytes) -> Any:
    """The JSON a protobuf client received: its payloads are the JSON's UTF-8 bytes."""
    assert isinstance(data, bytes), f"protobuf payloads are bytes, got {data!r}"
    return json.loads(data)


class Recorder:
    """Records (kind, context) events and waits for them."""

    def __init__(self, within: float = STEP) -> None:
        self.events: list[tuple[str, Any]] = []
        self.within = within
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
        within: float | None = None,
    ) -> list[Any]:
        """The first `count` events of `kind` matching `pred` (waits for them)."""
        within = self.within if within is None else within

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
            seen = [(k, c) for k, c in self.events if k in ("error", "connecting", "disconnected")]
            kinds = [k for k, _ in self.events]
            message = f"no {count} x {kind!r} within {within}s; saw {kinds}; {seen}"
            raise AssertionError(message) from None


def recording(base: type, rec: Recorder) -> Any:
    """An instance of event handler class `base` whose every callback records in `rec`."""

    def hook(name: str) -> Callable[..., Any]:
        async def on_event(self: Any, ctx: Any) -> None:
            rec.add(name, ctx)

        return on_event

    names = [n for n in dir(base) if n.startswith("on_")]
    cls = type("Recording", (base,), {n: hook(n[3:]) for n in names})
    return cls()


class Sdk:
    """A centrifuge-python client plus the recorder of its client-level events.

    Server-side subscriptions report to the client-level recorder too.
    """

    def __init__(self, url: str, token: str, *, within: float = STEP, **client_kwargs: Any) -> None:
        self.within = within
        self.rec = Recorder(within)
        self.client = Client(
            url, events=recording(ClientEventHandler, self.rec), token=token, **client_kwargs
        )
        self.id = ""

    async def connect(self) -> Self:
        await asyncio.wait_for(self.client.connect(), self.within)
        self.id = (await self.rec.wait("connected"))[0].client
        return self

    def publications(self, channel: str) -> list[Any]:
        return [ctx.pub.data for ctx in self.rec.of("publication") if ctx.channel == channel]

    def sub(self, channel: str, **kwargs: Any) -> tuple[Any, Recorder]:
        """A client-side subscription and the recorder of its events."""
        rec = Recorder(self.within)
        sub = self.client.new_subscription(
            channel, recording(SubscriptionEventHandler, rec), **kwargs
        )
        return sub, rec

    async def subscribed(self, channel: str, **kwargs: Any) -> tuple[Any, Recorder]:
        sub, rec = self.sub(channel, **kwargs)
        await sub.subscribe()
        await rec.wait("subscribed")
        return sub, rec

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.disconnect(), STEP)


class Conn(Sdk):
    """An SDK client of `user` on `server` (its token unless `token=` is given), 15 s waits."""

    def __init__(self, server: ServerProcess, user: str, **kwargs: Any) -> None:
        token = kwargs.pop("token", None) or server.token(user)
        super().__init__(server.ws_url, token, within=TIMEOUT, **kwargs)


@asynccontextmanager
async def connecting(
    server: ServerProcess,
) -> AsyncIterator[Callable[..., Awaitable[Conn]]]:
    """`await connect(user, srv=None, **client_kwargs)` -> a connected Conn; all closed at exit."""
    conns: list[Conn] = []

    async def connect(user: str, srv: ServerProcess | None = None, **kwargs: Any) -> Conn:
        conn = Conn(srv or server, user, **kwargs)
        conns.append(conn)
        return await asyncio.wait_for(conn.connect(), TIMEOUT + 5)

    try:
        yield connect
    finally:
        for conn in conns:
            await conn.close()
