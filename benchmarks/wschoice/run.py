"""Fan-out benchmark driver for the servers in ``servers.py``.

For each server variant this script

1. starts ``servers.py <lib> --port P`` as its own process;
2. opens one *control* connection from this process and reads the server's
   baseline RSS;
3. opens ``--conns`` idle WebSocket connections from several worker
   processes (each below ``--per-worker`` sockets, because a process may
   hold at most RLIMIT_NOFILE descriptors) and reads the RSS again:
   ``(rss_after - rss_before) / conns`` is the memory per idle connection;
4. runs ``--rounds`` rounds of ``go N S`` sent on the control connection:
   the server sends N messages of S bytes to every connection.  Server CPU
   seconds for the round (``cpu`` command before/after) give deliveries
   per second per core; the wall time until the last client saw its last
   message gives the end-to-end rate (clients share the same cores);
5. stops the server, then the workers.

All traffic stays on 127.0.0.1.  Every wait is bounded, so the run stops by
itself.  Results are printed as a table and written to ``results.json``
next to this file.

Usage::

    python run.py [--conns 19000] [--libs picows,aiohttp,websockets,...]

Internal: ``python run.py --worker ...`` is the client worker process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

import uvloop

from tidings.bench.machine import description, raise_nofile_limit
from tidings.bench.target import stop_process

HERE = Path(__file__).resolve().parent
SERVERS = HERE / "servers.py"
RESULTS = HERE / "results.json"
SELF = Path(__file__).resolve()
HOST = "127.0.0.1"
PACKAGES = ("picows", "aiohttp", "websockets", "uvloop", "aiofastnet", "msgspec")

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

REPLY_TAGS = frozenset((b"rss", b"cpu", b"times"))

# Fixed key; the server's Sec-WebSocket-Accept is not checked (benchmark).
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def handshake_request(port: int, deflate: bool) -> bytes:
    lines = [
        "GET / HTTP/1.1",
        f"Host: {HOST}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {WS_KEY}",
        "Sec-WebSocket-Version: 13",
    ]
    if deflate:
        lines.append("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def encode_client_text(payload: bytes) -> bytes:
    """A masked, final TEXT frame (clients must mask)."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = bytes([0x81, 0x80 | n])
    elif n < 65536:
        header = bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        header = bytes([0x81, 0x80 | 127]) + n.to_bytes(8, "big")
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    masked = (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")
    return header + mask + masked


# --------------------------------------------------------------------------
# Minimal WebSocket client protocol (asyncio.Protocol, no per-message tasks)
# --------------------------------------------------------------------------


class RoundTracker:
    """Counts, per round, how many connections received all messages."""

    def __init__(self, conns: int, per_round: int, rounds: int) -> None:
        self.conns = conns
        self.per_round = per_round
        self.rounds = rounds
        self.completed = [0] * (rounds + 2)
        self.lost = 0

    def conn_finished_round(self, k: int) -> None:
        if k > self.rounds:
            return
        self.completed[k] += 1
        if self.completed[k] == self.conns:
            print(f"done {k} {time.monotonic():.6f}", flush=True)


class WSClient(asyncio.Protocol):
    """Parses server frames (headers only) and counts data frames.

    With ``keep_replies`` the payloads of text frames starting with
    ``rss ``/``cpu ``/``times `` are pushed to ``replies`` (control connection).
    """

    def __init__(
        self,
        request: bytes,
        tracker: RoundTracker | None,
        keep_replies: bool = False,
    ) -> None:
        self.request = request
        self.tracker = tracker
        self.keep_replies = keep_replies
        self.transport: asyncio.Transport | None = None
        self.upgraded: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.deflate_accepted = False
        self.head = b""
        self.buf = b""
        self.frames = 0
        self.payload_bytes = 0
        self.next_round = 1
        self.replies: asyncio.Queue[str] = asyncio.Queue()
        self.frame_waiters: list[tuple[int, asyncio.Future[float]]] = []

    # asyncio.Protocol -----------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport is not an asyncio.Transport subclass.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError("closed before upgrade"))
        elif self.tracker is not None:
            self.tracker.lost += 1

    def data_received(self, data: bytes) -> None:
        if not self.upgraded.done():
            self.head += data
            idx = self.head.find(b"\r\n\r\n")
            if idx < 0:
                if len(self.head) > 16384:
                    self.upgraded.set_exception(ConnectionError("handshake too long"))
                return
            head = self.head[:idx]
            data = self.head[idx + 4 :]
            self.head = b""
            if not head.startswith(b"HTTP/1.1 101"):
                status = head.split(b"\r\n", 1)[0]
                self.upgraded.set_exception(ConnectionError(f"bad upgrade: {status!r}"))
                return
            self.deflate_accepted = b"permessage-deflate" in head.lower()
            self.upgraded.set_result(True)
            if not data:
                return
        self._parse(self.buf + data if self.buf else data)

    # frames ---------------------------------------------------------------
    def _parse(self, buf: bytes) -> None:
        pos = 0
        end = len(buf)
        count = 0
        nbytes = 0
        while end - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            if b1 & 0x80:
                raise ConnectionError("server frame must not be masked")
            length = b1 & 0x7F
            hlen = 2
            if length == 126:
                if end - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                hlen = 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                hlen = 10
            if end - pos < hlen + length:
                break
            opcode = b0 & 0x0F
            if opcode == 0x1 or opcode == 0x2:
                if self.keep_replies and opcode == 0x1:
                    payload = buf[pos + hlen : pos + hlen + length]
                    if payload.split(b" ", 1)[0] in REPLY_TAGS:
                        self.replies.put_nowait(payload.decode("ascii"))
                    else:
                        count += 1
                        nbytes += length
                else:
                    count += 1
                    nbytes += length
            elif opcode == 0x8 and self.transport is not None:
                self.transport.close()
            pos += hlen + length
        self.buf = buf[pos:] if pos < end else b""
        if count:
            self.payload_bytes += nbytes
            self._counted(count)

    def _counted(self, count: int) -> None:
        self.frames += count
        tracker = self.tracker
        if tracker is not None:
            while self.frames >= self.next_round * tracker.per_round:
                tracker.conn_finished_round(self.next_round)
                self.next_round += 1
        if self.frame_waiters:
            now = time.monotonic()
            keep: list[tuple[int, asyncio.Future[float]]] = []
            for target, fut in self.frame_waiters:
                if self.frames >= target and not fut.done():
                    fut.set_result(now)
                elif not fut.done():
                    keep.append((target, fut))
            self.frame_waiters = keep

    # control helpers ------------------------------------------------------
    def send_text(self, text: str) -> None:
        assert self.transport is not None
        self.transport.write(encode_client_text(text.encode("ascii")))

    async def query(self, cmd: str, limit_s: float = 30.0) -> str:
        self.send_text(cmd)
        reply = await asyncio.wait_for(self.replies.get(), limit_s)
        if not reply.startswith(cmd + " "):
            raise RuntimeError(f"unexpected reply to {cmd!r}: {reply!r}")
        return reply.split(" ", 1)[1]

    def wait_frames(self, target: int) -> asyncio.Future[float]:
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        if self.frames >= target:
            fut.set_result(time.monotonic())
        else:
            self.frame_waiters.append((target, fut))
        return fut


async def open_client(
    port: int,
    request: bytes,
    tracker: RoundTracker | None,
    keep_replies: bool = False,
    limit_s: float = 15.0,
) -> tuple[asyncio.Transport, WSClient]:
    loop = asyncio.get_running_loop()

    async def _open() -> tuple[asyncio.Transport, WSClient]:
        transport, proto = await loop.create_connection(
            lambda: WSClient(request, tracker, keep_replies), HOST, port
        )
        try:
            await proto.upgraded
        except BaseException:
            transport.abort()
            raise
        return transport, proto

    return await asyncio.wait_for(_open(), limit_s)


# --------------------------------------------------------------------------
# Worker process
# --------------------------------------------------------------------------


async def worker_main(args: argparse.Namespace) -> None:
    request = handshake_request(args.port, args.deflate)
    tracker = RoundTracker(0, args.n, args.rounds)
    protos: list[WSClient] = []
    transports: list[asyncio.Transport] = []
    failed = 0
    sem = asyncio.Semaphore(args.concurrency)

    async def one() -> None:
        nonlocal failed
        async with sem:
            for _attempt in range(3):
                try:
                    transport, proto = await open_client(args.port, request, tracker)
                except (OSError, TimeoutError):
                    await asyncio.sleep(0.05)
                    continue
                transports.append(transport)
                protos.append(proto)
                return
            failed += 1

    t0 = time.monotonic()
    await asyncio.gather(*(one() for _ in range(args.conns)))
    tracker.conns = len(protos)
    deflated = sum(1 for p in protos if p.deflate_accepted)
    print(
        f"ready {len(protos)} {failed} {time.monotonic() - t0:.3f} {deflated}",
        flush=True,
    )

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).decode().strip()
        if line == "stats":
            frames = [p.frames for p in protos] or [0]
            nbytes = sum(p.payload_bytes for p in protos)
            print(
                f"stats {sum(frames)} {min(frames)} {max(frames)} {tracker.lost} {nbytes}",
                flush=True,
            )
        elif line in ("quit", ""):
            break
    for transport in transports:
        transport.abort()


def run_worker(args: argparse.Namespace) -> int:
    raise_nofile_limit()

    async def bounded() -> None:
        try:
            await asyncio.wait_for(worker_main(args), args.max_seconds)
        except TimeoutError:
            print("worker: time limit reached", file=sys.stderr, flush=True)

    uvloop.run(bounded())
    sys.stdout.flush()
    os._exit(0)


# --------------------------------------------------------------------------
# Orchestrator
# --------------------------------------------------------------------------


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
                str(SELF),
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


def print_table(results: list[dict[str, Any]]) -> None:
    header = (
        f"{'variant':<20} {'conns':>6} {'KB/idle conn':>12} {'deliv/s/core':>13} "
        f"{'best':>9} {'wall deliv/s':>12} {'user%':>6} {'hs CPU us':>10} {'exact':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        if "error" in r:
            print(f"{r['variant']:<20} ERROR: {r['error']}")
            continue
        print(
            f"{r['variant']:<20} {r['conns']:>6} {r['kb_per_idle_conn']:>12.1f} "
            f"{r['per_core_per_s_median']:>13,.0f} {r['per_core_per_s_best']:>9,.0f} "
            f"{r['wall_per_s_median']:>12,.0f} {100 * r['user_share']:>6.0f} "
            f"{r['connect_cpu_us_per_conn']:>10.0f} "
            f"{'yes' if r['every_conn_exact'] else 'NO':>6}"
        )


async def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    names = [n.strip() for n in args.libs.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants: {unknown}; known: {list(VARIANTS)}")
    results: list[dict[str, Any]] = []
    t_start = time.monotonic()
    for i, name in enumerate(names):
        port = args.base_port + i
        print(f"== {name} (port {port}, {args.conns} conns)", flush=True)
        t0 = time.monotonic()
        try:
            res = await asyncio.wait_for(run_variant(name, port, args), args.variant_timeout)
        except Exception as exc:  # report and continue with the next variant
            res = {"variant": name, "error": f"{type(exc).__name__}: {exc!r}"}
        res["elapsed_s"] = time.monotonic() - t0
        results.append(res)
        if "error" not in res:
            print(
                f"   {res['kb_per_idle_conn']:.1f} KB/conn, "
                f"{res['per_core_per_s_median']:,.0f} deliveries/s/core, "
                f"{res['elapsed_s']:.0f}s",
                flush=True,
            )
        else:
            print(f"   ERROR {res['error']}", flush=True)
        await asyncio.sleep(1.0)
    print()
    print_table(results)
    out = {
        "machine": description(PACKAGES, with_load=False),
        "params": {
            "conns": args.conns,
            "n": args.n,
            "size": args.size,
            "rounds": args.rounds,
            "per_worker": args.per_worker,
            "settle_s": args.settle,
        },
        "total_elapsed_s": time.monotonic() - t_start,
        "results": results,
    }
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="WebSocket fan-out benchmark driver")
    p.add_argument("--conns", type=int, default=19_000, help="idle connections")
    p.add_argument("--libs", default=DEFAULT_VARIANTS, help=f"any of {list(VARIANTS)}")
    p.add_argument("--n", type=int, default=10, help="messages per round (go N S)")
    p.add_argument("--size", type=int, default=100, help="message size in bytes")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--per-worker", type=int, default=8000, help="max sockets per worker")
    p.add_argument("--concurrency", type=int, default=64, help="connects in flight/worker")
    p.add_argument("--settle", type=float, default=2.0, help="seconds before idle RSS")
    p.add_argument("--base-port", type=int, default=18100)
    p.add_argument("--variant-timeout", type=float, default=150.0)
    p.add_argument("--round-timeout", type=float, default=60.0)
    p.add_argument("--output", default=str(RESULTS), help="JSON path ('' to skip)")
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--deflate", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--max-seconds", type=float, default=300.0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not 0 < args.conns <= 100_000 or not 0 < args.n <= 10_000:
        p.error("--conns/--n out of range")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return run_worker(args)
    raise_nofile_limit()
    out = uvloop.run(orchestrate(args))
    if args.output:
        Path(args.output).write_text(json.dumps(out, indent=2) + "\n")
        print(f"\nwrote {args.output}")
    return 0 if all("error" not in r for r in out["results"]) else 1


if __name__ == "__main__":
    sys.exit(main())
