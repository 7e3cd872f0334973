"""One connected session: its identity, subscriptions, outbox and command intake."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tidings.core.deadlines import MAX_DELAY
from tidings.core.outbox import Outbox
from tidings.core.ratelimit import TokenBucket
from tidings.errors import DisconnectError, ReplyError
from tidings.protocol.centrifuge import codes
from tidings.protocol.centrifuge.codec import Codec
from tidings.protocol.centrifuge.codes import Disconnect, ErrorCode, ReplyErrorInfo
from tidings.protocol.centrifuge.json_codec import MalformedFrame
from tidings.protocol.centrifuge.messages import ClientInfo, Command, Error, Reply, raw
from tidings.protocol.centrifuge.session import PONG, UNKNOWN, Session, SessionViolation
from tidings.store.base import StoreWriteError

if TYPE_CHECKING:
    from tidings.core.node import Node
    from tidings.protocol.centrifuge.tags_filter import Matcher
    from tidings.transport.base import Transport
    from tidings.upstream.coordinator import ConnectionUpstream

log = logging.getLogger(__name__)

#: Commands a client may have waiting for processing before it is cut off (3013).
MAX_PENDING_COMMANDS = 1024
#: Bytes of frames whose commands wait for processing before the client is cut off
#: (3013), or twice `client_max_message_size` if that is more: a client that sends
#: faster than its commands complete (durable publishes) holds no more than this.
MAX_PENDING_BYTES = 1024 * 1024


@dataclass(slots=True)
class Subscription:
    """A client's state in one channel."""

    join_leave: bool = False
    epoch: str = ""
    #: Offset the client already has at subscribe time (see PublicationBatches).
    floor: int = 0
    info: bytes = b""
    expire_at: int = 0
    ready: bool = False
    #: Fossil deltas negotiated; `delta_seq`: the channel's publication it has last (0: none).
    delta: bool = False
    delta_seq: int = 0
    #: Made by the server (connect token, personal channel, API): the SDK cannot resubscribe.
    server_side: bool = False
    #: The subscriber's tags filter (`tf`): publications it does not match are not sent.
    tags_filter: Matcher | None = None


class Client:
    """A connection from one SDK instance.

    Frames come in through `handle_frame`; commands are processed in order by
    one short-lived worker task. Everything going out is queued in a bounded
    `Outbox` and written by the node's `Flusher`, one frame per loop turn.
    """

    __slots__ = (
        "_abuse",
        "_commands",
        "_dirty",
        "_held",
        "_history",
        "_pending",
        "_pending_bytes",
        "_stale",
        "_worker",
        "closed",
        "codec",
        "connected_at",
        "expire_at",
        "id",
        "info",
        "name",
        "node",
        "outbox",
        "ping_slot",
        "session",
        "subscriptions",
        "transport",
        "upstream",
        "user",
        "version",
    )

    def __init__(self, node: Node, transport: Transport, codec: Codec) -> None:
        self.node = node
        self.transport = transport
        self.codec = codec
        self.id = str(uuid.uuid4())
        self.user = ""
        self.info = b""
        self.name = ""
        self.version = ""
        self.expire_at = 0
        self.connected_at = time.time()
        self.session = Session()
        self.outbox = Outbox(node.settings.client_queue_max_size)
        self.subscriptions: dict[str, Subscription] = {}
        self.closed = False
        self.ping_slot = -1
        self._dirty = False
        # Created with the first command and dropped when the worker is done: an empty
        # deque is 600+ bytes, and an idle connection has nothing pending.
        self._pending: deque[Command] | None = None
        self._pending_bytes = 0
        self._worker: asyncio.Task[None] | None = None
        self._stale: asyncio.TimerHandle | None = None
        self._commands: TokenBucket | None = None
        self._history: TokenBucket | None = None
        self._held: list[bytes] | None = None
        self._abuse = 0
        #: Proxy state (allow-listed headers, meta), only for connections that need it.
        self.upstream: ConnectionUpstream | None = None

    def __repr__(self) -> str:
        return f"<Client {self.id} user={self.user!r}>"

    @property
    def client_info(self) -> ClientInfo:
        return ClientInfo(user=self.user, client=self.id, conn_info=raw(self.info))

    # --- output ---------------------------------------------------------------

    def enqueue(self, data: bytes) -> None:
        """Queue one encoded message; it is written with the next flush."""
        if self.closed:
            return
        if self._held is not None:
            self._held.append(data)
            return
        if not self.outbox.push(data):
            self.node.counters["disconnected_slow"] += 1
            self.disconnect(codes.SLOW)
            return
        if not self._dirty:
            self._dirty = True
            self.node.flusher.mark(self)

    def reply(self, reply: Reply) -> None:
        """Queue the answer to a command; it counts towards the outbox bound like a push.

        A client that asks for more than it reads is disconnected as slow (3008)
        once the bound is exceeded, as with pushes. A reply that alone is larger
        than the bound is never queued: a command whose failure changes nothing
        (history, presence, RPC) is answered with error 106 naming the limit;
        subscribe and connect keep their replies within it (a recovery too large
        is not recovered, see `Subscriptions.subscribe_client`), so 3008 is the last resort.
        """
        data = self.codec.encode(reply)
        if not data:
            if reply.error is not None and reply.id and not self.codec.expects_pong:
                # A unidirectional client cannot read an error reply: its connect
                # failing ends the connection instead.
                self.disconnect(_uni_disconnect(reply.error.code))
            return
        if self.closed:
            return
        limit = self.outbox.limit
        if len(data) > limit and reply.id and reply.connect is None and reply.subscribe is None:
            self.node.counters["refused_reply_size"] += 1
            message = (
                f"reply of {len(data)} bytes exceeds client_queue_max_size ({limit}):"
                " ask for less (history: a smaller limit, then page with since)"
            )
            data = self.codec.encode(
                _error_reply(reply.id, ReplyErrorInfo.of(ErrorCode.LIMIT_EXCEEDED, message))
            )
        self.enqueue(data)

    def write_now(self, data: bytes) -> bool:
        """Write `data` as its own frame at once if nothing is queued before it.

        Used at the end of a loop turn (publication batches): a client with an
        empty outbox skips the outbox and the second pass of the flusher.
        Otherwise `data` is queued behind what is there, keeping the order.
        Returns whether it was written now (the caller counts those bytes).
        """
        if self._dirty or self._held is not None or self.closed or self.transport.paused:
            self.enqueue(data)
            return False
        self.transport.write(data)
        return True

    def flush(self) -> None:
        """Write everything queued as one frame (unless the socket is backed up)."""
        self._dirty = False
        # `size` (an attribute) rather than len(): this runs once per delivery.
        if self.closed or not self.outbox.size or self.transport.paused:
            return
        data = self.codec.join(self.outbox.drain())
        self.node.traffic.bytes_out += len(data)
        self.transport.write(data)

    def resume(self) -> None:
        """The transport can take writes again."""
        if len(self.outbox) and not self._dirty and not self.closed:
            self._dirty = True
            self.node.flusher.mark(self)

    def send_ping(self) -> None:
        if self.closed:
            return
        if self.codec.expects_pong:
            self.session.ping_sent()
        self.enqueue(self.codec.ping)

    # --- lifecycle ------------------------------------------------------------

    def start_stale_timer(self, delay: float) -> None:
        self._stale = asyncio.get_running_loop().call_later(delay, self._close_if_stale)

    def _close_if_stale(self) -> None:
        self._stale = None
        if self.session.state.value == "awaiting_connect":
            self.disconnect(codes.STALE)

    def set_expiry(self, expire_at: int) -> None:
        """Close the connection with 3005 at `expire_at` unless refreshed before."""
        expiries = self.node.expiries
        if self.expire_at:
            expiries.discard(self, self.expire_at)
        self.expire_at = expire_at
        if expire_at and not self.closed:
            expiries.add(self, expire_at)

    def check_expired(self) -> None:
        """Called by the node's `Deadlines` when `expire_at` has come."""
        if self.closed or not self.expire_at:
            return
        if self.expire_at <= time.time():
            if not self.node.upstream.connection_expired(self):
                self.disconnect(codes.EXPIRED)
        else:
            self.set_expiry(self.expire_at)

    def watch_subscription_expiry(self, channel: str, expire_at: int) -> None:
        """Disconnect with 3006 if the subscription's token is not refreshed by `expire_at`."""
        delay = min(MAX_DELAY, max(0.0, expire_at - time.time()))  # far future: look again
        asyncio.get_running_loop().call_later(delay, self._check_subscription, channel)

    def _check_subscription(self, channel: str) -> None:
        sub = self.subscriptions.get(channel)
        if sub is None or self.closed or not sub.expire_at:
            return
        if sub.expire_at <= time.time():
            if not self.node.upstream.subscription_expired(self, channel):
                self.disconnect(codes.SUBSCRIPTION_EXPIRED)
        else:
            self.watch_subscription_expiry(channel, sub.expire_at)

    def connected(self) -> None:
        """The connect command succeeded."""
        self.session.connected()
        if self._stale is not None:
            self._stale.cancel()
            self._stale = None

    def disconnect(self, disconnect: Disconnect) -> None:
        """Flush what is queued, close with `disconnect`, and leave the node."""
        if self.closed:
            return
        self.node.traffic.disconnects[disconnect.code] += 1
        if log.isEnabledFor(logging.DEBUG):
            code, reason = disconnect.code, disconnect.reason
            log.debug("client %s disconnected: user %r, %d %s", self.id, self.user, code, reason)
        self.closed = True
        try:
            if not self.transport.paused and len(self.outbox):
                self.transport.write(self.codec.join(self.outbox.drain()))
            self.transport.close(disconnect.code, disconnect.reason)
        except Exception as exc:
            log.warning("client %s: closing with %d failed: %r", self.id, disconnect.code, exc)
        finally:
            self._cleanup()

    def fail(self, reason: str) -> None:
        """Writing to this client raised: drop it with 3009 and say why in the log.

        Called by the shared machinery (flusher, batches) for the one client that
        failed, so that the exception never reaches the other clients.
        """
        if self.closed:
            return
        log.warning("client %s: %s; disconnecting", self.id, reason)
        self.node.counters["disconnected_write_error"] += 1
        self.outbox.drain()  # the transport just failed: do not write to it again
        self.disconnect(codes.WRITE_ERROR)

    def transport_closed(self) -> None:
        """The peer went away (or the transport closed after `disconnect`)."""
        if not self.closed:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("client %s went away: user %r", self.id, self.user)
            self.closed = True
            self._cleanup()

    def _cleanup(self) -> None:
        self.session.close()
        self.outbox.drain()
        self._pending = None
        if self._stale is not None:
            self._stale.cancel()
            self._stale = None
        if self.expire_at:
            self.node.expiries.discard(self, self.expire_at)
        self.node.client_closed(self)

    # --- input ----------------------------------------------------------------

    def handle_frame(self, frame: bytes) -> None:
        """Decode one frame and queue its commands for processing in order."""
        if self.closed:
            return
        self.node.traffic.bytes_in += len(frame)
        try:
            commands = self.codec.decode(frame)
        except MalformedFrame as exc:
            log.info("client %s: malformed frame: %s", self.id, exc)
            self.disconnect(codes.BAD_REQUEST)
            return
        pending = self._pending
        queued = False
        for command in commands:
            # Pongs are answered inline: cheap, frequent, and order-free.
            if command.id == 0 and command == _EMPTY_COMMAND:
                if not self._accept(command):
                    return
                continue
            if pending is None:
                pending = self._pending = deque()
            pending.append(command)
            queued = True
        if pending is None:
            return
        if queued:
            # Counted until the queue is empty again (the frame's commands are held as long).
            self._pending_bytes += len(frame)
        if len(pending) > MAX_PENDING_COMMANDS or self._pending_bytes > max(
            MAX_PENDING_BYTES, 2 * self.node.settings.client_max_message_size
        ):
            self.disconnect(codes.TOO_MANY_REQUESTS)
            return
        if pending and self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work())

    def _accept(self, command: Command) -> str | None:
        try:
            return self.session.accept(command)
        except SessionViolation as exc:
            log.info("client %s: protocol violation: %s", self.id, exc.detail)
            self.disconnect(exc.disconnect)
            return None

    async def _work(self) -> None:
        try:
            while (pending := self._pending) and not self.closed:
                try:
                    await self._handle(pending.popleft())
                except Exception as exc:  # a reply that cannot be encoded or written
                    self.fail(f"handling a command failed: {exc!r}")
        finally:
            self._worker = None
            if not self._pending:
                self._pending = None
                self._pending_bytes = 0

    async def _handle(self, command: Command) -> None:
        method = self._accept(command)
        if method is None or method == PONG:
            return
        if not self._within_rate():
            if self._abuse > self.node.settings.client_command_abuse_limit:
                self.node.counters["disconnected_command_abuse"] += 1
                self.disconnect(codes.TOO_MANY_REQUESTS)
            elif command.id:
                self.reply(_error_reply(command.id, ReplyErrorInfo.of(ErrorCode.TOO_MANY_REQUESTS)))
            return
        if method == "connect":
            # Pushes for channels subscribed during connect must follow its reply.
            self._held = []
        try:
            if method == UNKNOWN:
                raise ReplyError(ErrorCode.METHOD_NOT_FOUND)
            reply = await self.node.commands.handle(self, method, command)
        except ReplyError as exc:
            reply = _error_reply(command.id, exc.info)
        except DisconnectError as exc:
            self.disconnect(exc.disconnect)
            return
        except StoreWriteError as exc:  # the engine (Redis) is down: say so, stay connected
            reply = _error_reply(command.id, ReplyErrorInfo.of(ErrorCode.INTERNAL, str(exc)))
        except Exception:
            log.exception("client %s: %s failed", self.id, method)
            reply = _error_reply(command.id, ReplyErrorInfo.of(ErrorCode.INTERNAL))
        finally:
            held, self._held = self._held, None
        if reply is not None:
            self.reply(reply)
        for data in held or ():
            self.enqueue(data)

    def take_history_token(self) -> bool:
        """Whether the client may read history (or recover) now; a client is never trusted."""
        settings = self.node.settings
        if settings.client_history_rate <= 0:
            return True
        now = time.monotonic()
        if self._history is None:
            self._history = TokenBucket(
                settings.client_history_rate, settings.client_history_burst, now
            )
        return self._history.take(now)

    def _within_rate(self) -> bool:
        """Spend a command token; count a refusal when there is none (error 111)."""
        settings = self.node.settings
        if settings.client_command_rate <= 0:
            return True
        now = time.monotonic()
        if self._commands is None:
            burst = settings.client_command_burst
            self._commands = TokenBucket(settings.client_command_rate, burst, now)
        if self._commands.full(now):
            self._abuse = 0  # a full bucket means the client has behaved for a while
        if self._commands.take(now):
            return True
        self._abuse += 1
        self.node.counters["refused_command_rate"] += 1
        return False


_EMPTY_COMMAND = Command()


def _uni_disconnect(code: int) -> Disconnect:
    if code in (ErrorCode.TOKEN_EXPIRED, ErrorCode.UNAUTHORIZED):
        return Disconnect(codes.INVALID_TOKEN.code, "invalid token: expired or unauthorized")
    if code == ErrorCode.INTERNAL:
        return codes.SERVER_ERROR  # e.g. the connect proxy failed: try again later (3004)
    return Disconnect(codes.BAD_REQUEST.code, f"connect refused: error {code}")


def _error_reply(command_id: int, info: ReplyErrorInfo) -> Reply:
    return Reply(id=command_id, error=Error(info.code, info.message, info.temporary))
