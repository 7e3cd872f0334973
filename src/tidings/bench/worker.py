"""A client process: holds up to ~19k `BenchClient` connections and obeys stdin.

Started by `fleet.Fleet` as ``python -m tidings.bench.worker ...``. It prints
``progress <opened>`` while it connects, then ``ready <opened> <failed>
<seconds>``, and then answers one line per command read on stdin:

``stats``           -> ``stats <publications> <lost> <open> <min per conn> <max per conn>``
``latencies``       -> ``latencies <JSON list of µs>`` (the samples taken since the last call)
``reset``           -> ``reset`` (zero the counters)
``churn R S``       -> ``churned <closed> <opened> <failed> <seconds>``: for S seconds, close the
                       oldest connection and open a new one, R times a second
``quit``            -> exits
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import sys
import time

import jwt
import uvloop

from tidings.bench.machine import raise_nofile_limit
from tidings.bench.wsclient import BenchClient, Tally, open_client, upgrade_request


class Worker:
    """The connections of one process and the commands it runs on them."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tally = Tally()
        self.clients: collections.deque[BenchClient] = collections.deque()
        self.request = upgrade_request(args.host, args.port, args.path)
        self.failed = 0
        self._serial = 0
        self.fixed = [c for c in args.channels.split(",") if c]

    def _identity(self) -> tuple[str, list[str]]:
        index = self._serial
        self._serial += 1
        user = f"{self.args.name}-{index}"
        claims = {"sub": user, "exp": int(time.time()) + 86400}
        token = jwt.encode(claims, self.args.secret or "bench", algorithm="HS256")
        spread = [f"room{(index * 7 + j * 131) % 1000}" for j in range(self.args.spread)]
        return token, self.fixed + spread

    async def open_one(self) -> bool:
        token, channels = self._identity()
        sampled = self.args.sample_every > 0 and self._serial % self.args.sample_every == 0
        for _attempt in range(3):
            try:
                client = await open_client(
                    self.args.host,
                    self.args.port,
                    self.request,
                    token,
                    channels,
                    self.tally,
                    sampled=sampled,
                    source_ip=self.args.source_ip,
                )
            except (OSError, ConnectionError, TimeoutError):
                await asyncio.sleep(0.05)
                continue
            self.clients.append(client)
            return True
        self.failed += 1
        return False

    async def open_all(self) -> None:
        sem = asyncio.Semaphore(self.args.concurrency)

        async def one() -> None:
            async with sem:
                await self.open_one()

        t0 = time.monotonic()
        tasks = [asyncio.ensure_future(one()) for _ in range(self.args.conns)]
        while not all(t.done() for t in tasks):
            await asyncio.wait(tasks, timeout=1.0)
            print(f"progress {len(self.clients)}", flush=True)
        print(f"ready {len(self.clients)} {self.failed} {time.monotonic() - t0:.3f}", flush=True)

    async def churn(self, rate: float, seconds: float) -> str:
        """Replace connections at `rate` a second for `seconds` (paced without drift)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        closed = 0
        failed_before = self.failed
        inflight: set[asyncio.Task[bool]] = set()
        total = int(rate * seconds)
        for i in range(total):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.clients:
                self.clients.popleft().close()
                closed += 1
            task = asyncio.ensure_future(self.open_one())
            inflight.add(task)
            task.add_done_callback(inflight.discard)
        if inflight:
            await asyncio.wait(inflight, timeout=20.0)
        failed = self.failed - failed_before
        opened = total - failed
        elapsed = loop.time() - start
        return f"churned {closed} {opened} {failed} {elapsed:.3f}"

    def stats(self) -> str:
        counts = [c.pubs for c in self.clients] or [0]
        open_now = len(self.clients)
        return f"stats {self.tally.pubs} {self.tally.lost} {open_now} {min(counts)} {max(counts)}"

    def latencies(self) -> str:
        samples = [ns // 1000 for ns in self.tally.latencies]
        self.tally.latencies = []
        return "latencies " + json.dumps(samples, separators=(",", ":"))

    def reset(self) -> None:
        self.tally.pubs = 0
        self.tally.latencies = []
        for client in self.clients:
            client.pubs = 0

    async def serve(self) -> None:
        await self.open_all()
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 20)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            words = (await reader.readline()).decode().split()
            if not words or words[0] == "quit":
                break
            if words[0] == "stats":
                print(self.stats(), flush=True)
            elif words[0] == "latencies":
                print(self.latencies(), flush=True)
            elif words[0] == "reset":
                self.reset()
                print("reset", flush=True)
            elif words[0] == "churn":
                print(await self.churn(float(words[1]), float(words[2])), flush=True)
        for client in self.clients:
            client.abort()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tidings.bench.worker")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/connection/websocket")
    p.add_argument("--conns", type=int, required=True)
    p.add_argument("--channels", default="", help="comma-separated channels every conn joins")
    p.add_argument("--spread", type=int, default=0, help="extra channels per conn out of 1000")
    p.add_argument("--secret", default="")
    p.add_argument("--name", default="w0", help="user id prefix")
    p.add_argument("--sample-every", type=int, default=0, help="every Nth conn reads stamps")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--max-seconds", type=float, default=300.0)
    p.add_argument("--source-ip", default="", help="local address to connect from")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_nofile_limit()

    async def bounded() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(Worker(args).serve(), args.max_seconds)

    uvloop.run(bounded())
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
