"""Whole-cluster behaviour of the memberlist state machine on the simulated network.

The figures these runs produce (detection time, convergence) are in BENCHMARKS.md;
here we assert only outcomes, never timings of the machine running the test.
"""

from __future__ import annotations

import statistics

from tidings.protocol.memberlist.config import GossipConfig
from tidings.protocol.memberlist.member import MemberEventKind
from tidings.protocol.memberlist.messages import NodeStateType
from tidings.testing import GossipSimulation


def test_hundred_members_converge_from_joins() -> None:
    sim = GossipSimulation(100, seed=1)
    assert not sim.converged()
    sim.join_all()
    took = sim.run_until_converged(limit=30)
    assert took is not None
    assert sim.count(MemberEventKind.JOIN) == 100 * 100  # each member saw each (and itself)
    assert sim.false_deaths() == []


def test_killed_member_is_declared_dead_by_everyone_else() -> None:
    sim = GossipSimulation(100, seed=2)
    sim.prejoin()
    sim.run_for(5)
    sim.kill("m42")
    sim.run_for(40)
    detected = sim.detection_times("m42")
    assert set(detected) == set(sim.alive_names())
    # Simulated seconds, not wall time: SWIM probes (1 s) + suspicion (4 * log10(100) s
    # shortened by confirmations) bound it well under memberlist's worst case.
    assert max(detected.values()) < 6 * 4 * 2 + 5
    assert statistics.median(detected.values()) > 1
    assert sim.false_deaths() == []
    for name in sim.alive_names():
        assert sim.members[name].state_of("m42") is not NodeStateType.ALIVE


def test_ten_percent_loss_for_a_minute_declares_nobody_dead() -> None:
    sim = GossipSimulation(100, seed=3, loss=0.10)
    sim.prejoin()
    sim.run_for(60)
    assert sim.false_deaths() == []
    assert sim.stats.packets_dropped > 0.05 * sim.stats.packets_sent
    assert sim.converged()


def test_loss_without_tcp_fallback_suspects_but_lifeguard_refutes() -> None:
    sim = GossipSimulation(50, seed=4, loss=0.10, config=GossipConfig(tcp_pings=False))
    sim.prejoin()
    sim.run_for(60)
    assert sim.count(MemberEventKind.SUSPECT) > 0  # the network did bite
    assert sim.false_deaths() == []


def test_partition_two_three_then_heal_converges() -> None:
    sim = GossipSimulation(5, seed=5)
    sim.prejoin()
    sim.run_for(3)
    sim.partition(["m0", "m1"], ["m2", "m3", "m4"])
    sim.run_for(40)
    view = {m.name for m in sim.members["m0"].members() if m.state == NodeStateType.ALIVE}
    assert view == {"m0", "m1"}
    view = {m.name for m in sim.members["m3"].members() if m.state == NodeStateType.ALIVE}
    assert view == {"m2", "m3", "m4"}
    sim.heal()
    assert sim.run_until_converged(limit=120) is not None


def test_partition_of_hundred_heals() -> None:
    sim = GossipSimulation(100, seed=6)
    sim.prejoin()
    names = list(sim.members)
    sim.partition(names[:40], names[40:])
    sim.run_for(45)
    assert not sim.converged()
    sim.heal()
    assert sim.run_until_converged(limit=120, step=0.5) is not None


def test_wire_mode_runs_every_packet_through_the_codec() -> None:
    sim = GossipSimulation(10, seed=7, wire=True)
    sim.join_all()
    assert sim.run_until_converged(limit=20) is not None
    assert sim.stats.bytes_sent > 0
    sim.kill("m3")
    sim.run_for(30)
    assert set(sim.detection_times("m3")) == set(sim.alive_names())


def test_update_reaches_everyone() -> None:
    sim = GossipSimulation(100, seed=8)
    sim.prejoin()
    sim.members["m5"].update_meta(b"draining", sim.now)
    sim.run_for(5)
    for name in sim.alive_names():
        assert sim.members[name].member("m5").meta == b"draining"  # type: ignore[union-attr]
