"""The state machine of one client session, kept as data.

A session starts waiting for `connect`; anything else first is a protocol
violation. Once connected, every request kind is allowed except a second
`connect`. An empty command is a pong and is only allowed while a server ping
is unanswered. The table below is the whole protocol order; `Session` only
looks things up in it.
"""

from __future__ import annotations

from enum import Enum

from tidings.protocol.centrifuge import codes
from tidings.protocol.centrifuge.codes import Disconnect
from tidings.protocol.centrifuge.messages import REQUEST_FIELDS, Command


class SessionState(Enum):
    AWAITING_CONNECT = "awaiting_connect"
    CONNECTED = "connected"
    CLOSED = "closed"


PONG = "pong"
UNKNOWN = "unknown"

#: Which request kinds each state accepts.
ALLOWED: dict[SessionState, frozenset[str]] = {
    SessionState.AWAITING_CONNECT: frozenset({"connect"}),
    SessionState.CONNECTED: frozenset(REQUEST_FIELDS) - {"connect"} | {PONG, UNKNOWN},
    SessionState.CLOSED: frozenset(),
}


class SessionViolation(Exception):
    """The client broke the protocol order; the session must close with `disconnect`."""

    def __init__(self, disconnect: Disconnect, detail: str) -> None:
        super().__init__(detail)
        self.disconnect = disconnect
        self.detail = detail


def method_of(command: Command) -> str:
    """The request kind of a command: a field name, `pong` (empty), or `unknown`.

    Raises `SessionViolation` when a command carries several requests, or a
    request other than `send` without an id.
    """
    present = [name for name in REQUEST_FIELDS if getattr(command, name) is not None]
    if len(present) > 1:
        raise SessionViolation(codes.BAD_REQUEST, "several requests in one command")
    if not present:
        return PONG if command.id == 0 else UNKNOWN
    method = present[0]
    if command.id == 0 and method != "send":
        raise SessionViolation(codes.BAD_REQUEST, f"{method} without id")
    return method


class Session:
    """Order checks for one connection: connect first, pongs only when asked."""

    __slots__ = ("awaiting_pong", "state")

    def __init__(self) -> None:
        self.state = SessionState.AWAITING_CONNECT
        self.awaiting_pong = False

    def accept(self, command: Command) -> str:
        """The request kind of `command` if the session accepts it now, else raises."""
        method = method_of(command)
        if method not in ALLOWED[self.state]:
            if self.state is SessionState.AWAITING_CONNECT:
                raise SessionViolation(codes.BAD_REQUEST, f"{method} before connect")
            if self.state is SessionState.CLOSED:
                raise SessionViolation(codes.BAD_REQUEST, "session closed")
            raise SessionViolation(codes.BAD_REQUEST, f"unexpected {method}")
        if method == PONG:
            if not self.awaiting_pong:
                raise SessionViolation(codes.BAD_REQUEST, "pong without ping")
            self.awaiting_pong = False
        return method

    def connected(self) -> None:
        """The connect command succeeded."""
        self.state = SessionState.CONNECTED

    def ping_sent(self) -> None:
        """The server sent a ping and expects a pong."""
        self.awaiting_pong = True

    def close(self) -> None:
        self.state = SessionState.CLOSED
