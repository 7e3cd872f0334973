"""Clients subscribed to channels on this node: broker, presence, recovery, hub.

`Node.subscriptions` subscribes a client whose permissions are already checked
(client commands, server-side subscriptions, map and shared poll channels) and
releases the channel in the broker when its last local subscriber goes.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from tidings.broker.memory import MemoryBroker
from tidings.core.auth import ttl_of
from tidings.core.channels import Channel
from tidings.core.client import Client, Subscription
from tidings.core.events import EventType
from tidings.core.outbox import REPLY_MARGIN
from tidings.errors import ReplyError
from tidings.protocol.centrifuge.codes import ErrorCode
from tidings.protocol.centrifuge.messages import (
    ClientInfo,
    Push,
    Reply,
    SubscribeResult,
    Unsubscribe,
    raw,
)
from tidings.store.base import Position, StoreWriteError

if TYPE_CHECKING:
    from tidings.core.node import Node
    from tidings.protocol.centrifuge.tags_filter import Matcher


class Subscriptions:
    """Subscribes this node's clients to channels and unsubscribes them."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def subscribe_client(  # noqa: PLR0915 - one sequence, kept together for the race
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
        budget: int | None = None,
        newest_that_fit: bool = False,
        reject_unrecovered: bool = False,
        tags_filter: Matcher | None = None,
    ) -> SubscribeResult:
        """Subscribe `client` (permissions already checked) and return the result.

        With recovery, the missed publications are read and the client is added
        to the channel in the same loop turn, so no publication falls between.
        Recovered publications must fit in `budget` bytes (by default what the
        client's outbox has left): more is not recovered (`recovered: false`,
        positioned at the top), so that a reply never exceeds the outbox bound;
        the client then pages through history itself. With `newest_that_fit`
        (an inbox replay) the oldest are left out instead, as if trimmed. With a
        `tags_filter`, only the publications it matches are sent, recovered or live.
        """
        name = channel.name
        if name in client.subscriptions:
            raise ReplyError(ErrorCode.ALREADY_SUBSCRIBED)
        limit = self.node.settings.client_channel_limit
        if limit and len(client.subscriptions) >= limit:
            self.node.counters["refused_channel_limit"] += 1
            raise ReplyError(ErrorCode.LIMIT_EXCEEDED, f"more than {limit} channels")
        opts = channel.options
        sub = Subscription(
            join_leave=opts.force_push_join_leave or (join_leave and opts.join_leave)
        )
        sub.info, sub.expire_at, sub.server_side = info, expire_at, server_side
        sub.tags_filter = tags_filter
        client.subscriptions[name] = sub
        result = SubscribeResult()
        if expire_at:
            result.expires, result.ttl = True, ttl_of(expire_at)
        held = False
        try:
            chan_info = ClientInfo(
                user=client.user,
                client=client.id,
                conn_info=raw(client.info),
                chan_info=raw(info),
            )
            # Subscribed in the engine before the history read: no publication falls between.
            await self.node.broker.subscribe(name)
            held = True
            if opts.presence:
                await self.node.presence.add(name, chan_info)
            if opts.history_enabled and (opts.force_recovery or recoverable or server_side):
                if budget is None:
                    budget = client.outbox.limit - client.outbox.size - REPLY_MARGIN
                await self.node.recovery.fill(
                    name,
                    result,
                    since if recover else None,
                    budget=budget,
                    newest_that_fit=newest_that_fit,
                )
                if reject_unrecovered and recover and not result.recovered:
                    # The client asked to be refused instead (subscribe flag 2): it
                    # then gets its state afresh (error 112, as Centrifugo).
                    if opts.presence:
                        await self.node.presence.remove(name, client.id)
                    raise ReplyError(ErrorCode.UNRECOVERABLE_POSITION)
                sub.epoch, sub.floor = result.epoch, result.offset
                if tags_filter is not None and result.publications:
                    # As Centrifugo: recovered, but without what the filter excludes.
                    result.publications = [
                        pub for pub in result.publications if tags_filter(pub.tags)
                    ]
                if result.recovered and since is not None:
                    # As Centrifugo: a recovered result carries the offset asked for; its
                    # publications bring the client to the top.
                    result.offset = since.offset
        except BaseException as exc:
            client.subscriptions.pop(name, None)
            if held:
                self._release(name)
            if isinstance(exc, StoreWriteError):
                raise ReplyError(ErrorCode.INTERNAL, str(exc)) from None
            raise
        if client.closed or client.subscriptions.get(name) is not sub:
            self._release(name)
            if opts.presence:
                await self.node.presence.remove(name, client.id)
            raise ReplyError(ErrorCode.INTERNAL, "client went away while subscribing")
        self.node.hub.subscribe(name, client)
        self.node.batches.subscribed(name, client)
        if tags_filter is not None:
            self.node.batches.filter_added(name, client, tags_filter)
        sub.ready = True
        if result.publications:
            # Recovered (e.g. an inbox replayed on connect) is delivered too.
            for recovered in result.publications:
                self.node.deliveries.delivered(name, recovered.offset, [client.id])
        if expire_at:
            client.watch_subscription_expiry(name, expire_at)
        if opts.join_leave or opts.force_push_join_leave:
            self.node.peers.spawn(self.node.broker.publish_join(name, chan_info), "join")
        if self.node.maps.presence.tracked(channel):
            await self.node.maps.presence.joined(client, channel, info)
        self.node.emit(EventType.SUBSCRIBED, client, name)
        return result

    async def unsubscribe_client(
        self, client: Client, name: str, *, push: bool, code: int = 2000, reason: str = ""
    ) -> None:
        """Remove the subscription; with `push`, tell the client (server-side unsubscribe)."""
        if name not in client.subscriptions:
            return
        self.drop_subscription(client, name)
        if push:
            unsub = Unsubscribe(code=code, reason=reason or "server unsubscribe")
            client.reply(Reply(push=Push(channel=name, unsubscribe=unsub)))
        self.node.emit(EventType.UNSUBSCRIBED, client, name)

    def drop_subscription(self, client: Client, name: str) -> None:
        sub = client.subscriptions.pop(name, None)
        if sub is None or not sub.ready:
            return
        self.node.hub.unsubscribe(name, client)
        if sub.tags_filter is not None:
            self.node.batches.filter_removed(name, client)
        if sub.delta and not self.node.hub.num_subscribers(name):
            self.node.batches.forget(name)
        self._release(name)
        try:
            channel = self.node.rules.resolve(name)
        except ReplyError:
            return
        opts = channel.options
        if self.node.maps.presence.tracked(channel):
            self.node.maps.presence.left(client, channel)
        if opts.presence:
            # Presence removal is fire-and-forget: the memory store is instant and a
            # remote store must not hold up a disconnect.
            asyncio.get_running_loop().create_task(self.node.presence.remove(name, client.id))
        if opts.join_leave or opts.force_push_join_leave:
            info = ClientInfo(
                user=client.user,
                client=client.id,
                conn_info=raw(client.info),
                chan_info=raw(sub.info),
            )
            self.node.peers.spawn(self.node.broker.publish_leave(name, info), "leave")

    def _release(self, name: str) -> None:
        """One local subscriber of `name` fewer in the broker (in the background)."""
        if isinstance(self.node.broker, MemoryBroker):
            self.node.broker.release(name)
            if not self.node.broker.subscribers(name):
                self.node.port.forget(name)
            return
        self.node.peers.spawn(self._unsubscribe_broker(name), "broker unsubscribe")

    async def _unsubscribe_broker(self, name: str) -> None:
        await self.node.broker.unsubscribe(name)
        if not self.node.broker.subscribers(name):
            self.node.port.forget(name)
