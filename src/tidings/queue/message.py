"""A stored message: what the topic log holds and what a channel delivers.

Log payload: `[int64 timestamp ns][int64 deliver_at ms, 0 = now][body]`.
The message id on the wire is the 16-hex-digit form of the log sequence
number, so a FIN finds its message without a lookup table.
"""

from __future__ import annotations

import struct

_FIELDS = struct.Struct(">qq")


class StoredMessage:
    """One message of a topic, as written in its log."""

    __slots__ = ("body", "deliver_at_ms", "seq", "timestamp_ns")

    def __init__(self, seq: int, timestamp_ns: int, deliver_at_ms: int, body: bytes) -> None:
        self.seq = seq
        self.timestamp_ns = timestamp_ns
        self.deliver_at_ms = deliver_at_ms
        self.body = body

    def payload(self) -> bytes:
        return encode_payload(self.timestamp_ns, self.deliver_at_ms, self.body)

    @classmethod
    def decode(cls, seq: int, payload: bytes) -> StoredMessage:
        timestamp, deliver_at = _FIELDS.unpack_from(payload)
        return cls(seq, timestamp, deliver_at, payload[_FIELDS.size :])


def encode_payload(timestamp_ns: int, deliver_at_ms: int, body: bytes) -> bytes:
    return _FIELDS.pack(timestamp_ns, deliver_at_ms) + body


class ChannelMessage:
    """A message as one channel sees it: attempts, owner, deadline."""

    __slots__ = (
        "attempts",
        "body",
        "consumer_id",
        "deadline",
        "delivered_at",
        "due_ms",
        "seq",
        "timestamp_ns",
    )

    def __init__(self, seq: int, timestamp_ns: int, body: bytes, attempts: int) -> None:
        self.seq = seq
        self.timestamp_ns = timestamp_ns
        self.body = body
        self.attempts = attempts
        self.consumer_id = 0
        self.deadline = 0.0
        self.delivered_at = 0.0
        self.due_ms = 0
