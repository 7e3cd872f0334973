"""What every Centrifuge encoding offers: frames to commands, replies to bytes."""

from __future__ import annotations

from typing import Protocol

from tidings.protocol.centrifuge.messages import Command, Reply


class MalformedFrame(ValueError):
    """A frame that is not a sequence of commands (the client is closed with 3501)."""


class Codec(Protocol):
    #: "json" or "protobuf".
    name: str
    #: Whether frames are binary (protobuf) or text (JSON).
    binary: bool
    #: The encoded server ping (an empty reply).
    ping: bytes
    #: Whether clients of this encoding answer pings (bidirectional) or not (uni).
    expects_pong: bool

    def decode(self, frame: bytes) -> list[Command]:
        """The commands in one frame, in order; raises `MalformedFrame`."""

    def encode(self, reply: Reply) -> bytes:
        """One reply or push, ready to be joined with others into a frame."""

    def join(self, messages: list[bytes]) -> bytes:
        """Several encoded replies as the payload of one frame."""
