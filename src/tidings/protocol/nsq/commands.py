"""The commands a client sends, as typed values (what the parser yields)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Identify:
    """IDENTIFY: the raw JSON body (decoded by `identify.parse_identify`)."""

    body: bytes


@dataclass(frozen=True, slots=True)
class Auth:
    """AUTH: the secret."""

    secret: bytes


@dataclass(frozen=True, slots=True)
class Sub:
    """SUB topic channel."""

    topic: str
    channel: str


@dataclass(frozen=True, slots=True)
class Pub:
    """PUB topic, one message body."""

    topic: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Mpub:
    """MPUB topic, several message bodies published atomically."""

    topic: str
    bodies: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Dpub:
    """DPUB topic defer_ms, one message body delivered after `defer_ms`."""

    topic: str
    defer_ms: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Rdy:
    """RDY count: how many messages the client may have in flight."""

    count: int


@dataclass(frozen=True, slots=True)
class Fin:
    """FIN id: the message is done."""

    message_id: bytes


@dataclass(frozen=True, slots=True)
class Req:
    """REQ id timeout_ms: deliver the message again after `timeout_ms` (clamped)."""

    message_id: bytes
    timeout_ms: int


@dataclass(frozen=True, slots=True)
class Touch:
    """TOUCH id: reset the message's in-flight deadline."""

    message_id: bytes


@dataclass(frozen=True, slots=True)
class Nop:
    """NOP: nothing (the answer to a heartbeat)."""


@dataclass(frozen=True, slots=True)
class Cls:
    """CLS: the client wants to stop receiving messages."""


Command = Identify | Auth | Sub | Pub | Mpub | Dpub | Rdy | Fin | Req | Touch | Nop | Cls
