"""The in-process broker: one node (the embedded default), or several in one process.

Brokers sharing one `MemoryBrokerHub` behave like nodes on one engine (the
conformance suite uses that); a broker created alone gets a hub of its own.
Delivery is synchronous: `publish` calls every subscribed broker's port
before it returns, in offset order per channel (appends of one channel are
serialized, so a store whose append yields cannot reorder them).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

from tidings.broker.base import Broker, BrokerPort
from tidings.protocol.centrifuge.messages import ClientInfo, Publication
from tidings.store.base import HistoryStore, Position
from tidings.store.memory import MemoryHistoryStore

_NO_POSITION = Position(0, "")
log = logging.getLogger(__name__)


def _call(callback: Callable[..., None], *args: Any) -> None:
    """A failing node callback is logged: it must not fail the publisher or other nodes."""
    try:
        callback(*args)
    except Exception:
        log.exception("broker callback %s failed", getattr(callback, "__name__", callback))


class MemoryBrokerHub:
    """What the brokers of one process share: the history store and the running brokers."""

    def __init__(self, history: HistoryStore | None = None) -> None:
        self.history = history or MemoryHistoryStore()
        self.brokers: list[MemoryBroker] = []
        # channel -> (lock, users): appends + deliveries of one channel in order
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def publish(
        self,
        channel: str,
        pub: Publication,
        size: int,
        ttl: float,
        idempotency_key: str,
        *,
        delta: bool = False,
    ) -> Position:
        if size <= 0 or ttl <= 0:
            self._deliver(channel, pub, _NO_POSITION, delta)
            return _NO_POSITION
        lock, users = self._locks.get(channel) or (asyncio.Lock(), 0)
        self._locks[channel] = (lock, users + 1)
        try:
            async with lock:
                position = await self.history.append(channel, pub, size, ttl, idempotency_key)
                if pub.offset == position.offset:
                    self._deliver(channel, pub, position, delta)
                return position
        finally:
            lock, users = self._locks[channel]
            if users == 1:
                del self._locks[channel]
            else:
                self._locks[channel] = (lock, users - 1)

    def _deliver(
        self, channel: str, pub: Publication, position: Position, delta: bool = False
    ) -> None:
        for broker in list(self.brokers):
            if broker.port is not None and broker.subscribers(channel):
                _call(broker.port.on_publication, channel, pub, position, delta)


class MemoryBroker(Broker):
    """A broker whose engine is this process (see the module docstring)."""

    def __init__(self, hub: MemoryBrokerHub | None = None, node_id: str = "") -> None:
        self.hub = hub or MemoryBrokerHub()
        self.history = self.hub.history
        self.node_id = node_id or str(uuid.uuid4())
        self.port: BrokerPort | None = None
        self._refs: dict[str, int] = {}

    async def start(self, port: BrokerPort) -> None:
        self.attach(port)

    def attach(self, port: BrokerPort) -> None:
        """`start` without awaiting (nothing to connect to in-process)."""
        self.port = port
        if self not in self.hub.brokers:
            self.hub.brokers.append(self)

    async def close(self) -> None:
        if self in self.hub.brokers:
            self.hub.brokers.remove(self)
        self.port = None

    async def publish(
        self,
        channel: str,
        pub: Publication,
        *,
        size: int = 0,
        ttl: float = 0.0,
        idempotency_key: str = "",
        delta: bool = False,
    ) -> Position:
        return await self.hub.publish(channel, pub, size, ttl, idempotency_key, delta=delta)

    async def publish_join(self, channel: str, info: ClientInfo) -> None:
        for broker in list(self.hub.brokers):
            if broker.port is not None and broker.subscribers(channel):
                _call(broker.port.on_join, channel, info)

    async def publish_leave(self, channel: str, info: ClientInfo) -> None:
        for broker in list(self.hub.brokers):
            if broker.port is not None and broker.subscribers(channel):
                _call(broker.port.on_leave, channel, info)

    async def publish_control(self, data: bytes, node_id: str = "") -> None:
        for broker in list(self.hub.brokers):
            if broker is self or broker.port is None:
                continue
            if not node_id or node_id == broker.node_id:
                _call(broker.port.on_control, data)

    async def subscribe(self, channel: str) -> None:
        self._refs[channel] = self._refs.get(channel, 0) + 1

    async def unsubscribe(self, channel: str) -> None:
        self.release(channel)

    def release(self, channel: str) -> None:
        """`unsubscribe` without awaiting."""
        count = self._refs.get(channel, 0)
        if count <= 1:
            self._refs.pop(channel, None)
        else:
            self._refs[channel] = count - 1

    def subscribers(self, channel: str) -> int:
        return self._refs.get(channel, 0)
