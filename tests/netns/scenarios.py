"""Fault scenarios on a `NetnsLab`, for tidings members or Go memberlist peers alike
(both print the same JSON event lines: join / leave per member)."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.netns.lab import Host, NetnsLab

ROOT = Path(__file__).resolve().parents[2]
GO_PEER = ROOT / "tests/peers/memberlist/memberlist-peer"
PY_PEER = ROOT / "tests/peers/gossip_member.py"
PORT = 7946


def peer_argv(kind: str, host: Host, seed: Host | None) -> list[str]:
    argv = [str(GO_PEER), "node"] if kind == "go" else [sys.executable, str(PY_PEER)]
    argv += ["-name", f"n{host.index}", "-bind", host.address, "-port", str(PORT)]
    if seed is not None:
        argv += ["-join", f"{seed.address}:{PORT}"]
    return argv


def wait(check: Callable[[], bool], limit: float, what: str) -> float:
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > limit:
            raise AssertionError(f"timed out after {limit} s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - began


def joined_since(host: Host, name: str, since: float) -> bool:
    """Whether `host` reported `name` (re)joining after `since`, with no leave after."""

    def last(kind: str) -> float:
        times = [t for t, e in host.seen(lambda e: e["event"] == kind and e.get("name") == name)]
        return max(times, default=-1.0)

    return last("join") >= since and last("join") > last("leave")


def start(lab: NetnsLab, kind: str) -> None:
    seed = lab.hosts[0]
    lab.spawn(seed, peer_argv(kind, seed, None))
    wait(lambda: bool(seed.seen(lambda e: e["event"] == "ready")), 20, "the seed")
    for host in lab.hosts[1:]:
        lab.spawn(host, peer_argv(kind, host, seed))
    names = {f"n{h.index}" for h in lab.hosts}
    wait(
        lambda: all(
            names <= {e["name"] for _, e in h.seen(lambda e: e["event"] == "join")}
            for h in lab.hosts
        ),
        30,
        "every member to see every other",
    )


def leaves(host: Host, since: float, name: str | None = None) -> list[float]:
    return [
        t - since
        for t, e in host.seen(lambda e: e["event"] == "leave")
        if t >= since and (name is None or e["name"] == name)
    ]


@dataclass
class KillResult:
    detection: list[float]
    false_positives: int

    @property
    def median(self) -> float:
        return statistics.median(self.detection)


def kill_one(lab: NetnsLab, limit: float = 60) -> KillResult:
    victim = lab.hosts[-1]
    survivors = lab.hosts[:-1]
    since = time.monotonic()
    lab.kill(victim)
    name = f"n{victim.index}"
    wait(lambda: all(leaves(h, since, name) for h in survivors), limit, f"{name} declared dead")
    detection = [min(leaves(h, since, name)) for h in survivors]
    false = sum(
        1
        for h in survivors
        for _, e in h.seen(lambda e: e["event"] == "leave")
        if e["name"] != name
    )
    return KillResult(detection, false)


def lossy_period(lab: NetnsLab, percent: int, seconds: float) -> int:
    """Packet loss for `seconds`; how many 'leave' (dead) events about anyone."""
    since = time.monotonic()
    lab.loss(percent)
    time.sleep(seconds)
    lab.heal()
    return sum(len(leaves(h, since)) for h in lab.hosts)


def partition_and_heal(lab: NetnsLab, hold: float, limit: float) -> float | None:
    """Partition 2|3 for `hold` s, heal; seconds until every member sees every other
    alive again, or None if that does not happen within `limit`."""
    left, right = [0, 1], list(range(2, len(lab.hosts)))
    lab.partition(left, right)
    since = time.monotonic()
    wait(
        lambda: all(
            {f"n{i}" for i in (right if h.index in left else left)}
            <= {e["name"] for _, e in h.seen(lambda e: e["event"] == "leave")}
            for h in lab.hosts
        ),
        limit,
        "each side to declare the other dead",
    )
    time.sleep(max(0.0, hold - (time.monotonic() - since)))
    lab.heal()
    try:
        return wait(
            lambda: all(
                joined_since(h, f"n{other.index}", since)
                for h in lab.hosts
                for other in lab.hosts
                if (other.index in left) != (h.index in left)
            ),
            limit,
            "views to converge after the heal",
        )
    except AssertionError:
        return None
