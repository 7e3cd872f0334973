"""An asyncio memberlist member: UDP and TCP sockets and timers around `Membership`.

The sans-I/O state machine (`tidings.protocol.memberlist.membership`) decides;
this module only moves bytes and time:

- one UDP socket and one TCP listener on the same port (memberlist's layout);
- every outgoing `SendPacket` is encoded (compression, CRC, encryption, label)
  and sent; every datagram is decoded and handed over, or refused with a log
  line (a wrong key, a foreign label, garbage) without disturbing anything;
- push-pull and fallback pings run as short TCP exchanges with a timeout;
- a single timer task calls `tick` at the state machine's next deadline.

Events (join/update/suspect/dead/leave) and user messages (Serf rides on them)
go to the callbacks given; an exception in a callback is logged, never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from tidings.protocol.memberlist.config import GossipConfig
from tidings.protocol.memberlist.errors import DecodeError, Incomplete, MemberlistError
from tidings.protocol.memberlist.keyring import Keyring, encrypt_overhead
from tidings.protocol.memberlist.label import label_header
from tidings.protocol.memberlist.member import Address, MemberEvent, MemberView
from tidings.protocol.memberlist.membership import (
    Membership,
    PushPullRequest,
    SendPacket,
    StreamPing,
)
from tidings.protocol.memberlist.messages import (
    Ack,
    ErrorResponse,
    Ping,
    PushPull,
    StreamMessage,
    User,
    encode_message,
)
from tidings.protocol.memberlist.packet import decode_packet, encode_packet
from tidings.protocol.memberlist.stream import (
    MAX_PUSH_STATE_BYTES,
    decode_stream,
    encode_stream,
)
from tidings.protocol.memberlist.versions import IncompatibleVersions

log = logging.getLogger(__name__)

TCP_TIMEOUT = 10.0
# memberlist accepts 20 MiB of push-pull state; a 10,000-member cluster needs ~1 MiB.
# Lower bounds keep what unauthenticated peers can make us buffer small:
# MAX_STREAM_BYTES * MAX_CONCURRENT_STREAMS at most.
MAX_STREAM_BYTES = min(MAX_PUSH_STATE_BYTES, 8 * 1024 * 1024)
READ_CHUNK = 65536
MAX_CONCURRENT_STREAMS = 32
REFUSAL_LOG_INTERVAL = 60.0


class GossipError(Exception):
    """The member could not start or join."""


class GossipMember:
    """One tidings member of a memberlist cluster (wire-compatible with Go memberlist)."""

    def __init__(
        self,
        name: str,
        bind: Address,
        *,
        advertise: Address | None = None,
        meta: bytes = b"",
        config: GossipConfig | None = None,
        keyring: Keyring | None = None,
        label: str = "",
        compress: bool = True,
        on_event: Callable[[MemberEvent], Any] | None = None,
        on_user_message: Callable[[bytes], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.bind = bind
        self.advertise = advertise
        self.meta = meta
        self.keyring = keyring
        self.label = label
        self.compress = compress
        overhead = len(label_header(label)) + (encrypt_overhead() if keyring else 0)
        base = config or GossipConfig()
        self.config = dataclasses.replace(base, packet_overhead=base.packet_overhead + overhead)
        self.on_event = on_event
        self.on_user_message = on_user_message
        self.clock = clock
        self.membership: Membership | None = None
        self.refused_packets = 0
        self._refusal_logged: dict[str, float] = {}
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._timer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._left = asyncio.Event()
        self._running = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._streams = asyncio.Semaphore(MAX_CONCURRENT_STREAMS)

    # -- lifecycle -----------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self.membership is not None, "start() first"
        return self.membership.port

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        host, port = self.bind
        self._tcp = await asyncio.start_server(self._serve_stream, host, port, reuse_address=True)
        port = self._tcp.sockets[0].getsockname()[1]
        try:
            self._udp, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(self), local_addr=(host, port)
            )
        except OSError:
            self._tcp.close()
            raise
        advertise = self.advertise or (_advertise_host(host), port)
        self.membership = Membership(
            self.name, advertise, now=self.clock(), meta=self.meta, config=self.config
        )
        self._running = True
        self._flush()
        self._timer = asyncio.create_task(self._run_timers(), name=f"gossip-timers-{self.name}")

    async def join(self, seeds: list[Address]) -> int:
        """Push-pull with each seed; how many answered. Raises `GossipError` if none did."""
        results = await asyncio.gather(*(self._push_pull(a, True, explicit=True) for a in seeds))
        joined = sum(1 for ok in results if ok)
        if seeds and not joined:
            raise GossipError(f"could not join any of {seeds}")
        return joined

    async def leave(self) -> None:
        """Tell the cluster we leave and wait until the news was gossiped enough.

        Bound it like memberlist's `Leave(timeout)`: `async with asyncio.timeout(5)`.
        """
        self._membership().leave(self.clock())
        self._flush()
        await self._left.wait()

    async def stop(self) -> None:
        """Close sockets and timers at once (no leave: use `leave` first to be polite)."""
        self._running = False
        if self._timer:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._udp:
            self._udp.close()
        if self._tcp:
            self._tcp.close()
            await self._tcp.wait_closed()

    def members(self, *, include_dead: bool = False) -> list[MemberView]:
        return self._membership().members(include_dead=include_dead)

    def broadcast(self, payload: bytes) -> None:
        """Gossip an application (user) message to the cluster, e.g. a Serf intent."""
        self._membership().broadcast_user(payload)
        self._flush()

    def update_meta(self, meta: bytes) -> None:
        self.meta = meta
        self._membership().update_meta(meta, self.clock())
        self._flush()

    # -- plumbing ------------------------------------------------------------------

    def _membership(self) -> Membership:
        if self.membership is None:
            raise GossipError("the gossip member is not started")
        return self.membership

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_timers(self) -> None:
        membership = self._membership()
        while self._running:
            delay = membership.next_deadline() - self.clock()
            if delay > 0:
                self._wake.clear()
                # Not asyncio.wait_for: on Python 3.11 it can swallow a cancellation
                # when the event fires at the same moment, and stop() would hang.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
            try:
                membership.tick(self.clock())
            except Exception:
                log.exception("gossip: timer step failed")
            self._flush()

    def _flush(self) -> None:
        """Carry out what the state machine asked for, and hand over events."""
        membership = self._membership()
        for out in membership.take_outgoing():
            if not self._running:
                continue  # stopping: nothing new goes out
            if isinstance(out, SendPacket):
                self._send_packet(out)
            elif isinstance(out, PushPullRequest):
                self._spawn(self._push_pull(out.address, out.join))
            elif isinstance(out, StreamPing):
                self._spawn(self._stream_ping(out))
        for event in membership.take_events():
            self._call(self.on_event, event)
        for payload in membership.take_user_messages():
            self._call(self.on_user_message, payload)
        if membership.leave_done:
            self._left.set()
        self._wake.set()

    def _call(self, callback: Callable[[Any], Any] | None, value: Any) -> None:
        if callback is None:
            return
        try:
            callback(value)
        except Exception:
            log.exception("gossip: callback failed")

    def _send_packet(self, packet: SendPacket) -> None:
        if self._udp is None or self._udp.is_closing():
            return
        raw = encode_packet(
            [encode_message(m) for m in packet.messages],
            compress=self.compress,
            crc=packet.crc,
            keyring=self.keyring,
            label=self.label,
        )
        try:
            self._udp.sendto(raw, packet.address)
        except OSError as exc:
            log.debug("gossip: send to %s failed: %s", packet.address, exc)

    def _on_datagram(self, data: bytes, source: Address) -> None:
        if self.membership is None or not self._running:
            return
        try:
            decoded = decode_packet(data, keyring=self.keyring, label=self.label)
        except DecodeError as exc:
            self.refused_packets += 1
            self._warn_refused(source, exc)
            return
        for problem in decoded.problems:
            log.debug("gossip: packet from %s: %s", source, problem)
        try:
            self._membership().receive(decoded.messages, source[:2], self.clock())
        except Exception:
            log.exception("gossip: handling a packet from %s failed", source)
        self._flush()

    def _warn_refused(self, source: Address, exc: DecodeError) -> None:
        """One warning per sending host per minute: a peer with the wrong key sends
        several packets a second, and must not flood the log."""
        now = self.clock()
        host = source[0]
        last = self._refusal_logged.get(host)
        if last is not None and now - last < REFUSAL_LOG_INTERVAL:
            return
        if len(self._refusal_logged) > 1024:
            self._refusal_logged.clear()
        self._refusal_logged[host] = now
        log.warning(
            "gossip: packet from %s:%s refused: %s (%d refused so far)",
            host, source[1], exc, self.refused_packets,
        )  # fmt: skip

    async def _read_frame(
        self, reader: asyncio.StreamReader, *, expect_label: bool
    ) -> StreamMessage:
        buf = bytearray()
        while True:
            try:
                message, _ = decode_stream(
                    bytes(buf), keyring=self.keyring, label=self.label, expect_label=expect_label
                )
                return message
            except Incomplete:
                if len(buf) > MAX_STREAM_BYTES:
                    raise DecodeError("stream frame over the size limit") from None
            chunk = await reader.read(READ_CHUNK)
            if not chunk:
                raise DecodeError("stream closed before a whole frame arrived")
            buf += chunk

    def _stream_bytes(self, message: StreamMessage, *, dialer: bool) -> bytes:
        return encode_stream(
            message,
            compress=self.compress,
            keyring=self.keyring,
            label=self.label,
            dialer=dialer,
        )

    async def _push_pull(self, address: Address, join: bool, *, explicit: bool = False) -> bool:
        """One push-pull exchange. Unreachable peers are routine for the periodic and
        reconnect exchanges (debug log); protocol failures (a wrong key) always warn."""
        membership = self._membership()
        try:
            async with self._streams, asyncio.timeout(TCP_TIMEOUT):
                reader, writer = await asyncio.open_connection(*address)
                try:
                    ours = membership.local_state(join)
                    writer.write(self._stream_bytes(ours, dialer=True))
                    await writer.drain()
                    reply = await self._read_frame(reader, expect_label=False)
                finally:
                    writer.close()
        except (OSError, TimeoutError, MemberlistError) as exc:
            level = (
                logging.WARNING if explicit or isinstance(exc, MemberlistError) else logging.DEBUG
            )
            log.log(level, "gossip: push-pull with %s:%s failed: %s", address[0], address[1], exc)
            return False
        if isinstance(reply, ErrorResponse):
            log.warning("gossip: push-pull refused by %s: %s", address, reply.error)
            return False
        if not isinstance(reply, PushPull):
            log.warning("gossip: push-pull with %s answered %s", address, type(reply).__name__)
            return False
        try:
            membership.merge_remote_state(reply, self.clock())
        except IncompatibleVersions as exc:
            log.warning("gossip: push-pull with %s:%s refused: %s", address[0], address[1], exc)
            return False
        finally:
            self._flush()
        return True

    async def _stream_ping(self, request: StreamPing) -> None:
        membership = self._membership()
        ok = False
        timeout = max(request.deadline - self.clock(), 0.01)
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(*request.address)
                try:
                    writer.write(self._stream_bytes(request.ping, dialer=True))
                    await writer.drain()
                    reply = await self._read_frame(reader, expect_label=False)
                    ok = isinstance(reply, Ack) and reply.seq_no == request.ping.seq_no
                finally:
                    writer.close()
        except (OSError, TimeoutError, MemberlistError):
            ok = False
        membership.stream_ping_result(request.ping.seq_no, ok, self.clock())
        self._flush()

    async def _serve_stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername")
        try:
            async with self._streams, asyncio.timeout(TCP_TIMEOUT):
                try:
                    message = await self._read_frame(reader, expect_label=True)
                except DecodeError as exc:
                    log.warning("gossip: stream from %s refused: %s", peer, exc)
                    writer.write(self._stream_bytes(ErrorResponse(str(exc)), dialer=False))
                    await writer.drain()
                    return
                await self._answer_stream(message, writer)
        except (OSError, TimeoutError, MemberlistError) as exc:
            log.debug("gossip: stream from %s: %s", peer, exc)
        except Exception:
            log.exception("gossip: stream from %s failed", peer)
        finally:
            writer.close()

    async def _answer_stream(self, message: StreamMessage, writer: asyncio.StreamWriter) -> None:
        membership = self._membership()
        if isinstance(message, PushPull):
            # memberlist answers with its state first, then merges the caller's.
            writer.write(self._stream_bytes(membership.local_state(message.join), dialer=False))
            await writer.drain()
            try:
                membership.merge_remote_state(message, self.clock())
            except IncompatibleVersions as exc:
                log.warning("gossip: push-pull from a peer refused: %s", exc)
            self._flush()
        elif isinstance(message, Ping):
            if message.node and message.node != self.name:
                return
            ack = Ack(message.seq_no, membership.ack_payload)
            writer.write(self._stream_bytes(ack, dialer=False))
            await writer.drain()
        elif isinstance(message, User):
            self._call(self.on_user_message, message.payload)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, member: GossipMember) -> None:
        self.member = member

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.member._on_datagram(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        log.debug("gossip: UDP error: %s", exc)


def _advertise_host(host: str) -> str:
    if host not in ("", "0.0.0.0", "::"):
        return host
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"
