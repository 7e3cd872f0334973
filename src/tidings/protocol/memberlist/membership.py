"""SWIM with Lifeguard, as memberlist runs it, as a state machine without I/O.

The caller owns the clock and the sockets. It feeds in what happened —
`receive` (decoded packet messages from an address), `merge_remote_state` (a
push-pull frame read from a stream), `stream_ping_result` — and calls `tick(now)`
at `next_deadline()` or later. It takes out what to do — `take_outgoing()`
(packets to send, streams to open) — and what changed — `take_events()`.

The protocol, per memberlist (probe every `probe_interval`):
- Probe the next member in a shuffled round-robin order with a ping; no ack
  within `probe_timeout` → ask `indirect_checks` random members to ping it
  (they answer with a nack if they also fail, which tells us *our* network is
  fine) and try a TCP ping; no ack by the end of the (health-scaled) probe
  interval → suspect it.
- Suspicion lasts `suspicion_mult * max(1, log10 n) * probe_interval` up to 6*
  that, shortened by independent confirmations (`Suspicion`), then → dead.
- A member suspected or declared dead with a current incarnation refutes it by
  raising its incarnation and gossiping `alive`.
- News is piggybacked on every packet and gossiped every `gossip_interval` to
  `gossip_nodes` random members (`BroadcastQueue`); full state is exchanged by
  push-pull with one random member every `push_pull_interval` (scaled above 32).
- Local health (`Awareness`) stretches our probe interval when *we* seem slow.
- As Serf does on top of memberlist, members believed failed are retried with
  a join push-pull every `reconnect_interval`, so healed partitions merge.
"""

from __future__ import annotations

import random

from tidings.protocol.memberlist.awareness import Awareness
from tidings.protocol.memberlist.broadcasts import BroadcastQueue
from tidings.protocol.memberlist.config import GossipConfig
from tidings.protocol.memberlist.member import (
    TRANSITIONS,
    Address,
    Fact,
    Member,
    MemberEvent,
    MemberEventKind,
    MemberView,
    ip_bytes,
    ip_text,
)
from tidings.protocol.memberlist.messages import (
    Ack,
    Alive,
    Dead,
    IndirectPing,
    Nack,
    NodeStateType,
    PacketMessage,
    Ping,
    PushNodeState,
    PushPull,
    Suspect,
    User,
    encode_message,
)
from tidings.protocol.memberlist.outgoing import (
    Outgoing,
    PushPullRequest,
    SendPacket,
    StreamPing,
)
from tidings.protocol.memberlist.packet import COMPOUND_HEADER_OVERHEAD, COMPOUND_OVERHEAD
from tidings.protocol.memberlist.probe import Probe, Relay, reply_address
from tidings.protocol.memberlist.suspicion import Suspicion
from tidings.protocol.memberlist.versions import check_versions

__all__ = ["Membership", "Outgoing", "PushPullRequest", "SendPacket", "StreamPing"]


class Membership:
    """The local member's view of the cluster and its SWIM duties."""

    def __init__(
        self,
        name: str,
        address: Address,
        *,
        now: float,
        meta: bytes = b"",
        config: GossipConfig | None = None,
        rng: random.Random | None = None,
        ack_payload: bytes = b"",
    ) -> None:
        self.name = name
        self.config = config or GossipConfig()
        self.addr = ip_bytes(address[0])
        self.port = address[1]
        self.ack_payload = ack_payload
        self.user_state = b""
        self.left = False
        self.rng = rng or random.Random()
        self._members: dict[str, Member] = {}
        self._order: list[Member] = []
        self._probe_index = 0
        self._seq = 0
        self._incarnation = 0
        self._awareness = Awareness(self.config.awareness_max_multiplier)
        self._broadcasts = BroadcastQueue()
        self._suspicions: dict[str, Suspicion] = {}
        self._probe: Probe | None = None
        self._relays: dict[int, Relay] = {}
        self._outgoing: list[Outgoing] = []
        self._events: list[MemberEvent] = []
        self._user_messages: list[bytes] = []
        self._failed: dict[str, tuple[Address, float]] = {}
        c = self.config
        self._next_reconnect = now + self.rng.random() * c.reconnect_interval
        self._next_probe = now + self.rng.random() * c.probe_interval
        self._next_gossip = now + self.rng.random() * c.gossip_interval
        self._next_push_pull = now + self.rng.random() * c.push_pull_interval
        self._incarnation = 1
        self._alive(Alive(1, name, self.addr, self.port, meta, c.vsn), now, bootstrap=True)

    # -- what the caller takes out -------------------------------------------------

    def take_outgoing(self) -> list[Outgoing]:
        out, self._outgoing = self._outgoing, []
        return out

    def take_events(self) -> list[MemberEvent]:
        out, self._events = self._events, []
        return out

    def take_user_messages(self) -> list[bytes]:
        out, self._user_messages = self._user_messages, []
        return out

    # -- views ---------------------------------------------------------------------

    @property
    def health_score(self) -> int:
        return self._awareness.score

    @property
    def incarnation(self) -> int:
        return self._members[self.name].incarnation

    @property
    def leave_done(self) -> bool:
        """After `leave`: the leave notice has been gossiped as often as memberlist does."""
        return self.left and not self._broadcasts.pending(self.name)

    def members(self, *, include_dead: bool = False) -> list[MemberView]:
        """Members as seen from here (alive and suspect ones unless `include_dead`)."""
        return [m.view() for m in self._order if include_dead or not m.dead_or_left]

    def member(self, name: str) -> MemberView | None:
        m = self._members.get(name)
        return m.view() if m else None

    def state_of(self, name: str) -> NodeStateType | None:
        m = self._members.get(name)
        return m.state if m else None

    # -- inputs --------------------------------------------------------------------

    def join(self, addresses: list[Address]) -> None:
        """Ask the caller to push-pull (join=True) with each seed address."""
        self._outgoing += [PushPullRequest(a, True) for a in addresses]

    def leave(self, now: float) -> None:
        """Announce a graceful leave (`dead` from ourselves); watch `leave_done`."""
        if self.left:
            return
        self.left = True
        me = self._members[self.name]
        if any(m.state == NodeStateType.ALIVE and m.name != self.name for m in self._order):
            self._dead(Dead(me.incarnation, self.name, self.name), now)

    def update_meta(self, meta: bytes, now: float) -> None:
        """Change our metadata: a new incarnation, gossiped as `alive`."""
        self._incarnation += 1
        self._alive(
            Alive(self._incarnation, self.name, self.addr, self.port, meta, self.config.vsn),
            now,
            bootstrap=True,
        )

    def clear_broadcasts(self) -> None:
        """Forget pending gossip (for a simulation that starts from an agreed view)."""
        self._broadcasts = BroadcastQueue()

    def broadcast_user(self, payload: bytes) -> None:
        """Gossip an application message (piggybacked, retransmitted like news)."""
        self._broadcasts.queue("", User(payload))

    def receive(self, messages: tuple[PacketMessage, ...], source: Address, now: float) -> None:
        """Handle the messages of one packet received from `source`."""
        for message in messages:
            self._handle(message, source, now)

    def stream_ping_result(self, seq: int, ok: bool, now: float) -> None:
        probe = self._probe
        if ok and probe is not None and probe.seq == seq:
            self._probe_succeeded()

    def local_state(self, join: bool) -> PushPull:
        """Our push-pull frame: every member we know, and the application's user state."""
        nodes = tuple(
            PushNodeState(m.name, m.addr, m.port, m.meta, m.incarnation, m.state, m.vsn)
            for m in self._order
        )
        return PushPull(join, nodes, self.user_state)

    def merge_remote_state(self, frame: PushPull, now: float) -> None:
        """Fold a peer's push-pull frame into our view, as memberlist's `mergeState`.

        Raises `IncompatibleVersions` (and merges nothing) when the frame would mix
        members that cannot speak to each other, as memberlist's `verifyProtocol`.
        """
        check_versions(frame.nodes, self._order)
        for r in frame.nodes:
            port = r.port or self.port
            if r.state == NodeStateType.ALIVE:
                self._alive(Alive(r.incarnation, r.name, r.addr, port, r.meta, r.vsn), now)
            elif r.state == NodeStateType.LEFT:
                self._dead(Dead(r.incarnation, r.name, r.name), now)
            elif r.state in (NodeStateType.DEAD, NodeStateType.SUSPECT):
                self._suspect(Suspect(r.incarnation, r.name, self.name), now)

    # -- time ----------------------------------------------------------------------

    def next_deadline(self) -> float:
        times = [self._next_probe, self._next_gossip, self._next_push_pull, self._next_reconnect]
        probe = self._probe
        if probe is not None:
            times.append(probe.deadline if probe.indirect else probe.indirect_at)
        if self._relays:
            times.append(min(r.deadline for r in self._relays.values()))
        if self._suspicions:
            times.append(min(s.deadline for s in self._suspicions.values()))
        return min(times)

    def tick(self, now: float) -> None:
        """Run every timer due at `now`."""
        c = self.config
        if self._relays:
            for seq in [s for s, r in self._relays.items() if r.deadline <= now]:
                relay = self._relays.pop(seq)
                if relay.nack:
                    self._send(relay.requester, Nack(relay.seq))
        probe = self._probe
        if probe is not None:
            if not probe.indirect and now >= probe.indirect_at:
                self._probe_indirectly(probe, now)
            if now >= probe.deadline:
                self._probe_failed(probe, now)
        if self._suspicions:
            for name in [n for n, s in self._suspicions.items() if s.deadline <= now]:
                suspicion = self._suspicions.pop(name)
                m = self._members.get(name)
                if m and m.state == NodeStateType.SUSPECT and m.state_change == suspicion.start:
                    self._dead(Dead(m.incarnation, name, self.name), now, timeout=True)
        if now >= self._next_probe:
            while self._next_probe <= now:
                self._next_probe += c.probe_interval
            if self._probe is None:
                self._probe_next(now)
        if now >= self._next_gossip:
            while self._next_gossip <= now:
                self._next_gossip += c.gossip_interval
            self._gossip(now)
        if now >= self._next_push_pull:
            self._next_push_pull = now + c.push_pull_period(len(self._order))
            peers = self._random_members(1, lambda m: m.state != NodeStateType.ALIVE)
            if peers:
                self._outgoing.append(PushPullRequest(peers[0].address, False))
        if now >= self._next_reconnect:
            self._next_reconnect = now + c.reconnect_interval
            self._reconnect(now)

    def _reconnect(self, now: float) -> None:
        """Serf's reconnect: join a random failed member, more eagerly the more failed."""
        timeout = self.config.reconnect_timeout
        for name in [n for n, (_, since) in self._failed.items() if now - since > timeout]:
            del self._failed[name]
        if not self._failed:
            return
        alive = sum(1 for m in self._order if m.state == NodeStateType.ALIVE)
        if self.rng.random() > len(self._failed) / max(alive, 1):
            return
        address, _ = self._failed[self.rng.choice(sorted(self._failed))]
        self._outgoing.append(PushPullRequest(address, True))

    # -- message handling ----------------------------------------------------------

    def _handle(self, message: PacketMessage, source: Address, now: float) -> None:
        if isinstance(message, Ping):
            if message.node and message.node != self.name:
                return  # meant for a previous member at this address
            self._send(reply_address(message, source), Ack(message.seq_no, self.ack_payload))
        elif isinstance(message, IndirectPing):
            self._relay(message, source, now)
        elif isinstance(message, Ack):
            probe = self._probe
            if probe is not None and probe.seq == message.seq_no:
                self._probe_succeeded()
            elif (relay := self._relays.pop(message.seq_no, None)) is not None:
                self._send(relay.requester, Ack(relay.seq))
        elif isinstance(message, Nack):
            probe = self._probe
            if probe is not None and probe.seq == message.seq_no:
                probe.nacks += 1
        elif isinstance(message, Alive):
            if message.port == 0:
                message = Alive(
                    message.incarnation, message.node, message.addr, self.port, message.meta,
                    message.vsn,
                )  # fmt: skip
            self._alive(message, now)
        elif isinstance(message, Suspect):
            self._suspect(message, now)
        elif isinstance(message, Dead):
            self._dead(message, now)
        else:
            self._user_messages.append(message.payload)

    def _relay(self, ind: IndirectPing, source: Address, now: float) -> None:
        seq = self._next_seq()
        requester = (
            (ip_text(ind.source_addr), ind.source_port)
            if ind.source_addr and ind.source_port
            else source
        )
        self._relays[seq] = Relay(ind.seq_no, requester, ind.nack, now + self.config.probe_timeout)
        ping = Ping(seq, ind.node, self.addr, self.port, self.name)
        self._send((ip_text(ind.target), ind.port or self.port), ping)

    # -- probing -------------------------------------------------------------------

    def _probe_next(self, now: float) -> None:
        checked = 0
        while checked < len(self._order):
            if self._probe_index >= len(self._order):
                self._reset_order(now)
                self._probe_index = 0
                checked += 1
                continue
            m = self._order[self._probe_index]
            self._probe_index += 1
            if m.name == self.name or m.dead_or_left:
                checked += 1
                continue
            self._probe_member(m, now)
            return

    def _probe_member(self, m: Member, now: float) -> None:
        c = self.config
        ping = Ping(self._next_seq(), m.name, self.addr, self.port, self.name)
        interval = self._awareness.scale(c.probe_interval)
        self._probe = Probe(m.name, ping.seq_no, now + c.probe_timeout, now + interval)
        if m.state == NodeStateType.ALIVE:
            self._send(m.address, ping)
        else:  # Lifeguard "buddy system": tell a suspect it is suspected
            suspect = Suspect(m.incarnation, m.name, self.name)
            self._outgoing.append(SendPacket(m.address, (ping, suspect), m.protocol_max >= 5))

    def _probe_indirectly(self, probe: Probe, now: float) -> None:
        probe.indirect = True
        target = self._members.get(probe.target)
        if target is None:
            return
        peers = self._random_members(
            self.config.indirect_checks,
            lambda m: m.name == target.name or m.state != NodeStateType.ALIVE,
        )
        for peer in peers:
            nack = peer.protocol_max >= 4
            probe.expected_nacks += nack
            self._send(
                peer.address,
                IndirectPing(
                    probe.seq, target.addr, target.port, target.name, nack,
                    self.addr, self.port, self.name,
                ),
            )  # fmt: skip
        if self.config.tcp_pings and target.protocol_max >= 3:
            ping = Ping(probe.seq, target.name, self.addr, self.port, self.name)
            self._outgoing.append(StreamPing(target.address, ping, probe.deadline))

    def _probe_succeeded(self) -> None:
        self._probe = None
        self._awareness.apply(-1)

    def _probe_failed(self, probe: Probe, now: float) -> None:
        self._probe = None
        if probe.expected_nacks > 0:
            self._awareness.apply(max(probe.expected_nacks - probe.nacks, 0))
        else:
            self._awareness.apply(1)
        m = self._members.get(probe.target)
        if m is not None:
            self._suspect(Suspect(m.incarnation, m.name, self.name), now)

    def _reset_order(self, now: float) -> None:
        """Forget members dead for longer than `gossip_to_the_dead_time`, reshuffle."""
        keep: list[Member] = []
        for m in self._order:
            if m.dead_or_left and now - m.state_change > self.config.gossip_to_the_dead_time:
                del self._members[m.name]
                self._suspicions.pop(m.name, None)
            else:
                keep.append(m)
        self.rng.shuffle(keep)
        self._order = keep

    # -- state changes -------------------------------------------------------------

    def _alive(self, a: Alive, now: float, *, bootstrap: bool = False) -> None:
        if self.left and a.node == self.name:
            return
        vsn = a.vsn
        if len(vsn) >= 3 and (vsn[0] == 0 or vsn[1] == 0 or vsn[0] > vsn[1]):
            return
        m = self._members.get(a.node)
        reclaim = False
        if m is None:
            m = Member(a.node, a.addr, a.port, a.meta, 0, NodeStateType.DEAD, now, vsn)
            self._members[a.node] = m
            offset = self.rng.randrange(len(self._order) + 1)
            self._order.append(m)
            self._order[offset], self._order[-1] = self._order[-1], self._order[offset]
        elif m.addr != a.addr or m.port != a.port:
            if m.state != NodeStateType.LEFT:
                return  # a name conflict: keep the member we know
            reclaim = True
        local = m.name == self.name
        if a.incarnation <= m.incarnation and not local and not reclaim:
            return
        if a.incarnation < m.incarnation and local:
            return
        self._suspicions.pop(a.node, None)
        if local and not bootstrap:
            if a.incarnation == m.incarnation and a.meta == m.meta and a.vsn == m.vsn:
                return
            self._refute(m, a.incarnation)
            return
        self._broadcasts.queue(a.node, a)
        old_state, old_meta = m.state, m.meta
        if len(vsn) >= 6:
            m.vsn = vsn
        m.incarnation, m.meta, m.addr, m.port = a.incarnation, a.meta, a.addr, a.port
        new_state, kind = TRANSITIONS[(old_state, Fact.ALIVE)]
        if new_state != old_state:
            m.state, m.state_change = new_state, now
            self._failed.pop(m.name, None)
        if kind is None and old_meta != m.meta:
            kind = MemberEventKind.UPDATE
        if kind is not None:
            self._events.append(MemberEvent(kind, m.view(), now))

    def _suspect(self, s: Suspect, now: float) -> None:
        m = self._members.get(s.node)
        if m is None or s.incarnation < m.incarnation:
            return
        suspicion = self._suspicions.get(s.node)
        if suspicion is not None:
            if suspicion.confirm(s.source):
                self._broadcasts.queue(s.node, s)
            return
        if (m.state, Fact.SUSPECT) not in TRANSITIONS:
            return
        if m.name == self.name:
            self._refute(m, s.incarnation)
            return
        self._broadcasts.queue(s.node, s)
        m.incarnation = s.incarnation
        self._transition(m, Fact.SUSPECT, now)
        c = self.config
        n = len(self._order)
        k = c.suspicion_mult - 2
        if n - 2 < k:
            k = 0
        minimum = c.suspicion_timeout(n)
        maximum = c.suspicion_max_timeout_mult * minimum
        self._suspicions[s.node] = Suspicion(s.source, k, minimum, maximum, now)

    def _dead(self, d: Dead, now: float, *, timeout: bool = False) -> None:
        m = self._members.get(d.node)
        if m is None or d.incarnation < m.incarnation:
            return
        self._suspicions.pop(d.node, None)
        if m.dead_or_left:
            return
        if m.name == self.name and not self.left:
            self._refute(m, d.incarnation)
            return
        self._broadcasts.queue(d.node, d)
        m.incarnation = d.incarnation
        fact = Fact.DEAD
        if d.is_leave:
            fact = Fact.LEAVE
        elif timeout:
            fact = Fact.SUSPICION_TIMEOUT
        self._transition(m, fact, now)

    def _transition(self, m: Member, fact: Fact, now: float) -> None:
        step = TRANSITIONS.get((m.state, fact))
        if step is None:
            return
        m.state, kind = step
        m.state_change = now
        if m.state == NodeStateType.DEAD:
            self._failed[m.name] = (m.address, now)
        elif m.state == NodeStateType.LEFT:
            self._failed.pop(m.name, None)
        if kind is not None:
            self._events.append(MemberEvent(kind, m.view(), now))

    def _refute(self, me: Member, accused: int) -> None:
        self._incarnation += 1
        if accused >= self._incarnation:
            self._incarnation = accused + 1
        me.incarnation = self._incarnation
        self._awareness.apply(1)
        alive = Alive(me.incarnation, me.name, me.addr, me.port, me.meta, me.vsn)
        self._broadcasts.queue(me.name, alive)

    # -- sending -------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        return self._seq

    def _send(self, address: Address, message: PacketMessage) -> None:
        """One message, with as much gossip piggybacked as fits (memberlist's `sendMsg`)."""
        c = self.config
        room = (
            c.udp_buffer_size
            - len(encode_message(message))
            - COMPOUND_HEADER_OVERHEAD
            - c.packet_overhead
        )
        extra = self._broadcasts.take(COMPOUND_OVERHEAD, room, c.retransmit_limit(len(self._order)))
        self._outgoing.append(SendPacket(address, (message, *extra)))

    def _gossip(self, now: float) -> None:
        c = self.config

        def skip(m: Member) -> bool:
            if m.state == NodeStateType.DEAD:
                return now - m.state_change > c.gossip_to_the_dead_time
            return m.state == NodeStateType.LEFT

        peers = self._random_members(c.gossip_nodes, skip)
        room = c.udp_buffer_size - COMPOUND_HEADER_OVERHEAD - c.packet_overhead
        limit = c.retransmit_limit(len(self._order))
        for peer in peers:
            messages = self._broadcasts.take(COMPOUND_OVERHEAD, room, limit)
            if not messages:
                return
            self._outgoing.append(SendPacket(peer.address, tuple(messages), peer.protocol_max >= 5))

    def _random_members(self, k: int, exclude: object) -> list[Member]:
        """Up to k distinct random members other than us (memberlist's `kRandomNodes`)."""
        skip = exclude if callable(exclude) else (lambda m: False)
        order = self._order
        n = len(order)
        chosen: list[Member] = []
        if n < 3 * k:
            pool = order[:]
            self.rng.shuffle(pool)
            for m in pool:
                if len(chosen) >= k:
                    break
                if m.name != self.name and not skip(m):
                    chosen.append(m)
            return chosen
        for _ in range(3 * n):
            if len(chosen) >= k:
                break
            m = order[self.rng.randrange(n)]
            if m.name == self.name or skip(m) or m in chosen:
                continue
            chosen.append(m)
        return chosen
