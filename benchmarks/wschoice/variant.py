"""One variant's measurement: its server process, the worker fleet, the rounds.

``run_variant`` starts ``servers.py`` for the variant, reads the baseline and
idle RSS over a control connection, spreads the idle connections over
``run.py --worker`` processes, runs the ``go N S`` delivery rounds and returns
the figures as one result record.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from clients import WSClient, handshake_request, open_client

from tidings.bench.target import stop_process

HERE = Path(__file__).resolve().parent
SERVERS = HERE / "servers.py"
DRIVER = HERE / "run.py"  # its --worker mode is clients.run_worker

# variant name -> (servers.py arguments, clients offer permessage-deflate)
VARIANTS: dict[str, tuple[list[str], bool]] = {
    "picows": (["picows"], False),
    "picows-noafn": (["picows", "--picows-aiofastnet", "off"], False),
    "aiohttp": (["aiohttp", "--aiohttp-send", "await"], False),
    "aiohttp-writer": (["aiohttp", "--aiohttp-send", "writer"], False),
    "websockets": (["websockets"], False),
    "websockets-deflate": (["websockets", "--deflate"], True),
}
DEFAULT_VARIANTS = "picows,picows-noafn,aiohttp,aiohttp-writer,websockets,websockets-deflate"


@dataclass
class Proc:
    name: str
    proc: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)

    async def expect(self, prefix: str, limit_s: float) -> list[str]:
        """Read stdout lines until one starts with ``prefix``; return its fields."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + limit_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.name}: no {prefix!r} within {limit_s}s")
            raw = await asyncio.wait_for(self.proc.stdout.readline(), left)
            if not raw:
                raise RuntimeError(f"{self.name}: exited while waiting for {prefix!r}")
            line = raw.decode().strip()
            self.lines.append(line)
            if line.startswith(prefix + " "):
                return line.split()[1:]

    def send(self, line: str) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.write((line + "\n").encode())


async def connect_control(port: int, limit_s: float) -> tuple[asyncio.Transport, WSClient]:
    request = handshake_request(port, deflate=False)
    deadline = time.monotonic() + limit_s
    while True:
        try:
            return await open_client(port, request, None, keep_replies=True, limit_s=5.0)
        except (OSError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def open_log(path: Path) -> BinaryIO:
    return open(path, "wb")  # closed by the caller's with-block


def dump_and_remove_log(name: str, path: Path) -> None:
    """Print the tail of a non-empty server log to stderr, then delete it."""
    if path.exists() and path.stat().st_size:
        tail = path.read_bytes()[-2000:].decode(errors="replace")
        print(f"  {name} server log tail:\n{tail}", file=sys.stderr)
    path.unlink(missing_ok=True)


async def run_variant(name: str, port: int, args: argparse.Namespace) -> dict[str, Any]:
    server_args, client_deflate = VARIANTS[name]
    py = sys.executable
    log_path = Path(f"/tmp/wschoice-{name}-{os.getpid()}.log")
    result: dict[str, Any] = {"variant": name, "server_args": server_args}
    with open_log(log_path) as log:
        server = await asyncio.create_subprocess_exec(
            py,
            str(SERVERS),
            *server_args,
            "--port",
            str(port),
            "--max-seconds",
            str(args.variant_timeout + 30),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    workers: list[Proc] = []
    ctl_transport: asyncio.Transport | None = None
    try:
        ctl_transport, ctl = await connect_control(port, limit_s=15.0)
        await asyncio.sleep(1.0)
        rss0 = int(await ctl.query("rss"))
        cpu_c0 = float(await ctl.query("cpu"))

        # open idle connections from several worker processes
        nworkers = max(1, math.ceil(args.conns / args.per_worker))
        shares = [args.conns // nworkers] * nworkers
        for i in range(args.conns % nworkers):
            shares[i] += 1
        t_conn0 = time.monotonic()
        for i, share in enumerate(shares):
            cmd = [
                py,
                str(DRIVER),
                "--worker",
                "--port",
                str(port),
                "--conns",
                str(share),
                "--n",
                str(args.n),
                "--rounds",
                str(args.rounds),
                "--concurrency",
                str(args.concurrency),
                "--max-seconds",
                str(args.variant_timeout + 30),
            ]
            if client_deflate:
                cmd.append("--deflate")
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
            )
            workers.append(Proc(f"worker{i}", proc))
        opened = failed = deflated = 0
        for w in workers:
            fields = await w.expect("ready", args.variant_timeout)
            opened += int(fields[0])
            failed += int(fields[1])
            deflated += int(fields[3])
        connect_wall = time.monotonic() - t_conn0
        cpu_c1 = float(await ctl.query("cpu"))
        await asyncio.sleep(args.settle)
        rss1 = int(await ctl.query("rss"))
        result.update(
            conns=opened,
            failed=failed,
            deflate_negotiated=deflated,
            rss_before=rss0,
            rss_idle=rss1,
            kb_per_idle_conn=(rss1 - rss0) / max(opened, 1) / 1024,
            connect_wall_s=connect_wall,
            connect_cpu_us_per_conn=(cpu_c1 - cpu_c0) / max(opened, 1) * 1e6,
        )
        if failed:
            print(f"  {name}: {failed} connections failed", file=sys.stderr)

        # delivery rounds
        rounds: list[dict[str, float]] = []
        recipients = opened + 1  # the control connection receives too
        for k in range(1, args.rounds + 1):
            times0 = [float(x) for x in (await ctl.query("times")).split()]
            cpu0 = float(await ctl.query("cpu"))
            t0 = time.monotonic()
            ctl.send_text(f"go {args.n} {args.size}")
            ctl_done = ctl.wait_frames(k * args.n)
            done_fields = await asyncio.gather(
                *(w.expect("done", args.round_timeout) for w in workers)
            )
            t_ctl = await asyncio.wait_for(ctl_done, args.round_timeout)
            t_end = max([float(f[1]) for f in done_fields] + [t_ctl])
            cpu1 = float(await ctl.query("cpu"))
            times1 = [float(x) for x in (await ctl.query("times")).split()]
            deliveries = args.n * recipients
            cpu_s = cpu1 - cpu0
            wall_s = t_end - t0
            rounds.append(
                {
                    "deliveries": deliveries,
                    "server_cpu_s": cpu_s,
                    "server_user_s": times1[0] - times0[0],
                    "server_sys_s": times1[1] - times0[1],
                    "wall_s": wall_s,
                    "per_core_per_s": deliveries / cpu_s,
                    "wall_per_s": deliveries / wall_s,
                }
            )
            await asyncio.sleep(0.3)
        rss2 = int(await ctl.query("rss"))

        totals = [0, 0]  # frames, payload bytes on the wire
        lost = 0
        mins: list[int] = []
        maxs: list[int] = []
        for w in workers:
            w.send("stats")
            s = await w.expect("stats", 30)
            totals[0] += int(s[0])
            mins.append(int(s[1]))
            maxs.append(int(s[2]))
            lost += int(s[3])
            totals[1] += int(s[4])
        expected = args.n * args.rounds
        result.update(
            rss_after_rounds=rss2,
            rounds=rounds,
            per_core_per_s_median=statistics.median(r["per_core_per_s"] for r in rounds),
            per_core_per_s_best=max(r["per_core_per_s"] for r in rounds),
            user_share=sum(r["server_user_s"] for r in rounds)
            / max(sum(r["server_user_s"] + r["server_sys_s"] for r in rounds), 1e-9),
            wall_per_s_median=statistics.median(r["wall_per_s"] for r in rounds),
            frames_received=totals[0],
            frames_expected=expected * opened,
            wire_payload_bytes_per_msg=totals[1] / max(totals[0], 1),
            every_conn_exact=min(mins) == expected and max(maxs) == expected,
            conns_lost=lost,
        )
        return result
    finally:
        if ctl_transport is not None:
            ctl_transport.abort()
        # Stop the server first so the TIME_WAIT state lands on the
        # server's side and the client ephemeral ports are freed.
        await stop_process(server)
        for w in workers:
            w.send("quit")
            if w.proc.stdin is not None:
                w.proc.stdin.close()
        for w in workers:
            try:
                await asyncio.wait_for(w.proc.wait(), 15)
            except TimeoutError:
                await stop_process(w.proc)
        dump_and_remove_log(name, log_path)
