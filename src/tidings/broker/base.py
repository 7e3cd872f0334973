"""The broker interface: publications, joins, leaves and commands between nodes.

Delivery guarantee (checked by `tidings.testing.check_broker`):

- `publish` with history (size > 0, ttl > 0) appends the publication to the
  channel's stream *and* hands it to PUB/SUB in one atomic step of the
  engine, so the offset it gets is its delivery order: every node subscribed
  to the channel gets `on_publication` calls of that channel in strictly
  increasing offset order, with no gap while its connection to the engine
  holds. The publishing node is no exception: if it is subscribed, it hears
  its own publication through the same path (a node never delivers locally
  by itself).
- A publication whose idempotency key the stream already has is not
  delivered again; `publish` returns the earlier position and leaves
  `pub.offset` at 0 (a new publication gets its offset written into it).
- Delivery is at most once per connection to the engine. When a node loses
  the engine, it is told (`on_lost_connection`); when the connection
  returns, the broker subscribes again and tells the node which channels
  may have missed publications (`on_resubscribed`). The node then recovers
  them from history (offsets make the gap visible), so nothing is silently
  skipped.
- `publish` raises `StoreWriteError` (`EngineUnavailable` when the engine
  cannot be reached) within the engine's timeout; it never reports success
  for a publication the engine did not take. The converse is not promised:
  a publish that timed out may still have been applied (at least once), so
  a retry should carry an idempotency key.
- The `delta` flag of `publish` reaches every node's `on_publication`.
- Control messages (`publish_control`) reach every *other* running node
  (or only the named one), never the sender; they are not stored.
- Joins and leaves, like publications without history, reach the nodes
  subscribed to the channel at that moment, the sender included.

Subscriptions are reference-counted: a node calls `subscribe` for each
local subscriber and `unsubscribe` when it leaves; the engine sees one
subscription per channel while the count is above zero, and the changes
made in one event-loop turn travel in one batch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

from tidings.protocol.centrifuge.messages import ClientInfo, Publication
from tidings.store.base import HistoryStore, Position


class BrokerPort(Protocol):
    """What a broker may tell its node. Callbacks run on the event loop; they must not block."""

    def on_publication(
        self, channel: str, pub: Publication, position: Position, delta: bool = False
    ) -> None:
        """A publication of `channel` (offset set; position (0, "") without history).

        `delta` is the publisher's request (the API's `delta` flag) that delta
        subscribers get it as a delta, carried from the publishing node.
        """

    def on_join(self, channel: str, info: ClientInfo) -> None:
        """Someone subscribed to `channel` on some node."""

    def on_leave(self, channel: str, info: ClientInfo) -> None:
        """Someone unsubscribed from `channel` on some node."""

    def on_control(self, data: bytes) -> None:
        """A command from another node."""

    def on_lost_connection(self, error: str) -> None:
        """The engine is gone: deliveries stop until `on_resubscribed`."""

    def on_resubscribed(self, channels: list[str]) -> None:
        """The engine is back and `channels` are subscribed again; they may have gaps."""


class Broker(ABC):
    """Publish/subscribe between the nodes of a cluster (see the module docstring)."""

    #: The history store that reads what `publish` appends (same engine, same layout).
    history: HistoryStore
    #: This node's id: control messages name their sender and target with it.
    node_id: str

    @abstractmethod
    async def start(self, port: BrokerPort) -> None:
        """Connect and start listening; raises `EngineUnavailable` if the engine is not there."""

    @abstractmethod
    async def close(self) -> None:
        """Stop listening and release connections (no callbacks afterwards)."""

    @abstractmethod
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
        """Deliver `pub` to every subscribed node; with size and ttl > 0, store it first.

        `delta` travels with the publication to every node's `on_publication`
        (it is not stored: history reads never see it).

        Storing and delivering are one step (see the module docstring); the
        stream is trimmed to `size` publications none older than `ttl`
        seconds, as `HistoryStore.append` does. Returns the position
        (Position(0, "") without history).
        """

    @abstractmethod
    async def publish_join(self, channel: str, info: ClientInfo) -> None:
        """Tell every node subscribed to `channel` that `info` joined it."""

    @abstractmethod
    async def publish_leave(self, channel: str, info: ClientInfo) -> None:
        """Tell every node subscribed to `channel` that `info` left it."""

    @abstractmethod
    async def publish_control(self, data: bytes, node_id: str = "") -> None:
        """Send `data` to every other node, or only to `node_id`."""

    @abstractmethod
    async def subscribe(self, channel: str) -> None:
        """One more local subscriber of `channel`.

        Returns once this node is subscribed in the engine, so that a history
        read made afterwards and the live publications overlap without a gap.
        Raises `EngineUnavailable` (and counts nothing) if that cannot happen.
        """

    @abstractmethod
    async def unsubscribe(self, channel: str) -> None:
        """One local subscriber of `channel` fewer; at zero the node stops receiving it."""

    @abstractmethod
    def subscribers(self, channel: str) -> int:
        """The reference count of `channel` on this node."""
