"""Gateway choice from the cluster view, alone and on the simulated cluster."""

from __future__ import annotations

import pytest

from tidings.cluster.dispatcher import CACHE_TTL, choose_gateways
from tidings.cluster.metadata import NodeMetadata
from tidings.protocol.memberlist.member import MemberView
from tidings.protocol.memberlist.messages import NodeStateType
from tidings.protocol.serf.tags import encode_tags
from tidings.testing import GossipSimulation

ALIVE, SUSPECT, DEAD = NodeStateType.ALIVE, NodeStateType.SUSPECT, NodeStateType.DEAD


def view(name: str, state: NodeStateType = ALIVE, **meta: object) -> MemberView:
    fields = {"client_urls": (f"ws://{name}:8000/connection/websocket",), **meta}
    raw = NodeMetadata(**fields).to_meta()  # type: ignore[arg-type]
    return MemberView(name, ("10.0.0.1", 7946), raw, 1, state, bytes(6))


def test_metadata_round_trip_and_size_limit() -> None:
    meta = NodeMetadata(("ws://a:1/x", "ws://a:2/x"), "http://a:3", "eu", "public", 42, True)
    assert NodeMetadata.from_meta(meta.to_meta()) == meta
    assert NodeMetadata.from_meta(b"") is None  # a Go memberlist peer
    assert NodeMetadata.from_meta(encode_tags({"role": "web"})) is None  # a Serf agent
    assert NodeMetadata.from_meta(b"\xff\x93") is None
    with pytest.raises(ValueError, match="512"):
        NodeMetadata(("ws://" + "x" * 600,)).to_meta()


def test_same_region_least_loaded_first_then_other_regions() -> None:
    members = [
        view("eu-busy", region="eu", connections=900),
        view("eu-idle", region="eu", connections=10),
        view("us-idle", region="us", connections=0),
        view("eu-mid", region="eu", connections=300),
        view("eu-more", region="eu", connections=500),
    ]
    answer = choose_gateways(members, network="wifi", region="eu")
    assert answer.nodes == ("eu-idle", "eu-mid", "eu-more", "us-idle")
    assert answer.urls[0] == "ws://eu-idle:8000/connection/websocket"
    assert answer.ttl == CACHE_TTL["wifi"]


def test_unhealthy_draining_and_foreign_members_are_excluded() -> None:
    members = [
        view("ok", region="eu"),
        view("suspect", SUSPECT, region="eu"),
        view("dead", DEAD, region="eu"),
        view("draining", region="eu", draining=True),
        MemberView("go-peer", ("10.0.0.9", 7946), b"", 1, ALIVE, bytes(6)),
    ]
    assert choose_gateways(members, network="4g", region="eu").nodes == ("ok",)


def test_slow_networks_cache_longer_and_unknown_networks_are_refused() -> None:
    members = [view("a")]
    ttls = [choose_gateways(members, network=n).ttl for n in ("wifi", "4g", "3g", "2g")]
    assert ttls == sorted(ttls) and ttls[0] < ttls[-1]
    with pytest.raises(ValueError, match="unknown network"):
        choose_gateways(members, network="5g-ultra")


def test_several_ports_of_a_node_are_all_offered() -> None:
    members = [view("a", client_urls=("ws://a:1/c", "ws://a:2/c"))]
    assert choose_gateways(members, network="wifi").urls == ("ws://a:1/c", "ws://a:2/c")


def _node_meta(name: str) -> bytes:
    return NodeMetadata((f"ws://{name}/connection/websocket",), region="eu").to_meta()


def test_killed_node_leaves_every_answer_and_draining_leaves_at_once() -> None:
    sim = GossipSimulation(20, seed=9, meta=_node_meta)
    sim.prejoin()
    sim.run_for(3)

    def answered_by(observer: str) -> set[str]:
        views = sim.members[observer].members()
        return set(choose_gateways(views, network="wifi", region="eu", count=50).nodes)

    assert all("m7" in answered_by(n) for n in sim.alive_names())
    sim.kill("m7")
    sim.run_for(30)  # failure detection at 20 members: well under 30 s
    assert all("m7" not in answered_by(n) for n in sim.alive_names())

    draining = NodeMetadata(("ws://m3/connection/websocket",), region="eu", draining=True)
    sim.members["m3"].update_meta(draining.to_meta(), sim.now)
    assert "m3" not in answered_by("m3")  # its own dispatcher at once
    sim.run_for(2)  # everyone else within a couple of gossip rounds
    assert all("m3" not in answered_by(n) for n in sim.alive_names())
