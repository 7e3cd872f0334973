"""What a member asks its caller to do: send a packet, run a push-pull, try a TCP ping."""

from __future__ import annotations

from dataclasses import dataclass

from tidings.protocol.memberlist.member import Address
from tidings.protocol.memberlist.messages import PacketMessage, Ping


@dataclass(frozen=True, slots=True)
class SendPacket:
    """Send these messages in one UDP packet (a compound if more than one)."""

    address: Address
    messages: tuple[PacketMessage, ...]
    crc: bool = False


@dataclass(frozen=True, slots=True)
class PushPullRequest:
    """Open a stream, send `local_state(join)`, read the answer, `merge_remote_state` it."""

    address: Address
    join: bool


@dataclass(frozen=True, slots=True)
class StreamPing:
    """Fallback TCP ping; report with `stream_ping_result(ping.seq_no, ok, now)`."""

    address: Address
    ping: Ping
    deadline: float


Outgoing = SendPacket | PushPullRequest | StreamPing
