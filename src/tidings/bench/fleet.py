"""The client worker processes, driven from the orchestrator over their stdin/stdout."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from tidings.bench import programs
from tidings.bench.machine import sample
from tidings.bench.target import child_setup, stop_process

#: Sockets per worker process: under the 20,000 descriptor limit with room to spare.
PER_WORKER = 7000
#: The same for the Go client process (`--client go`), which needs less CPU per socket.
PER_GO_WORKER = 15000
#: Above this many connections to a loopback server, each client process connects from
#: its own 127.0.0.x: one source address has ~28k ephemeral ports per destination.
SOURCE_SPREAD_ABOVE = 25_000
#: Connects in flight over all client processes at most: a large fleet's processes
#: each get a share, not `concurrency` each (the server's backlog and its Redis round
#: trips per connect would otherwise queue them past their time limits).
MAX_IN_FLIGHT = 256
#: The client processes `--client` chooses from.
CLIENTS = ("python", "go")


@dataclass(frozen=True, slots=True)
class FleetStats:
    publications: int
    lost: int
    open: int
    min_per_conn: int
    max_per_conn: int


@dataclass(slots=True)
class _WorkerProcess:
    name: str
    proc: asyncio.subprocess.Process
    progress: int = 0

    async def expect(self, prefix: str, limit_s: float, on_progress: Callable[[], None]) -> str:
        """The rest of the first stdout line starting with `prefix` (progress lines noted)."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + limit_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.name}: no {prefix!r} within {limit_s:.0f}s")
            raw = await asyncio.wait_for(self.proc.stdout.readline(), left)
            if not raw:
                raise RuntimeError(f"{self.name}: exited while waiting for {prefix!r}")
            word, _, rest = raw.decode().rstrip("\n").partition(" ")
            if word == "progress":
                self.progress = int(rest)
                on_progress()
            elif word == prefix:
                return rest

    def send(self, line: str) -> None:
        stdin = self.proc.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.write((line + "\n").encode())


class Fleet:
    """`conns` connections spread over as many worker processes as the socket limit needs
    (and, with several `ports`, evenly over the ports: the same number of processes each)."""

    def __init__(
        self,
        host: str,
        port: int,
        conns: int,
        *,
        path: str = "/connection/websocket",
        secret: str = "",
        channels: str = "",
        spread: int = 0,
        sample_every: int = 0,
        per_worker: int = 0,
        concurrency: int = 64,
        client: str = "python",
        cpus: frozenset[int] = frozenset(),
        max_seconds: float = 1800.0,
        name: str = "w",
        progress: Callable[[str], None] | None = None,
        ports: list[int] | None = None,
    ) -> None:
        self.host, self.port, self.path = host, port, path
        self.ports = ports or [port]
        self.conns = conns
        self.secret = secret
        self.channels = channels
        self.spread = spread
        self.sample_every = sample_every
        if client not in CLIENTS:
            raise ValueError(f"unknown client {client!r} (one of {', '.join(CLIENTS)})")
        self.client = client
        self.cpus = cpus
        self.per_worker = per_worker or (PER_GO_WORKER if client == "go" else PER_WORKER)
        self.concurrency = concurrency
        self.max_seconds = max_seconds
        self.name = name
        self._progress = progress
        self._last_progress = 0.0
        self.workers: list[_WorkerProcess] = []
        # One question at a time: a watcher and a waiter may both ask for stats.
        self._asking = asyncio.Lock()

    def _note_progress(self) -> None:
        now = time.monotonic()
        if self._progress is not None and now - self._last_progress >= 1.0:
            self._last_progress = now
            opened = sum(w.progress for w in self.workers)
            self._progress(f"connections open: {opened}/{self.conns}")

    async def start(self, limit_s: float = 600.0) -> tuple[int, int, float]:
        """Spawn the workers and wait until all connect; (opened, failed, wall seconds)."""
        nworkers = max(1, math.ceil(self.conns / self.per_worker))
        nworkers = math.ceil(nworkers / len(self.ports)) * len(self.ports)
        shares = [self.conns // nworkers] * nworkers
        for i in range(self.conns % nworkers):
            shares[i] += 1
        program = (
            [str(programs.program("goload"))]
            if self.client == "go"
            else [sys.executable, "-m", "tidings.bench.worker"]
        )
        t0 = time.monotonic()
        for i, share in enumerate(shares):
            cmd = [
                *program,
                "--host",
                self.host,
                "--port",
                str(self.ports[i % len(self.ports)]),
                "--path",
                self.path,
                "--conns",
                str(share),
                # "=" keeps a value that starts with "-" (token_urlsafe secrets
                # may) from being read as an option.
                f"--channels={self.channels}",
                "--spread",
                str(self.spread),
                f"--secret={self.secret}",
                "--name",
                f"{self.name}{i}",
                "--sample-every",
                str(self.sample_every),
                "--concurrency",
                str(min(self.concurrency, max(1, MAX_IN_FLIGHT // nworkers))),
                "--max-seconds",
                str(self.max_seconds),
            ]
            if self.conns > SOURCE_SPREAD_ABOVE and self.host.startswith("127."):
                cmd += ["--source-ip", f"127.0.{1 + i // 250}.{1 + i % 250}"]
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=64 << 20,
                preexec_fn=child_setup(self.cpus),
            )
            self.workers.append(_WorkerProcess(f"worker{i}", proc))
        # Every process read at once: the progress (and the RSS plot's x axis) is then
        # what each has opened so far, not what it had when the previous one finished.
        replies = await asyncio.gather(
            *(w.expect("ready", limit_s, self._note_progress) for w in self.workers)
        )
        opened = failed = 0
        for reply in replies:
            fields = reply.split()
            opened += int(fields[0])
            failed += int(fields[1])
        return opened, failed, time.monotonic() - t0

    async def _ask(self, line: str, prefix: str, limit_s: float) -> list[str]:
        async with self._asking:
            for w in self.workers:
                w.send(line)
            return list(
                await asyncio.gather(
                    *(w.expect(prefix, limit_s, self._note_progress) for w in self.workers)
                )
            )

    async def stats(self) -> FleetStats:
        rows = [[int(x) for x in r.split()] for r in await self._ask("stats", "stats", 30.0)]
        return FleetStats(
            publications=sum(r[0] for r in rows),
            lost=sum(r[1] for r in rows),
            open=sum(r[2] for r in rows),
            min_per_conn=min(r[3] for r in rows),
            max_per_conn=max(r[4] for r in rows),
        )

    async def latencies_us(self) -> list[int]:
        out: list[int] = []
        for reply in await self._ask("latencies", "latencies", 60.0):
            out.extend(json.loads(reply))
        return out

    def cpu_seconds(self) -> float:
        """CPU seconds (user + system) the client processes have used so far."""
        total = 0.0
        for w in self.workers:
            if w.proc.returncode is None:
                with contextlib.suppress(OSError):
                    total += sample(w.proc.pid).cpu
        return total

    async def reset(self) -> None:
        await self._ask("reset", "reset", 30.0)

    async def churn(self, rate: float, seconds: float) -> tuple[int, int, int]:
        """Every worker replaces connections at its share of `rate`; (closed, opened, failed)."""
        share = rate / len(self.workers)
        rows = await self._ask(f"churn {share} {seconds}", "churned", seconds + 60.0)
        totals = [0, 0, 0]
        for row in rows:
            for i, value in enumerate(row.split()[:3]):
                totals[i] += int(value)
        return totals[0], totals[1], totals[2]

    async def wait_for(self, publications: int, limit_s: float, poll_s: float = 0.1) -> float:
        """Poll until the fleet has counted `publications`; the monotonic time seen."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if (await self.stats()).publications >= publications:
                return time.monotonic()
            await asyncio.sleep(poll_s)
        return time.monotonic()

    async def stop(self) -> None:
        for w in self.workers:
            w.send("quit")
            if w.proc.stdin is not None:
                w.proc.stdin.close()
        # All at once: a process still connecting reads "quit" only when done (or at 15 s).
        await asyncio.gather(*(stop_process(w.proc, 15, terminate=False) for w in self.workers))
