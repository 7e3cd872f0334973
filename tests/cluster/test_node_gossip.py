"""A node's gossip membership on loopback: cluster events reach the node's event
dispatcher, metadata is republished when it changes (connection counts rate
limited), joins are retried until a seed answers and again after isolation."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import free_port
from tests.polling import until
from tidings.cluster import node_gossip
from tidings.cluster.metadata import NodeMetadata
from tidings.cluster.node_gossip import NodeGossip, member_json
from tidings.config import build
from tidings.core.events import EventDispatcher, EventType
from tidings.errors import ConfigError
from tidings.protocol.memberlist.config import GossipConfig
from tidings.protocol.serf.participant import SerfParticipant

FAST = GossipConfig(probe_interval=0.2, probe_timeout=0.1, gossip_interval=0.05)


class Conns:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> int:
        return self.count


def make(
    name: str,
    port: int,
    events: EventDispatcher | None = None,
    conns: Conns | None = None,
    **raw: Any,
) -> NodeGossip:
    settings = build(
        {"name": name, "address": "127.0.0.1", "gossip_bind": f"127.0.0.1:{port}", **raw}
    )
    return NodeGossip(
        settings,
        name,
        events or EventDispatcher(),
        conns or Conns(),
        client_port=8000,
        api_port=9000,
        config=FAST,
    )


def state(gossip: NodeGossip, name: str) -> str | None:
    for view in gossip.members():
        if view.name == name:
            return view.state.name.lower()
    return None


async def test_cluster_events_reach_the_event_dispatcher() -> None:
    events = EventDispatcher()
    joined = events.subscribe(EventType.MEMBER_JOINED)
    dead = events.subscribe(EventType.MEMBER_DEAD)
    events.start()
    port = free_port()
    a = make("a", port, events, region="eu")
    b = make("b", free_port(), gossip_join=[f"127.0.0.1:{port}"])
    await a.start()
    await b.start()
    try:
        event = await asyncio.wait_for(_first_named(joined, "b"), 15)
        assert event.detail["state"] == "alive"
        assert event.detail["meta"]["role"] == "tidings"
        await b.stop()
        event = await asyncio.wait_for(_first_named(dead, "b"), 15)
        assert a.counts["member_dead"] == 1
        assert a.summary()["gossip.members.dead"] == 1
    finally:
        await a.stop()
        await b.stop()
        await events.stop()


async def _first_named(queue: asyncio.Queue[Any], name: str) -> Any:
    while True:
        event = await queue.get()
        if event.detail["name"] == name:
            return event


async def test_metadata_is_republished_with_connection_counts_rate_limited(
    monkeypatch: Any,
) -> None:
    conns = Conns()
    a = make("a", free_port(), conns=conns, region="eu", network="dc1")
    await a.start()
    try:
        first = a.member.members()[0]
        assert NodeMetadata.from_meta(first.meta) == NodeMetadata(
            ("ws://127.0.0.1:8000/connection/websocket",),
            api_url="http://127.0.0.1:9000/api",
            region="eu",
            network="dc1",
        )
        conns.count = 7
        a._publish_if_changed()  # just published: the count waits
        assert a.member.members()[0].incarnation == first.incarnation
        monkeypatch.setattr(node_gossip, "CONNECTIONS_INTERVAL", 0.0)
        a._publish_if_changed()
        view = a.member.members()[0]
        assert view.incarnation > first.incarnation
        assert NodeMetadata.from_meta(view.meta).connections == 7  # type: ignore[union-attr]
        monkeypatch.setattr(node_gossip, "CONNECTIONS_INTERVAL", 3600.0)
        a.drain()  # draining is published at once
        view = a.member.members()[0]
        assert NodeMetadata.from_meta(view.meta).draining  # type: ignore[union-attr]
        assert member_json(view)["meta"]["draining"] == "1"
        assert a.gateways("wifi", "eu").urls == ()
    finally:
        await a.stop()


async def test_join_is_retried_after_isolation() -> None:
    port = free_port()
    a = make("a", port)
    b = make("b", free_port(), gossip_join=[f"127.0.0.1:{port}"])
    await a.start()
    await b.start()
    try:
        await until(lambda: state(b, "a") == "alive")
        await a.stop()
        await until(lambda: state(b, "a") == "dead")
        a = make("a", port)  # back on the same address, knowing nobody
        await a.start()
        await until(lambda: state(a, "b") == "alive", 30)
        await until(lambda: state(b, "a") == "alive")
    finally:
        await a.stop()
        await b.stop()


async def test_serf_user_events_reach_the_dispatcher_once() -> None:
    events = EventDispatcher()
    queue = events.subscribe(EventType.CLUSTER_USER_EVENT)
    events.start()
    a = make("a", free_port(), events, gossip_serf=True)
    try:
        payload = SerfParticipant("serf-1").user_event("deploy", b"v42")
        a._on_user_message(payload)
        a._on_user_message(payload)  # a retransmission
        a._on_user_message(b"\x03garbage")  # malformed: ignored
        event = await asyncio.wait_for(queue.get(), 5)
        assert event.detail == {"name": "deploy", "payload": "v42", "ltime": 0}
        await asyncio.sleep(0.05)
        assert queue.empty()
        assert a.counts["cluster_user_event"] == 1
    finally:
        await events.stop()


async def test_a_lone_node_leaves_without_waiting_for_anyone() -> None:
    a = make("a", free_port())
    await a.start()
    await asyncio.wait_for(a.leave(), node_gossip.LEAVE_TIMEOUT - 1)
    assert a.draining


async def test_a_taken_gossip_port_names_the_setting() -> None:
    a = make("a", free_port())
    await a.start()
    try:
        b = make("b", a.member.port)
        try:
            await b.start()
        except OSError as exc:
            assert "gossip_bind" in str(exc)
        else:
            raise AssertionError("bound a taken port")
    finally:
        await a.stop()


def test_metadata_over_512_bytes_is_a_config_error() -> None:
    urls = [f"wss://gateway-{i}.example.com/connection/websocket" for i in range(12)]
    try:
        make("a", free_port(), client_urls=urls)
    except ConfigError as exc:
        assert exc.key == "client_urls"
    else:
        raise AssertionError("accepted metadata memberlist refuses")
