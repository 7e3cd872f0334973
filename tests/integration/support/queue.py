"""`tidings queue` as a real child process on free ports, and a raw V2 client."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tidings.protocol.nsq import Frame, FrameReader, FrameType, MessageFrame

_READY = re.compile(r"tidings queue ready: tcp \S+:(\d+) http (\d+)(?: replication (\d+))?")


@dataclass
class QueueProcess:
    """A `tidings queue` child on ports the kernel picks (no free-port race).

    `start()` again (or `restart()`) keeps the data path and the replication
    port (a primary points at it); the TCP and HTTP ports may change.
    """

    data_path: Path
    log_path: Path
    args: list[str] = field(default_factory=list)
    tcp_port: int = 0
    http_port: int = 0
    replication_port: int = -1  # -1: no replication listener; 0: any port
    proc: subprocess.Popen[bytes] | None = None

    @property
    def tcp_address(self) -> str:
        return f"127.0.0.1:{self.tcp_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> QueueProcess:
        command = [
            sys.executable,
            "-m",
            "tidings",
            "queue",
            "--tcp-address",
            "127.0.0.1:0",
            "--http-address",
            "127.0.0.1:0",
            "--data-path",
            str(self.data_path),
            *self.args,
        ]
        if self.replication_port >= 0:
            command += ["--replication-address", f"127.0.0.1:{self.replication_port}"]
        skip = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tidings queue exited:\n{self.log()}")
            match = _READY.search(self.log()[skip:])
            if match:
                self.tcp_port, self.http_port = int(match[1]), int(match[2])
                if match[3]:
                    self.replication_port = int(match[3])
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"tidings queue did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def restart(self, sig: int = signal.SIGKILL) -> QueueProcess:
        self.kill(sig)
        return self.start()

    def rss_bytes(self) -> int:
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        assert match is not None
        return int(match[1]) * 1024

    def http(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(self.http_url + path, data=body, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status), response.read()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read()

    def stats(self) -> dict[str, Any]:
        status, body = self.http("GET", "/stats?format=json")
        assert status == 200, body
        data: dict[str, Any] = json.loads(body)
        return data

    def channel_stats(self, topic: str, channel: str) -> dict[str, Any]:
        for entry in self.stats()["topics"] or []:
            if entry["topic_name"] == topic:
                for stats in entry["channels"]:
                    if stats["channel_name"] == channel:
                        return dict(stats)
        raise KeyError(f"{topic}/{channel}")


def start_queue(
    tmp_path: Path, *args: str, name: str = "q", replication: bool = False
) -> QueueProcess:
    process = QueueProcess(
        tmp_path / f"{name}-data",
        tmp_path / f"{name}.log",
        list(args),
        replication_port=0 if replication else -1,
    )
    return process.start()


def body(data: bytes) -> bytes:
    return struct.pack(">i", len(data)) + data


def mpub_body(messages: list[bytes]) -> bytes:
    return body(struct.pack(">i", len(messages)) + b"".join(body(m) for m in messages))


class RawClient:
    """A minimal V2 client for exact frames (asyncio streams)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.frames = FrameReader()
        self.pending: list[Frame] = []

    @classmethod
    async def connect(cls, port: int, magic: bytes = b"  V2") -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(magic)
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def frame(self, within: float = 10) -> Frame:
        while not self.pending:
            data = await asyncio.wait_for(self.reader.read(65536), within)
            if not data:
                raise ConnectionResetError("closed by the server")
            self.pending += self.frames.feed(data)
        return self.pending.pop(0)

    async def response(self, within: float = 10) -> bytes:
        """The next frame that is not a heartbeat or a message."""
        while True:
            frame = await self.frame(within)
            if frame.frame_type is FrameType.MESSAGE or frame.data == b"_heartbeat_":
                continue
            prefix = b"ERR " if frame.frame_type is FrameType.ERROR else b""
            return prefix + frame.data

    async def message(self, within: float = 10) -> MessageFrame:
        while True:
            frame = await self.frame(within)
            if frame.frame_type is FrameType.MESSAGE:
                return MessageFrame.decode(frame.data)
            if frame.frame_type is FrameType.ERROR:
                raise AssertionError(frame.data)

    async def closed(self, within: float = 10) -> bool:
        """Whether the server closes the connection (reading to EOF)."""
        try:
            while await asyncio.wait_for(self.reader.read(65536), within):
                pass
        except (ConnectionResetError, TimeoutError):
            return False
        return True

    def close(self) -> None:
        self.writer.close()
