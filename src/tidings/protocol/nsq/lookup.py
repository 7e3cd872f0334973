"""nsqlookupd's TCP registration protocol ("  V1"), sans-I/O.

Queue nodes (nsqd) connect to lookupd, send the magic `"  V1"`, then lines:

    IDENTIFY\\n[int32 size][JSON: broadcast_address, tcp_port, http_port, version, hostname]
    REGISTER <topic> [<channel>]\\n
    UNREGISTER <topic> [<channel>]\\n
    PING\\n

Every answer, success or error, is one frame `[int32 size][data]` (no frame type,
unlike the V2 protocol): `OK`, the IDENTIFY reply (JSON), or `E_CODE description`.
In nsqlookupd every error is fatal: the error frame is sent and the connection closed.

`LookupServerConnection` is lookupd's side (bytes in, typed commands or a
`LookupFailure` out); `LookupResponseReader` and the `encode_*` functions are the
queue node's side. Nothing here does I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import msgspec

from tidings.protocol.nsq.names import is_valid_name

MAGIC_V1 = b"  V1"
#: A line longer than this is garbage: the longest valid one is `UNREGISTER` and two
#: 64-byte names. nsqlookupd itself buffers any length.
MAX_LINE_LENGTH = 1024
#: The IDENTIFY body nsqd sends is ~150 bytes.
MAX_IDENTIFY_BODY = 64 * 1024
#: Bound for a response a queue node accepts from lookupd (nsqd uses its max body size).
MAX_RESPONSE_SIZE = 5 * 1024 * 1024

_SIZE = struct.Struct(">i")


class PeerInfo(msgspec.Struct, kw_only=True, frozen=True):
    """The IDENTIFY body: where a queue node can be reached. Unknown fields are ignored."""

    broadcast_address: str = ""
    tcp_port: int = 0
    http_port: int = 0
    version: str = ""
    hostname: str = ""


@dataclass(frozen=True, slots=True)
class Identify:
    peer: PeerInfo


@dataclass(frozen=True, slots=True)
class Register:
    topic: str
    channel: str | None


@dataclass(frozen=True, slots=True)
class Unregister:
    topic: str
    channel: str | None


@dataclass(frozen=True, slots=True)
class Ping:
    pass


LookupCommand = Identify | Register | Unregister | Ping


@dataclass(frozen=True, slots=True)
class LookupFailure:
    """A protocol error; lookupd sends `encode()` and closes the connection."""

    code: str
    description: str = ""

    @property
    def text(self) -> str:
        return f"{self.code} {self.description}" if self.description else self.code

    def encode(self) -> bytes:
        # latin-1 gives back the exact bytes a bad name arrived with, as nsqlookupd does.
        return encode_response(self.text.encode("latin-1", "replace"))


def encode_response(payload: bytes) -> bytes:
    """One lookupd answer frame: `[int32 size][payload]`."""
    return _SIZE.pack(len(payload)) + payload


class LookupServerConnection:
    """One queue node's connection as lookupd sees it.

    Feed bytes to `receive_data`; it returns the complete commands in order. After
    the first `LookupFailure` the connection is `closed` and ignores further bytes.
    The state it keeps is the protocol's: magic read, and IDENTIFY done (REGISTER and
    UNREGISTER need it, a second IDENTIFY is refused).
    """

    __slots__ = ("_buffer", "_identify_size", "_magic_read", "closed", "identified")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._magic_read = False
        self._identify_size: int | None = None  # set while an IDENTIFY body is awaited
        self.identified = False
        self.closed = False

    def receive_data(self, data: bytes) -> list[LookupCommand | LookupFailure]:
        if self.closed:
            return []
        self._buffer += data
        events: list[LookupCommand | LookupFailure] = []
        while not self.closed:
            event = self._next_event()
            if event is None:
                break
            if isinstance(event, LookupFailure):
                self.closed = True
                self._buffer.clear()
            events.append(event)
        return events

    def _next_event(self) -> LookupCommand | LookupFailure | None:
        if not self._magic_read:
            if len(self._buffer) < len(MAGIC_V1):
                return None
            if bytes(self._buffer[:4]) != MAGIC_V1:
                return LookupFailure("E_BAD_PROTOCOL")
            del self._buffer[:4]
            self._magic_read = True
        if self._identify_size is not None:
            return self._identify_body()
        end = self._buffer.find(b"\n")
        if end < 0:
            if len(self._buffer) > MAX_LINE_LENGTH:
                return LookupFailure("E_INVALID", "command line too long")
            return None
        line = bytes(self._buffer[:end]).strip().decode("latin-1")
        del self._buffer[: end + 1]
        return self._command(line.split(" "))

    def _command(self, params: list[str]) -> LookupCommand | LookupFailure | None:
        name = params[0]
        if name == "PING":
            return Ping()
        if name == "IDENTIFY":
            if self.identified:
                return LookupFailure("E_INVALID", "cannot IDENTIFY again")
            self._identify_size = -1  # the size is read next
            return self._identify_body()
        if name in ("REGISTER", "UNREGISTER"):
            if not self.identified:
                return LookupFailure("E_INVALID", "client must IDENTIFY")
            return _registration(name, params[1:])
        return LookupFailure("E_INVALID", f"invalid command {name}")

    def _identify_body(self) -> Identify | LookupFailure | None:
        if self._identify_size == -1:
            if len(self._buffer) < 4:
                return None
            (size,) = _SIZE.unpack_from(self._buffer)
            del self._buffer[:4]
            if size < 0 or size > MAX_IDENTIFY_BODY:
                return LookupFailure("E_BAD_BODY", f"IDENTIFY invalid body size {size}")
            self._identify_size = size
        size = self._identify_size
        assert size is not None
        if len(self._buffer) < size:
            return None
        body = bytes(self._buffer[:size])
        del self._buffer[:size]
        self._identify_size = None
        try:
            peer = msgspec.json.decode(body, type=PeerInfo)
        except msgspec.DecodeError:
            return LookupFailure("E_BAD_BODY", "IDENTIFY failed to decode JSON body")
        if not (peer.broadcast_address and peer.tcp_port and peer.http_port and peer.version):
            return LookupFailure("E_BAD_BODY", "IDENTIFY missing fields")
        self.identified = True
        return Identify(peer)


def _registration(command: str, params: list[str]) -> Register | Unregister | LookupFailure:
    if not params:
        return LookupFailure("E_INVALID", f"{command} insufficient number of params")
    topic = params[0]
    channel = params[1] if len(params) >= 2 else ""
    if not is_valid_name(topic):
        return LookupFailure("E_BAD_TOPIC", f"{command} topic name '{topic}' is not valid")
    if channel and not is_valid_name(channel):
        return LookupFailure("E_BAD_CHANNEL", f"{command} channel name '{channel}' is not valid")
    kind = Register if command == "REGISTER" else Unregister
    return kind(topic, channel or None)


# -- the queue node's side --------------------------------------------------------------


def encode_identify(peer: PeerInfo) -> bytes:
    body = msgspec.json.encode(peer)
    return b"IDENTIFY\n" + _SIZE.pack(len(body)) + body


def encode_register(topic: str, channel: str | None) -> bytes:
    return _registration_line("REGISTER", topic, channel)


def encode_unregister(topic: str, channel: str | None) -> bytes:
    return _registration_line("UNREGISTER", topic, channel)


def encode_ping() -> bytes:
    return b"PING\n"


def _registration_line(command: str, topic: str, channel: str | None) -> bytes:
    if not is_valid_name(topic) or (channel is not None and not is_valid_name(channel)):
        raise ValueError(f"invalid topic/channel name: {topic!r} {channel!r}")
    words = [command, topic] if channel is None else [command, topic, channel]
    return " ".join(words).encode("ascii") + b"\n"


class LookupResponseTooLarge(Exception):
    """lookupd announced a response above the reader's bound."""


class LookupResponseReader:
    """Splits what lookupd sends into responses (`OK`, JSON, or `E_CODE ...`)."""

    __slots__ = ("_buffer", "_max_size")

    def __init__(self, max_size: int = MAX_RESPONSE_SIZE) -> None:
        self._buffer = bytearray()
        self._max_size = max_size

    def receive_data(self, data: bytes) -> list[bytes]:
        self._buffer += data
        responses: list[bytes] = []
        while len(self._buffer) >= 4:
            (size,) = _SIZE.unpack_from(self._buffer)
            if size < 0 or size > self._max_size:
                raise LookupResponseTooLarge(f"response size {size} > {self._max_size}")
            if len(self._buffer) < 4 + size:
                break
            responses.append(bytes(self._buffer[4 : 4 + size]))
            del self._buffer[: 4 + size]
        return responses


def is_error_response(response: bytes) -> bool:
    """lookupd's error answers start with `E_` (`E_INVALID ...`, `E_BAD_BODY ...`)."""
    return response.startswith(b"E_")
