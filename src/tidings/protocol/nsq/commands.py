"""The commands a client sends, as typed values (what the parser yields).

Frozen msgspec Structs: immutable, compared by value, and cheap to build on
the hot path (a FIN per message).
"""

from __future__ import annotations

import msgspec


class Identify(msgspec.Struct, frozen=True):
    """IDENTIFY: the raw JSON body (decoded by `identify.parse_identify`)."""

    body: bytes


class Auth(msgspec.Struct, frozen=True):
    """AUTH: the secret."""

    secret: bytes


class Sub(msgspec.Struct, frozen=True):
    """SUB topic channel."""

    topic: str
    channel: str


class Pub(msgspec.Struct, frozen=True):
    """PUB topic, one message body."""

    topic: str
    body: bytes


class Mpub(msgspec.Struct, frozen=True):
    """MPUB topic, several message bodies published atomically."""

    topic: str
    bodies: tuple[bytes, ...]


class Dpub(msgspec.Struct, frozen=True):
    """DPUB topic defer_ms, one message body delivered after `defer_ms`."""

    topic: str
    defer_ms: int
    body: bytes


class Rdy(msgspec.Struct, frozen=True):
    """RDY count: how many messages the client may have in flight."""

    count: int


class Fin(msgspec.Struct, frozen=True):
    """FIN id: the message is done."""

    message_id: bytes


class Req(msgspec.Struct, frozen=True):
    """REQ id timeout_ms: deliver the message again after `timeout_ms` (clamped)."""

    message_id: bytes
    timeout_ms: int


class Touch(msgspec.Struct, frozen=True):
    """TOUCH id: reset the message's in-flight deadline."""

    message_id: bytes


class Nop(msgspec.Struct, frozen=True):
    """NOP: nothing (the answer to a heartbeat)."""


class Cls(msgspec.Struct, frozen=True):
    """CLS: the client wants to stop receiving messages."""


Command = Identify | Auth | Sub | Pub | Mpub | Dpub | Rdy | Fin | Req | Touch | Nop | Cls
