"""Every memberlist message as a typed, immutable value.

The first byte of a memberlist message is its `MessageType`; the body is a Go
struct in msgpack (see `gomsgpack`). Field names below are the Go names the
wire uses. Byte fields hold raw bytes (`Addr` is a 4- or 16-byte IP).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar

from tidings.protocol.memberlist.gomsgpack import (
    FieldSpec,
    Kind,
    get_bool,
    get_bytes,
    get_int,
    get_text,
    get_uint,
    pack_struct,
    struct_fields,
)


class MessageType(IntEnum):
    """The type byte in front of every message (append-only in memberlist)."""

    PING = 0
    INDIRECT_PING = 1
    ACK = 2
    SUSPECT = 3
    ALIVE = 4
    DEAD = 5
    PUSH_PULL = 6
    COMPOUND = 7
    USER = 8
    COMPRESS = 9
    ENCRYPT = 10
    NACK = 11
    HAS_CRC = 12
    ERR = 13
    HAS_LABEL = 244


class NodeStateType(IntEnum):
    """A member's state as memberlist sends it in push-pull (`NodeStateType`)."""

    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3


# ProtocolMin, ProtocolMax, ProtocolCur, DelegateMin, DelegateMax, DelegateCur.
# Protocol 2 is memberlist's default speaking version. A plain memberlist peer has delegate
# versions 0,0,0 and refuses a push-pull from a member whose delegate range excludes 0;
# a Serf cluster wants 2..5 (see `SERF_VSN`).
DEFAULT_VSN = bytes((1, 5, 2, 0, 0, 0))
SERF_VSN = bytes((1, 5, 2, 2, 5, 4))
META_MAX_SIZE = 512

U = Kind.UINT
I = Kind.INT  # noqa: E741
S = Kind.STR
B = Kind.BYTES
BOOL = Kind.BOOL


@dataclass(frozen=True, slots=True)
class Ping:
    seq_no: int
    node: str
    source_addr: bytes = b""
    source_port: int = 0
    source_node: str = ""

    TYPE: ClassVar[MessageType] = MessageType.PING
    FIELDS: ClassVar[tuple[FieldSpec, ...]] = (
        ("SeqNo", U, False),
        ("Node", S, False),
        ("SourceAddr", B, True),
        ("SourcePort", U, True),
        ("SourceNode", S, True),
    )

    def values(self) -> tuple[Any, ...]:
        return (self.seq_no, self.node, self.source_addr, self.source_port, self.source_node)

    @classmethod
    def from_fields(cls, f: dict[str, Any]) -> Ping:
        return cls(
            get_uint(f, "SeqNo", 32),
            get_text(f, "Node"),
            get_bytes(f, "SourceAddr"),
            get_uint(f, "SourcePort", 16),
            get_text(f, "SourceNode"),
        )


@dataclass(frozen=True, slots=True)
class IndirectPing:
    seq_no: int
    target: bytes
    port: int
    node: str
    nack: bool = False
    source_addr: bytes = b""
    source_port: int = 0
    source_node: str = ""

    TYPE: ClassVar[MessageType] = MessageType.INDIRECT_PING
    FIELDS: ClassVar[tuple[FieldSpec, ...]] = (
        ("SeqNo", U, False),
        ("Target", B, False),
        ("Port", U, False),
        ("Node", S, False),
        ("Nack", BOOL, False),
        ("SourceAddr", B, True),
        ("SourcePort", U, True),
        ("SourceNode", S, True),
    )

    def values(self) -> tuple[Any, ...]:
        return (
            self.seq_no,
            self.target,
            self.port,
            self.node,
            self.nack,
            self.source_addr,
            self.source_port,
            self.source_node,
        )

    @classmethod
    def from_fields(cls, f: dict[str, Any]) -> IndirectPing:
        return cls(
            get_uint(f, "SeqNo", 32),
            get_bytes(f, "Target"),
            get_uint(f, "Port", 16),
            get_text(f, "Node"),
            get_bool(f, "Nack"),
            get_bytes(f, "SourceAddr"),
            get_uint(f, "SourcePort", 16),
            get_text(f, "SourceNode"),
        )


@dataclass(frozen=True, slots=True)
class Ack:
    seq_no: int
    payload: bytes = b""

    TYPE: ClassVar[MessageType] = MessageType.ACK
    FIELDS: ClassVar[tuple[FieldSpec, ...]] = (("SeqNo", U, False), ("Payload", B, False))

    def values(self) -> tuple[Any, ...]:
        return (self.seq_no, self.payload)

    @classmethod
    def from_fields(cls, f: dict[str, Any]) -> Ack:
        return cls(get_uint(f, "SeqNo", 32), get_bytes(f, "Payload"))


@dataclass(frozen=True, slots=True)
class Nack:
    seq_no: int

    TYPE: ClassVar[MessageType] = MessageType.NACK
    FIELDS: ClassVar[tuple[FieldSpec, ...]] = (("SeqNo", U, False),)

    def values(self) -> tuple[Any, ...]:
        return (self.seq_no,)

    @classmethod
    def from_fields(cls, f: dict[str, Any]) -> Nack:
        return cls(get_uint(f, "SeqNo", 32))


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    error: str

    TYPE: ClassVar[MessageType] = MessageType.ERR
    FIELDS: ClassVar[tuple[FieldSpec, ...]] = (("Error", S, False),)

    def values(self) -> tuple[Any, ...]:
        return (self.error,)

    @classmethod
    def from_fields(cls, f: dict[str, Any]) -> ErrorResponse:
        return cls(get_text(f, "Error"))


@dataclass(frozen=True, slots=True)
class Suspect:
    incarnation: int
    node: str
    source: str  # Go field `From`: who suspects

    TYPE: ClassVar[MessageType] = MessageType.SUSPECT
    FIELDS: ClassVar[tuple[FieldSpec, ...]] = (
        ("Incarnation", U, False),
        ("Node", S, False),
        ("From", S, False),
    )

    def values(self) -> tuple[Any, ...]:
        return (self.incarnation, self.node, self.source)

    @classmethod
    def from_fields(cls, f: dict[str, Any]) -> Suspect:
        return cls(get_uint(f, "Incarnation", 32), get_text(f, "Node"), get_text(f, "From"))


@dataclass(frozen=True, slots=True)
class Dead:
    """A member declared dead; `source == node` means it left on its own."""

    incarnation: int
    node: str
    source: str

    TYPE: ClassVar[MessageType] = MessageType.DEAD
    FIELDS: ClassVar[tuple[FieldSpec, ...]] = Suspect.FIELDS

    def values(self) -> tuple[Any, ...]:
        return (self.incarnation, self.node, self.source)

    @property
    def is_leave(self) -> bool:
        return self.source == self.node

    @classmethod
    def from_fields(cls, f: dict[str, Any]) -> Dead:
        return cls(get_uint(f, "Incarnation", 32), get_text(f, "Node"), get_text(f, "From"))


@dataclass(frozen=True, slots=True)
class Alive:
    incarnation: int
    node: str
    addr: bytes
    port: int
    meta: bytes = b""
    vsn: bytes = DEFAULT_VSN

    TYPE: ClassVar[MessageType] = MessageType.ALIVE
    FIELDS: ClassVar[tuple[FieldSpec, ...]] = (
        ("Incarnation", U, False),
        ("Node", S, False),
        ("Addr", B, False),
        ("Port", U, False),
        ("Meta", B, False),
        ("Vsn", B, False),
    )

    def values(self) -> tuple[Any, ...]:
        return (self.incarnation, self.node, self.addr, self.port, self.meta, self.vsn)

    @classmethod
    def from_fields(cls, f: dict[str, Any]) -> Alive:
        return cls(
            get_uint(f, "Incarnation", 32),
            get_text(f, "Node"),
            get_bytes(f, "Addr"),
            get_uint(f, "Port", 16),
            get_bytes(f, "Meta"),
            get_bytes(f, "Vsn"),
        )


@dataclass(frozen=True, slots=True)
class PushPullHeader:
    nodes: int
    user_state_len: int
    join: bool

    TYPE: ClassVar[MessageType] = MessageType.PUSH_PULL
    FIELDS: ClassVar[tuple[FieldSpec, ...]] = (
        ("Nodes", I, False),
        ("UserStateLen", I, False),
        ("Join", BOOL, False),
    )

    def values(self) -> tuple[Any, ...]:
        return (self.nodes, self.user_state_len, self.join)

    @classmethod
    def from_fields(cls, f: dict[str, Any]) -> PushPullHeader:
        return cls(get_int(f, "Nodes"), get_int(f, "UserStateLen"), get_bool(f, "Join"))


@dataclass(frozen=True, slots=True)
class PushNodeState:
    name: str
    addr: bytes
    port: int
    meta: bytes
    incarnation: int
    state: int  # a NodeStateType value; unknown values are kept and ignored
    vsn: bytes = DEFAULT_VSN

    FIELDS: ClassVar[tuple[FieldSpec, ...]] = (
        ("Name", S, False),
        ("Addr", B, False),
        ("Port", U, False),
        ("Meta", B, False),
        ("Incarnation", U, False),
        ("State", I, False),
        ("Vsn", B, False),
    )

    def values(self) -> tuple[Any, ...]:
        return (self.name, self.addr, self.port, self.meta, self.incarnation, self.state, self.vsn)

    @classmethod
    def from_fields(cls, f: dict[str, Any]) -> PushNodeState:
        return cls(
            get_text(f, "Name"),
            get_bytes(f, "Addr"),
            get_uint(f, "Port", 16),
            get_bytes(f, "Meta"),
            get_uint(f, "Incarnation", 32),
            get_int(f, "State"),
            get_bytes(f, "Vsn"),
        )


@dataclass(frozen=True, slots=True)
class PushPull:
    """A whole push-pull frame: header, node states and the delegate's user state."""

    join: bool
    nodes: tuple[PushNodeState, ...]
    user_state: bytes = b""

    TYPE: ClassVar[MessageType] = MessageType.PUSH_PULL


@dataclass(frozen=True, slots=True)
class UserMessageHeader:
    user_msg_len: int

    FIELDS: ClassVar[tuple[FieldSpec, ...]] = (("UserMsgLen", I, False),)

    def values(self) -> tuple[Any, ...]:
        return (self.user_msg_len,)

    @classmethod
    def from_fields(cls, f: dict[str, Any]) -> UserMessageHeader:
        return cls(get_int(f, "UserMsgLen"))


@dataclass(frozen=True, slots=True)
class User:
    """An application message (Serf rides on these); opaque to memberlist."""

    payload: bytes

    TYPE: ClassVar[MessageType] = MessageType.USER


@dataclass(frozen=True, slots=True)
class Compress:
    algo: int
    buf: bytes

    FIELDS: ClassVar[tuple[FieldSpec, ...]] = (("Algo", U, False), ("Buf", B, False))

    def values(self) -> tuple[Any, ...]:
        return (self.algo, self.buf)

    @classmethod
    def from_fields(cls, f: dict[str, Any]) -> Compress:
        return cls(get_uint(f, "Algo", 8), get_bytes(f, "Buf"))


# Messages that travel in UDP packets (and in compound packets).
PacketMessage = Ping | IndirectPing | Ack | Nack | Suspect | Alive | Dead | User
# What a decoded packet may also yield from a stream.
StreamMessage = Ping | Ack | PushPull | User | ErrorResponse

STRUCT_TYPES: dict[MessageType, Any] = {
    MessageType.PING: Ping,
    MessageType.INDIRECT_PING: IndirectPing,
    MessageType.ACK: Ack,
    MessageType.NACK: Nack,
    MessageType.SUSPECT: Suspect,
    MessageType.ALIVE: Alive,
    MessageType.DEAD: Dead,
    MessageType.ERR: ErrorResponse,
}

StructMessage = Ping | IndirectPing | Ack | Nack | Suspect | Alive | Dead | ErrorResponse


def encode_struct(message: Any) -> bytes:
    """The msgpack body of a struct message (no type byte)."""
    out = bytearray()
    pack_struct(out, zip(message.FIELDS, message.values(), strict=True))
    return bytes(out)


def encode_message(message: StructMessage | User) -> bytes:
    """Type byte + body, as memberlist's `encode(msgType, msg)` produces."""
    if isinstance(message, User):
        return bytes((MessageType.USER,)) + message.payload
    return bytes((message.TYPE,)) + encode_struct(message)


def decode_struct(cls: Any, value: Any) -> Any:
    return cls.from_fields(struct_fields(value, cls.__name__))


__all__ = [
    "DEFAULT_VSN",
    "META_MAX_SIZE",
    "SERF_VSN",
    "Ack",
    "Alive",
    "Compress",
    "Dead",
    "ErrorResponse",
    "IndirectPing",
    "MessageType",
    "Nack",
    "NodeStateType",
    "PacketMessage",
    "Ping",
    "PushNodeState",
    "PushPull",
    "PushPullHeader",
    "StreamMessage",
    "Suspect",
    "User",
    "UserMessageHeader",
    "decode_struct",
    "encode_message",
    "encode_struct",
]
