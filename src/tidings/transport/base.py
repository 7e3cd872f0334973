"""What the core needs from a transport, and nothing about channels or users."""

from __future__ import annotations

from typing import Protocol


class Transport(Protocol):
    #: Transport name shown in connection info ("websocket", ...).
    name: str

    @property
    def remote_addr(self) -> str:
        """Peer address, "host:port"."""

    @property
    def paused(self) -> bool:
        """The socket's write buffer is full: hold further writes until resumed."""

    def write(self, data: bytes) -> None:
        """Send one frame."""

    def close(self, code: int, reason: str) -> None:
        """Send the close code and reason, then drop the connection."""
