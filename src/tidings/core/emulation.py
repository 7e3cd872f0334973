"""Where an emulation request goes: the session of a streaming connection, here or on another node.

A client on a one-way stream (SSE, HTTP-stream) sends its commands in
separate HTTP requests that may reach any node. `EmulationSessions` indexes
the streams this node holds by session id and hands a request's commands to
the right one. A request naming another node goes to an `EmulationRelay`: on
one node there is none (the request is answered "unknown node"); a cluster
gives one that forwards the request through the broker's control channel to
that node, whose `EmulationSessions.deliver` takes it from there.
"""

from __future__ import annotations

import enum
import uuid
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tidings.core.client import Client


def session_of(client: Client) -> str:
    """The session id of `client`'s connection: set for emulated and unidirectional ones.

    As in Centrifugo, it is what the server API's `session` field selects
    (a bidirectional WebSocket connection has none: select it by `client`).
    """
    session: str = getattr(client.transport, "session", "")
    return session


def is_emulated(client: Client) -> bool:
    """Whether `client` is on an emulated connection (HTTP-stream, SSE with `/emulation`)."""
    return bool(getattr(client.transport, "emulated", False))


class EmulationTarget(Protocol):
    """A stream that takes commands: its client's `handle_frame`."""

    def handle_commands(self, data: bytes) -> None:
        """Queue the commands encoded in `data` (the stream's encoding) for its client."""


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    UNKNOWN_SESSION = "unknown session"
    UNKNOWN_NODE = "unknown node"


class EmulationRelay(ABC):
    """Forwards an emulation request to the node that holds its session."""

    @abstractmethod
    async def relay(self, node: str, session: str, data: bytes) -> Outcome:
        """Deliver `data` to `session` on `node`; UNKNOWN_NODE if no such node answers."""


class EmulationSessions:
    """The streams of this node that take emulation requests, by session id."""

    def __init__(self, node_id: str, relay: EmulationRelay | None = None) -> None:
        self.node_id = node_id
        self.relay = relay
        self._streams: dict[str, EmulationTarget] = {}
        #: Emulation requests refused (malformed, too large, unknown session or node).
        self.refused = 0

    def __len__(self) -> int:
        return len(self._streams)

    def add(self, stream: EmulationTarget) -> str:
        """Index `stream` under a new session id (random: it is the stream's only credential)."""
        session = str(uuid.uuid4())
        self._streams[session] = stream
        return session

    def remove(self, session: str) -> None:
        self._streams.pop(session, None)

    def is_local(self, node: str) -> bool:
        """Whether a request naming `node` is for this node (an empty node means this one)."""
        return not node or node == self.node_id

    def deliver(self, session: str, data: bytes) -> Outcome:
        """Hand `data` to the local stream of `session`."""
        stream = self._streams.get(session)
        if stream is None:
            return Outcome.UNKNOWN_SESSION
        stream.handle_commands(data)
        return Outcome.DELIVERED
