"""PUB / MPUB / SUB throughput of `tidings queue` (or any nsqd) with 200-byte messages.

    python benchmarks/queue_bench.py                       # starts tidings queue, fsync never+batch
    python benchmarks/queue_bench.py --nsqd 127.0.0.1:4150 # an nsqd (or a running queue) instead

One asyncio client process speaks the V2 protocol directly (the same client for
both servers). PUB: `--connections` connections each sending PUB and waiting
for OK; MPUB: batches of `--batch`; SUB: consume everything published with
RDY 2500 and FIN each. Reports msgs/s and, for a server it started, the
server's CPU seconds (msgs per CPU-second).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tidings.protocol.nsq import FrameReader, FrameType, MessageFrame

BODY = b"x" * 200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _body(data: bytes) -> bytes:
    return struct.pack(">i", len(data)) + data


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.frames = reader, writer, FrameReader()
        self.pending: list[Any] = []

    @classmethod
    async def connect(cls, host: str, port: int) -> Client:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"  V2")
        return cls(reader, writer)

    async def frames_(self) -> list[Any]:
        data = await self.reader.read(1 << 20)
        if not data:
            raise ConnectionError("closed")
        return self.frames.feed(data)

    async def response(self) -> bytes:
        while True:
            while not self.pending:
                self.pending += await self.frames_()
            frame = self.pending.pop(0)
            if frame.data != b"_heartbeat_":
                return bytes(frame.data)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def bench_pub(host: str, port: int, topic: str, count: int, connections: int) -> float:
    per = count // connections

    async def one() -> None:
        client = await Client.connect(host, port)
        command = f"PUB {topic}\n".encode() + _body(BODY)
        for _ in range(per):
            client.writer.write(command)
            if await client.response() != b"OK":
                raise RuntimeError("PUB failed")
        client.writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(connections)))
    return per * connections / (time.perf_counter() - start)


async def bench_mpub(host: str, port: int, topic: str, count: int, batch: int) -> float:
    client = await Client.connect(host, port)
    inner = struct.pack(">i", batch) + b"".join(_body(BODY) for _ in range(batch))
    command = f"MPUB {topic}\n".encode() + _body(inner)
    rounds = count // batch
    start = time.perf_counter()
    for _ in range(rounds):
        client.writer.write(command)
        if await client.response() != b"OK":
            raise RuntimeError("MPUB failed")
    client.writer.close()
    return rounds * batch / (time.perf_counter() - start)


async def bench_sub(host: str, port: int, topic: str, count: int) -> float:
    client = await Client.connect(host, port)
    client.writer.write(f"SUB {topic} bench\nRDY 2500\n".encode())
    got = 0
    start = 0.0
    while got < count:
        fins: list[bytes] = []
        for frame in await client.frames_():
            if frame.frame_type is FrameType.MESSAGE:
                if not start:
                    start = time.perf_counter()
                got += 1
                fins.append(b"FIN " + MessageFrame.decode(frame.data).message_id + b"\n")
        if fins:
            client.writer.write(b"".join(fins))
    elapsed = time.perf_counter() - start
    client.writer.close()
    return count / elapsed


async def run_suite(
    host: str, port: int, args: argparse.Namespace, tag: str, pid: int = 0
) -> dict[str, float]:
    """msgs/s per phase; with the server's `pid`, also msgs per server CPU-second."""
    results: dict[str, float] = {}

    async def phase(name: str, count: int, run: Any) -> None:
        before = _cpu_seconds(pid) if pid else 0.0
        results[name] = await run
        if pid:
            cpu = _cpu_seconds(pid) - before
            results[name + "_per_cpu_s"] = count / cpu if cpu > 0 else float("inf")

    await phase(
        "pub", args.count, bench_pub(host, port, f"pub-{tag}", args.count, args.connections)
    )
    await phase(
        "mpub", args.count * 5, bench_mpub(host, port, f"mpub-{tag}", args.count * 5, args.batch)
    )
    # SUB: publish first (MPUB), then consume it all.
    await bench_mpub(host, port, f"sub-{tag}", args.count * 5, args.batch)
    await phase("sub", args.count * 5, bench_sub(host, port, f"sub-{tag}", args.count * 5))
    return results


def start_queue(fsync: str, data: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tidings",
            "queue",
            "--tcp-address",
            f"127.0.0.1:{port}",
            "--http-address",
            "127.0.0.1:0",
            "--data-path",
            str(data),
            "--fsync",
            fsync,
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if b"ready" not in line:
        raise RuntimeError(f"queue did not start: {line!r}")
    return proc, port


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nsqd", default="", help="host:port of a running server to measure")
    parser.add_argument("--pid", type=int, default=0, help="its process id (for CPU seconds)")
    parser.add_argument("--fsync", default="never,batch", help="policies to run (started queue)")
    parser.add_argument("--count", type=int, default=20_000, help="PUB messages (x5 for MPUB)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    report: dict[str, Any] = {}
    if args.nsqd:
        host, _, port = args.nsqd.rpartition(":")
        tag = str(int(time.time()))
        report["external"] = await run_suite(host, int(port), args, tag, args.pid)
    else:
        for fsync in args.fsync.split(","):
            with tempfile.TemporaryDirectory() as data:
                proc, port = start_queue(fsync, Path(data))
                try:
                    results = await run_suite("127.0.0.1", port, args, fsync, proc.pid)
                    results["server_rss_mb"] = _rss_mb(proc.pid)
                    report[f"tidings fsync={fsync}"] = results
                finally:
                    proc.terminate()
                    proc.wait(10)
    for name, results in report.items():
        print(name, json.dumps({k: round(v, 1) for k, v in results.items()}))


if __name__ == "__main__":
    asyncio.run(main())
