"""The Redis broker: nodes joined by Redis PUB/SUB, publications appended by one script.

A publication with history runs the append script of
`tidings.store.redis_streams`, which assigns the offset, trims the stream
and PUBLISHes (SPUBLISH in a cluster) the publication with its position,
all in one atomic step on the server that owns the channel. Redis delivers
the messages of one channel in the order it executed them, so every node
sees a channel's offsets in order.

Each channel's PUB/SUB traffic stays on the server (shard, or cluster
primary of the channel's slot) that holds its keys; this node keeps one
`PubSubListener` per such server and subscribes only to channels that
have local subscribers. Control messages travel on one more channel,
`<prefix>.control{...}`, which every node subscribes to; they are msgspec
structs (`ControlMessage`, msgpack) naming their sender and target.

In a Redis Cluster a channel's slot may move to another primary (failover
of a dead primary, manual failover, slot migration). The channels a
listener loses that way (the server drops them, refuses them, or the
listener's primary is gone) are moved: the broker re-reads the slot table,
subscribes them on the primary that owns them now (retrying with a
growing delay while the cluster settles) and then reports them through
`on_resubscribed`, so the node makes their subscribers recover the gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from functools import partial

import msgspec
from redis.asyncio import Redis

from tidings.broker.base import Broker, BrokerPort
from tidings.broker.redis_listener import ListenerUnavailable, PubSubListener
from tidings.engine.redis import EngineUnavailable, LuaScript, RedisEngine
from tidings.engine.redis_codec import (
    decode_info,
    decode_publication,
    encode_info,
    encode_publication,
)
from tidings.protocol.centrifuge.messages import ClientInfo, Publication
from tidings.store.base import Position, StoreWriteError
from tidings.store.redis import RedisHistoryStore
from tidings.store.redis_streams import (
    KIND_DELTA_PUBLICATION,
    KIND_JOIN,
    KIND_LEAVE,
    KIND_PUBLICATION,
    MESSAGE_VERSION,
    RedisStreams,
    pubsub_channel,
)

log = logging.getLogger(__name__)

#: The pseudo channel whose shard and PUB/SUB name carry control messages.
CONTROL = "\x00control"
KIND_CONTROL = b"c"
_NO_POSITION = Position(0, "")
#: Delays between attempts to move channels whose slot moved (seconds, growing).
MIN_MOVE_DELAY = 0.05
MAX_MOVE_DELAY = 1.0

# KEYS: the PUB/SUB channel (declared, so a cluster routes it to its slot).
# ARGV: PUBLISH or SPUBLISH, the message.
PUBLISH = LuaScript("return redis.call(ARGV[1], KEYS[1], ARGV[2])")


class ControlMessage(msgspec.Struct, array_like=True):
    """A command between nodes: `target` empty means every node but the sender."""

    version: int
    sender: str
    target: str
    data: bytes


_encode_control = msgspec.msgpack.Encoder().encode
_decode_control = msgspec.msgpack.Decoder(ControlMessage).decode


def _message(kind: bytes, body: bytes) -> bytes:
    return MESSAGE_VERSION + kind + b":0::" + body


class RedisBroker(Broker):
    """A `Broker` on a `RedisEngine` (one server, shards, or a cluster)."""

    def __init__(
        self,
        engine: RedisEngine,
        *,
        node_id: str = "",
        clock: Callable[[], float] = time.time,
        wait_replicas: int = 0,
        wait_timeout: float = 0.5,
        ping_interval: float = 1.0,
    ) -> None:
        self.engine = engine
        self.node_id = node_id or str(uuid.uuid4())
        self.streams = RedisStreams(
            engine, clock, wait_replicas=wait_replicas, wait_timeout=wait_timeout
        )
        self.history = RedisHistoryStore(self.streams)
        self.ping_interval = ping_interval
        self.port: BrokerPort | None = None
        self._refs: dict[str, int] = {}
        self._names: dict[bytes, str] = {}
        self._listeners: dict[Redis, PubSubListener] = {}
        self._starting: dict[Redis, asyncio.Future[None]] = {}
        self._control = pubsub_channel(engine.prefix, CONTROL).encode()
        self._command = "SPUBLISH" if engine.sharded_pubsub else "PUBLISH"
        #: PUB/SUB names whose slot moved, to subscribe on their new primary.
        self._moving: set[bytes] = set()
        self._mover: asyncio.Task[None] | None = None

    # --- lifecycle -----------------------------------------------------------------

    async def start(self, port: BrokerPort) -> None:
        self.port = port
        await self.engine.check()
        listener = await self._listener_for(CONTROL)
        await self._confirm(CONTROL, listener, self._control)

    async def close(self) -> None:
        self.port = None
        if self._mover is not None:
            self._mover.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._mover
        for listener in self._listeners.values():
            await listener.close()
        self._listeners.clear()

    async def _listener_for(self, channel: str) -> PubSubListener:
        """The listener of the server that holds `channel` (started on first use)."""
        client = await self.engine.primary_for(channel)
        listener = self._listeners.get(client)
        if listener is None:
            listener = PubSubListener(
                client,
                sharded=self.engine.sharded_pubsub,
                on_message=self._on_message,
                on_lost=partial(self._on_lost, channel, client),
                on_restored=self._on_restored,
                on_moved=self._relocate,
                ping_interval=self.ping_interval,
            )
            self._listeners[client] = listener
            self._starting[client] = asyncio.ensure_future(
                self.engine.call(channel, listener.start)
            )
        starting = self._starting.get(client)
        if starting is not None:
            try:
                await asyncio.shield(starting)
            except BaseException:
                if self._listeners.get(client) is listener:
                    del self._listeners[client]
                    self._starting.pop(client, None)
                raise
            self._starting.pop(client, None)
        return listener

    async def _confirm(self, channel: str, listener: PubSubListener, name: bytes) -> None:
        try:
            await asyncio.wait_for(
                listener.want(name), timeout=self.engine.settings.command_timeout
            )
        except (ListenerUnavailable, TimeoutError) as exc:
            raise EngineUnavailable(
                f"{self.engine.where(channel)} is unavailable: cannot subscribe ({exc})"
            ) from None

    # --- publishing ----------------------------------------------------------------

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
        if size > 0 and ttl > 0:
            return await self.streams.append(
                channel, pub, size, ttl, idempotency_key, publish=True, delta=delta
            )
        kind = KIND_DELTA_PUBLICATION if delta else KIND_PUBLICATION
        await self._publish(channel, _message(kind, encode_publication(pub)))
        return _NO_POSITION

    async def publish_join(self, channel: str, info: ClientInfo) -> None:
        await self._publish(channel, _message(KIND_JOIN, encode_info(info)))

    async def publish_leave(self, channel: str, info: ClientInfo) -> None:
        await self._publish(channel, _message(KIND_LEAVE, encode_info(info)))

    async def publish_control(self, data: bytes, node_id: str = "") -> None:
        body = _encode_control(ControlMessage(1, self.node_id, node_id, data))
        await self._publish(CONTROL, _message(KIND_CONTROL, body))

    async def _publish(self, channel: str, message: bytes) -> None:
        # A script, like the append, so that it travels in the same per-turn pipeline:
        # what one node sends to a channel in one turn keeps its order.
        name = pubsub_channel(self.engine.prefix, channel)
        run = partial(self.engine.run, channel, PUBLISH, [name], [self._command, message])
        await self.engine.call(channel, run)

    # --- subscriptions -------------------------------------------------------------

    async def subscribe(self, channel: str) -> None:
        name = pubsub_channel(self.engine.prefix, channel).encode()
        self._refs[channel] = self._refs.get(channel, 0) + 1
        self._names[name] = channel
        try:
            listener = await self._listener_for(channel)
            await self._confirm(channel, listener, name)
        except BaseException:
            await self.unsubscribe(channel)
            raise

    async def unsubscribe(self, channel: str) -> None:
        count = self._refs.get(channel, 0)
        if count > 1:
            self._refs[channel] = count - 1
            return
        if count == 0:
            return
        del self._refs[channel]
        name = pubsub_channel(self.engine.prefix, channel).encode()
        self._names.pop(name, None)
        for listener in self._listeners.values():
            if name in listener.wanted:
                listener.drop(name)

    def subscribers(self, channel: str) -> int:
        return self._refs.get(channel, 0)

    # --- what the listeners hear ---------------------------------------------------

    def _on_message(self, name: bytes, data: bytes) -> None:
        port = self.port
        if port is None:
            return
        try:
            head, offset, epoch, body = data.split(b":", 3)
        except ValueError:
            log.warning("malformed broker message on %r", name)
            return
        if head[:1] != MESSAGE_VERSION:
            log.warning("broker message of unknown version %r on %r", head[:1], name)
            return
        kind = head[1:]
        try:
            if name == self._control:
                if kind == KIND_CONTROL:
                    control = _decode_control(body)
                    if control.sender != self.node_id and control.target in ("", self.node_id):
                        port.on_control(control.data)
                return
            channel = self._names.get(name)
            if channel is None:
                return  # unsubscribed meanwhile
            if kind in (KIND_PUBLICATION, KIND_DELTA_PUBLICATION):
                pub = decode_publication(body)
                position = Position(int(offset), epoch.decode())
                if position.offset:
                    pub.offset = position.offset
                    self.streams.learn(channel, position)
                port.on_publication(channel, pub, position, kind == KIND_DELTA_PUBLICATION)
            elif kind == KIND_JOIN:
                port.on_join(channel, decode_info(body))
            elif kind == KIND_LEAVE:
                port.on_leave(channel, decode_info(body))
        except (msgspec.DecodeError, ValueError) as exc:
            log.warning("undecodable broker message on %r: %s", name, exc)

    def _on_lost(self, channel: str, client: Redis, error: str) -> None:
        if self.port is not None:
            self.port.on_lost_connection(f"{self.engine.where(channel)}: {error}")
        listener = self._listeners.get(client)
        if self.engine.sharded_pubsub and listener is not None:
            # The primary may be gone for good (its replica takes over elsewhere).
            self._relocate(list(listener.wanted))

    # --- channels whose slot moved (Redis Cluster) -----------------------------------

    def _relocate(self, names: Iterable[bytes]) -> None:
        """Subscribe `names` again on whichever primary owns their slot (in the background)."""
        self._moving.update(names)
        idle = self._mover is None or self._mover.done()
        if self._moving and idle and self.port is not None:
            self._mover = asyncio.get_running_loop().create_task(self._move(), name="slot moves")

    async def _move(self) -> None:
        delay = MIN_MOVE_DELAY
        while self._moving and self.port is not None:
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_MOVE_DELAY)
            try:
                await self.engine.refresh_topology()
            except EngineUnavailable as exc:
                log.info("channels wait for the cluster to settle: %s", exc)
                continue
            names, self._moving = self._moving, set()
            try:
                moved = await asyncio.gather(*(self._move_one(name) for name in names))
            except Exception:  # a bug must not end the moves for good
                log.exception("moving channels to their new primary failed")
                self._moving.update(names)
                continue
            self._close_idle_listeners()
            channels = [c for c in moved if c is not None and c != CONTROL]
            if channels and self.port is not None:
                self.port.on_resubscribed(channels)
            if not self._moving:
                delay = MIN_MOVE_DELAY

    async def _move_one(self, name: bytes) -> str | None:
        """Subscribe `name` on its primary now; the channel, or None (retried later or gone)."""
        channel = CONTROL if name == self._control else self._names.get(name)
        if channel is None:
            return None  # unsubscribed meanwhile
        try:
            listener = await self._listener_for(channel)
            for other in list(self._listeners.values()):
                if other is not listener and name in other.wanted:
                    other.drop(name)
            await self._confirm(channel, listener, name)
        except StoreWriteError:  # EngineUnavailable, or a refusal while the cluster settles
            self._moving.add(name)
            return None
        return channel

    def _close_idle_listeners(self) -> None:
        """Stop listeners the moves left with nothing to listen to (a dead primary, or one
        that became a replica); a listener is started again when a channel needs it."""
        for client, listener in list(self._listeners.items()):
            if not listener.wanted and client not in self._starting:
                del self._listeners[client]
                asyncio.get_running_loop().create_task(listener.close())

    def _on_restored(self, names: list[bytes]) -> None:
        if self.port is None:
            return
        channels = [self._names[name] for name in names if name in self._names]
        self.port.on_resubscribed(channels)
