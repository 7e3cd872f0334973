"""Commands between nodes, carried by the broker's control channel.

Each is a msgspec struct tagged by its class name, encoded with msgpack and
decoded once at the edge (`decode_command`); anything undecodable is dropped
by the receiver with a warning, never acted on.
"""

from __future__ import annotations

import msgspec


class Heartbeat(msgspec.Struct, tag=True, kw_only=True):
    """A node announcing itself; silence longer than the heartbeat timeout means gone."""

    uid: str
    name: str
    version: str
    started_at: float
    num_clients: int
    num_users: int
    num_channels: int
    num_subs: int
    addresses: list[str] = msgspec.field(default_factory=list)
    #: broadcast_all shares this node runs: task id -> {"users", "sent", "failed", "rate"}
    broadcasts: dict[str, dict[str, float]] = msgspec.field(default_factory=dict)


class DisconnectUser(msgspec.Struct, tag=True, kw_only=True):
    user: str
    code: int
    reason: str
    client: str = ""
    whitelist: list[str] = msgspec.field(default_factory=list)
    session: str = ""


class UnsubscribeUser(msgspec.Struct, tag=True, kw_only=True):
    user: str
    channel: str
    client: str = ""
    session: str = ""


class SubscribeUser(msgspec.Struct, tag=True, kw_only=True):
    user: str
    channel: str
    client: str = ""
    info: bytes = b""
    data: bytes = b""
    since_offset: int = -1
    since_epoch: str = ""
    session: str = ""


class RefreshUser(msgspec.Struct, tag=True, kw_only=True):
    user: str
    client: str = ""
    expired: bool = False
    expire_at: int = 0
    session: str = ""


class BroadcastShare(msgspec.Struct, tag=True, kw_only=True):
    """One node's part of a broadcast_all: its own users, at `rate` a second."""

    task: str
    data: bytes
    rate: float
    tags: dict[str, str] = msgspec.field(default_factory=dict)


class EmulationForward(msgspec.Struct, tag=True, kw_only=True):
    """The commands of an emulation request that reached another node than its session's."""

    #: The forwarding node (the answer goes to it) and its number for this request.
    sender: str
    request: int
    session: str
    data: bytes


class EmulationAnswer(msgspec.Struct, tag=True, kw_only=True):
    """What became of an `EmulationForward`, sent back to the node that forwarded it."""

    request: int
    delivered: bool


class ChannelsQuery(msgspec.Struct, tag=True, kw_only=True):
    """The `channels` API asking every other node for its channel counts."""

    request: str
    sender: str
    pattern: str = ""


class ChannelsAnswer(msgspec.Struct, tag=True, kw_only=True):
    """One node's channel -> subscribers (matching the query), to the node that asked."""

    request: str
    node: str
    channels: dict[str, int]
    truncated: bool = False


Command = (
    Heartbeat
    | DisconnectUser
    | UnsubscribeUser
    | SubscribeUser
    | RefreshUser
    | BroadcastShare
    | EmulationForward
    | EmulationAnswer
    | ChannelsQuery
    | ChannelsAnswer
)

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Command).decode


def encode_command(command: Command) -> bytes:
    return _encode(command)


def decode_command(data: bytes) -> Command:
    """Raises msgspec.DecodeError (a ValueError) on anything that is not a command."""
    return _decode(data)
