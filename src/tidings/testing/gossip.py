"""An in-memory cluster of memberlist members: fake network, fake clock, no sockets.

`GossipSimulation(n)` creates n `Membership` state machines and runs them as a
discrete-event simulation: packets are delivered after a random delay unless
lost (`loss`), cut by a partition, or addressed to a killed member; push-pull
and TCP pings are delivered reliably (TCP retransmits) unless partitioned or
killed. Time only moves inside `run_until`/`run_for`, as fast as the CPU
allows, so a simulated minute of 100 members takes about a second.

With `wire=True` every packet is encoded and decoded with the real codec
(`encode_packet`/`decode_packet`, compression and CRC included) on the way.

Observations: `events` (every membership event each member reported, with
the time), `converged()`, `detection_times(name)`, `false_deaths()`.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tidings.protocol.memberlist.config import GossipConfig
from tidings.protocol.memberlist.member import Address, MemberEvent, MemberEventKind, ip_text
from tidings.protocol.memberlist.membership import (
    Membership,
    PushPullRequest,
    SendPacket,
    StreamPing,
)
from tidings.protocol.memberlist.messages import (
    NodeStateType,
    PushNodeState,
    PushPull,
    encode_message,
)
from tidings.protocol.memberlist.packet import decode_packet, encode_packet

_WAKE, _PACKET, _CALL = 0, 1, 2


@dataclass(frozen=True, slots=True)
class ObservedEvent:
    observer: str
    event: MemberEvent


@dataclass(slots=True)
class NetworkStats:
    packets_sent: int = 0
    packets_dropped: int = 0
    bytes_sent: int = 0
    streams: int = 0


@dataclass
class GossipSimulation:
    """N members on a simulated network. Names are `m0`…`m{n-1}`."""

    size: int
    config: GossipConfig = field(default_factory=GossipConfig)
    seed: int = 0
    loss: float = 0.0
    delay: tuple[float, float] = (0.0005, 0.003)
    wire: bool = False
    start: float = 0.0
    meta: Callable[[str], bytes] | None = None  # a member's metadata (default: its name)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.now = self.start
        self.members: dict[str, Membership] = {}
        self.by_address: dict[Address, str] = {}
        self.dead: set[str] = set()
        self.events: list[ObservedEvent] = []
        self.stats = NetworkStats()
        self._groups: dict[str, int] | None = None
        self._heap: list[tuple[float, int, int, Any]] = []
        self._counter = 0
        self._scheduled: dict[str, float] = {}
        self.killed_at: dict[str, float] = {}
        for i in range(self.size):
            name = f"m{i}"
            address = (f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", 7946)
            member = Membership(
                name,
                address,
                now=self.now,
                config=self.config,
                rng=random.Random(self.rng.random()),
                meta=self.meta(name) if self.meta else name.encode(),
            )
            self.members[name] = member
            self.by_address[address] = name
            self._after(name)

    # -- scenario controls ---------------------------------------------------------

    def join_all(self, seed: str = "m0", spread: float = 1.0) -> None:
        """Every member joins `seed` at a random moment within `spread` seconds."""
        address = self.address(seed)
        for name in self.members:
            if name != seed:
                at = self.now + self.rng.random() * spread
                self._push(at, _CALL, (name, lambda m: m.join([address])))

    def prejoin(self) -> None:
        """Start from an agreed view: every member knows every other as alive, with
        no gossip pending (what a long-running cluster looks like)."""
        frame = PushPull(
            False,
            tuple(
                PushNodeState(
                    name, m.addr, m.port, name.encode(), 1, NodeStateType.ALIVE, m.config.vsn
                )
                for name, m in self.members.items()
            ),
        )
        for member in self.members.values():
            member.merge_remote_state(frame, self.now)
            member.clear_broadcasts()
            member.take_events()

    def kill(self, name: str) -> None:
        """Stop a member dead (kill -9): it neither sends nor receives any more."""
        self.dead.add(name)
        self.killed_at[name] = self.now

    def partition(self, *groups: list[str]) -> None:
        """Members in different groups cannot reach each other (until `heal`)."""
        self._groups = {name: index for index, group in enumerate(groups) for name in group}

    def heal(self) -> None:
        self._groups = None

    def address(self, name: str) -> Address:
        member = self.members[name]
        return (ip_text(member.addr), member.port)

    # -- running -------------------------------------------------------------------

    def run_for(self, seconds: float) -> None:
        self.run_until(self.now + seconds)

    def run_until(self, until: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= until:
            at, _, kind, data = heapq.heappop(heap)
            self.now = at
            if kind == _WAKE:
                name = data
                if name in self.dead or self._scheduled.get(name) != at:
                    continue
                del self._scheduled[name]
                self.members[name].tick(at)
                self._after(name)
            elif kind == _PACKET:
                name, messages, source = data
                if name in self.dead:
                    continue
                self.members[name].receive(messages, source, at)
                self._after(name)
            else:
                name, action = data
                if name in self.dead:
                    continue
                action(self.members[name])
                self._after(name)
        self.now = until

    # -- observations --------------------------------------------------------------

    def alive_names(self) -> list[str]:
        return [n for n in self.members if n not in self.dead]

    def converged(self) -> bool:
        """Every live member sees exactly the live members as alive, and the dead as not."""
        live = self.alive_names()
        alive = NodeStateType.ALIVE
        for name in live:
            state_of = self.members[name].state_of
            if any(state_of(other) != alive for other in live):
                return False
            if any(state_of(gone) == alive for gone in self.dead):
                return False
        return True

    def run_until_converged(self, limit: float, step: float = 0.1) -> float | None:
        """Run until `converged()`; the simulated time it took, or None past `limit`."""
        begin = self.now
        while self.now - begin <= limit:
            if self.converged():
                return self.now - begin
            self.run_for(step)
        return None

    def detection_times(self, name: str) -> dict[str, float]:
        """For each live member that declared `name` dead: seconds since the kill."""
        killed = self.killed_at[name]
        times: dict[str, float] = {}
        for seen in self.events:
            e = seen.event
            if (
                e.member.name == name
                and e.kind is MemberEventKind.DEAD
                and e.at >= killed
                and seen.observer not in times
            ):
                times[seen.observer] = e.at - killed
        return times

    def false_deaths(self) -> list[ObservedEvent]:
        """DEAD events about members that were alive at that moment."""
        return [
            seen
            for seen in self.events
            if seen.event.kind is MemberEventKind.DEAD
            and seen.event.at < self.killed_at.get(seen.event.member.name, float("inf"))
        ]

    def count(self, kind: MemberEventKind) -> int:
        return sum(1 for seen in self.events if seen.event.kind is kind)

    # -- plumbing ------------------------------------------------------------------

    def _push(self, at: float, kind: int, data: Any) -> None:
        self._counter += 1
        heapq.heappush(self._heap, (at, self._counter, kind, data))

    def _reachable(self, a: str, b: str) -> bool:
        if b in self.dead or a in self.dead:
            return False
        groups = self._groups
        return groups is None or groups.get(a, -1) == groups.get(b, -2)

    def _after(self, name: str) -> None:
        """Collect a member's output and schedule its next wake-up."""
        member = self.members[name]
        for out in member.take_outgoing():
            if isinstance(out, SendPacket):
                self._send(name, out)
            elif isinstance(out, PushPullRequest):
                self._push_pull(name, out)
            elif isinstance(out, StreamPing):
                self._stream_ping(name, out)
        for event in member.take_events():
            self.events.append(ObservedEvent(name, event))
        member.take_user_messages()
        due = max(member.next_deadline(), self.now + 1e-6)
        current = self._scheduled.get(name)
        if current is None or due < current or current < self.now:
            self._scheduled[name] = due
            self._push(due, _WAKE, name)

    def _latency(self) -> float:
        low, high = self.delay
        return low + (high - low) * self.rng.random()

    def _send(self, source: str, packet: SendPacket) -> None:
        self.stats.packets_sent += 1
        target = self.by_address.get(packet.address)
        messages = packet.messages
        if self.wire:
            parts = [encode_message(m) for m in messages]
            raw = encode_packet(parts, compress=True, crc=packet.crc)
            self.stats.bytes_sent += len(raw)
            decoded = decode_packet(raw)
            assert not decoded.problems, decoded.problems
            messages = decoded.messages
        if (
            target is None
            or not self._reachable(source, target)
            or (self.loss and self.rng.random() < self.loss)
        ):
            self.stats.packets_dropped += 1
            return
        self._push(self.now + self._latency(), _PACKET, (target, messages, self.address(source)))

    def _push_pull(self, source: str, request: PushPullRequest) -> None:
        self.stats.streams += 1
        target = self.by_address.get(request.address)
        if target is None or not self._reachable(source, target):
            return
        rtt = 2 * self._latency()
        local = self.members[source].local_state(request.join)

        def answer(remote: Membership) -> None:
            reply = remote.local_state(request.join)
            remote.merge_remote_state(local, self.now)
            self._push(
                self.now + rtt / 2,
                _CALL,
                (source, lambda m: m.merge_remote_state(reply, self.now)),
            )

        self._push(self.now + rtt / 2, _CALL, (target, answer))

    def _stream_ping(self, source: str, request: StreamPing) -> None:
        self.stats.streams += 1
        target = self.by_address.get(request.address)
        seq = request.ping.seq_no
        if target is not None and self._reachable(source, target):
            at = self.now + 2 * self._latency()
            ok = True
        else:
            at, ok = request.deadline, False
        self._push(at, _CALL, (source, lambda m: m.stream_ping_result(seq, ok, self.now)))


def _own_meta(member: Membership) -> bytes:
    view = member.member(member.name)
    return view.meta if view else b""
