"""Queue topics into channels: back ends push to clients by publishing to the queue.

Each message of a consumed topic is a JSON envelope

    {"channel": "news:sport", "data": <any JSON>, "idempotency_key": "optional"}

published into `channel` on this node; the message is FIN'd only after that
publication succeeded (for a durable channel: once it is stored under the
channel's fsync policy), so delivery is at least once end to end. A channel
with history is published with an idempotency key (the envelope's, or one
made from topic, channel and message id), so a message the queue delivers
again after a lost FIN is not published twice while the key is remembered.

The rule for a message that cannot be published:
- not an envelope (not JSON, no string `channel`, no `data`), a channel name
  that is invalid or in no namespace, or a publication the node refuses for
  good (e.g. too many streams): it is published unchanged to the dead-letter
  topic `<topic>.dead` on the daemon that delivered it, then FIN'd; if that
  publish fails it is REQ'd (delay 1 s) and tried again later;
- a temporary failure (error 100 internal, e.g. the durable store could not
  write; 111): REQ'd with a delay of attempts x 1 s (at most 60 s).
Nothing here raises into the consumer: a bad message never stops the bridge.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import msgspec

from tidings.bridges.consumer import Outcome, QueueConsumer, Requeue
from tidings.bridges.producer import QueueProducer, QueueUnavailable
from tidings.errors import ReplyError
from tidings.protocol.nsq import MessageFrame

if TYPE_CHECKING:
    from tidings.core.node import Node
    from tidings.settings import QueueConsumeOptions

log = logging.getLogger(__name__)

MAX_REQUEUE_DELAY_MS = 60_000


class Envelope(msgspec.Struct, forbid_unknown_fields=False):
    channel: str
    data: msgspec.Raw
    idempotency_key: str = ""


_DECODER = msgspec.json.Decoder(Envelope)


class QueueInbound:
    """Consumes one configured topic/channel and publishes its messages into channels."""

    def __init__(self, node: Node, options: QueueConsumeOptions) -> None:
        self._node = node
        self.topic = options.topic
        self.consumer = QueueConsumer(
            options.topic,
            options.channel,
            self.handle,
            nsqd_tcp_addresses=options.nsqd_tcp_addresses,
            lookupd_http_addresses=options.lookupd_http_addresses,
            max_in_flight=options.max_in_flight,
            lookupd_poll_interval=options.lookupd_poll_interval,
        )
        self._channel = options.channel
        self._dead_letters: dict[str, QueueProducer] = {}
        self.published = 0
        self.dead = 0

    def start(self) -> None:
        self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()
        for producer in self._dead_letters.values():
            await producer.stop()

    async def handle(self, address: str, message: MessageFrame) -> Outcome:
        try:
            envelope = _DECODER.decode(message.body)
            if not envelope.data or bytes(envelope.data) in (b"null", b""):
                raise msgspec.ValidationError("data required")
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return await self._dead_letter(address, message, f"not an envelope: {exc}")
        try:
            channel = self._node.rules.resolve(envelope.channel)
            key = envelope.idempotency_key
            if channel.options.history_enabled and not key:
                key = f"nsq:{self.topic}/{self._channel}/{message.message_id.decode()}"
            await self._node.publish(channel.name, envelope.data, idempotency_key=key)
        except ReplyError as exc:
            if exc.info.temporary:
                log.warning("queue bridge %s: publish to %s: %s", self.topic, envelope.channel, exc)
                delay = min(1000 * message.attempts, MAX_REQUEUE_DELAY_MS)
                return Requeue(delay)
            return await self._dead_letter(address, message, f"{envelope.channel}: {exc}")
        self.published += 1
        return None

    async def _dead_letter(self, address: str, message: MessageFrame, reason: str) -> Outcome:
        log.warning(
            "queue bridge %s: message %s to %s.dead: %s",
            self.topic,
            message.message_id.decode(errors="replace"),
            self.topic,
            reason,
        )
        producer = self._dead_letters.get(address)
        if producer is None:
            producer = self._dead_letters[address] = QueueProducer(address, max_pending=100)
            producer.start()
            try:
                async with asyncio.timeout(5.0):
                    await producer.wait_connected()
            except TimeoutError:
                return Requeue(1000)
        try:
            await producer.publish(f"{self.topic}.dead", message.body)
        except QueueUnavailable as exc:
            log.warning("queue bridge %s: dead letter: %s", self.topic, exc)
            return Requeue(1000)
        self.dead += 1
        return None
