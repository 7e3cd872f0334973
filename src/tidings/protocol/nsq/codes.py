"""NSQ error codes and which of them close the connection.

An error reaches the client as an error frame whose body is `"E_CODE description"`.
Three codes leave the connection open (a FIN, REQ or TOUCH of a message the
client does not hold); every other one is fatal: nsqd sends the frame, then
closes the connection, and so do we.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Every error code the V2 protocol sends."""

    INVALID = "E_INVALID"
    BAD_PROTOCOL = "E_BAD_PROTOCOL"
    BAD_BODY = "E_BAD_BODY"
    BAD_TOPIC = "E_BAD_TOPIC"
    BAD_CHANNEL = "E_BAD_CHANNEL"
    BAD_MESSAGE = "E_BAD_MESSAGE"
    PUB_FAILED = "E_PUB_FAILED"
    MPUB_FAILED = "E_MPUB_FAILED"
    DPUB_FAILED = "E_DPUB_FAILED"
    FIN_FAILED = "E_FIN_FAILED"
    REQ_FAILED = "E_REQ_FAILED"
    TOUCH_FAILED = "E_TOUCH_FAILED"
    SUB_FAILED = "E_SUB_FAILED"
    IDENTIFY_FAILED = "E_IDENTIFY_FAILED"
    AUTH_FIRST = "E_AUTH_FIRST"
    AUTH_FAILED = "E_AUTH_FAILED"
    AUTH_DISABLED = "E_AUTH_DISABLED"
    UNAUTHORIZED = "E_UNAUTHORIZED"

    @property
    def fatal(self) -> bool:
        """Whether the server closes the connection after sending this error."""
        return self not in _NON_FATAL


_NON_FATAL = frozenset({ErrorCode.FIN_FAILED, ErrorCode.REQ_FAILED, ErrorCode.TOUCH_FAILED})


class NsqError(Exception):
    """A protocol error for the client: a code and a description.

    The only exception the parser raises. `frame_body` is what goes into the
    error frame; `fatal` says whether the connection closes after it.
    """

    def __init__(self, code: ErrorCode, description: str = "") -> None:
        super().__init__(f"{code.value} {description}" if description else code.value)
        self.code = code
        self.description = description

    @property
    def fatal(self) -> bool:
        return self.code.fatal

    @property
    def frame_body(self) -> bytes:
        return str(self).encode()
