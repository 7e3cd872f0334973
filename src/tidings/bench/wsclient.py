"""A lean Centrifuge JSON client over WebSocket, cheaper than the server it loads.

It is an `asyncio.Protocol` with no task per connection. It parses frames
only while it sets up (upgrade, connect reply, subscribe replies) and on the
few *sampled* connections that read publish timestamps; every other
connection counts publications straight from the byte stream (the token
`"pub":` appears once per publication push), which costs one C-level
`bytes.count` per read.

Publication payloads written by `publisher` carry `"t":<monotonic ns>`;
CLOCK_MONOTONIC is shared by all processes of the machine, so a client in
another process can subtract it from its own clock.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from typing import cast

import msgspec

_PUB = b'"pub":'
_STAMP = re.compile(rb'"t": ?(\d+)')
_PING = b"{}"
#: Latency samples a worker keeps at most (the rest are counted, not kept).
MAX_SAMPLES = 400_000


def client_frame(payload: bytes) -> bytes:
    """A masked final text frame. The all-zero mask key leaves the payload as is (RFC 6455
    allows any key; the server only needs the mask bit)."""
    n = len(payload)
    if n < 126:
        header = bytes((0x81, 0x80 | n))
    elif n < 65536:
        header = bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x81, 0x80 | 127)) + n.to_bytes(8, "big")
    return header + b"\0\0\0\0" + payload


def upgrade_request(host: str, port: int, path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode("ascii")


class Tally:
    """What every connection of one worker process received."""

    __slots__ = ("latencies", "lost", "pubs")

    def __init__(self) -> None:
        self.pubs = 0
        self.lost = 0
        self.latencies: list[int] = []


class BenchClient(asyncio.Protocol):
    """One connection: upgrade, connect with a token, subscribe, then count publications."""

    def __init__(
        self,
        request: bytes,
        token: str,
        channels: Sequence[str],
        tally: Tally,
        sampled: bool = False,
    ) -> None:
        self._request = request
        self._token = token
        self._channels = channels
        self._tally = tally
        self._sampled = sampled
        self._transport: asyncio.Transport | None = None
        self._head = b""
        self._buf = b""
        self._tail = b""
        self._last_id = 1 + len(channels)
        self._upgraded = False
        self._streaming = False
        self.pubs = 0
        self.closing = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # --- asyncio.Protocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport is not an asyncio.Transport subclass.
        self._transport = cast(asyncio.Transport, transport)
        self._transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed during setup"))
        elif not self.closing:
            self._tally.lost += 1

    def data_received(self, data: bytes) -> None:
        if self._streaming and not self._sampled:
            # Hot path: count publications in the raw stream. The five-byte tail
            # catches a token split between two reads (the token is six bytes).
            chunk = self._tail + data if self._tail else data
            n = chunk.count(_PUB)
            if n:
                self.pubs += n
                self._tally.pubs += n
            self._tail = data[-5:]
            if _PING in data:
                self._send(_PING)
            return
        if not self._upgraded:
            self._head += data
            if not self._head_done():
                return
        else:
            self._buf = self._buf + data if self._buf else data
        self._frames()

    # --- set-up -----------------------------------------------------------------

    def _head_done(self) -> bool:
        """Consume the HTTP upgrade response; True once frames may follow."""
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > 16384:
                self._fail("upgrade response too long")
            return False
        head, rest = self._head[:end], self._head[end + 4 :]
        if not head.startswith(b"HTTP/1.1 101"):
            self._fail(f"upgrade refused: {head.split(b' ', 2)[1:2]!r}")
            return False
        self._head = b""
        self._upgraded = True
        self._buf = rest
        connect = msgspec.json.encode({"id": 1, "connect": {"token": self._token, "name": "bench"}})
        self._send(connect)
        return True

    def _fail(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(reason))
        if self._transport is not None:
            self._transport.abort()

    def _frames(self) -> None:
        buf = self._buf
        pos, end = 0, len(buf)
        while end - pos >= 2:
            length = buf[pos + 1] & 0x7F
            hlen = 2
            if length == 126:
                if end - pos < 4:
                    break
                length, hlen = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if end - pos < 10:
                    break
                length, hlen = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if end - pos < hlen + length:
                break
            opcode = buf[pos] & 0x0F
            payload = buf[pos + hlen : pos + hlen + length]
            pos += hlen + length
            if opcode == 0x1:
                self._payload(payload)
            elif opcode == 0x8 and self._transport is not None:
                self._fail(f"closed by server: {payload[2:]!r}")
                self._transport.close()
        self._buf = buf[pos:]

    def _payload(self, payload: bytes) -> None:
        if self._streaming:
            self._stamps(payload)
            return
        for line in payload.split(b"\n"):
            if line == _PING:
                self._send(_PING)
                continue
            if not line.startswith(b'{"id":'):
                continue
            reply = msgspec.json.decode(line)
            if "error" in reply:
                self._fail(f"error reply: {reply['error']}")
                return
            if reply["id"] == 1 and self._channels:
                self._subscribe()
            if reply["id"] == self._last_id:
                self._streaming = True
                self.ready.set_result(None)

    def _subscribe(self) -> None:
        lines = [
            msgspec.json.encode({"id": 2 + i, "subscribe": {"channel": channel}})
            for i, channel in enumerate(self._channels)
        ]
        self._send(b"\n".join(lines))

    def _stamps(self, payload: bytes) -> None:
        """A sampled connection: count publications and keep publish-to-receive times."""
        now = time.monotonic_ns()
        stamps = _STAMP.findall(payload)
        n = payload.count(_PUB)
        self.pubs += n
        tally = self._tally
        tally.pubs += n
        if len(tally.latencies) < MAX_SAMPLES:
            tally.latencies.extend(now - int(s) for s in stamps)
        if _PING in payload:
            self._send(_PING)

    # --- output -------------------------------------------------------------------

    def _send(self, payload: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(client_frame(payload))

    def close(self) -> None:
        """Leave politely: a close frame, then FIN."""
        self.closing = True
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(b"\x88\x82\0\0\0\0\x03\xe8")
            self._transport.close()

    def abort(self) -> None:
        self.closing = True
        if self._transport is not None:
            self._transport.abort()


async def open_client(  # noqa: PLR0917 - the worker's one call site names them in order
    host: str,
    port: int,
    request: bytes,
    token: str,
    channels: Sequence[str],
    tally: Tally,
    *,
    sampled: bool = False,
    limit_s: float = 20.0,
    source_ip: str = "",
) -> BenchClient:
    """Connect, authenticate and subscribe; raises ConnectionError/OSError/TimeoutError."""
    loop = asyncio.get_running_loop()

    async def _open() -> BenchClient:
        _transport, proto = await loop.create_connection(
            lambda: BenchClient(request, token, channels, tally, sampled),
            host,
            port,
            local_addr=(source_ip, 0) if source_ip else None,
        )
        try:
            await proto.ready
        except BaseException:
            proto.abort()
            raise
        return proto

    return await asyncio.wait_for(_open(), limit_s)
