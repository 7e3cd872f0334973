"""lookupd's TCP side: queue nodes IDENTIFY, REGISTER and PING here.

Each connection runs a `LookupServerConnection` (the sans-I/O protocol) and applies
its commands to the shared `RegistrationTable` with nsqlookupd's rules: REGISTER of a
channel also registers its topic; UNREGISTER of a topic drops the node's channels of
that topic too; an ephemeral topic or channel disappears with its last producer; a
closed connection takes all its registrations with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable

import msgspec

from tidings.lookup.registry import CHANNEL, CLIENT, TOPIC, Node, Registration, RegistrationTable
from tidings.protocol.nsq.lookup import (
    Identify,
    LookupCommand,
    LookupFailure,
    LookupServerConnection,
    Ping,
    Register,
    Unregister,
    encode_response,
)
from tidings.protocol.nsq.names import is_ephemeral

log = logging.getLogger(__name__)

OK = b"OK"
READ_SIZE = 64 * 1024
LINGER_SECONDS = 1.0


class LookupIdentity(msgspec.Struct, frozen=True):
    """What lookupd answers to IDENTIFY (field order as nsqlookupd's: sorted)."""

    broadcast_address: str
    hostname: str
    http_port: int
    tcp_port: int
    version: str


class RegistrationListener:
    """Serves the registration protocol for one `RegistrationTable`."""

    def __init__(
        self,
        table: RegistrationTable,
        identity: Callable[[], LookupIdentity],
        clock: Callable[[], float],
        idle_timeout: float,
    ) -> None:
        self._table = table
        self._identity = identity
        self._clock = clock
        # A node silent this long is no longer listed anyway (inactive producer timeout);
        # closing its connection also frees what a never-identifying client holds.
        self._idle_timeout = idle_timeout
        self._writers: set[asyncio.StreamWriter] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection until it closes or breaks the protocol."""
        self._writers.add(writer)
        peer_address = _address(writer.get_extra_info("peername"))
        connection = LookupServerConnection()
        node: Node | None = None
        try:
            while not connection.closed:
                try:
                    async with asyncio.timeout(self._idle_timeout):
                        data = await reader.read(READ_SIZE)
                except TimeoutError:
                    log.info(
                        "lookup: %s: silent for %.0f s, closing", peer_address, self._idle_timeout
                    )
                    break
                if not data:
                    break
                for event in connection.receive_data(data):
                    if isinstance(event, LookupFailure):
                        log.info("lookup: %s: %s", peer_address, event.text)
                        writer.write(event.encode())
                        break
                    node, answer = self._apply(event, node, peer_address)
                    writer.write(encode_response(answer))
                await writer.drain()
            if connection.closed:
                await _linger(reader, writer)
        except (ConnectionError, OSError) as exc:
            log.debug("lookup: %s: %s", peer_address, exc)
        finally:
            if node is not None:
                self._forget(node)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    def _apply(
        self, command: LookupCommand, node: Node | None, peer_address: str
    ) -> tuple[Node | None, bytes]:
        match command:
            case Ping():
                if node is not None:
                    self._table.touch(node)
                return node, OK
            case Identify(peer=info):
                node = Node(peer_address, peer_address, info, self._clock())
                self._table.add_producer(Registration(CLIENT), node)
                log.info(
                    "lookup: %s identified as %s tcp %d http %d",
                    peer_address,
                    info.broadcast_address,
                    info.tcp_port,
                    info.http_port,
                )
                return node, msgspec.json.encode(self._identity())
            case Register(topic=topic, channel=channel):
                assert node is not None  # the protocol refuses REGISTER before IDENTIFY
                if channel is not None:
                    self._table.add_producer(Registration(CHANNEL, topic, channel), node)
                self._table.add_producer(Registration(TOPIC, topic), node)
                return node, OK
            case Unregister(topic=topic, channel=channel):
                assert node is not None
                self._unregister(node, topic, channel)
                return node, OK
        raise AssertionError(command)  # pragma: no cover - the match is exhaustive

    def _unregister(self, node: Node, topic: str, channel: str | None) -> None:
        if channel is not None:
            key = Registration(CHANNEL, topic, channel)
            _, left = self._table.remove_producer(key, node.id)
            if left == 0 and is_ephemeral(channel):
                self._table.remove_registration(key)
            return
        for key in self._table.find_registrations(CHANNEL, topic, "*"):
            self._table.remove_producer(key, node.id)
        key = Registration(TOPIC, topic)
        _, left = self._table.remove_producer(key, node.id)
        if left == 0 and is_ephemeral(topic):
            self._table.remove_registration(key)

    def _forget(self, node: Node) -> None:
        for key in self._table.registrations_of(node.id):
            self._table.remove_producer(key, node.id)
        log.info("lookup: %s gone", node.id)

    def close_all(self) -> None:
        """Close every connection (at shutdown)."""
        for writer in list(self._writers):
            writer.close()


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Let the error frame reach a client that is still sending, then close.

    Closing a socket with unread input makes the kernel send a reset, which can
    destroy the error frame before the client reads it. So: stop writing, discard
    input for a short bounded while (until the client's EOF at best), then close.
    """
    if writer.can_write_eof():
        writer.write_eof()
    deadline = asyncio.get_running_loop().time() + LINGER_SECONDS
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout_at(deadline):
            while await reader.read(READ_SIZE):
                pass


def _address(peername: object) -> str:
    """`host:port` as nsqlookupd prints a remote address (`[::1]:p` for IPv6)."""
    if isinstance(peername, tuple) and len(peername) >= 2:
        host, port = str(peername[0]), int(peername[1])
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(peername)


def default_hostname() -> str:
    return socket.gethostname()
