"""The exceptions tidings raises, in one tree::

    TidingsError
    ├── ConfigError        a setting is missing, malformed or out of range (names the key)
    ├── ReplyError         a command or API call fails; carries a protocol error code
    └── DisconnectError    the client's connection must be closed with a disconnect code

`ReplyError` leaves the connection open (the client gets `{"error": ...}`);
`DisconnectError` closes it with a WebSocket close code.
"""

from __future__ import annotations

from tidings.protocol.centrifuge.codes import Disconnect, ErrorCode, ReplyErrorInfo


class TidingsError(Exception):
    """Base of every tidings exception."""


class ConfigError(TidingsError):
    """A bad setting. `key` is its dotted name (`namespaces.chat.history_size`)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"config error: {key}: {message}" if key else f"config error: {message}")
        self.key = key
        self.message = message


class ReplyError(TidingsError):
    """A failed command or API call, answered with a protocol error code."""

    def __init__(self, code: ErrorCode, message: str = "") -> None:
        self.info = ReplyErrorInfo.of(code, message)
        super().__init__(self.info.message)

    @property
    def code(self) -> int:
        return self.info.code


class DisconnectError(TidingsError):
    """The client must be disconnected with `disconnect`."""

    def __init__(self, disconnect: Disconnect) -> None:
        super().__init__(f"{disconnect.code} {disconnect.reason}")
        self.disconnect = disconnect
