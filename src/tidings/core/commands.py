"""What each client command does: permission checks, then the node's work."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

import msgspec
from msgspec import Raw

from tidings import __version__
from tidings.core import deltas
from tidings.core.auth import TokenExpired, TokenInvalid, ttl_of
from tidings.core.emulation import is_emulated, session_of
from tidings.core.maps import MAP_TYPES
from tidings.core.outbox import REPLY_MARGIN, encoded_size
from tidings.errors import DisconnectError, ReplyError
from tidings.protocol.centrifuge import codes
from tidings.protocol.centrifuge.codes import Disconnect, ErrorCode
from tidings.protocol.centrifuge.messages import (
    Command,
    ConnectRequest,
    ConnectResult,
    HistoryResult,
    PingResult,
    PresenceResult,
    PresenceStatsResult,
    PublishResult,
    RefreshResult,
    Reply,
    RPCResult,
    SubRefreshResult,
    SubscribeRequest,
    UnsubscribeResult,
    raw,
)
from tidings.protocol.centrifuge.payload import InvalidPayload, compact_json
from tidings.protocol.centrifuge.tags_filter import (
    FilterError,
    Matcher,
    compile_filter,
    decode_filter,
)
from tidings.store.base import OutOfRange, Position, StoreWriteError, UnrecoverablePosition

if TYPE_CHECKING:
    from tidings.core.channels import Channel
    from tidings.core.client import Client
    from tidings.core.node import Node
    from tidings.upstream.coordinator import ProxiedConnect, ProxiedSubscribe

log = logging.getLogger(__name__)

Handler = Callable[["Client", Command], Awaitable[Reply | None]]

#: Subscribe request flag: error 112 instead of a subscription that could not recover.
SUBSCRIBE_FLAG_REJECT_UNRECOVERED = 2

#: Largest offset, limit or time a client may send: the stores keep signed 64-bit values.
MAX_WIRE_INT = 2**63 - 1


class CommandHandler:
    """Dispatches a client's commands by method name."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._handlers: dict[str, Handler] = {
            "connect": self.connect,
            "subscribe": self.subscribe,
            "unsubscribe": self.unsubscribe,
            "publish": self.publish,
            "presence": self.presence,
            "presence_stats": self.presence_stats,
            "history": self.history,
            "ping": self.ping,
            "send": self.send,
            "rpc": self.rpc,
            "refresh": self.refresh,
            "sub_refresh": self.sub_refresh,
        }

    async def handle(self, client: Client, method: str, command: Command) -> Reply | None:
        traffic = self.node.traffic
        traffic.commands[method] += 1
        try:
            return await self._handlers[method](client, command)
        except OutOfRange as exc:
            # An offset or limit beyond 64 bits that got past the decoder: the store
            # refused it before any I/O.
            traffic.errors[ErrorCode.BAD_REQUEST] += 1
            raise ReplyError(ErrorCode.BAD_REQUEST, str(exc)) from None
        except ReplyError as exc:
            traffic.errors[exc.code] += 1
            raise

    async def connect(self, client: Client, command: Command) -> Reply:  # noqa: PLR0915
        req = command.connect or ConnectRequest()
        node = self.node
        proxied: ProxiedConnect | None = None
        if req.token:
            try:
                claims = node.verifier.connection(req.token)
            except TokenExpired:
                raise ReplyError(ErrorCode.TOKEN_EXPIRED) from None
            except TokenInvalid:
                raise DisconnectError(codes.INVALID_TOKEN) from None
            if claims.expire_at and claims.expire_at <= time.time():
                raise ReplyError(ErrorCode.TOKEN_EXPIRED)
            if not claims.user and not node.settings.allow_anonymous:
                raise DisconnectError(codes.INVALID_TOKEN)
            client.user, client.info = claims.user, claims.info
            server_channels = claims.channels
            expire_at = claims.expire_at
        elif node.upstream.connect_enabled:
            proxied = await node.upstream.connect(client, req)
            client.user, client.info = proxied.user, proxied.info
            server_channels, expire_at = proxied.channels, proxied.expire_at
        elif node.settings.allow_anonymous:
            server_channels, expire_at = (), 0
        else:
            raise DisconnectError(codes.INVALID_TOKEN)
        for hint in (req.subs or {}).values():
            _position(hint)  # error 107 now, before the client is connected and indexed
        # Interned: SDK names and versions repeat across connections (a str each, else).
        client.name, client.version = sys.intern(req.name), sys.intern(req.version)
        client.connected()
        node.client_connected(client)
        client.set_expiry(expire_at)
        result = ConnectResult(
            client=client.id,
            version=__version__,
            ping=max(1, round(node.settings.client_ping_interval)),
            pong=client.codec.expects_pong,
            # As Centrifugo: emulated connections (HTTP-stream, SSE) name both in their
            # emulation requests; the server API selects unidirectional ones by session too.
            node=node.uid if is_emulated(client) else "",
            session=session_of(client),
        )
        if expire_at and not (proxied and proxied.server_refresh):
            result.expires, result.ttl = True, ttl_of(expire_at)
        if proxied is not None:
            result.data = raw(proxied.data)
        personal = ""
        if client.user and node.settings.personal_channel:
            personal = node.personal_channel(client.user)
            server_channels = (personal, *(c for c in server_channels if c != personal))
        if server_channels:
            result.subs = {}
            # Recoveries of all server-side channels share the connect reply's room.
            budget = client.outbox.limit - client.outbox.size - REPLY_MARGIN
            try:
                for name in server_channels:
                    channel = node.rules.resolve(name)
                    hint = (req.subs or {}).get(name) or SubscribeRequest()
                    since = _position(hint)
                    if name == personal and channel.options.history_enabled:
                        since = await self._inbox_position(client.user, name, since)
                    info, data = proxied.sub_options(name) if proxied else (b"", b"")
                    result.subs[name] = sub = await node.subscriptions.subscribe_client(
                        client,
                        channel,
                        recover=since is not None,
                        since=since,
                        server_side=True,
                        budget=budget,
                        newest_that_fit=name == personal,
                        info=info,
                    )
                    sub.data = raw(data)
                    budget -= encoded_size(sub.publications or [])
            except (ReplyError, StoreWriteError) as exc:
                # The client is already connected and indexed: an error reply would leave a
                # half-connected ghost (counted in user_status and the connection limit).
                raise DisconnectError(_server_side_failure(exc)) from None
            except OutOfRange:
                raise DisconnectError(codes.BAD_REQUEST) from None  # a hint beyond 64 bits
        return Reply(id=command.id, connect=result)

    async def _inbox_position(self, user: str, name: str, hint: Position | None) -> Position:
        """Where a user's inbox replay starts: the later of their ack and the client's hint."""
        top = await self.node.history.position(name)
        start = Position(0, top.epoch)
        ack = await self.node.history.acked(user, name)
        if ack is not None and ack.epoch == top.epoch:
            start = Position(min(ack.offset, top.offset), top.epoch)
        if (
            hint is not None
            and hint.epoch == top.epoch
            and start.offset < hint.offset <= top.offset
        ):
            start = hint
        first = await self.node.history.read(name, None, 1)
        if first[0] and first[0][0].offset > start.offset + 1:
            start = Position(first[0][0].offset - 1, top.epoch)  # older ones were trimmed
        elif not first[0]:
            start = Position(top.offset, top.epoch)
        return start

    async def subscribe(self, client: Client, command: Command) -> Reply:
        req = command.subscribe or SubscribeRequest()
        since = _position(req)
        channel = self.node.rules.resolve(req.channel)
        if req.channel in client.subscriptions:
            raise ReplyError(ErrorCode.ALREADY_SUBSCRIBED)
        info, expire_at = b"", 0
        proxied: ProxiedSubscribe | None = None
        if req.token:
            claims = self.node.verifier.subscription(req.token, channel.name, client.user)
            if claims.expire_at and claims.expire_at <= time.time():
                raise ReplyError(ErrorCode.TOKEN_EXPIRED)
            info, expire_at = claims.info, claims.expire_at
        elif (endpoint := self.node.upstream.subscribe_endpoint(channel)) is not None:
            proxied = await self.node.upstream.subscribe(client, channel, endpoint, req)
            info, expire_at = proxied.info, proxied.expire_at
        if proxied is None:
            self.node.rules.check_subscribe(channel, client.user, bool(req.token))
        if req.recover and not client.take_history_token():
            self.node.counters["refused_history_rate"] += 1
            raise ReplyError(ErrorCode.TOO_MANY_REQUESTS)
        deltas.check_type(req.delta)
        kind = channel.options.subscription_type
        matcher = _tags_filter(client, channel, req) if len(req.tf) else None
        if kind == "shared_poll":
            polled = await self.node.shared_polls.subscribe(
                client, channel, req, info=info, expire_at=expire_at
            )
            return Reply(id=command.id, subscribe=polled)
        if req.type or kind in MAP_TYPES:
            map_result = await self.node.maps.subscribe(
                client, channel, req, info=info, expire_at=expire_at
            )
            return Reply(id=command.id, subscribe=map_result)
        result = await self.node.subscriptions.subscribe_client(
            client,
            channel,
            recover=req.recover,
            since=since,
            join_leave=req.join_leave,
            recoverable=req.recoverable,
            info=info,
            expire_at=expire_at,
            reject_unrecovered=bool(req.flag & SUBSCRIBE_FLAG_REJECT_UNRECOVERED),
            tags_filter=matcher,
        )
        if proxied is not None:
            result.data = raw(proxied.data)
            if proxied.server_refresh:  # the node refreshes it, not the client
                result.expires, result.ttl = False, 0
        # A filtered subscriber misses publications that deltas are computed against.
        if matcher is None and deltas.negotiate(req.delta, channel.options, result):
            deltas.subscribed(self.node, client, channel.name, result)
        return Reply(id=command.id, subscribe=result)

    async def unsubscribe(self, client: Client, command: Command) -> Reply:
        name = command.unsubscribe.channel if command.unsubscribe else ""
        if not name:
            raise ReplyError(ErrorCode.BAD_REQUEST, "channel required")
        await self.node.subscriptions.unsubscribe_client(client, name, push=False)
        return Reply(id=command.id, unsubscribe=UnsubscribeResult())

    async def publish(self, client: Client, command: Command) -> Reply:
        req = command.publish
        assert req is not None
        channel = self.node.rules.resolve(req.channel)
        if not len(req.data) and not (req.removed and req.type):
            raise ReplyError(ErrorCode.BAD_REQUEST, "data required")
        if req.type or channel.options.subscription_type in MAP_TYPES:
            self.node.rules.check_publish(channel, client.user, req.channel in client.subscriptions)
            await self.node.maps.client_publish(client, channel, req)
            return Reply(id=command.id, publish=PublishResult())
        # Subscribers get payloads verbatim: see "Encodings" in docs/concepts.md.
        data = checked_payload(req.data, "data")
        endpoint = self.node.upstream.publish_endpoint(channel)
        if endpoint is not None:
            proxied = await self.node.upstream.publish(client, channel, endpoint, data)
            await self.node.publish(
                channel.name,
                proxied.data,
                info=client.client_info,
                tags=proxied.tags,
                skip_history=proxied.skip_history,
                idempotency_key=proxied.idempotency_key,
            )
            return Reply(id=command.id, publish=PublishResult())
        self.node.rules.check_publish(channel, client.user, req.channel in client.subscriptions)
        topic = channel.options.queue_topic
        if topic and self.node.queue_forward is not None:
            await self.node.queue_forward(topic, channel.name, data, client.client_info)
        await self.node.publish(channel.name, data, info=client.client_info)
        return Reply(id=command.id, publish=PublishResult())

    async def presence(self, client: Client, command: Command) -> Reply:
        name = command.presence.channel if command.presence else ""
        channel = self.node.rules.resolve(name)
        self.node.rules.check_presence(channel, name in client.subscriptions)
        clients = await self.node.presence.get(name)
        return Reply(id=command.id, presence=PresenceResult(presence=clients))

    async def presence_stats(self, client: Client, command: Command) -> Reply:
        name = command.presence_stats.channel if command.presence_stats else ""
        channel = self.node.rules.resolve(name)
        self.node.rules.check_presence(channel, name in client.subscriptions)
        num_clients, num_users = await self.node.presence.stats(name)
        return Reply(
            id=command.id,
            presence_stats=PresenceStatsResult(num_clients=num_clients, num_users=num_users),
        )

    async def history(self, client: Client, command: Command) -> Reply:
        req = command.history
        assert req is not None
        limit = _wire_int(req.limit, "limit", low=-1)
        since = (
            Position(_wire_int(req.since.offset, "since.offset"), req.since.epoch)
            if req.since
            else None
        )
        channel = self.node.rules.resolve(req.channel)
        self.node.rules.check_history(channel, req.channel in client.subscriptions)
        if not client.take_history_token():
            self.node.counters["refused_history_rate"] += 1
            raise ReplyError(ErrorCode.TOO_MANY_REQUESTS)
        try:
            pubs, top = await self.node.history.read(req.channel, since, limit, req.reverse)
        except UnrecoverablePosition as exc:
            raise ReplyError(ErrorCode.UNRECOVERABLE_POSITION, str(exc)) from None
        limit = client.outbox.limit
        if sum(len(pub.data) for pub in pubs) > limit:
            # Certainly too large (the payloads alone): refused before encoding it.
            client.node.counters["refused_reply_size"] += 1
            raise ReplyError(
                ErrorCode.LIMIT_EXCEEDED,
                f"history of {len(pubs)} publications exceeds client_queue_max_size ({limit}):"
                " ask with a smaller limit, then page with since",
            )
        result = HistoryResult(publications=pubs, epoch=top.epoch, offset=top.offset)
        return Reply(id=command.id, history=result)

    async def ping(self, client: Client, command: Command) -> Reply:
        return Reply(id=command.id, ping=PingResult())

    async def send(self, client: Client, command: Command) -> None:
        # Asynchronous messages go to an upstream handler; without one they are dropped.
        return None

    async def rpc(self, client: Client, command: Command) -> Reply:
        req = command.rpc
        assert req is not None
        if len(req.data):
            checked_payload(req.data, "data")
        if req.method == "ack":
            return Reply(id=command.id, rpc=RPCResult(data=raw(await self._ack(client, req.data))))
        if self.node.queue_rpc is not None:
            queued = await self.node.queue_rpc(req.method, bytes(req.data), client.client_info)
            if queued is not None:
                return Reply(id=command.id, rpc=RPCResult(data=raw(queued)))
        endpoint = self.node.upstream.rpc_endpoint(req.method)
        if endpoint is not None:
            data = await self.node.upstream.rpc(client, endpoint, req)
            return Reply(id=command.id, rpc=RPCResult(data=raw(data)))
        raise ReplyError(ErrorCode.NOT_AVAILABLE)

    async def _ack(self, client: Client, data: bytes) -> bytes:
        """RPC `ack` {"channel", "offset"}: the user has everything up to offset."""
        try:
            req = _ACK_DECODER.decode(data or b"{}")
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ReplyError(ErrorCode.BAD_REQUEST, f"ack: {exc}") from None
        if not client.user:
            raise ReplyError(ErrorCode.PERMISSION_DENIED, "anonymous clients cannot ack")
        channel = self.node.rules.resolve(req.channel)
        if not channel.options.history_enabled:
            raise ReplyError(ErrorCode.NOT_AVAILABLE, "channel keeps no history to ack")
        if req.channel not in client.subscriptions:
            raise ReplyError(ErrorCode.PERMISSION_DENIED, "not subscribed")
        top = await self.node.history.position(req.channel)
        if req.offset > top.offset:
            raise ReplyError(ErrorCode.BAD_REQUEST, f"offset {req.offset} is beyond {top.offset}")
        ack = await self.node.history.ack(
            client.user, req.channel, Position(req.offset, top.epoch), client.id
        )
        return msgspec.json.encode({"channel": req.channel, "offset": ack.offset})

    async def refresh(self, client: Client, command: Command) -> Reply:
        token = command.refresh.token if command.refresh else ""
        if not token:
            raise ReplyError(ErrorCode.BAD_REQUEST, "token required")
        try:
            claims = self.node.verifier.connection(token)
        except TokenExpired:
            raise ReplyError(ErrorCode.TOKEN_EXPIRED) from None
        except TokenInvalid:
            raise DisconnectError(codes.INVALID_TOKEN) from None
        if claims.user != client.user:
            raise DisconnectError(codes.INVALID_TOKEN)
        client.set_expiry(claims.expire_at)
        result = RefreshResult()
        if claims.expire_at:
            result.expires, result.ttl = True, ttl_of(claims.expire_at)
        return Reply(id=command.id, refresh=result)

    async def sub_refresh(self, client: Client, command: Command) -> Reply:
        req = command.sub_refresh
        assert req is not None
        if req.type:
            shared = await self.node.shared_polls.refresh(client, req)
            return Reply(id=command.id, sub_refresh=shared)
        sub = client.subscriptions.get(req.channel)
        if sub is None:
            raise ReplyError(ErrorCode.PERMISSION_DENIED, "not subscribed")
        claims = self.node.verifier.subscription(req.token, req.channel, client.user)
        if claims.expire_at and claims.expire_at <= time.time():
            raise ReplyError(ErrorCode.TOKEN_EXPIRED)
        watched = bool(sub.expire_at)
        sub.expire_at = claims.expire_at
        if claims.expire_at and not watched:
            client.watch_subscription_expiry(req.channel, claims.expire_at)
        result = SubRefreshResult()
        if claims.expire_at:
            result.expires, result.ttl = True, ttl_of(claims.expire_at)
        return Reply(id=command.id, sub_refresh=result)


class AckRequest(msgspec.Struct, forbid_unknown_fields=True):
    channel: str
    offset: Annotated[int, msgspec.Meta(ge=0, le=MAX_WIRE_INT)]


_ACK_DECODER = msgspec.json.Decoder(AckRequest)


def checked_payload(data: bytes, field: str) -> Raw:
    """`data` (a payload from a client or the API) as compact JSON; error 107 if invalid.

    Every payload is checked here, once, where it enters: it is then stored
    and relayed as these bytes (see `tidings.protocol.centrifuge.payload`).
    """
    try:
        return Raw(compact_json(data))
    except InvalidPayload as exc:
        raise ReplyError(ErrorCode.BAD_REQUEST, f"{field}: {exc}") from None


def _wire_int(value: int, field: str, low: int = 0) -> int:
    """An integer from a client, within what the stores hold; error 107 naming it if not."""
    if not low <= value <= MAX_WIRE_INT:
        raise ReplyError(ErrorCode.BAD_REQUEST, f"{field} must be {low} to {MAX_WIRE_INT}")
    return value


def _tags_filter(client: Client, channel: Channel, req: SubscribeRequest) -> Matcher | None:
    """The subscriber's compiled tags filter; error 107 (as Centrifugo) if it may not have it."""
    try:
        node = decode_filter(bytes(req.tf), client.codec.binary)
        if node is None:
            return None
        if not channel.options.allow_tags_filter:
            raise FilterError("tags filter not allowed")
        if channel.options.subscription_type != "stream" or req.type:
            raise FilterError("tags filter on a map or shared poll subscription")
        return compile_filter(node)
    except FilterError as exc:
        log.info("subscribe to %r by %r refused: %s", channel.name, client.id, exc)
        raise ReplyError(ErrorCode.BAD_REQUEST) from None


def _position(req: SubscribeRequest) -> Position | None:
    if not req.recover:
        return None
    return Position(_wire_int(req.offset, "offset"), req.epoch)


def _server_side_failure(exc: ReplyError | StoreWriteError) -> Disconnect:
    """How a connect whose server-side subscriptions failed ends."""
    if isinstance(exc, StoreWriteError) or exc.code == ErrorCode.INTERNAL:
        return codes.SERVER_ERROR  # the engine (Redis) is down: the SDK reconnects later
    return codes.CHANNEL_LIMIT if exc.code == ErrorCode.LIMIT_EXCEEDED else codes.INVALID_TOKEN
