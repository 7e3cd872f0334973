"""The bridges a node runs, made from its settings, started and stopped with it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tidings.bridges.inbound import QueueInbound
from tidings.bridges.upstream import QueueUpstream

if TYPE_CHECKING:
    from tidings.core.node import Node


class NodeBridges:
    def __init__(self, node: Node) -> None:
        settings = node.settings
        self.inbound = [QueueInbound(node, options) for options in settings.queue_consume]
        self.upstream: QueueUpstream | None = None
        if settings.queue_publish_address:
            self.upstream = QueueUpstream(
                settings.queue_publish_address,
                max_pending=settings.queue_publish_max_pending,
                rpc_topics=settings.queue_rpc_topics,
            )
            node.queue_forward = self.upstream.forward
            if settings.queue_rpc_topics:
                node.queue_rpc = self.upstream.forward_rpc

    def start(self) -> None:
        if self.upstream is not None:
            self.upstream.start()
        for inbound in self.inbound:
            inbound.start()

    async def stop(self) -> None:
        """Stop consuming first (no new publications), then the upstream producer."""
        for inbound in self.inbound:
            await inbound.stop()
        if self.upstream is not None:
            await self.upstream.stop()
