"""Client publications into queue topics: upstream data for back ends, by product and type.

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


class QueueUpstream:
    def __init__(self, address: str, *, max_pending: int) -> None:
        self.producer = QueueProducer(address, max_pending=max_pending)

    def start(self) -> None:
        self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def forward(self, topic: str, channel: str, data: bytes, info: ClientInfo | None) -> None:
        """PUB the publication to `topic`; ReplyError 100 when the queue cannot take it."""
        message = UpstreamMessage(
            channel, msgspec.Raw(data), info.user if info else "", info.client if info else ""
        )
        try:
            await self.producer.publish(topic, msgspec.json.encode(message))
        except QueueUnavailable as exc:
            raise ReplyError(ErrorCode.INTERNAL, f"queue unavailable: {exc}") from None
