"""The registration table: nsqlookupd's matching, producer and tombstone rules."""

from __future__ import annotations

from tidings.lookup.registry import (
    CHANNEL,
    CLIENT,
    TOPIC,
    Node,
    Registration,
    RegistrationTable,
)
from tidings.protocol.nsq.lookup import PeerInfo
from tidings.testing.clock import FakeClock


def node(name: str, clock: FakeClock, http_port: int = 4151) -> Node:
    info = PeerInfo(broadcast_address=name, tcp_port=4150, http_port=http_port, version="1.3.0")
    return Node(f"{name}:1", f"{name}:1", info, clock())


def test_producers_are_added_once_and_keys_outlive_them() -> None:
    clock = FakeClock()
    table = RegistrationTable(clock)
    a = node("a", clock)
    key = Registration(TOPIC, "t")
    assert table.add_producer(key, a) is True
    assert table.add_producer(key, a) is False
    assert table.remove_producer(key, a.id) == (True, 0)
    assert table.remove_producer(key, a.id) == (False, 0)
    assert table.find_registrations(TOPIC, "t", "") == [key]  # the key stays
    assert table.remove_producer(Registration(TOPIC, "other"), a.id) == (False, 0)


def test_wildcards_match_keys_and_subkeys() -> None:
    clock = FakeClock()
    table = RegistrationTable(clock)
    a, b = node("a", clock), node("b", clock)
    table.add_producer(Registration(CHANNEL, "t", "c1"), a)
    table.add_producer(Registration(CHANNEL, "t", "c2"), b)
    table.add_producer(Registration(CHANNEL, "u", "c1"), a)
    table.add_registration(Registration(TOPIC, "t"))
    assert [r.subkey for r in table.find_registrations(CHANNEL, "t", "*")] == ["c1", "c2"]
    assert len(table.find_registrations(CHANNEL, "*", "c1")) == 2
    assert table.find_registrations(CHANNEL, "t", "c3") == []
    # each node once, even when it matches several registrations
    assert [p.node.id for p in table.find_producers(CHANNEL, "*", "*")] == [a.id, b.id]
    assert set(table.registrations_of(a.id)) == {
        Registration(CHANNEL, "t", "c1"),
        Registration(CHANNEL, "u", "c1"),
    }


def test_inactive_nodes_and_tombstones_are_filtered() -> None:
    clock = FakeClock()
    table = RegistrationTable(clock)
    a, b = node("a", clock), node("b", clock, http_port=5151)
    for n in (a, b):
        table.add_producer(Registration(CLIENT), n)
        table.add_producer(Registration(TOPIC, "t"), n)
    producers = table.find_producers(TOPIC, "t", "")
    assert len(table.active(producers, 300, 45)) == 2

    table.tombstone("t", "b:5151")
    assert [p.node.id for p in table.active(producers, 300, 45)] == [a.id]
    clock.advance(46)  # the tombstone has lived its life
    assert len(table.active(producers, 300, 45)) == 2

    clock.advance(260)  # 306 s since either node was heard from
    table.touch(a)
    assert [p.node.id for p in table.active(producers, 300, 45)] == [a.id]
