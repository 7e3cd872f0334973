"""The JSON encoding of Centrifuge v2: newline-delimited objects in text frames."""

from __future__ import annotations

import msgspec

from tidings.protocol.centrifuge.codec import MalformedFrame
from tidings.protocol.centrifuge.messages import Command, Reply

# MalformedFrame is shared by every codec; it is re-exported from here as before.
__all__ = ["JsonCodec", "MalformedFrame"]


class JsonCodec:
    """Decodes frames into commands and encodes replies, one JSON object per line.

    The codec is stateless and cheap to share: one instance serves every
    connection that negotiated JSON.
    """

    name = "json"
    binary = False
    #: A server ping: an empty reply.
    ping = b"{}"
    expects_pong = True

    def __init__(self, max_commands_per_frame: int = 128) -> None:
        self._decoder = msgspec.json.Decoder(Command)
        self._encoder = msgspec.json.Encoder()
        self._max_commands = max_commands_per_frame

    def decode(self, frame: bytes) -> list[Command]:
        """The commands in one frame, in order. Raises `MalformedFrame`."""
        if not frame.strip():
            raise MalformedFrame("empty frame")
        try:
            commands = self._decoder.decode_lines(frame)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise MalformedFrame(str(exc)) from None
        except RecursionError:
            raise MalformedFrame("JSON nested too deep") from None
        if len(commands) > self._max_commands:
            raise MalformedFrame(f"more than {self._max_commands} commands in one frame")
        return commands

    def encode(self, reply: Reply) -> bytes:
        """One reply (or push) as one JSON object."""
        return self._encoder.encode(reply)

    def join(self, messages: list[bytes]) -> bytes:
        """Several encoded replies as the payload of a single frame."""
        if len(messages) == 1:
            return messages[0]
        return b"\n".join(messages)
