"""An in-memory transport: what a client writes is recorded, not sent."""

from __future__ import annotations

from typing import Any

import msgspec


class MemoryTransport:
    """A `tidings.transport.base.Transport` that keeps every frame and the close.

    `frames` holds each written frame (one flush is one frame); `replies()`
    splits them into decoded JSON objects the way an SDK does. Set `paused`
    to model a socket whose write buffer is full.
    """

    name = "memory"

    def __init__(self, remote_addr: str = "127.0.0.1:0") -> None:
        self.remote_addr = remote_addr
        self.frames: list[bytes] = []
        self.close_code: int | None = None
        self.close_reason = ""
        self._paused = False

    @property
    def paused(self) -> bool:
        return self._paused

    @paused.setter
    def paused(self, value: bool) -> None:
        self._paused = value

    @property
    def closed(self) -> bool:
        return self.close_code is not None

    def write(self, data: bytes) -> None:
        if self.closed:
            raise RuntimeError("write after close")
        self.frames.append(data)

    def close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason

    def replies(self) -> list[dict[str, Any]]:
        """Every message written so far, decoded, in order (frames split on newlines)."""
        out: list[dict[str, Any]] = []
        for frame in self.frames:
            for line in frame.split(b"\n"):
                decoded = msgspec.json.decode(line)
                if not isinstance(decoded, dict):
                    raise AssertionError(f"not a JSON object: {line!r}")
                out.append(decoded)
        return out

    def take(self) -> list[dict[str, Any]]:
        """`replies()`, then forget them (so the next call sees only newer ones)."""
        out = self.replies()
        self.frames.clear()
        return out
