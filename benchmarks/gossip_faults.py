"""Gossip under real network faults, Go memberlist and tidings side by side (needs root).

    sh scripts/build-gossip-peers.sh
    sudo .venv/bin/python benchmarks/gossip_faults.py [--size 5] [--loss-seconds 60]

For each implementation, in a fresh 5-host network-namespace lab per scenario
(tests/netns): kill one member (detection time per survivor, false positives);
10% packet loss for 60 s (members declared dead: all false positives); partition
2|3 held 40 s, then heal (seconds until every view is whole again, or never).
Writes benchmarks/results/gossip-faults.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.netns.lab import NetnsLab
from tests.netns.scenarios import kill_one, lossy_period, partition_and_heal, start

OUT = Path(__file__).parent / "results" / "gossip-faults.json"


def measure(kind: str, size: int, loss_seconds: float, hold: float) -> dict[str, Any]:
    with NetnsLab(size) as lab:
        start(lab, kind)
        killed = kill_one(lab)
    with NetnsLab(size) as lab:
        start(lab, kind)
        false_under_loss = lossy_period(lab, percent=10, seconds=loss_seconds)
    with NetnsLab(size) as lab:
        start(lab, kind)
        healed = partition_and_heal(lab, hold=hold, limit=120)
    return {
        "detection_median_s": round(killed.median, 2),
        "detection_max_s": round(max(killed.detection), 2),
        "false_positives_after_kill": killed.false_positives,
        "false_deaths_under_10pct_loss": false_under_loss,
        "heal_converged_s": None if healed is None else round(healed, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=5)
    parser.add_argument("--loss-seconds", type=float, default=60)
    parser.add_argument("--hold", type=float, default=40)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    results = {
        kind: measure(kind, args.size, args.loss_seconds, args.hold) for kind in ("go", "tidings")
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"size": args.size, **results}, indent=2) + "\n")
    keys = list(results["go"])
    print(f"{'':34} {'go memberlist':>14} {'tidings':>10}")
    for key in keys:
        print(f"{key:34} {results['go'][key]!s:>14} {results['tidings'][key]!s:>10}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
