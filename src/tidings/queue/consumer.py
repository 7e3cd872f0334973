"""One TCP client connection (producer, consumer or both), as an asyncio protocol.

Bytes go to the sans-I/O `CommandParser`; commands are handled one at a
time in order. A publish that must wait for durability stops the handling
of later commands of this connection until it is answered, so responses keep
the order of commands (as nsqd's one goroutine per connection does); the
socket is paused while too much is buffered. Frames are coalesced: every
write of one event-loop turn goes out in one `transport.write`.

A fatal error sends its error frame and closes the connection; a non-fatal
one (FIN/REQ/TOUCH of a message not held) only sends the frame.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import Any, cast

from tidings.protocol.nsq import (
    CLOSE_WAIT,
    HEARTBEAT,
    OK,
    Auth,
    ClientSettings,
    ClientState,
    Cls,
    Command,
    CommandParser,
    Dpub,
    ErrorCode,
    Fin,
    Identify,
    IdentifyLimits,
    Mpub,
    Nop,
    NsqError,
    Pub,
    Rdy,
    Req,
    Sub,
    Touch,
    default_settings,
    encode_error,
    encode_message,
    encode_response,
    identify_reply,
    message_id,
    message_number,
    next_state,
    parse_identify,
)
from tidings.queue.budget import SMALL, ReadBudget
from tidings.queue.channel import Channel, MessageStateError
from tidings.queue.message import ChannelMessage
from tidings.queue.node import PublishError, QueueNode
from tidings.queue.topic import Topic

log = logging.getLogger(__name__)

_ids = itertools.count(1)
_VERB = {Pub: "PUB", Mpub: "MPUB", Dpub: "DPUB"}
_MESSAGE_VERBS: dict[type, tuple[str, ErrorCode]] = {
    Fin: ("FIN", ErrorCode.FIN_FAILED),
    Req: ("REQ", ErrorCode.REQ_FAILED),
    Touch: ("TOUCH", ErrorCode.TOUCH_FAILED),
}
_FAILED = {Pub: ErrorCode.PUB_FAILED, Mpub: ErrorCode.MPUB_FAILED, Dpub: ErrorCode.DPUB_FAILED}


class Consumer(asyncio.Protocol):
    """A V2 client connection."""

    def __init__(
        self,
        node: QueueNode,
        limits: IdentifyLimits,
        registry: set[Consumer],
        budget: ReadBudget | None = None,
    ) -> None:
        settings = node.settings
        self.node = node
        self.budget = budget or ReadBudget(1 << 62)
        self._counted = 0
        self.limits = limits
        self.registry = registry
        self.id = next(_ids)
        self.parser = CommandParser(
            max_msg_size=settings.max_msg_size,
            max_body_size=settings.max_body_size,
            max_rdy_count=settings.max_rdy_count,
            max_req_timeout_ms=settings.max_req_timeout_ms,
        )
        self.client: ClientSettings = default_settings(limits)
        self.msg_timeout = self.client.msg_timeout_ms / 1000
        self.state = ClientState.INIT
        self.rdy = 0
        self.in_flight = 0
        self.topic: Topic | None = None
        self.channel: Channel | None = None
        self.transport: asyncio.Transport | None = None
        self.remote_address = ""
        self.connect_ts = int(time.time())
        self.last_received = time.monotonic()
        self.last_heartbeat = time.monotonic()
        self.message_count = 0
        self.finish_count = 0
        self.requeue_count = 0
        self.published: dict[str, int] = {}
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._writable = True
        self._reading = True
        self._busy = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- asyncio.Protocol ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._loop = asyncio.get_running_loop()
        peer = self.transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.remote_address = f"{peer[0]}:{peer[1]}"
        self.registry.add(self)

    def data_received(self, data: bytes) -> None:
        self.last_received = time.monotonic()
        self.parser.receive(data)
        self._handle_commands()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.registry.discard(self)
        self.budget.forget(self.id)
        self.budget.change(-self._counted)
        self._counted = 0
        channel, topic = self.channel, self.topic
        if channel is not None and topic is not None:
            channel.remove_consumer(self)
            channel.progress.flush()
            self.node.consumer_left(topic, channel)

    def pause_writing(self) -> None:
        self._writable = False

    def resume_writing(self) -> None:
        self._writable = True
        if self.channel is not None:
            self.channel.wake()

    # -- the channel's view (Subscriber) -------------------------------------

    def capacity(self) -> int:
        if not self._writable or self._closed or self.state is not ClientState.SUBSCRIBED:
            return 0
        return self.rdy - self.in_flight

    def deliver(self, message: ChannelMessage) -> None:
        self.message_count += 1
        self._send(
            encode_message(
                message.timestamp_ns, message.attempts, message_id(message.seq), message.body
            )
        )

    def channel_closed(self) -> None:
        self.close()

    # -- output --------------------------------------------------------------

    def _send(self, frame: bytes) -> None:
        self._out.append(frame)
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(self._out))
        self._out.clear()

    def heartbeat(self, now: float) -> None:
        """Called on a timer: send `_heartbeat_`; close after two silent intervals."""
        interval = self.client.heartbeat_interval_ms / 1000
        if interval <= 0 or self._closed:
            return
        if now - self.last_received > 2 * interval:
            log.info("client %s: no data for two heartbeat intervals, closing", self.remote_address)
            self.close()
            return
        if now - self.last_heartbeat >= interval:
            self.last_heartbeat = now
            self._send(encode_response(HEARTBEAT))

    def close(self) -> None:
        self._flush()
        self._closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, error: NsqError) -> None:
        self._send(encode_error(error.frame_body))
        if error.fatal:
            log.info("client %s: %s", self.remote_address, error)
            self.close()

    # -- commands ------------------------------------------------------------

    def _handle_commands(self) -> None:
        while not self._busy and not self._closed:
            try:
                command = self.parser.next_command()
            except NsqError as error:
                self._fail(error)
                break
            if command is None:
                break
            try:
                self._handle(command)
            except NsqError as error:
                self._fail(error)
            except Exception:  # a bug must cost this connection only
                log.exception("client %s: command %r failed", self.remote_address, command)
                self.close()
        if self.channel is not None:
            self.channel.progress.flush()
        self._regulate_reading()

    def _regulate_reading(self) -> None:
        transport = self.transport
        if transport is None or self._closed:
            return
        buffered = self.parser.buffered
        self.budget.change(buffered - self._counted)
        self._counted = buffered
        too_much = buffered > self.node.settings.max_body_size + SMALL
        if buffered > SMALL and self.budget.over():
            too_much = True
            self.budget.wait(self.id, self._regulate_reading)
        if (self._busy or too_much) and self._reading:
            self._reading = False
            transport.pause_reading()
        elif not self._busy and not too_much and not self._reading:
            self._reading = True
            transport.resume_reading()

    def _handle(self, command: Command) -> None:
        match command:
            case Nop():
                pass
            case Fin() | Req() | Touch():
                self._message_command(command)
            case Rdy(count):
                self.rdy = count
                if self.channel is not None:
                    self.channel.wake()
            case Pub() | Mpub() | Dpub():
                self._publish(command)
            case Sub(topic_name, channel_name):
                self._subscribe(topic_name, channel_name)
            case Identify(body):
                self._identify(body)
            case Auth():
                raise NsqError(ErrorCode.AUTH_DISABLED, "AUTH disabled")
            case Cls():
                self.state = next_state(self.state, "CLS")
                self.parser.state = self.state
                self._send(encode_response(CLOSE_WAIT))

    def _identify(self, body: bytes) -> None:
        self.client = parse_identify(body, self.limits)
        self.msg_timeout = self.client.msg_timeout_ms / 1000
        self.parser.heartbeats_enabled = self.client.heartbeat_interval_ms > 0
        self._send(encode_response(identify_reply(self.client, self.limits)))

    def _subscribe(self, topic_name: str, channel_name: str) -> None:
        node = self.node
        existing = node.topics.get(topic_name)
        if existing is not None and existing.deleted:
            raise NsqError(ErrorCode.SUB_FAILED, "SUB failed to deleted topic/channel")
        try:
            topic = node.topic(topic_name)
            channel = node.channel(topic, channel_name)
        except OSError as exc:
            raise NsqError(ErrorCode.SUB_FAILED, f"SUB failed {exc}") from None
        self.topic, self.channel = topic, channel
        self.state = next_state(self.state, "SUB")
        self.parser.state = self.state
        channel.add_consumer(self)
        self._send(encode_response(OK))

    def _message_command(self, command: Fin | Req | Touch) -> None:
        channel = self.channel
        number = message_number(command.message_id)
        try:
            if channel is None or number is None:
                raise MessageStateError("ID not in flight")
            if isinstance(command, Fin):
                channel.finish(self, number)
                self.finish_count += 1
            elif isinstance(command, Req):
                channel.requeue(self, number, command.timeout_ms)
                self.requeue_count += 1
            else:
                channel.touch(self, number)
        except MessageStateError as exc:
            verb, code = _MESSAGE_VERBS[type(command)]
            text = command.message_id.decode("ascii", "replace")
            raise NsqError(code, f"{verb} {text} failed {exc}") from None

    def _publish(self, command: Pub | Mpub | Dpub) -> None:
        bodies: tuple[bytes, ...]
        defer = 0
        if isinstance(command, Mpub):
            bodies = command.bodies
        else:
            bodies = (command.body,)
            if isinstance(command, Dpub):
                defer = command.defer_ms
        kind: Any = type(command)
        verb, code = _VERB[kind], _FAILED[kind]
        try:
            pending = self.node.publish(command.topic, bodies, defer)
        except PublishError as exc:
            raise NsqError(code, f"{verb} failed {exc}") from None
        self.published[command.topic] = self.published.get(command.topic, 0) + len(bodies)
        if pending is None:
            self._send(encode_response(OK))
            return
        self._busy = True
        pending.add_done_callback(lambda done: self._published(done, verb, code))

    def _published(self, done: asyncio.Future[None], verb: str, code: ErrorCode) -> None:
        self._busy = False
        if self._closed:
            return
        error = done.exception() if not done.cancelled() else PublishError("cancelled")
        if error is None:
            self._send(encode_response(OK))
        else:
            self._fail(NsqError(code, f"{verb} failed {error}"))
        self._handle_commands()
