"""tidings and Centrifugo v6 on the same redis-server, side by side in one run.

Usage::

    python benchmarks/redis_peers.py [--rounds 2] [--client go] [--seconds 10]

One private `redis-server` (no persistence) is started; then, round after
round, the same scenarios run against a `tidings serve` node with
`engine = "redis"` and against Centrifugo v6 (`centrifugo-redis`) on that
Redis, alternating so that the machine's load falls on both alike:

- fan-out: 1,000 subscribers of one channel, 50 publish calls/s through the
  HTTP API, so every publication travels API -> Redis PUB/SUB -> the
  node's listener -> subscribers (deliveries per server CPU-second);
- api: publish API calls/s into a namespace without history (`mem`) and one
  with history (`hist`: appended to the channel's stream in Redis).

Server CPU is the server process alone (the shared Redis is not counted
in it); the redis-server's own CPU during each run is recorded next to it.
A summary (figures, ratios, load averages before and after) is written to
benchmarks/results/cluster/redis-peers-<time>.json; each run's full record
goes next to it unless --no-records.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from tidings.bench import machine
from tidings.bench.command import execute
from tidings.bench.machine import sample
from tidings.bench.scenarios import Options
from tidings.testing.redis import RedisServer

OUT = Path(__file__).resolve().parent / "results" / "cluster"
TARGETS = ("tidings", "centrifugo-redis")


def _settings(url: str) -> dict[str, Any]:
    return {
        "engine": "redis",
        "redis_address": [url],
        "redis_prefix": "bench",
        "durable_allow_volatile": True,
    }


def _figures(scenario: str, result: dict[str, Any]) -> dict[str, Any]:
    if scenario == "fanout":
        keys = ["deliveries_per_cpu_s", "deliveries_per_s", "server_cpu_s", "lost", "exact"]
        keys += ["latency_ms_p50", "latency_ms_p99"]
        return {k: result[k] for k in keys}
    variants = result["variants"]
    return {
        f"{ns}.{k}": variants[ns][k]
        for ns in ("mem", "hist")
        for k in ("calls_per_s", "server_cpu_us_per_call", "errors")
    }


def _redis_cpu(pid: int) -> float:
    return sample(pid).cpu


async def run(args: argparse.Namespace) -> dict[str, Any]:
    machine.raise_nofile_limit()
    fanout = Options(conns=1000, rate=50, seconds=args.seconds, client=args.client)
    api = Options(seconds=args.api_seconds, client=args.client)
    runs: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tidings-redis-peers-") as tmp:
        redis = RedisServer(Path(tmp)).start()
        assert redis.proc is not None
        try:
            for round_no in range(args.rounds):
                for scenario, opts in (("fanout", fanout), ("api", api)):
                    for name in TARGETS:
                        redis.flush()
                        cpu0 = _redis_cpu(redis.proc.pid)
                        record = await execute(
                            scenario, opts, None, None, name, settings=_settings(redis.url)
                        )
                        redis_cpu = _redis_cpu(redis.proc.pid) - cpu0
                        figures = _figures(scenario, record["result"])
                        print(f"round {round_no} {scenario} {name}: {figures}", flush=True)
                        runs.append(
                            {
                                "round": round_no,
                                "scenario": scenario,
                                "target": name,
                                "redis_cpu_s": redis_cpu,
                                "loadavg": os.getloadavg(),
                                **figures,
                            }
                        )
                        if not args.no_records:
                            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
                            path = OUT / f"{scenario}-{stamp}-{name}-shared-redis.json"
                            record["result"].pop("series", None)
                            path.write_text(json.dumps(record, indent=1))
        finally:
            redis.stop()
    return {
        "what": "tidings (engine = redis) and Centrifugo v6.9.1 (Redis engine), one redis-server",
        "started_load_average": load_before,
        "ended_load_average": os.getloadavg(),
        "machine": machine.description(),
        "options": {"fanout": vars(fanout), "api": vars(api), "rounds": args.rounds},
        "runs": runs,
        "ratios": _ratios(runs),
    }


def _ratios(runs: list[dict[str, Any]]) -> dict[str, float]:
    """tidings ÷ Centrifugo of each figure, averaged over the rounds."""
    out: dict[str, float] = {}
    keys = ["deliveries_per_cpu_s", "deliveries_per_s", "mem.calls_per_s", "hist.calls_per_s"]
    keys += ["mem.server_cpu_us_per_call", "hist.server_cpu_us_per_call"]
    for key in keys:
        mine = [r[key] for r in runs if r["target"] == "tidings" and key in r]
        theirs = [r[key] for r in runs if r["target"] != "tidings" and key in r]
        if mine and theirs and sum(theirs):
            out[key] = (sum(mine) / len(mine)) / (sum(theirs) / len(theirs))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0, help="fan-out load duration")
    parser.add_argument("--api-seconds", type=float, default=5.0, help="api per namespace")
    parser.add_argument("--client", choices=("python", "go"), default="go")
    parser.add_argument("--no-records", action="store_true")
    args = parser.parse_args()
    summary = uvloop.run(run(args))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = OUT / f"redis-peers-{stamp}.json"
    path.write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary["ratios"], indent=1))
    print(f"summary: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
