"""Error codes and disconnect codes of the Centrifuge v2 protocol.

Error codes travel inside a reply (`{"id":1,"error":{...}}`) and leave the
connection open. Disconnect codes close the WebSocket: 3000-3499 and
4000-4499 tell the client to reconnect, 3500-3999 and 4500-4999 are terminal.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ErrorCode(IntEnum):
    """Codes of errors returned in replies (and by the server API)."""

    INTERNAL = 100
    UNAUTHORIZED = 101
    UNKNOWN_CHANNEL = 102
    PERMISSION_DENIED = 103
    METHOD_NOT_FOUND = 104
    ALREADY_SUBSCRIBED = 105
    LIMIT_EXCEEDED = 106
    BAD_REQUEST = 107
    NOT_AVAILABLE = 108
    TOKEN_EXPIRED = 109
    EXPIRED = 110
    TOO_MANY_REQUESTS = 111
    UNRECOVERABLE_POSITION = 112


_ERROR_MESSAGES: dict[ErrorCode, str] = {
    ErrorCode.INTERNAL: "internal server error",
    ErrorCode.UNAUTHORIZED: "unauthorized",
    ErrorCode.UNKNOWN_CHANNEL: "unknown channel",
    ErrorCode.PERMISSION_DENIED: "permission denied",
    ErrorCode.METHOD_NOT_FOUND: "method not found",
    ErrorCode.ALREADY_SUBSCRIBED: "already subscribed",
    ErrorCode.LIMIT_EXCEEDED: "limit exceeded",
    ErrorCode.BAD_REQUEST: "bad request",
    ErrorCode.NOT_AVAILABLE: "not available",
    ErrorCode.TOKEN_EXPIRED: "token expired",
    ErrorCode.EXPIRED: "expired",
    ErrorCode.TOO_MANY_REQUESTS: "too many requests",
    ErrorCode.UNRECOVERABLE_POSITION: "unrecoverable position",
}

_TEMPORARY = frozenset({ErrorCode.INTERNAL, ErrorCode.TOO_MANY_REQUESTS})


@dataclass(frozen=True, slots=True)
class ReplyErrorInfo:
    """An error as carried in a reply: code, message, and whether to retry."""

    code: int
    message: str
    temporary: bool = False

    @classmethod
    def of(cls, code: ErrorCode, message: str = "") -> ReplyErrorInfo:
        """The standard error for `code`, optionally with a more precise message."""
        return cls(int(code), message or _ERROR_MESSAGES[code], code in _TEMPORARY)


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Why the server closes a connection: a WebSocket close code and reason."""

    code: int
    reason: str

    @property
    def reconnect(self) -> bool:
        """Whether a well-behaved client reconnects after this disconnect."""
        return 3000 <= self.code < 3500 or 4000 <= self.code < 4500


# Disconnects used by the server; names follow the protocol's code table.
SHUTDOWN = Disconnect(3001, "shutdown")
SERVER_ERROR = Disconnect(3004, "internal server error")
EXPIRED = Disconnect(3005, "connection expired")
SUBSCRIPTION_EXPIRED = Disconnect(3006, "subscription expired")
SLOW = Disconnect(3008, "slow")
WRITE_ERROR = Disconnect(3009, "write error")
INSUFFICIENT_STATE = Disconnect(3010, "insufficient state")
FORCE_RECONNECT = Disconnect(3011, "force reconnect")
NO_PONG = Disconnect(3012, "no pong")
TOO_MANY_REQUESTS = Disconnect(3013, "too many requests")
INVALID_TOKEN = Disconnect(3500, "invalid token")
BAD_REQUEST = Disconnect(3501, "bad request")
STALE = Disconnect(3502, "stale")
FORCE_DISCONNECT = Disconnect(3503, "force disconnect")
CONNECTION_LIMIT = Disconnect(3504, "connection limit")
CHANNEL_LIMIT = Disconnect(3505, "channel limit")
INAPPROPRIATE_PROTOCOL = Disconnect(3506, "inappropriate protocol")
PERMISSION_DENIED = Disconnect(3507, "permission denied")
NOT_AVAILABLE = Disconnect(3508, "not available")
TOO_MANY_ERRORS = Disconnect(3509, "too many errors")
