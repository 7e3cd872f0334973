"""The state of one probe in flight, and of an indirect ping run for another member.

`Membership` holds at most one `Probe` (its own) and one `Relay` per indirect
ping it was asked to perform.
"""

from __future__ import annotations

from dataclasses import dataclass

from tidings.protocol.memberlist.member import Address, ip_text
from tidings.protocol.memberlist.messages import Ping


@dataclass(slots=True)
class Probe:
    """Our probe of `target`: indirect pings at `indirect_at`, failed at `deadline`."""

    target: str
    seq: int
    indirect_at: float
    deadline: float
    indirect: bool = False
    expected_nacks: int = 0
    nacks: int = 0


@dataclass(frozen=True, slots=True)
class Relay:
    """An indirect ping we perform for `requester`; answer with their sequence number."""

    seq: int
    requester: Address
    nack: bool
    deadline: float


def reply_address(ping: Ping, source: Address) -> Address:
    """Where the ack of `ping` goes: the address it names, else the one it came from."""
    if ping.source_addr and ping.source_port:
        return (ip_text(ping.source_addr), ping.source_port)
    return source
