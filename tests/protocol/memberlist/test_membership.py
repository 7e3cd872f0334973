"""The SWIM + Lifeguard state machine, driven by hand: messages in, packets and events out."""

from __future__ import annotations

import random

import pytest

from tidings.protocol.memberlist.config import GossipConfig
from tidings.protocol.memberlist.member import MemberEventKind, ip_bytes
from tidings.protocol.memberlist.membership import (
    Membership,
    PushPullRequest,
    SendPacket,
    StreamPing,
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
)
from tidings.protocol.memberlist.versions import IncompatibleVersions

A = ("10.0.0.1", 7946)
B = ("10.0.0.2", 7946)
C = ("10.0.0.3", 7946)
VSN = bytes((1, 5, 2, 0, 0, 0))


def member(name: str = "a", address: tuple[str, int] = A, **config: object) -> Membership:
    m = Membership(
        name,
        address,
        now=0.0,
        rng=random.Random(1),
        config=GossipConfig(**config),  # type: ignore[arg-type]
    )
    m.take_outgoing()
    m.take_events()
    return m


def alive(name: str, address: tuple[str, int], incarnation: int = 1, meta: bytes = b"") -> Alive:
    return Alive(incarnation, name, ip_bytes(address[0]), address[1], meta, VSN)


def packets(m: Membership) -> list[SendPacket]:
    return [o for o in m.take_outgoing() if isinstance(o, SendPacket)]


def first(messages: tuple[PacketMessage, ...], kind: type) -> PacketMessage:
    return next(x for x in messages if isinstance(x, kind))


def test_starts_alive_and_reports_itself() -> None:
    m = Membership("a", A, now=0.0, meta=b"x")
    events = m.take_events()
    assert [(e.kind, e.member.name) for e in events] == [(MemberEventKind.JOIN, "a")]
    assert m.incarnation == 1
    assert m.state_of("a") is NodeStateType.ALIVE


def test_ping_for_us_is_acked_to_its_source_address() -> None:
    m = member()
    m.receive((Ping(7, "a", ip_bytes("10.0.0.9"), 8000, "z"),), B, 1.0)
    (out,) = packets(m)
    assert out.address == ("10.0.0.9", 8000)
    assert out.messages[0] == Ack(7, b"")


def test_ping_for_another_name_is_ignored() -> None:
    m = member()
    m.receive((Ping(7, "someone-else"),), B, 1.0)
    assert m.take_outgoing() == []


def test_alive_adds_member_and_join_event_once() -> None:
    m = member()
    m.receive((alive("b", B),), B, 1.0)
    m.receive((alive("b", B),), B, 1.1)  # same incarnation: nothing new
    assert [(e.kind, e.member.name) for e in m.take_events()] == [(MemberEventKind.JOIN, "b")]
    assert m.member("b") is not None
    assert m.member("b").address == B  # type: ignore[union-attr]


def test_newer_alive_with_new_meta_is_an_update() -> None:
    m = member()
    m.receive((alive("b", B),), B, 1.0)
    m.receive((alive("b", B, 2, b"meta"),), B, 2.0)
    kinds = [e.kind for e in m.take_events()]
    assert kinds == [MemberEventKind.JOIN, MemberEventKind.UPDATE]


def test_alive_with_zero_protocol_versions_is_refused() -> None:
    m = member()
    bad = Alive(1, "b", ip_bytes(B[0]), B[1], b"", bytes(6))
    m.receive((bad,), B, 1.0)
    assert m.member("b") is None


def test_name_conflict_keeps_the_known_member() -> None:
    m = member()
    m.receive((alive("b", B),), B, 1.0)
    m.receive((alive("b", C, 5),), C, 2.0)
    assert m.member("b").address == B  # type: ignore[union-attr]


def test_probe_ack_keeps_member_alive() -> None:
    m = member()
    m.receive((alive("b", B),), B, 0.0)
    m.take_outgoing()
    m.tick(m.next_deadline())
    while not (pings := [p for p in packets(m) if isinstance(p.messages[0], Ping)]):
        m.tick(m.next_deadline())
    ping = pings[0].messages[0]
    assert isinstance(ping, Ping) and ping.node == "b"
    m.receive((Ack(ping.seq_no),), B, m.next_deadline())
    m.tick(m.next_deadline() + 5)
    assert m.state_of("b") is NodeStateType.ALIVE


def _probe_until_suspect(m: Membership, target: str) -> list[object]:
    """Tick without answering anything until `target` is suspected; all output."""
    seen: list[object] = []
    now = 0.0
    while m.state_of(target) is not NodeStateType.SUSPECT:
        now = m.next_deadline()
        m.tick(now)
        seen += m.take_outgoing()
        assert now < 30
    return seen


def test_silent_member_gets_indirect_probes_then_suspected_then_dead() -> None:
    m = member()
    for name, address in (("b", B), ("c", C), ("d", ("10.0.0.4", 7946))):
        m.receive((alive(name, address),), address, 0.0)
    m.take_events()
    seen = _probe_until_suspect(m, "b")
    indirect = [
        msg for o in seen if isinstance(o, SendPacket) for msg in o.messages
        if isinstance(msg, IndirectPing)
    ]  # fmt: skip
    target = next(i for i in indirect)
    assert target.node in ("b", "c", "d") and target.nack  # peers speak protocol 5: nack wanted
    assert any(isinstance(o, StreamPing) for o in seen)  # TCP fallback tried
    suspected = {e.member.name for e in m.take_events() if e.kind is MemberEventKind.SUSPECT}
    assert suspected
    # No refutation arrives: the suspicion turns into death within the max timeout.
    name = suspected.pop()
    now = m.next_deadline()
    while m.state_of(name) is NodeStateType.SUSPECT:
        m.tick(now)
        now = m.next_deadline()
        assert now < 200
    assert m.state_of(name) is NodeStateType.DEAD
    assert any(e.kind is MemberEventKind.DEAD for e in m.take_events())


def test_failed_probe_without_nacks_lowers_local_health() -> None:
    m = member()
    for name, address in (("b", B), ("c", C), ("d", ("10.0.0.4", 7946))):
        m.receive((alive(name, address),), address, 0.0)
    assert m.health_score == 0
    _probe_until_suspect(m, "b")
    assert m.health_score > 0


def test_nacks_show_the_network_works_so_health_is_spared() -> None:
    m = member()
    for name, address in (("b", B), ("c", C), ("d", ("10.0.0.4", 7946))):
        m.receive((alive(name, address),), address, 0.0)
    now = 0.0
    while True:
        now = m.next_deadline()
        m.tick(now)
        for out in m.take_outgoing():
            if isinstance(out, SendPacket):
                for msg in out.messages:
                    if isinstance(msg, IndirectPing):
                        m.receive((Nack(msg.seq_no),), out.address, now)
        if any(m.state_of(n) is NodeStateType.SUSPECT for n in "bcd"):
            break
    assert m.health_score == 0


def test_indirect_ping_is_relayed_and_acked_back_with_the_requesters_seq() -> None:
    m = member()
    req = IndirectPing(42, ip_bytes(C[0]), C[1], "c", True, ip_bytes(B[0]), B[1], "b")
    m.receive((req,), B, 1.0)
    (out,) = packets(m)
    assert out.address == C
    ping = out.messages[0]
    assert isinstance(ping, Ping) and ping.node == "c"
    m.receive((Ack(ping.seq_no),), C, 1.1)
    (back,) = packets(m)
    assert back.address == B and back.messages[0] == Ack(42)


def test_indirect_ping_without_answer_sends_a_nack() -> None:
    m = member()
    req = IndirectPing(42, ip_bytes(C[0]), C[1], "c", True, ip_bytes(B[0]), B[1], "b")
    m.receive((req,), B, 1.0)
    packets(m)
    m.tick(1.0 + m.config.probe_timeout)
    nacks = [p for p in packets(m) if isinstance(p.messages[0], Nack)]
    assert nacks and nacks[0].address == B and nacks[0].messages[0] == Nack(42)


def test_suspicion_of_ourselves_is_refuted_with_a_higher_incarnation() -> None:
    m = member()
    m.receive((alive("b", B),), B, 0.0)
    m.receive((Suspect(1, "a", "b"),), B, 1.0)
    assert m.state_of("a") is NodeStateType.ALIVE
    assert m.incarnation == 2
    assert m.health_score == 1
    # The refutation is gossiped (piggybacked on the next packet).
    m.receive((Ping(1, "a"),), B, 1.1)
    (out,) = packets(m)
    refute = first(out.messages, Alive)
    assert isinstance(refute, Alive) and refute.incarnation == 2 and refute.node == "a"


def test_death_of_ourselves_is_refuted_unless_we_left() -> None:
    m = member()
    m.receive((alive("b", B),), B, 0.0)
    m.receive((Dead(3, "a", "b"),), B, 1.0)
    assert m.state_of("a") is NodeStateType.ALIVE and m.incarnation == 4


def test_independent_confirmations_shorten_the_suspicion() -> None:
    def time_to_death(confirmers: int) -> float:
        m = member(suspicion_mult=4)
        names = [f"n{i}" for i in range(8)]
        for i, name in enumerate(names):
            addr = (f"10.0.1.{i}", 7946)
            m.receive((alive(name, addr),), addr, 0.0)
        m.receive((Suspect(1, "n0", "n1"),), B, 0.0)
        for i in range(confirmers):
            m.receive((Suspect(1, "n0", f"n{2 + i}"),), B, 0.0)
        now = 0.0
        while m.state_of("n0") is NodeStateType.SUSPECT:
            now = m.next_deadline()
            m.tick(now)
            m.take_outgoing()
            m.receive(tuple(alive(n, (f"10.0.1.{i}", 7946)) for i, n in enumerate(names)), B, now)
        return now

    alone, confirmed = time_to_death(0), time_to_death(2)
    assert confirmed < alone
    # 9 members: min = 4 * max(1, log10 9) = 4 s, max = 6 * min; k = 2 confirmations
    # bring it down to the minimum.
    assert confirmed == 4.0
    assert 4.0 < alone <= 24.0


def test_leave_is_gossiped_as_dead_from_ourselves() -> None:
    m = member()
    m.receive((alive("b", B),), B, 0.0)
    m.leave(1.0)
    assert m.state_of("a") is NodeStateType.LEFT
    assert not m.leave_done
    now = 1.0
    sent: list[PacketMessage] = []
    while not m.leave_done:
        now = m.next_deadline()
        m.tick(now)
        sent += [msg for p in packets(m) for msg in p.messages]
    assert Dead(1, "a", "a") in sent


def test_left_member_is_reported_as_leave() -> None:
    m = member()
    m.receive((alive("b", B),), B, 0.0)
    m.take_events()
    m.receive((Dead(1, "b", "b"),), B, 1.0)
    assert [e.kind for e in m.take_events()] == [MemberEventKind.LEAVE]
    assert m.state_of("b") is NodeStateType.LEFT
    assert [v.name for v in m.members()] == ["a"]


def test_push_pull_merges_and_answers_with_our_state() -> None:
    a, b = member("a", A), member("b", B)
    a.join([B])
    (request,) = a.take_outgoing()
    assert request == PushPullRequest(B, True)
    ours = a.local_state(True)
    theirs = b.local_state(True)
    b.merge_remote_state(ours, 1.0)
    a.merge_remote_state(theirs, 1.0)
    assert a.state_of("b") is NodeStateType.ALIVE and b.state_of("a") is NodeStateType.ALIVE
    assert {n.name for n in a.local_state(False).nodes} == {"a", "b"}


def test_user_messages_are_handed_over() -> None:
    m = member()
    m.receive((User(b"\x03hello"),), B, 1.0)
    assert m.take_user_messages() == [b"\x03hello"]


def test_push_pull_with_incompatible_delegate_versions_is_refused_whole() -> None:
    m = member()
    serf_agent = PushNodeState("s", ip_bytes(B[0]), B[1], b"", 1, 0, bytes((1, 5, 2, 2, 5, 4)))
    plain_peer = PushNodeState("p", ip_bytes(C[0]), C[1], b"", 1, 0, VSN)
    with pytest.raises(IncompatibleVersions, match="delegate"):
        m.merge_remote_state(PushPull(False, (plain_peer, serf_agent)), 1.0)
    assert m.member("p") is None and m.member("s") is None
    m.merge_remote_state(PushPull(False, (plain_peer,)), 1.0)
    assert m.state_of("p") is NodeStateType.ALIVE
