"""Helpers for the durable-stream tests: inbox clients and API calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from centrifuge import (
    Client,
    ClientEventHandler,
    ConnectedContext,
    DisconnectedContext,
    PublicationContext,
    ServerPublicationContext,
    ServerSubscribedContext,
    SubscribedContext,
    SubscriptionEventHandler,
)

from tests.conftest import ServerProcess
from tests.integration.support.sdk import TIMEOUT


class Received:
    """Publications (offset, data) seen by a client or subscription, and what else happened."""

    def __init__(self) -> None:
        self.pubs: list[tuple[int, Any]] = []
        self.subscribed: list[Any] = []
        self.disconnects: list[int] = []
        self._changed = asyncio.Event()

    def add_pub(self, offset: int, data: Any) -> None:
        self.pubs.append((offset, data))
        self._changed.set()

    def changed(self) -> None:
        self._changed.set()

    @property
    def offsets(self) -> list[int]:
        return [offset for offset, _ in self.pubs]

    async def wait_for(self, pred: Callable[[], bool], within: float = TIMEOUT) -> None:
        async def poll() -> None:
            while not pred():
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(poll(), within)
        except TimeoutError:
            raise AssertionError(
                f"timed out; offsets {self.offsets}, subscribed {self.subscribed}, "
                f"disconnects {self.disconnects}"
            ) from None

    async def wait_count(self, count: int, within: float = TIMEOUT) -> None:
        await self.wait_for(lambda: len(self.pubs) >= count, within)


class _InboxEvents(ClientEventHandler):
    def __init__(self, received: Received, personal: str) -> None:
        self.received = received
        self.personal = personal

    async def on_connected(self, ctx: ConnectedContext) -> None:
        self.received.changed()

    async def on_disconnected(self, ctx: DisconnectedContext) -> None:
        self.received.disconnects.append(ctx.code)
        self.received.changed()

    async def on_subscribed(self, ctx: ServerSubscribedContext) -> None:
        if ctx.channel == self.personal:
            self.received.subscribed.append(ctx)
            self.received.changed()

    async def on_publication(self, ctx: ServerPublicationContext) -> None:
        if ctx.channel == self.personal:
            self.received.add_pub(ctx.pub.offset, ctx.pub.data)


class Inbox:
    """A centrifuge-python client of `user`, recording its personal channel `#<user>`."""

    def __init__(self, server: ServerProcess, user: str, **kwargs: Any) -> None:
        self.user = user
        self.channel = f"#{user}"
        self.received = Received()
        self.client = Client(
            server.ws_url,
            events=_InboxEvents(self.received, self.channel),
            token=server.token(user),
            proxy=None,
            **kwargs,
        )

    @property
    def offsets(self) -> list[int]:
        return self.received.offsets

    async def connect(self) -> Inbox:
        """Connect and wait for the inbox's subscription (its replay is processed next)."""
        before = len(self.received.subscribed)
        await self.client.connect()
        await self.client.ready(TIMEOUT)
        await self.received.wait_for(lambda: len(self.received.subscribed) > before)
        return self

    async def ack(self, offset: int, channel: str = "") -> Any:
        result = await self.client.rpc(
            "ack", {"channel": channel or self.channel, "offset": offset}
        )
        return result.data

    async def close(self) -> None:
        await self.client.disconnect()


class _SubEvents(SubscriptionEventHandler):
    def __init__(self, received: Received) -> None:
        self.received = received

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.received.subscribed.append(ctx)
        self.received.changed()

    async def on_publication(self, ctx: PublicationContext) -> None:
        self.received.add_pub(ctx.pub.offset, ctx.pub.data)


def subscription(client: Client, channel: str, **kwargs: Any) -> tuple[Any, Received]:
    """A client-side subscription recording what it receives."""
    received = Received()
    sub = client.new_subscription(channel, events=_SubEvents(received), **kwargs)
    return sub, received
