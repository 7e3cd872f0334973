"""The node: owns the parts, their lifecycle, and the operations on channels.

Data path of one publication: `publish()` -> history append (offset) -> the
hub's local subscribers -> encoded once -> each client's outbox -> one frame
per loop turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid

from msgspec import Raw

from tidings.config import Settings
from tidings.core.auth import TokenVerifier
from tidings.core.channels import Channel, ChannelRules
from tidings.core.client import Client, Subscription
from tidings.core.commands import CommandHandler
from tidings.core.events import Event, EventDispatcher, EventType
from tidings.core.flusher import Flusher
from tidings.core.heartbeat import PingWheel
from tidings.core.hub import Hub
from tidings.errors import ReplyError
from tidings.presence.base import PresenceStore
from tidings.presence.memory import MemoryPresenceStore
from tidings.protocol.centrifuge import codes
from tidings.protocol.centrifuge.codes import Disconnect, ErrorCode
from tidings.protocol.centrifuge.json_codec import JsonCodec
from tidings.protocol.centrifuge.messages import (
    ClientInfo,
    Join,
    Leave,
    Publication,
    Push,
    Refresh,
    Reply,
    Subscribe,
    SubscribeResult,
    Unsubscribe,
    raw,
)
from tidings.store.base import HistoryStore, Position, UnrecoverablePosition
from tidings.store.memory import MemoryHistoryStore
from tidings.transport.base import Transport

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 30.0


class Node:
    """One tidings node. `start()` / `stop()` own the background work."""

    def __init__(
        self,
        settings: Settings,
        *,
        history: HistoryStore | None = None,
        presence: PresenceStore | None = None,
    ) -> None:
        self.settings = settings
        self.uid = str(uuid.uuid4())
        self.name = settings.name or socket.gethostname()
        self.rules = ChannelRules(settings)
        self.hub = Hub()
        self.events = EventDispatcher()
        self.history = history or MemoryHistoryStore()
        self.presence = presence or MemoryPresenceStore()
        self.verifier = TokenVerifier(settings.token_hmac_secret)
        self.codec = JsonCodec()
        self.commands = CommandHandler(self)
        self.pings = PingWheel(settings.client_ping_interval, settings.client_pong_timeout)
        self.started_at = time.time()
        self.counters: dict[str, int] = {"connects": 0, "disconnects": 0, "publications": 0}
        self._flusher: Flusher | None = None
        self._pending: set[Client] = set()
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def flusher(self) -> Flusher:
        if self._flusher is None:
            self._flusher = Flusher(asyncio.get_running_loop())
        return self._flusher

    # --- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        self.started_at = time.time()
        self.events.start()
        self.pings.start()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep(), name="sweep")

    async def stop(self, disconnect: Disconnect = codes.SHUTDOWN) -> None:
        """Disconnect every client with `disconnect` (3001) and stop background work."""
        for client in list(self._pending) + list(self.hub.clients()):
            client.disconnect(disconnect)
        await self.pings.stop()
        await self.events.stop()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.history.close()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            await self.history.sweep()

    # --- connections --------------------------------------------------------------

    def accept(self, transport: Transport) -> Client:
        """A new transport connection; it has `client_stale_close_delay` to connect."""
        client = Client(self, transport, self.codec)
        self._pending.add(client)
        client.start_stale_timer(self.settings.client_stale_close_delay)
        return client

    def client_connected(self, client: Client) -> None:
        self._pending.discard(client)
        self.hub.add(client)
        self.pings.add(client)
        self.counters["connects"] += 1
        self._emit(EventType.CONNECTED, client)

    def client_closed(self, client: Client) -> None:
        """Forget a closed client: its subscriptions, presence, and indexes."""
        self._pending.discard(client)
        self.pings.remove(client)
        if self.hub.client(client.id) is None:
            return
        self.hub.remove(client)
        self.counters["disconnects"] += 1
        for name in list(client.subscriptions):
            self._drop_subscription(client, name)
        self._emit(EventType.DISCONNECTED, client)

    def _emit(self, event_type: EventType, client: Client, channel: str = "") -> None:
        if self.events.wants(event_type):
            self.events.emit(Event(event_type, client.id, client.user, channel, time.time()))

    # --- subscriptions --------------------------------------------------------------

    async def subscribe_client(
        self,
        client: Client,
        channel: Channel,
        *,
        recover: bool = False,
        since: Position | None = None,
        join_leave: bool = False,
        recoverable: bool = False,
        info: bytes = b"",
        expire_at: int = 0,
        server_side: bool = False,
    ) -> SubscribeResult:
        """Subscribe `client` (permissions already checked) and return the result.

        With recovery, the missed publications are read and the client is added
        to the channel in the same loop turn, so no publication falls between.
        """
        name = channel.name
        if name in client.subscriptions:
            raise ReplyError(ErrorCode.ALREADY_SUBSCRIBED)
        opts = channel.options
        sub = Subscription(
            join_leave=opts.force_push_join_leave or (join_leave and opts.join_leave)
        )
        sub.info, sub.expire_at = info, expire_at
        client.subscriptions[name] = sub
        result = SubscribeResult()
        if expire_at:
            result.expires, result.ttl = True, max(0, expire_at - int(time.time()))
        try:
            chan_info = ClientInfo(
                user=client.user,
                client=client.id,
                conn_info=raw(client.info),
                chan_info=raw(info),
            )
            if opts.presence:
                await self.presence.add(name, chan_info)
            if opts.history_enabled and (opts.force_recovery or recoverable or server_side):
                await self._position_result(name, result, recover, since)
        except BaseException:
            client.subscriptions.pop(name, None)
            raise
        if client.closed or client.subscriptions.get(name) is not sub:
            raise ReplyError(ErrorCode.INTERNAL, "client went away while subscribing")
        self.hub.subscribe(name, client)
        sub.ready = True
        if opts.join_leave or opts.force_push_join_leave:
            self._push_to_channel(name, Push(channel=name, join=Join(info=chan_info)), client)
        self._emit(EventType.SUBSCRIBED, client, name)
        return result

    async def _position_result(
        self, name: str, result: SubscribeResult, recover: bool, since: Position | None
    ) -> None:
        result.recoverable = result.positioned = True
        if recover and since is not None:
            result.was_recovering = True
            try:
                pubs, top = await self.history.read(name, since)
            except UnrecoverablePosition:
                top = await self.history.position(name)
            else:
                result.recovered = True
                result.publications = pubs or None
        else:
            top = await self.history.position(name)
        result.epoch, result.offset = top.epoch, top.offset

    async def unsubscribe_client(
        self, client: Client, name: str, *, push: bool, code: int = 2000, reason: str = ""
    ) -> None:
        """Remove the subscription; with `push`, tell the client (server-side unsubscribe)."""
        if name not in client.subscriptions:
            return
        self._drop_subscription(client, name)
        if push:
            unsub = Unsubscribe(code=code, reason=reason or "server unsubscribe")
            client.reply(Reply(push=Push(channel=name, unsubscribe=unsub)))
        self._emit(EventType.UNSUBSCRIBED, client, name)

    def _drop_subscription(self, client: Client, name: str) -> None:
        sub = client.subscriptions.pop(name, None)
        if sub is None or not sub.ready:
            return
        self.hub.unsubscribe(name, client)
        try:
            channel = self.rules.resolve(name)
        except ReplyError:
            return
        opts = channel.options
        if opts.presence:
            # Presence removal is fire-and-forget: the memory store is instant and a
            # remote store must not hold up a disconnect.
            asyncio.get_running_loop().create_task(self.presence.remove(name, client.id))
        if opts.join_leave or opts.force_push_join_leave:
            info = ClientInfo(user=client.user, client=client.id, conn_info=raw(client.info))
            self._push_to_channel(name, Push(channel=name, leave=Leave(info=info)))

    def _push_to_channel(self, name: str, push: Push, skip: Client | None = None) -> None:
        data = self.codec.encode(Reply(push=push))
        for sub_client in list(self.hub.subscribers(name)):
            if sub_client is not skip and sub_client.subscriptions[name].join_leave:
                sub_client.enqueue(data)

    # --- publications ---------------------------------------------------------------

    async def publish(
        self,
        name: str,
        data: Raw,
        *,
        info: ClientInfo | None = None,
        tags: dict[str, str] | None = None,
        skip_history: bool = False,
    ) -> Position:
        """Store (if the channel keeps history) then deliver to every local subscriber."""
        opts = self.rules.resolve(name).options
        pub = Publication(data=data, info=info, tags=tags or None)
        position = Position(0, "")
        if opts.history_enabled and not skip_history:
            position = await self.history.append(name, pub, opts.history_size, opts.history_ttl)
        self.counters["publications"] += 1
        self.deliver(name, pub)
        if self.events.wants(EventType.PUBLISHED):
            self.events.emit(Event(EventType.PUBLISHED, channel=name, time=time.time()))
        return position

    def deliver(self, name: str, pub: Publication) -> int:
        """Encode `pub` once and queue the same bytes for every subscriber; returns the count."""
        subscribers = self.hub.subscribers(name)
        if not subscribers:
            return 0
        data = self.codec.encode(Reply(push=Push(channel=name, pub=pub)))
        count = 0
        for client in list(subscribers):
            client.enqueue(data)
            count += 1
        return count

    # --- server-side operations -----------------------------------------------------

    def user_clients(self, user: str, client_id: str = "") -> list[Client]:
        clients = self.hub.user_clients(user)
        return [c for c in clients if c.id == client_id] if client_id else clients

    async def subscribe_user(
        self, user: str, name: str, *, client_id: str = "", info: bytes = b"", data: bytes = b""
    ) -> None:
        channel = self.rules.resolve(name)
        for client in self.user_clients(user, client_id):
            if name in client.subscriptions:
                continue
            result = await self.subscribe_client(client, channel, info=info, server_side=True)
            push = Subscribe(
                recoverable=result.recoverable,
                epoch=result.epoch,
                offset=result.offset,
                positioned=result.positioned,
                data=raw(data),
            )
            client.reply(Reply(push=Push(channel=name, subscribe=push)))

    async def unsubscribe_user(self, user: str, name: str, *, client_id: str = "") -> None:
        self.rules.resolve(name)
        for client in self.user_clients(user, client_id):
            await self.unsubscribe_client(client, name, push=True)

    def disconnect_user(
        self,
        user: str,
        disconnect: Disconnect,
        *,
        client_id: str = "",
        whitelist: frozenset[str] = frozenset(),
    ) -> int:
        clients = [c for c in self.user_clients(user, client_id) if c.id not in whitelist]
        for client in clients:
            client.disconnect(disconnect)
        return len(clients)

    def refresh_user(
        self, user: str, *, client_id: str = "", expired: bool = False, expire_at: int = 0
    ) -> None:
        for client in self.user_clients(user, client_id):
            if expired:
                client.disconnect(codes.EXPIRED)
                continue
            client.set_expiry(expire_at)
            ttl = max(0, expire_at - int(time.time())) if expire_at else 0
            client.reply(Reply(push=Push(refresh=Refresh(expires=bool(expire_at), ttl=ttl))))

    def stats(self) -> dict[str, int]:
        return {
            "num_clients": self.hub.num_clients,
            "num_users": self.hub.num_users,
            "num_channels": self.hub.num_channels,
            "num_subs": self.hub.num_subs,
            "uptime": int(time.time() - self.started_at),
        }
