"""Server frames: `[int32 size][int32 type][data]`, big-endian, size = 4 + len(data).

Type 0 is a response (`OK`, `CLOSE_WAIT`, `_heartbeat_`, IDENTIFY's JSON),
type 1 an error (`E_CODE description`), type 2 a message:
`[int64 timestamp ns][uint16 attempts][16 ASCII hex bytes id][body]`.
`FrameReader` is the client side (tests, benchmarks): bytes in, frames out.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

MAGIC_V2 = b"  V2"
MESSAGE_ID_LENGTH = 16
OK = b"OK"
CLOSE_WAIT = b"CLOSE_WAIT"
HEARTBEAT = b"_heartbeat_"

_HEADER = struct.Struct(">ii")
_MESSAGE_HEADER = struct.Struct(">iiqH")
_MESSAGE_FIELDS = struct.Struct(">qH")


class FrameType(IntEnum):
    RESPONSE = 0
    ERROR = 1
    MESSAGE = 2


def encode_frame(frame_type: FrameType, data: bytes) -> bytes:
    """One frame of any type."""
    return _HEADER.pack(len(data) + 4, frame_type) + data


def encode_response(data: bytes) -> bytes:
    return encode_frame(FrameType.RESPONSE, data)


def encode_error(data: bytes) -> bytes:
    return encode_frame(FrameType.ERROR, data)


def encode_message(timestamp_ns: int, attempts: int, message_id: bytes, body: bytes) -> bytes:
    """A message frame; `message_id` is 16 ASCII hex bytes, `attempts` 1 on first delivery."""
    size = 4 + 8 + 2 + MESSAGE_ID_LENGTH + len(body)
    header = _MESSAGE_HEADER.pack(size, FrameType.MESSAGE, timestamp_ns, min(attempts, 0xFFFF))
    return header + message_id + body


def message_id(number: int) -> bytes:
    """The 16-byte ASCII hex id of a 64-bit message number."""
    return b"%016x" % number


def message_number(message_id: bytes) -> int | None:
    """The number behind an id made by `message_id`, None if it is not one of ours."""
    if len(message_id) != MESSAGE_ID_LENGTH:
        return None
    try:
        return int(message_id, 16)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Frame:
    frame_type: FrameType
    data: bytes


@dataclass(frozen=True, slots=True)
class MessageFrame:
    """The fields of a type-2 frame."""

    timestamp_ns: int
    attempts: int
    message_id: bytes
    body: bytes

    @classmethod
    def decode(cls, data: bytes) -> MessageFrame:
        if len(data) < 10 + MESSAGE_ID_LENGTH:
            raise ValueError("message frame too short")
        timestamp, attempts = _MESSAGE_FIELDS.unpack_from(data)
        return cls(timestamp, attempts, data[10:26], data[26:])


class FrameReader:
    """Client side: feed bytes, take complete frames. Rejects absurd sizes."""

    def __init__(self, max_frame_size: int = 64 << 20) -> None:
        self._buffer = bytearray()
        self._max = max_frame_size

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        buffer = self._buffer
        offset = 0
        while len(buffer) - offset >= 8:
            size, frame_type = _HEADER.unpack_from(buffer, offset)
            if size < 4 or size > self._max:
                raise ValueError(f"bad frame size {size}")
            if len(buffer) - offset < 4 + size:
                break
            data = bytes(buffer[offset + 8 : offset + 4 + size])
            frames.append(Frame(FrameType(frame_type), data))
            offset += 4 + size
        del buffer[:offset]
        return frames
