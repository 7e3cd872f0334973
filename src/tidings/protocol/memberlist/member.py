"""What a member knows about another: the record, the events it reports, and the
state transitions as a table.

Which *message* may change a record is decided by incarnation numbers (see
`membership`); what the change *is* lives here, as data:

    state now   fact                 state after   event
    (new)       alive                ALIVE         JOIN
    DEAD/LEFT   alive (newer)        ALIVE         JOIN
    ALIVE       alive (newer)        ALIVE         UPDATE if meta changed
    SUSPECT     alive (newer)        ALIVE         UPDATE (refuted)
    ALIVE       suspect              SUSPECT       SUSPECT
    SUSPECT     suspicion timeout    DEAD          DEAD
    ALIVE/SUSP. dead                 DEAD          DEAD
    ALIVE/SUSP. dead from itself     LEFT          LEAVE
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import Enum

from tidings.protocol.memberlist.messages import NodeStateType

Address = tuple[str, int]


class Fact(Enum):
    ALIVE = "alive"
    SUSPECT = "suspect"
    SUSPICION_TIMEOUT = "suspicion-timeout"
    DEAD = "dead"
    LEAVE = "leave"


class MemberEventKind(Enum):
    JOIN = "join"
    UPDATE = "update"
    SUSPECT = "suspect"
    DEAD = "dead"
    LEAVE = "leave"


A, S, D, L = (NodeStateType.ALIVE, NodeStateType.SUSPECT, NodeStateType.DEAD, NodeStateType.LEFT)
J, U, SU, DE, LE = (
    MemberEventKind.JOIN,
    MemberEventKind.UPDATE,
    MemberEventKind.SUSPECT,
    MemberEventKind.DEAD,
    MemberEventKind.LEAVE,
)

# (state now, fact) -> (state after, event or None). A pair that is missing is ignored.
TRANSITIONS: dict[tuple[NodeStateType, Fact], tuple[NodeStateType, MemberEventKind | None]] = {
    (D, Fact.ALIVE): (A, J),
    (L, Fact.ALIVE): (A, J),
    (A, Fact.ALIVE): (A, None),  # UPDATE when the metadata changed
    (S, Fact.ALIVE): (A, U),
    (A, Fact.SUSPECT): (S, SU),
    (S, Fact.SUSPICION_TIMEOUT): (D, DE),
    (A, Fact.DEAD): (D, DE),
    (S, Fact.DEAD): (D, DE),
    (A, Fact.LEAVE): (L, LE),
    (S, Fact.LEAVE): (L, LE),
}


@dataclass(slots=True)
class Member:
    """One member as seen from here (mutable: the state machine owns it)."""

    name: str
    addr: bytes
    port: int
    meta: bytes
    incarnation: int
    state: NodeStateType
    state_change: float
    vsn: bytes

    @property
    def address(self) -> Address:
        return (ip_text(self.addr), self.port)

    @property
    def protocol_max(self) -> int:
        return self.vsn[1] if len(self.vsn) > 1 else 0

    @property
    def dead_or_left(self) -> bool:
        return self.state in (NodeStateType.DEAD, NodeStateType.LEFT)

    def view(self) -> MemberView:
        return MemberView(
            self.name, self.address, self.meta, self.incarnation, self.state, self.vsn
        )


@dataclass(frozen=True, slots=True)
class MemberView:
    """An immutable snapshot of a member, for events and listings."""

    name: str
    address: Address
    meta: bytes
    incarnation: int
    state: NodeStateType
    vsn: bytes


@dataclass(frozen=True, slots=True)
class MemberEvent:
    kind: MemberEventKind
    member: MemberView
    at: float


def ip_text(addr: bytes) -> str:
    """A 4- or 16-byte IP as text (IPv4-mapped IPv6, as Go sends IPv4, as IPv4)."""
    if len(addr) == 4:
        return str(ipaddress.IPv4Address(addr))
    if len(addr) == 16:
        ip = ipaddress.IPv6Address(addr)
        return str(ip.ipv4_mapped or ip)
    return ""


def ip_bytes(host: str) -> bytes:
    """The wire form of an IP address: 4 bytes for IPv4, 16 for IPv6."""
    return ipaddress.ip_address(host).packed
