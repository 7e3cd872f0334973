"""What the broker may tell the node: publications, joins, leaves, commands, outages.

Publications are delivered to local subscribers as they come, in offset
order. An offset that skips ahead (a gap: messages the engine dropped while
this node's connection to it was lost) or an `on_resubscribed` after an
outage makes every local subscription of the channel recover: the client is
told to resubscribe (unsubscribe push with code 2500, which SDKs answer by
subscribing again with `recover`), or, for server-side subscriptions which
the client cannot resubscribe by itself, it is disconnected with 3010 and
reconnects with its positions. Nothing is silently skipped.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import TYPE_CHECKING

from tidings.core.batches import EncodedOnce
from tidings.core.delivery import MAX_CLIENTS
from tidings.protocol.centrifuge import codes
from tidings.protocol.centrifuge.messages import (
    ClientInfo,
    Join,
    Leave,
    Publication,
    Push,
    Reply,
    Unsubscribe,
)
from tidings.store.base import Position

if TYPE_CHECKING:
    from tidings.core.client import Client
    from tidings.core.node import Node

log = logging.getLogger(__name__)

#: Unsubscribe push code that makes SDKs subscribe again, recovering (>= 2500).
RESUBSCRIBE = Unsubscribe(code=2500, reason="insufficient state")


class NodeBrokerPort:
    """The node's `BrokerPort`: it holds the node, the broker holds only this."""

    def __init__(self, node: Node) -> None:
        self.node = node
        #: channel -> last position delivered here (only while subscribed)
        self.positions: dict[str, Position] = {}
        self.lost = 0
        self.resyncs = 0

    def on_publication(
        self, channel: str, pub: Publication, position: Position, delta: bool = False
    ) -> None:
        node = self.node
        if pub.version and node.shared_polls.published(channel, pub):
            return  # a shared_poll_publish: for the trackers of its key only
        if position.offset:
            last = self.positions.get(channel)
            self.positions[channel] = position
            if last is not None and last.epoch == position.epoch:
                if position.offset <= last.offset:
                    return  # already delivered here (a repeat from the engine)
                if position.offset > last.offset + 1:
                    # Something fell between: deliver nothing older than the gap silently.
                    self.resync(channel)
                    return
        count = node.deliver(channel, pub, delta=delta)
        node.traffic.deliveries += count
        if count and pub.offset:
            clients = [c.id for c in itertools.islice(node.hub.subscribers(channel), MAX_CLIENTS)]
            node.deliveries.delivered(channel, pub.offset, clients)

    def on_join(self, channel: str, info: ClientInfo) -> None:
        # The joiner gets its own join too, as from Centrifugo (it follows the subscribe reply).
        self._push(channel, Push(channel=channel, join=Join(info=info)), "")

    def on_leave(self, channel: str, info: ClientInfo) -> None:
        self._push(channel, Push(channel=channel, leave=Leave(info=info)), info.client)

    def _push(self, name: str, push: Push, skip: str) -> None:
        encoded = EncodedOnce(Reply(push=push))
        for client in list(self.node.hub.subscribers(name)):
            sub = client.subscriptions.get(name)
            if client.id != skip and sub is not None and sub.join_leave:
                client.enqueue(encoded.get(client.codec))

    def on_control(self, data: bytes) -> None:
        self.node.peers.handle(data)

    def on_lost_connection(self, error: str) -> None:
        self.lost += 1
        log.warning("lost the engine: %s (deliveries stop until it returns)", error)

    def on_resubscribed(self, channels: list[str]) -> None:
        log.warning("engine back: %d channels resubscribed, recovering them", len(channels))
        for channel in channels:
            self.resync(channel)

    def forget(self, channel: str) -> None:
        """This node no longer receives `channel`."""
        self.positions.pop(channel, None)

    def resync(self, channel: str) -> None:
        """Make every local subscription of `channel` that keeps history recover."""
        self.positions.pop(channel, None)
        try:
            options = self.node.rules.resolve(channel).options
        except Exception:
            return
        if not options.history_enabled:
            return  # nothing to recover from: live delivery simply resumes
        self.resyncs += 1
        for client in list(self.node.hub.subscribers(channel)):
            self._resubscribe(client, channel)

    def _resubscribe(self, client: Client, channel: str) -> None:
        sub = client.subscriptions.get(channel)
        if sub is None or client.closed:
            return
        if sub.server_side:
            client.disconnect(codes.INSUFFICIENT_STATE)
            return
        asyncio.get_running_loop().create_task(
            self.node.subscriptions.unsubscribe_client(
                client, channel, push=True, code=RESUBSCRIBE.code, reason=RESUBSCRIBE.reason
            )
        )
