"""The node: owns the parts, their lifecycle, and the operations on channels.

Data path of one publication: `publish()` -> the broker (history append with
its offset, then every subscribed node, this one included) -> the broker port
-> the hub's local subscribers -> encoded once -> each client's outbox -> one
frame per loop turn. With `engine = "redis"` the broker, history, presence
and user register live in Redis, shared by every node of the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable

from msgspec import Raw

from tidings.broker.base import Broker
from tidings.broker.memory import MemoryBroker
from tidings.core.auth import TokenVerifier
from tidings.core.batches import PublicationBatches
from tidings.core.broadcast import PacedBroadcasts
from tidings.core.broker_port import NodeBrokerPort
from tidings.core.channels import ChannelRules
from tidings.core.client import Client
from tidings.core.commands import CommandHandler
from tidings.core.deadlines import Deadlines
from tidings.core.delivery import DeliveryLog
from tidings.core.engines import (
    Backends,
    local_history,
    memory_backends,
    redis_backends,
)
from tidings.core.events import Event, EventDispatcher, EventType
from tidings.core.flusher import Flusher
from tidings.core.heartbeat import PingWheel
from tidings.core.hub import Hub
from tidings.core.maps import MapChannels
from tidings.core.peers import Peers
from tidings.core.recovery import Recovery
from tidings.core.shared_poll import SharedPolls
from tidings.core.subscriptions import Subscriptions
from tidings.core.traffic import Traffic, time_store
from tidings.core.user_connections import UserConnections
from tidings.core.users import UserDirectory
from tidings.engine.redis import EngineUnavailable, RedisEngine
from tidings.errors import ConfigError, DisconnectError, ReplyError
from tidings.presence.base import PresenceStore
from tidings.protocol.centrifuge import codes
from tidings.protocol.centrifuge.codec import Codec
from tidings.protocol.centrifuge.codes import Disconnect, ErrorCode
from tidings.protocol.centrifuge.json_codec import JsonCodec
from tidings.protocol.centrifuge.messages import (
    ClientInfo,
    Publication,
)
from tidings.register.base import UserRegister
from tidings.settings import Settings, durable_wanted, personal_channel_name_format
from tidings.store.base import (
    HistoryStore,
    Position,
    StoreWriteError,
    StreamLimitReached,
)
from tidings.store.keyed_memory import MemoryKeyedStateStore
from tidings.store.keyed_redis import RedisKeyedStateStore
from tidings.transport.base import Transport
from tidings.upstream.coordinator import Coordinator
from tidings.upstream.user_events import UserEventSender

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 30.0
#: (topic, channel, data, publisher) -> awaitable done once the queue has the message.
QueueForward = Callable[[str, str, bytes, ClientInfo | None], Awaitable[None]]
#: (method, data, caller) -> the RPC's answer, or None if the method is not forwarded.
QueueRpc = Callable[[str, bytes, ClientInfo | None], Awaitable[bytes | None]]


_LIMIT_COUNTERS = frozenset(
    {
        "refused_connection_limit",
        "refused_channel_limit",
        "refused_command_rate",
        "refused_history_rate",
        "disconnected_command_abuse",
        "disconnected_slow",
        "refused_reply_size",
        "refused_stream_limit",
        "unrecovered_reply_size",
    }
)


class Node:
    """One tidings node. `start()` / `stop()` own the background work."""

    def __init__(
        self,
        settings: Settings,
        *,
        history: HistoryStore | None = None,
        presence: PresenceStore | None = None,
        broker: Broker | None = None,
        register: UserRegister | None = None,
    ) -> None:
        self.settings = settings
        self.uid = str(uuid.uuid4())
        self.name = settings.name or socket.gethostname()
        self.rules = ChannelRules(settings)
        self.hub = Hub()
        self.events = EventDispatcher()
        self.deliveries = DeliveryLog()
        backends = self._backends(settings, broker, history)
        #: The Redis engine when `engine = "redis"` (None: the memory engine).
        self.engine: RedisEngine | None = backends.engine
        self.broker: Broker = broker or backends.broker
        self.uid = self.broker.node_id  # control messages and the register name nodes by it
        self.history: HistoryStore = self.broker.history
        self.presence = presence or backends.presence
        self.register = register or backends.register
        self.peers = Peers(self)
        self.port = NodeBrokerPort(self)
        if isinstance(self.broker, MemoryBroker):
            # In-process delivery works before start() (tests drive nodes without it).
            self.broker.attach(self.port)
        self.traffic = Traffic()
        time_store(self.history, self.traffic.store_latency)
        self.verifier = TokenVerifier(
            settings.token_hmac_secret,
            rsa_public_key=settings.token_rsa_public_key,
            ecdsa_public_key=settings.token_ecdsa_public_key,
            audience=settings.token_audience,
            issuer=settings.token_issuer,
        )
        self.users = UserDirectory(
            self.events, settings.user_events_grace, self.hub.num_user_clients
        )
        if settings.personal_channel:
            try:
                self.rules.resolve(self.personal_channel("user"))
            except ReplyError as exc:
                raise ConfigError("personal_channel_format", exc.info.message) from None
        self._codec: Codec = JsonCodec()
        self.commands = CommandHandler(self)
        self.subscriptions = Subscriptions(self)
        self.user_connections = UserConnections(self)
        #: Proxies to the application back end (connect, subscribe, publish, RPC, ...).
        self.upstream = Coordinator(settings)
        self.pings = PingWheel(settings.client_ping_interval, settings.client_pong_timeout)
        #: Connection token expiry: one timer per second of expiry, not per connection.
        self.expiries: Deadlines[Client] = Deadlines(Client.check_expired)
        self.started_at = time.time()
        self.counters: dict[str, int] = {
            "connects": 0,
            "disconnects": 0,
            "publications": 0,
            "refused_connection_limit": 0,
            "refused_channel_limit": 0,
            "refused_command_rate": 0,
            "disconnected_command_abuse": 0,
            "disconnected_slow": 0,
            "refused_history_rate": 0,
            "refused_reply_size": 0,
            "refused_stream_limit": 0,
            "unrecovered_reply_size": 0,
            "disconnected_write_error": 0,
        }
        self.recovery = Recovery(self.history, self.counters)
        self.broadcasts = PacedBroadcasts()
        self._flusher: Flusher | None = None
        self.batches = PublicationBatches(self.hub, self._codec)
        self.maps = (
            MapChannels(self, MemoryKeyedStateStore())
            if self.engine is None
            else MapChannels(self, RedisKeyedStateStore(self.engine), self.broker)
        )
        self.shared_polls = SharedPolls(self)
        self._pending: set[Client] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.user_events: UserEventSender | None = None
        #: Connections refused before the upgrade, filled in by the client port.
        self.access_refusals: dict[str, int] = {}
        #: Set by the queue bridge (tidings.bridges): PUBs a client publication of a
        #: namespace with `queue_topic` to that topic; raises ReplyError when it cannot.
        self.queue_forward: QueueForward | None = None
        #: Set by the queue bridge: PUBs an RPC of a namespace in `queue_rpc_topics`;
        #: returns the RPC's answer, or None for a method it does not forward.
        self.queue_rpc: QueueRpc | None = None

    def _backends(
        self, settings: Settings, broker: Broker | None, history: HistoryStore | None
    ) -> Backends:
        if broker is None and settings.engine == "redis":
            return redis_backends(self.uid, settings)
        return memory_backends(self.uid, history or local_history(settings, self.rules))

    @property
    def codec(self) -> Codec:
        """The default (JSON) codec; publications are always encoded for it first."""
        return self._codec

    @codec.setter
    def codec(self, codec: Codec) -> None:
        self._codec = codec
        self.batches.json_codec = codec

    @property
    def flusher(self) -> Flusher:
        if self._flusher is None:
            self._flusher = Flusher(asyncio.get_running_loop(), self.batches.flush)
        return self._flusher

    # --- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        self.started_at = time.time()
        await self._start_broker()
        if self.settings.user_events_url and self.user_events is None:
            self.user_events = UserEventSender(
                self.events,
                self.settings.user_events_url,
                batch_size=self.settings.user_events_batch_size,
                queue_size=self.settings.user_events_queue_size,
            )
            self.user_events.start()
        self.events.start()
        self.pings.start()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep(), name="sweep")
        self.peers.start()

    async def _start_broker(self) -> None:
        """Connect the broker (fail fast); refuse durable channels on a Redis that loses writes."""
        try:
            await self.broker.start(self.port)
            if self.engine is None or not durable_wanted(self.settings):
                return
            durability = await self.broker.history.durability()  # type: ignore[attr-defined]
        except EngineUnavailable as exc:
            await self._close_backends()
            raise ConfigError("redis_address", str(exc)) from None
        if durability.problem and not self.settings.durable_allow_volatile:
            await self._close_backends()
            raise ConfigError(
                "durable_allow_volatile",
                f"{durability.problem}; durable channels are configured (personal_channel_durable"
                " or a durable namespace): set appendonly yes and appendfsync always in Redis,"
                " or durable_allow_volatile = true to accept the loss",
            )

    async def _close_backends(self) -> None:
        await self.broker.close()
        await self.presence.close()
        await self.register.close()
        await self.history.close()
        if self.engine is not None:
            await self.engine.close()

    async def stop(self, disconnect: Disconnect = codes.SHUTDOWN) -> None:
        """Disconnect every client with `disconnect` (3001) and stop background work."""
        self.batches.flush()  # publications of this turn go out before the close frames
        for client in list(self._pending) + list(self.hub.clients()):
            client.disconnect(disconnect)
        self.broadcasts.cancel()
        await self.pings.stop()
        self.expiries.close()
        self.users.close()
        if self.user_events is not None:
            await self.user_events.stop()
        await self.events.stop()
        await self.shared_polls.close()  # its polls use the upstream HTTP client
        await self.upstream.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.peers.stop()
        await self.maps.close()
        await self._close_backends()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            await self.history.sweep()

    # --- connections --------------------------------------------------------------

    def accept(self, transport: Transport, codec: Codec | None = None) -> Client:
        """A new transport connection; it has `client_stale_close_delay` to connect."""
        client = Client(self, transport, codec or self.codec)
        self._pending.add(client)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "client %s accepted from %s (%s)", client.id, transport.remote_addr, transport.name
            )
        client.start_stale_timer(self.settings.client_stale_close_delay)
        return client

    def personal_channel(self, user: str) -> str:
        return personal_channel_name_format(self.settings).format(user=user)

    def client_connected(self, client: Client) -> None:
        """Index a client whose connect succeeded; 3504 if its user has too many."""
        limit = self.settings.user_connection_limit
        if limit and client.user and self.hub.num_user_clients(client.user) >= limit:
            self.counters["refused_connection_limit"] += 1
            raise DisconnectError(codes.CONNECTION_LIMIT)
        self._pending.discard(client)
        self.hub.add(client)
        self.pings.add(client)
        self.counters["connects"] += 1
        self.users.connected(client.user, client.id)
        self.peers.connected(client)
        self.emit(EventType.CONNECTED, client)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("client %s connected: user %r, %s", client.id, client.user, client.name)

    def client_closed(self, client: Client) -> None:
        """Forget a closed client: its subscriptions, presence, and indexes."""
        self._pending.discard(client)
        self.pings.remove(client)
        if self.hub.client(client.id) is None:
            return
        self.hub.remove(client)
        self.counters["disconnects"] += 1
        for name in list(client.subscriptions):
            self.subscriptions.drop_subscription(client, name)
        self.users.disconnected(client.user, client.id)
        self.peers.disconnected(client)
        self.emit(EventType.DISCONNECTED, client)

    def emit(self, event_type: EventType, client: Client, channel: str = "") -> None:
        """Tell event listeners (user events, the cluster) what `client` did, if any listen."""
        if self.events.wants(event_type):
            self.events.emit(Event(event_type, client.id, client.user, channel, time.time()))

    # --- publications ---------------------------------------------------------------

    async def publish(
        self,
        name: str,
        data: Raw,
        *,
        info: ClientInfo | None = None,
        tags: dict[str, str] | None = None,
        skip_history: bool = False,
        idempotency_key: str = "",
        delta: bool = False,
    ) -> Position:
        """Store (if the channel keeps history) and deliver to every subscribed node.

        The broker appends and hands the publication to every node subscribed
        to the channel (this one too, through `NodeBrokerPort`) in one step.
        For a durable channel this returns only once the store has the
        publication under the channel's fsync policy; a store (or engine)
        failure raises ReplyError 100 and nothing is delivered. A repeated
        `idempotency_key` returns the first publication's position and
        delivers nothing.
        """
        opts = self.rules.resolve(name).options
        pub = Publication(data=data, info=info, tags=tags or None)
        size, ttl = 0, 0.0
        if opts.history_enabled and not skip_history:
            size, ttl = opts.history_size, opts.history_ttl
        try:
            position = await self.broker.publish(
                name,
                pub,
                size=size,
                ttl=ttl,
                idempotency_key=idempotency_key if size else "",
                delta=delta,
            )
        except StreamLimitReached as exc:
            self.counters["refused_stream_limit"] += 1
            raise ReplyError(ErrorCode.LIMIT_EXCEEDED, str(exc)) from None
        except StoreWriteError as exc:
            raise ReplyError(ErrorCode.INTERNAL, str(exc)) from None
        if pub.offset != position.offset:
            return position  # the store already had this idempotency key
        if position.offset:
            self.deliveries.stored(name, position.offset)
        self.counters["publications"] += 1
        if self.events.wants(EventType.PUBLISHED):
            self.events.emit(Event(EventType.PUBLISHED, channel=name, time=time.time()))
        return position

    def deliver(self, name: str, pub: Publication, delta: bool = False) -> int:
        """Queue `pub` for every local subscriber at the end of this loop turn.

        Returns the number of subscribers it is queued for. Publications of one
        turn are batched per channel (see `PublicationBatches`). With `delta` (or
        the namespace's `delta_publish`), delta subscribers may get it as a delta.
        """
        delta = delta or self.rules.resolve(name).options.delta_publish
        if not self.batches.add(name, pub, delta):
            return 0
        self.flusher.schedule()
        return self.hub.num_subscribers(name)

    def refusals(self) -> dict[str, int]:
        """Counts of everything a limit refused, for `info`."""
        refused = {k: v for k, v in self.counters.items() if k in _LIMIT_COUNTERS}
        refused.update(self.access_refusals)
        return refused

    def stats(self) -> dict[str, int]:
        return {
            "num_clients": self.hub.num_clients,
            "num_users": self.hub.num_users,
            "num_channels": self.hub.num_channels,
            "num_subs": self.hub.num_subs,
            "uptime": int(time.time() - self.started_at),
        }
