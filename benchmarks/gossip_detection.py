"""Failure detection on a real loopback network: Go memberlist vs tidings, side by side.

    sh scripts/build-gossip-peers.sh
    .venv/bin/python benchmarks/gossip_detection.py [--size 5] [--rounds 3] [--out FILE]

Each round starts a cluster (all Go peers, all tidings members, or mixed: half and
half), waits until every member sees every other, kills one member (SIGKILL for a Go
peer; sockets closed without leave for tidings), and records how long each survivor
takes to declare it dead. memberlist's LAN defaults everywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import statistics
import time
from pathlib import Path
from typing import Any

from tests.conftest import free_port

from tidings.cluster.gossip import GossipMember
from tidings.protocol.memberlist.member import MemberEvent, MemberEventKind

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT / "tests/peers/memberlist/memberlist-peer"
OUT = ROOT / "benchmarks/results/gossip-detection.json"


class Go:
    def __init__(self, name: str, port: int, proc: asyncio.subprocess.Process) -> None:
        self.name, self.port, self.proc = name, port, proc
        self.seen: set[str] = set()
        self.dead: dict[str, float] = {}
        self.ready = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            event = json.loads(line)
            if event["event"] == "ready":
                self.ready.set()
            elif event["event"] == "join":
                self.seen.add(event["name"])
            elif event["event"] == "leave":
                self.dead.setdefault(event["name"], time.monotonic())

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)

    async def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        await self.proc.wait()
        self.reader.cancel()


class Tidings:
    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: set[str] = set()
        self.dead: dict[str, float] = {}
        self.member = GossipMember(name, ("127.0.0.1", free_port()), on_event=self._event)

    @property
    def port(self) -> int:
        return self.member.port

    def _event(self, event: MemberEvent) -> None:
        if event.kind is MemberEventKind.JOIN:
            self.seen.add(event.member.name)
        elif event.kind is MemberEventKind.DEAD:
            self.dead.setdefault(event.member.name, time.monotonic())

    def kill(self) -> None:
        asyncio.get_running_loop().create_task(self.member.stop())

    async def close(self) -> None:
        await self.member.stop()


async def start(kind: str, name: str, seed: int | None) -> Go | Tidings:
    if kind == "go":
        port = free_port()
        args = [str(PEER), "node", "-name", name, "-bind", "127.0.0.1", "-port", str(port)]
        if seed:
            args += ["-join", f"127.0.0.1:{seed}"]
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        peer = Go(name, port, proc)
        async with asyncio.timeout(15):
            await peer.ready.wait()
        return peer
    member = Tidings(name)
    await member.member.start()
    if seed:
        await member.member.join([("127.0.0.1", seed)])
    return member


async def one_round(kinds: list[str]) -> dict[str, Any]:
    members: list[Go | Tidings] = []
    try:
        for i, kind in enumerate(kinds):
            members.append(await start(kind, f"{kind}-{i}", members[0].port if members else None))
        names = {m.name for m in members}
        async with asyncio.timeout(60):
            while not all(names <= m.seen for m in members):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        await asyncio.sleep(2)
        victim = members[-1]
        killed = time.monotonic()
        victim.kill()
        survivors = members[:-1]
        async with asyncio.timeout(90):
            while not all(victim.name in m.dead for m in survivors):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        return {m.name: round(m.dead[victim.name] - killed, 2) for m in survivors} | {
            "victim": victim.name
        }
    finally:
        for m in members:
            with contextlib.suppress(Exception):
                await m.close()


async def main_async(size: int, rounds: int) -> dict[str, Any]:
    layouts = {
        "go": ["go"] * size,
        "tidings": ["tidings"] * size,
        "mixed": ["go", "tidings"] * (size // 2) + ["go"] * (size % 2),
    }
    results: dict[str, Any] = {"size": size, "rounds": rounds, "layouts": {}}
    for layout, kinds in layouts.items():
        runs = [await one_round(kinds) for _ in range(rounds)]
        by_kind: dict[str, list[float]] = {"go": [], "tidings": []}
        for run in runs:
            for name, seconds in run.items():
                if name != "victim":
                    by_kind[name.split("-")[0]].append(seconds)
        summary = {
            kind: {"median_s": round(statistics.median(v), 2), "max_s": max(v), "n": len(v)}
            for kind, v in by_kind.items()
            if v
        }
        results["layouts"][layout] = {"runs": runs, "detection_by_observer_kind": summary}
        print(layout, json.dumps(summary), flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    results = asyncio.run(main_async(args.size, args.rounds))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
