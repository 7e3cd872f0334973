"""Publish API calls per second: memory history vs. the durable store's fsync policies.

Usage::

    .venv/bin/python benchmarks/durable_publish.py [--seconds 5] [--concurrency 32]

For each case a fresh `tidings serve` process (own temporary data_dir) takes
`publish` calls from `--concurrency` tasks sharing one keep-alive aiohttp
session, each call to a personal channel `#u<k>` (k cycles over `--users`
users, all offline: the cost measured is storing, not fan-out). After
`--warmup` seconds, calls are counted for `--seconds`. Cases run in
`--repeat` interleaved rounds; the table shows each case's median round
(by calls/s). Cases:

- memory: personal channels not durable (history in process memory);
- durable-always / -batch / -never: the SQLite store with that fsync policy.

Prints a table and writes benchmarks/results/durable_publish.json. The load
generator runs on the same machine, so on few cores it competes with the
server for CPU: compare cases with each other, not with other machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

API_KEY = "bench-api-key"
RESULTS = Path(__file__).parent / "results" / "durable_publish.json"

CASES: dict[str, dict[str, Any]] = {
    "memory": {"personal_channel_durable": False},
    "durable-always": {"personal_channel_durable": True, "personal_channel_fsync": "always"},
    "durable-batch": {"personal_channel_durable": True, "personal_channel_fsync": "batch"},
    "durable-never": {"personal_channel_durable": True, "personal_channel_fsync": "never"},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def toml(settings: dict[str, Any]) -> str:
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        return json.dumps(str(v))

    return "".join(f"{k} = {value(v)}\n" for k, v in settings.items())


class Server:
    """One `tidings serve` process on free ports with its own data_dir."""

    def __init__(self, workdir: Path, settings: dict[str, Any]) -> None:
        self.api_port = free_port()
        config = {
            "address": "127.0.0.1",
            "port": free_port(),
            "api_port": self.api_port,
            "api_key": API_KEY,
            "token_hmac_secret": "bench-secret-0123456789-0123456789",
            "data_dir": str(workdir / "data"),
            "log_level": "warning",
            **settings,
        }
        path = workdir / "tidings.toml"
        path.write_text(toml(config))
        self.log_path = workdir / "tidings.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tidings", "serve", "--config", str(path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + 20
        while "tidings ready" not in self.log_path.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(self.log_path.read_text(errors="replace"))
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/api/publish"

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (Linux)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def load(
    server: Server, concurrency: int, users: int, warmup: float, seconds: float
) -> dict[str, Any]:
    headers = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    latencies: list[float] = []
    errors = 0
    calls = 0
    counting = False
    stop = False
    seq = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal calls, errors, seq
        while not stop:
            seq += 1
            body = json.dumps({"channel": f"#u{seq % users}", "data": {"seq": seq, "t": "x" * 64}})
            started = time.perf_counter()
            async with session.post(server.url, data=body, headers=headers) as resp:
                answer = await resp.json()
            if counting:
                latencies.append(time.perf_counter() - started)
                if "result" in answer:
                    calls += 1
                else:
                    errors += 1

    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.create_task(worker(session)) for _ in range(concurrency)]
        await asyncio.sleep(warmup)
        counting = True
        cpu0, t0 = server.cpu_seconds(), time.perf_counter()
        await asyncio.sleep(seconds)
        counting = False
        elapsed, cpu = time.perf_counter() - t0, server.cpu_seconds() - cpu0
        stop = True
        await asyncio.gather(*tasks)
    latencies.sort()
    ms = 1000.0

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * ms

    return {
        "calls_per_s": round(calls / elapsed, 1),
        "errors": errors,
        "calls": calls,
        "p50_ms": round(pct(0.50), 2),
        "p99_ms": round(pct(0.99), 2),
        "mean_ms": round(statistics.fmean(latencies) * ms, 2),
        "server_cpu_per_s": round(cpu / elapsed, 2),
        # Less sensitive than calls/s to a busy machine: the server's own CPU cost.
        "server_cpu_us_per_call": round(cpu / calls * 1e6, 1) if calls else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in args.cases}
    for round_no in range(args.repeat):
        for name in args.cases:
            with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
                server = Server(Path(tmp), CASES[name])
                try:
                    r = asyncio.run(
                        load(server, args.concurrency, args.users, args.warmup, args.seconds)
                    )
                finally:
                    server.stop()
            rounds[name].append(r)
            print(
                f"round {round_no + 1} {name:15} {r['calls_per_s']:>9.0f}/s  p50 {r['p50_ms']} ms",
                file=sys.stderr,
            )
    results: dict[str, dict[str, Any]] = {}
    for name, runs in rounds.items():
        median = sorted(runs, key=lambda r: r["calls_per_s"])[len(runs) // 2]
        results[name] = {**median, "rounds_calls_per_s": [r["calls_per_s"] for r in runs]}

    header = (
        f"{'case':15} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'cpu/s':>6} {'us/call':>7}"
        f" {'errors':>6}"
        "  rounds (calls/s)"
    )
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        print(
            f"{name:15} {r['calls_per_s']:>9.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
            f"{r['server_cpu_per_s']:>6.2f} {r['server_cpu_us_per_call']:>7.1f} {r['errors']:>6}"
            f"  {r['rounds_calls_per_s']}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "durable_publish",
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
                "params": {
                    "seconds": args.seconds,
                    "warmup": args.warmup,
                    "concurrency": args.concurrency,
                    "users": args.users,
                    "repeat": args.repeat,
                },
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
