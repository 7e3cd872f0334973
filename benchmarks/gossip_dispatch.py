"""How fast `GET /dispatch` follows the cluster, with real `tidings serve` nodes.

    .venv/bin/python benchmarks/gossip_dispatch.py [--rounds 3]

Per round: four nodes on loopback (gossip, memberlist LAN defaults), then, as seen
in the other nodes' `/dispatch` answers (polled every 50 ms):
kill -9 one node → seconds until it is gone from every answer; `drain` one node →
seconds until gone; SIGTERM one node → seconds until gone. Also the latency of one
`/dispatch` request (new connection each, as a client makes it).
Writes benchmarks/results/gossip-dispatch.json and prints a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import API_KEY, ServerProcess, free_port, start_server

OUT = Path(__file__).parent / "results" / "gossip-dispatch.json"
POLL = 0.05


async def gateways(session: aiohttp.ClientSession, node: ServerProcess) -> list[str]:
    url = f"http://127.0.0.1:{node.port}/dispatch?network=wifi&region=eu"
    async with session.get(url) as response:
        body: dict[str, Any] = await response.json(content_type=None)
    return list(body.get("gateways", []))


async def seconds_until_gone(
    session: aiohttp.ClientSession,
    action: Callable[[], Awaitable[None]],
    gone: ServerProcess,
    observers: list[ServerProcess],
) -> float:
    began = time.monotonic()
    await action()
    while True:
        answers = [await gateways(session, o) for o in observers]
        if all(gone.ws_url not in a for a in answers):
            return time.monotonic() - began
        await asyncio.sleep(POLL)


def cluster(tmp: Path) -> list[ServerProcess]:
    first_port = free_port()
    nodes = [
        start_server(
            tmp / "n0", {"name": "n0", "gossip_bind": f"127.0.0.1:{first_port}", "region": "eu"}
        )
    ]
    for i in (1, 2, 3):
        settings = {
            "name": f"n{i}",
            "region": "eu" if i == 1 else "us",  # 2 + 2: every node is in every answer
            "gossip_bind": f"127.0.0.1:{free_port()}",
            "gossip_join": [f"127.0.0.1:{first_port}"],
        }
        nodes.append(start_server(tmp / f"n{i}", settings))
    return nodes


async def one_round(tmp: Path) -> dict[str, float]:
    for i in range(4):
        (tmp / f"n{i}").mkdir(parents=True, exist_ok=True)
    nodes = cluster(tmp)
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True)
        ) as session:
            while [len(await gateways(session, n)) for n in nodes] != [4] * 4:  # noqa: ASYNC110
                await asyncio.sleep(POLL)
            latencies = []
            for _ in range(100):
                began = time.perf_counter()
                await gateways(session, nodes[0])
                latencies.append(time.perf_counter() - began)

            async def kill() -> None:
                nodes[3].stop(signal.SIGKILL)

            async def drain() -> None:
                async with session.post(
                    f"{nodes[2].api_url}/drain", json={}, headers={"X-API-Key": API_KEY}
                ) as response:
                    await response.read()

            async def terminate() -> None:
                await asyncio.to_thread(nodes[1].stop, signal.SIGTERM)

            killed = await seconds_until_gone(session, kill, nodes[3], nodes[:3])
            drained = await seconds_until_gone(session, drain, nodes[2], [nodes[0], nodes[1]])
            # SIGTERM: stop() returns once the process has exited (drain, leave, close).
            terminated = await seconds_until_gone(session, terminate, nodes[1], [nodes[0]])
    finally:
        for node in nodes:
            node.stop(signal.SIGKILL)
    return {
        "dispatch_request_ms_median": round(statistics.median(latencies) * 1000, 2),
        "killed_gone_s": round(killed, 2),
        "drained_gone_s": round(drained, 2),
        "sigterm_gone_s": round(terminated, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    rounds = []
    for index in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            rounds.append(asyncio.run(one_round(Path(tmp))))
        print(f"round {index + 1}: {rounds[-1]}", flush=True)
    summary = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rounds": rounds, "median": summary}, indent=2) + "\n")
    print("median:", summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
