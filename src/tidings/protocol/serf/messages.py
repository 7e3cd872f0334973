"""Serf messages carried in memberlist user messages: `[serf type][msgpack struct]`.

Only what a listening member needs is typed (join and leave intents, user events);
other Serf messages (queries, push-pull, key management, relays) are recognised by
type and left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar

from tidings.protocol.memberlist.errors import DecodeError
from tidings.protocol.memberlist.gomsgpack import (
    FieldSpec,
    Kind,
    get_bool,
    get_bytes,
    get_text,
    get_uint,
    pack_struct,
    struct_fields,
    unpack_one,
)


class SerfMessageType(IntEnum):
    LEAVE = 0
    JOIN = 1
    PUSH_PULL = 2
    USER_EVENT = 3
    QUERY = 4
    QUERY_RESPONSE = 5
    CONFLICT_RESPONSE = 6
    KEY_REQUEST = 7
    KEY_RESPONSE = 8
    RELAY = 9


@dataclass(frozen=True, slots=True)
class JoinIntent:
    ltime: int
    node: str

    TYPE: ClassVar[SerfMessageType] = SerfMessageType.JOIN
    FIELDS: ClassVar[tuple[FieldSpec, ...]] = (
        ("LTime", Kind.UINT, False),
        ("Node", Kind.STR, False),
    )

    def values(self) -> tuple[Any, ...]:
        return (self.ltime, self.node)

    @classmethod
    def from_fields(cls, f: dict[str, Any]) -> JoinIntent:
        return cls(get_uint(f, "LTime", 64), get_text(f, "Node"))


@dataclass(frozen=True, slots=True)
class LeaveIntent:
    ltime: int
    node: str
    prune: bool = False

    TYPE: ClassVar[SerfMessageType] = SerfMessageType.LEAVE
    FIELDS: ClassVar[tuple[FieldSpec, ...]] = (
        ("LTime", Kind.UINT, False),
        ("Node", Kind.STR, False),
        ("Prune", Kind.BOOL, False),
    )

    def values(self) -> tuple[Any, ...]:
        return (self.ltime, self.node, self.prune)

    @classmethod
    def from_fields(cls, f: dict[str, Any]) -> LeaveIntent:
        return cls(get_uint(f, "LTime", 64), get_text(f, "Node"), get_bool(f, "Prune"))


@dataclass(frozen=True, slots=True)
class UserEvent:
    """`serf event NAME PAYLOAD`: `coalesce` is Serf's CC flag."""

    ltime: int
    name: str
    payload: bytes = b""
    coalesce: bool = False

    TYPE: ClassVar[SerfMessageType] = SerfMessageType.USER_EVENT
    FIELDS: ClassVar[tuple[FieldSpec, ...]] = (
        ("LTime", Kind.UINT, False),
        ("Name", Kind.STR, False),
        ("Payload", Kind.BYTES, False),
        ("CC", Kind.BOOL, False),
    )

    def values(self) -> tuple[Any, ...]:
        return (self.ltime, self.name, self.payload, self.coalesce)

    @classmethod
    def from_fields(cls, f: dict[str, Any]) -> UserEvent:
        return cls(
            get_uint(f, "LTime", 64),
            get_text(f, "Name"),
            get_bytes(f, "Payload"),
            get_bool(f, "CC"),
        )


@dataclass(frozen=True, slots=True)
class OtherSerfMessage:
    """A Serf message this member does not interpret."""

    type: int


SerfMessage = JoinIntent | LeaveIntent | UserEvent | OtherSerfMessage
_TYPED: dict[int, Any] = {
    SerfMessageType.JOIN: JoinIntent,
    SerfMessageType.LEAVE: LeaveIntent,
    SerfMessageType.USER_EVENT: UserEvent,
}


def decode_serf_message(buf: bytes) -> SerfMessage:
    """Decode the payload of a memberlist user message; `DecodeError` if malformed."""
    if not buf:
        raise DecodeError("empty serf message")
    cls = _TYPED.get(buf[0])
    if cls is None:
        return OtherSerfMessage(buf[0])
    value, _ = unpack_one(buf, 1)
    message: SerfMessage = cls.from_fields(struct_fields(value, cls.__name__))
    return message


def encode_serf_message(message: JoinIntent | LeaveIntent | UserEvent) -> bytes:
    out = bytearray((message.TYPE,))
    pack_struct(out, zip(message.FIELDS, message.values(), strict=True))
    return bytes(out)
