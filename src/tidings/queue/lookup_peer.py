"""A queue node's registrations with its lookup services (nsqd's lookup loop).

`LookupPeers` keeps one TCP connection to each lookupd (tidings lookup or
nsqlookupd): magic `"  V1"`, IDENTIFY with the node's addresses, then REGISTER /
UNREGISTER as topics and channels come and go, and PING every 15 s so that lookupd
keeps listing the node. lookupd forgets a node's registrations when its connection
drops, so after every reconnect the node's whole current set is registered again
(as nsqd does: a topic with channels is registered through its channels, a topic
without channels on its own). While a lookupd is unreachable, calls are not queued
for it: the re-registration on reconnect carries the current state instead.

The queue server calls, with the same meaning as nsqd's notifications:

    peers = LookupPeers(["127.0.0.1:4160"], {"broadcast_address": ..., "hostname": ...,
                        "tcp_port": 4150, "http_port": 4151, "version": "1.3.0"})
    await peers.start()
    peers.register("orders", None)        # a topic was created
    peers.register("orders", "billing")   # a channel was created
    peers.unregister("orders", "billing") # a channel was deleted (or an ephemeral one emptied)
    peers.unregister("orders", None)      # a topic was deleted
    await peers.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Mapping
from typing import Any

import msgspec

from tidings.protocol.nsq.lookup import (
    MAGIC_V1,
    LookupResponseReader,
    LookupResponseTooLarge,
    PeerInfo,
    encode_identify,
    encode_ping,
    encode_register,
    encode_unregister,
    is_error_response,
)

log = logging.getLogger(__name__)

# Timeouts use `asyncio.timeout`, never `asyncio.wait_for`: on Python 3.11 `wait_for`
# can swallow a cancellation that arrives as the awaited call completes, and `stop()`
# (which cancels the peer's task) then waits forever.

PING_INTERVAL = 15.0
#: Past this many unsent commands for one lookupd, drop them and re-register from scratch.
MAX_PENDING = 10_000


class LookupRefused(Exception):
    """lookupd answered a command with an error (it then closes the connection)."""


class LookupPeers:
    """Registrations of one queue node with every lookupd in `addresses` (`host:port`)."""

    def __init__(
        self,
        addresses: list[str],
        identity: Mapping[str, Any],
        *,
        ping_interval: float = PING_INTERVAL,
        reconnect_delay: float = 1.0,
        max_reconnect_delay: float = 15.0,
        timeout: float = 5.0,
    ) -> None:
        # Validates the identity now (types, required fields) rather than at each connect.
        self.identity = msgspec.convert(dict(identity), PeerInfo)
        info = self.identity
        if not (info.broadcast_address and info.version and info.tcp_port and info.http_port):
            raise ValueError("identity needs broadcast_address, tcp_port, http_port, version")
        self.ping_interval = ping_interval
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self.timeout = timeout
        self._topics: dict[str, set[str]] = {}
        self.peers = [LookupPeer(address, self) for address in addresses]

    async def start(self) -> None:
        for peer in self.peers:
            peer.start()

    async def stop(self) -> None:
        await asyncio.gather(*(peer.stop() for peer in self.peers))

    def register(self, topic: str, channel: str | None) -> None:
        """Announce a topic (channel None) or a channel of a topic to every lookupd."""
        command = encode_register(topic, channel)  # raises ValueError on a bad name
        channels = self._topics.setdefault(topic, set())
        if channel is not None:
            channels.add(channel)
        self._send(command)

    def unregister(self, topic: str, channel: str | None) -> None:
        """Withdraw a channel, or a topic with all its channels (channel None)."""
        command = encode_unregister(topic, channel)
        if channel is None:
            self._topics.pop(topic, None)
        elif topic in self._topics:
            self._topics[topic].discard(channel)
        self._send(command)

    def registrations(self) -> list[tuple[str, str | None]]:
        """What a (re)connected lookupd is told, in order: nsqd's rule, see the module doc."""
        commands: list[tuple[str, str | None]] = []
        for topic, channels in self._topics.items():
            if channels:
                commands += [(topic, channel) for channel in sorted(channels)]
            else:
                commands.append((topic, None))
        return commands

    def lookupd_http_addresses(self) -> list[str]:
        """The HTTP addresses the connected lookupds announced in their IDENTIFY answers."""
        return [peer.http_address for peer in self.peers if peer.http_address]

    def _send(self, command: bytes) -> None:
        for peer in self.peers:
            peer.send(command)


class LookupPeer:
    """The connection to one lookupd, run by its own task until `stop()`."""

    def __init__(self, address: str, owner: LookupPeers) -> None:
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"lookupd address must be host:port, got {address!r}")
        self.address = address
        self.host = host.strip("[]")
        self.port = int(port)
        self.connected = False
        self.http_address = ""
        self._owner = owner
        self._pending: deque[bytes] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None

    def __repr__(self) -> str:
        return f"LookupPeer({self.address!r}, connected={self.connected})"

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"lookup-peer {self.address}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def send(self, command: bytes) -> None:
        if not self.connected:
            return  # the next connection registers the current state
        if len(self._pending) >= MAX_PENDING:
            log.warning("lookup %s: %d commands behind, re-registering", self.address, MAX_PENDING)
            self._pending.clear()
            if self._writer is not None:
                self._writer.close()  # the session fails and reconnects with a full snapshot
            return
        self._pending.append(command)
        self._wakeup.set()

    async def _run(self) -> None:
        delay = self._owner.reconnect_delay
        while True:
            try:
                await self._session()
            except (OSError, EOFError, TimeoutError, LookupRefused, LookupResponseTooLarge) as exc:
                log.warning("lookup %s: %s", self.address, exc or type(exc).__name__)
            if self.connected:
                delay = self._owner.reconnect_delay
            self.connected = False
            self.http_address = ""
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._owner.max_reconnect_delay)

    async def _session(self) -> None:
        owner = self._owner
        async with asyncio.timeout(owner.timeout):
            reader, writer = await asyncio.open_connection(self.host, self.port)
        self._writer = writer
        responses = _Responses(reader, owner.timeout)
        try:
            writer.write(MAGIC_V1)
            info = await self._call(writer, responses, encode_identify(owner.identity))
            self.http_address = _http_address(info)
            # Snapshot and queue reset in one step: later calls queue behind the snapshot.
            self._pending.clear()
            self.connected = True
            registrations = owner.registrations()
            for topic, channel in registrations:
                await self._call(writer, responses, encode_register(topic, channel))
            log.info("lookup %s: connected, %d registrations", self.address, len(registrations))
            await self._serve(writer, responses)
        finally:
            self._writer = None
            writer.close()

    async def _serve(self, writer: asyncio.StreamWriter, responses: _Responses) -> None:
        loop = asyncio.get_running_loop()
        next_ping = loop.time() + self._owner.ping_interval
        while True:
            if not self._pending:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(next_ping):
                        await self._wakeup.wait()
            if loop.time() >= next_ping:
                await self._call(writer, responses, encode_ping())
                next_ping = loop.time() + self._owner.ping_interval
            while self._pending:
                await self._call(writer, responses, self._pending.popleft())

    async def _call(
        self, writer: asyncio.StreamWriter, responses: _Responses, command: bytes
    ) -> bytes:
        writer.write(command)
        async with asyncio.timeout(self._owner.timeout):
            await writer.drain()
        response = await responses.next()
        if is_error_response(response):
            name = command.split(b"\n", 1)[0].decode("ascii", "replace")
            raise LookupRefused(f"{name}: {response.decode('utf-8', 'replace')}")
        return response


class _Responses:
    """Reads lookupd's answer frames one at a time, each within `timeout`."""

    def __init__(self, reader: asyncio.StreamReader, timeout: float) -> None:
        self._reader = reader
        self._timeout = timeout
        self._frames = LookupResponseReader()
        self._ready: deque[bytes] = deque()

    async def next(self) -> bytes:
        while not self._ready:
            async with asyncio.timeout(self._timeout):
                data = await self._reader.read(65536)
            if not data:
                raise EOFError("lookupd closed the connection")
            self._ready.extend(self._frames.receive_data(data))
        return self._ready.popleft()


def _http_address(identify_answer: bytes) -> str:
    """`broadcast_address:http_port` from lookupd's IDENTIFY answer (JSON), or ''."""
    try:
        info = json.loads(identify_answer)
        return f"{info['broadcast_address']}:{int(info['http_port'])}"
    except (ValueError, KeyError, TypeError):
        return ""
