"""The benchmark's WebSocket clients and the worker process that holds them.

``WSClient`` is a minimal asyncio protocol: it parses frame headers only and
counts data frames, with no task per message.  The orchestrator's *control*
connection is a ``WSClient`` too, one that also keeps the server's replies to
``rss``/``cpu``/``times``.  ``run_worker`` is the body of ``run.py --worker``:
it opens ``--conns`` idle connections, reports ``ready``, prints ``done K T``
when every connection has all messages of round K, and answers ``stats`` and
``quit`` on its stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import cast

import uvloop

from tidings.bench.machine import raise_nofile_limit

HOST = "127.0.0.1"

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
