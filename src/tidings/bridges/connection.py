"""One client connection to an NSQ daemon (nsqd or `tidings queue`), over asyncio streams.

The V2 wire format comes from `tidings.protocol.nsq` (frames in); commands
are a line plus an optional size-prefixed body. Commands that nsqd answers
(IDENTIFY, SUB, PUB, MPUB) are awaited in order: nsqd answers them in the
order they were sent. FIN, REQ, RDY, TOUCH and NOP get no answer on success;
their non-fatal errors (E_FIN_FAILED, ...) are logged and not matched to a
request. Heartbeats are answered with NOP here; messages go to `on_message`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import struct
from collections.abc import Callable

from tidings.protocol.nsq import HEARTBEAT, MAGIC_V2, FrameReader, FrameType, MessageFrame

log = logging.getLogger(__name__)

_SIZE = struct.Struct(">i")
#: Errors nsqd sends for a FIN/REQ/TOUCH it cannot match: not answers to awaited commands.
_UNMATCHED_ERRORS = (b"E_FIN_FAILED", b"E_REQ_FAILED", b"E_TOUCH_FAILED")
#: Largest frame accepted from the daemon (nsqd's default max message size is 1 MiB).
MAX_FRAME_SIZE = 16 << 20


class NsqCommandError(Exception):
    """The daemon answered a command with an error frame (its text is the message)."""


class ConnectionLost(Exception):
    """The connection closed before a command was answered."""


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


class NsqConnection:
    """A V2 connection: `open()`, then `request()` answered commands or `send()` the others."""

    def __init__(
        self,
        address: str,
        on_message: Callable[[MessageFrame], None] | None = None,
        *,
        timeout: float = 5.0,
    ) -> None:
        self.address = address
        self._on_message = on_message
        self._timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: collections.deque[asyncio.Future[bytes]] = collections.deque()
        self._task: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    async def open(self, identify: dict[str, object] | None = None) -> dict[str, object]:
        """Connect, send the magic and IDENTIFY; the daemon's negotiated settings."""
        host, port = split_address(self.address)
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), self._timeout)
        self._reader, self._writer = reader, writer
        writer.write(MAGIC_V2)
        self._task = asyncio.get_running_loop().create_task(self._read(), name="nsq-read")
        fields = {"feature_negotiation": True, "user_agent": "tidings-bridge", **(identify or {})}
        answer = await self.request(b"IDENTIFY", json.dumps(fields).encode())
        if answer == b"OK":
            return {}
        settings: dict[str, object] = json.loads(answer)
        return settings

    def send(self, line: bytes, body: bytes | None = None) -> None:
        """Write a command nsqd does not answer on success (FIN, REQ, RDY, TOUCH, NOP, CLS)."""
        if self._writer is None or self.closed.is_set():
            raise ConnectionLost(f"{self.address}: not connected")
        self._writer.write(line + b"\n")
        if body is not None:
            self._writer.write(_SIZE.pack(len(body)) + body)

    async def request(self, line: bytes, body: bytes | None = None) -> bytes:
        """Write a command nsqd answers; its response (`OK`, JSON) or NsqCommandError."""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.send(line, body)
        self._pending.append(future)
        return await asyncio.wait_for(future, self._timeout)

    async def _read(self) -> None:
        assert self._reader is not None
        frames = FrameReader(MAX_FRAME_SIZE)
        try:
            while data := await self._reader.read(65536):
                for frame in frames.feed(data):
                    self._frame(frame.frame_type, frame.data)
        except (OSError, ValueError) as exc:
            log.info("nsq %s: %s", self.address, exc)
        finally:
            self._lost()

    def _frame(self, frame_type: FrameType, data: bytes) -> None:
        if frame_type is FrameType.MESSAGE:
            if self._on_message is not None:
                self._on_message(MessageFrame.decode(data))
        elif frame_type is FrameType.RESPONSE and data == HEARTBEAT:
            self.send(b"NOP")
        elif frame_type is FrameType.ERROR and data.startswith(_UNMATCHED_ERRORS):
            log.warning("nsq %s: %s", self.address, data.decode(errors="replace"))
        elif self._pending:
            future = self._pending.popleft()
            if not future.done():
                if frame_type is FrameType.ERROR:
                    future.set_exception(NsqCommandError(data.decode(errors="replace")))
                else:
                    future.set_result(data)
        elif frame_type is FrameType.ERROR:
            log.warning("nsq %s: %s", self.address, data.decode(errors="replace"))

    def _lost(self) -> None:
        self.closed.set()
        while self._pending:
            future = self._pending.popleft()
            if not future.done():
                future.set_exception(ConnectionLost(f"{self.address}: connection closed"))
        if self._writer is not None:
            self._writer.close()

    async def close(self) -> None:
        if self._writer is not None and not self.closed.is_set():
            with contextlib.suppress(ConnectionLost, OSError):
                self.send(b"CLS")
            self._writer.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._lost()
