"""Memberlist SWIM + Lifeguard in simulation: convergence, detection and load vs size.

    .venv/bin/python benchmarks/gossip_simulation.py [--sizes 10,100,1000] [--out FILE]

Runs `tidings.testing.GossipSimulation` (fake clock and network, LAN defaults):
- join: every member joins m0 within 1 s; time until every view is complete;
- update: in an agreed cluster one member changes its metadata; time until every
  member has it (gossip dissemination);
- kill: one member is killed; per-observer time until declared dead;
- loss: 10% packet loss for 60 s (TCP fallback on, and off): members falsely declared dead;
- load: packets and bytes sent per member per second, and the state machine's CPU
  time per member per second, in a steady agreed cluster.
Writes JSON (default benchmarks/results/gossip-simulation.json) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from tidings.protocol.memberlist.config import GossipConfig
from tidings.protocol.memberlist.member import MemberEventKind
from tidings.testing import GossipSimulation

OUT = Path(__file__).parent / "results" / "gossip-simulation.json"


def join(n: int) -> dict[str, Any]:
    sim = GossipSimulation(n, seed=11)
    started = time.process_time()
    sim.join_all()
    took = sim.run_until_converged(limit=120, step=0.1 if n <= 100 else 0.5)
    return {"converged_s": took, "cpu_s": round(time.process_time() - started, 2)}


def update(n: int) -> dict[str, Any]:
    sim = GossipSimulation(n, seed=12)
    sim.prejoin()
    sim.run_for(2)
    sim.members["m1"].update_meta(b"new", sim.now)
    begin = sim.now
    reached: dict[str, float] = {}
    while sim.now - begin < 30 and len(reached) < n:
        sim.run_for(0.05)
        for name in sim.members:
            if name not in reached and sim.members[name].member("m1").meta == b"new":  # type: ignore[union-attr]
                reached[name] = sim.now - begin
    times = sorted(reached.values())
    return {
        "all_s": round(times[-1], 2) if len(times) == n else None,
        "p9999_s": round(times[min(len(times) - 1, int(0.9999 * n) - 1)], 2),
        "median_s": round(statistics.median(times), 2),
    }


def kill(n: int) -> dict[str, Any]:
    sim = GossipSimulation(n, seed=13)
    sim.prejoin()
    sim.run_for(5)
    sim.kill("m2")
    sim.run_for(90)
    times = sorted(sim.detection_times("m2").values())
    return {
        "detected_by": len(times),
        "observers": n - 1,
        "first_s": round(times[0], 2),
        "median_s": round(statistics.median(times), 2),
        "last_s": round(times[-1], 2),
        "false_deaths": len(sim.false_deaths()),
    }


def loss(n: int, tcp_pings: bool) -> dict[str, Any]:
    sim = GossipSimulation(n, seed=14, loss=0.10, config=GossipConfig(tcp_pings=tcp_pings))
    sim.prejoin()
    sim.run_for(60)
    return {
        "false_deaths": len(sim.false_deaths()),
        "suspect_events": sim.count(MemberEventKind.SUSPECT),
    }


def load(n: int) -> dict[str, Any]:
    sim = GossipSimulation(n, seed=15, wire=n <= 100)
    sim.prejoin()
    sim.run_for(5)
    packets, size = sim.stats.packets_sent, sim.stats.bytes_sent
    started = time.process_time()
    seconds = 30.0
    sim.run_for(seconds)
    cpu = time.process_time() - started
    per = n * seconds
    return {
        "packets_per_member_s": round((sim.stats.packets_sent - packets) / per, 2),
        "bytes_per_member_s": round((sim.stats.bytes_sent - size) / per) if sim.wire else None,
        "cpu_ms_per_member_s": round(1000 * cpu / per, 3),
        "wire_codec_included": sim.wire,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    results: dict[str, Any] = {"config": "memberlist DefaultLANConfig", "sizes": {}}
    for n in (int(s) for s in args.sizes.split(",")):
        row = {
            "join": join(n),
            "update": update(n),
            "kill": kill(n),
            "loss10_tcp": loss(n, True) if n <= 100 else None,
            "loss10_no_tcp": loss(n, False) if n <= 100 else None,
            "load": load(n),
        }
        results["sizes"][str(n)] = row
        print(n, json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
