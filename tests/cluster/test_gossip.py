"""The asyncio gossip runtime on loopback: tidings members find each other over real
UDP/TCP sockets, survive garbage, and notice a stopped member."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from tests.conftest import free_port
from tests.polling import until
from tidings.cluster.gossip import GossipMember
from tidings.protocol.memberlist.config import GossipConfig
from tidings.protocol.memberlist.keyring import Keyring
from tidings.protocol.memberlist.member import MemberEvent, MemberEventKind
from tidings.protocol.memberlist.messages import NodeStateType

FAST = GossipConfig(probe_interval=0.2, probe_timeout=0.1, gossip_interval=0.05)


def alive(member: GossipMember) -> set[str]:
    return {m.name for m in member.members() if m.state is NodeStateType.ALIVE}


async def test_three_members_converge_and_detect_a_stopped_one() -> None:
    ring = Keyring([b"s" * 16])
    events: list[MemberEvent] = []
    members = [
        GossipMember(
            f"t{i}",
            ("127.0.0.1", free_port()),
            config=FAST,
            keyring=ring,
            label="blue",
            on_event=events.append if i == 0 else None,
        )
        for i in range(3)
    ]
    for m in members:
        await m.start()
    try:
        await members[1].join([("127.0.0.1", members[0].port)])
        await members[2].join([("127.0.0.1", members[1].port)])
        await until(lambda: all(alive(m) == {"t0", "t1", "t2"} for m in members))
        await members[2].stop()
        await until(
            lambda: any(e.kind is MemberEventKind.DEAD and e.member.name == "t2" for e in events)
        )
        assert alive(members[0]) == {"t0", "t1"}
    finally:
        for m in members:
            await m.stop()


async def test_garbage_and_foreign_packets_are_refused_without_harm() -> None:
    a = GossipMember("a", ("127.0.0.1", free_port()), config=FAST, label="blue")
    b = GossipMember("b", ("127.0.0.1", free_port()), config=FAST, label="blue")
    await a.start()
    await b.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for junk in (b"", b"\x00", b"\xf4\x03red\x00\x80", bytes(range(256)), b"\x07\xff"):
                sock.sendto(junk, ("127.0.0.1", a.port))
        _, writer = await asyncio.open_connection("127.0.0.1", a.port)
        writer.write(b"\x06\xde\xff\xff")  # a push-pull header that never completes
        writer.close()
        await until(lambda: a.refused_packets >= 2)
        await b.join([("127.0.0.1", a.port)])
        await until(lambda: alive(a) == {"a", "b"} and alive(b) == {"a", "b"})
    finally:
        await a.stop()
        await b.stop()


async def test_graceful_leave_is_a_leave_for_the_others() -> None:
    events: list[MemberEvent] = []
    a = GossipMember("a", ("127.0.0.1", free_port()), config=FAST, on_event=events.append)
    b = GossipMember("b", ("127.0.0.1", free_port()), config=FAST)
    await a.start()
    await b.start()
    try:
        await b.join([("127.0.0.1", a.port)])
        await until(lambda: alive(a) == {"a", "b"})
        async with asyncio.timeout(10):
            await b.leave()
        await until(
            lambda: any(e.kind is MemberEventKind.LEAVE and e.member.name == "b" for e in events)
        )
        assert not any(e.kind is MemberEventKind.DEAD for e in events)
    finally:
        await a.stop()
        await b.stop()


async def test_ipv6_members_find_each_other() -> None:
    a = GossipMember("a", ("::1", 0), config=FAST)
    b = GossipMember("b", ("::1", 0), config=FAST)
    await a.start()
    await b.start()
    try:
        await b.join([("::1", a.port)])
        await until(lambda: alive(a) == {"a", "b"} and alive(b) == {"a", "b"})
        assert a.membership is not None
        assert a.membership.member("b").address == ("::1", b.port)  # type: ignore[union-attr]
    finally:
        await a.stop()
        await b.stop()


async def test_refused_packets_are_logged_once_per_host_per_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    a = GossipMember("a", ("127.0.0.1", free_port()), config=FAST, keyring=Keyring([b"k" * 16]))
    await a.start()
    try:
        with (
            caplog.at_level(logging.WARNING, logger="tidings.cluster.gossip"),
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
        ):
            for _ in range(20):
                sock.sendto(b"\x01" + bytes(40), ("127.0.0.1", a.port))
            await until(lambda: a.refused_packets == 20)
        refusals = [r for r in caplog.records if "refused" in r.getMessage()]
        assert len(refusals) == 1
        assert "no installed key could decrypt" in refusals[0].getMessage()
    finally:
        await a.stop()
