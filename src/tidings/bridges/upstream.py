"""Client publications and RPCs into queue topics: upstream data by product and type.

A namespace with `queue_topic = "orders"` forwards every client publication
to one of its channels into that topic (on `queue_publish_address`) before
it is published to the channel's subscribers. The queue message is JSON:

    {"channel": "orders:eu", "data": <the publication's JSON>,
     "user": "42", "client": "<client id>"}

The client's publish is answered only after the queue answered the PUB (for
`tidings queue`: the message is on disk). When the queue is down or
`queue_publish_max_pending` publications already wait, the publish fails at
once with error 100 "queue unavailable: ..." and nothing is published to the
channel; the client may retry (error 100 is temporary).

An RPC `<ns>:<name>` of a namespace in `queue_rpc_topics` is PUB'd the same
way, as {"method", "data", "user", "client"}, and answered `{"queued": true}`
once the queue has it (error 100 likewise when it cannot take it).
"""

from __future__ import annotations

import msgspec

from tidings.bridges.producer import QueueProducer, QueueUnavailable
from tidings.errors import ReplyError
from tidings.protocol.centrifuge.codes import ErrorCode
from tidings.protocol.centrifuge.messages import ClientInfo


class UpstreamMessage(msgspec.Struct):
    channel: str
    data: msgspec.Raw
    user: str
    client: str


class UpstreamRpc(msgspec.Struct):
    method: str
    data: msgspec.Raw
    user: str
    client: str


QUEUED = b'{"queued":true}'


class QueueUpstream:
    def __init__(
        self, address: str, *, max_pending: int, rpc_topics: dict[str, str] | None = None
    ) -> None:
        self.producer = QueueProducer(address, max_pending=max_pending)
        self._rpc_topics = dict(rpc_topics or {})

    def start(self) -> None:
        self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def forward(self, topic: str, channel: str, data: bytes, info: ClientInfo | None) -> None:
        """PUB the publication to `topic`; ReplyError 100 when the queue cannot take it."""
        message = UpstreamMessage(
            channel, msgspec.Raw(data), info.user if info else "", info.client if info else ""
        )
        await self._publish(topic, msgspec.json.encode(message))

    async def forward_rpc(self, method: str, data: bytes, info: ClientInfo | None) -> bytes | None:
        """PUB an RPC of a forwarded namespace; None for other methods."""
        namespace, sep, _ = method.partition(":")
        topic = self._rpc_topics.get(namespace) if sep else None
        if topic is None:
            return None
        message = UpstreamRpc(
            method,
            msgspec.Raw(data or b"null"),
            info.user if info else "",
            info.client if info else "",
        )
        await self._publish(topic, msgspec.json.encode(message))
        return QUEUED

    async def _publish(self, topic: str, body: bytes) -> None:
        try:
            await self.producer.publish(topic, body)
        except QueueUnavailable as exc:
            raise ReplyError(ErrorCode.INTERNAL, f"queue unavailable: {exc}") from None
