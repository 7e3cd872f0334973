"""The official centrifuge npm SDK driven from Node scripts (map and shared poll tests).

Each script prints one JSON event a line (`{"kind", "ctx"}`) and reads
commands from its standard input.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.conftest import ServerProcess

ROOT = Path(__file__).resolve().parents[3]
SDK = ROOT / "build" / "npm" / "node_modules" / "centrifuge"
STEP = 10.0


class SdkClient:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[tuple[str, Any]] = []

    async def next(self, kind: str, within: float = STEP) -> Any:
        """The next event of `kind` (events of other kinds are kept in `events`).

        TimeoutError if none comes `within` seconds.
        """
        assert self.proc.stdout is not None
        async with asyncio.timeout(within):
            while True:
                line = await self.proc.stdout.readline()
                assert line, "the SDK process ended"
                event = json.loads(line)
                self.events.append((event["kind"], event["ctx"]))
                if event["kind"] == kind:
                    return event["ctx"]

    async def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()


@contextlib.asynccontextmanager
async def sdk_clients(
    server: ServerProcess, script: Path
) -> AsyncIterator[Callable[..., Awaitable[SdkClient]]]:
    """`start(user, channel, *extra)` runs `script` as that user on `channel` (more
    arguments after it); all killed at exit."""
    assert shutil.which("node"), "Node.js missing: run scripts/setup-test-deps.sh"
    assert SDK.exists(), "centrifuge npm SDK missing: run scripts/vendor-sdk.sh"
    procs: list[asyncio.subprocess.Process] = []

    async def start(user: str, channel: str, *extra: str) -> SdkClient:
        proc = await asyncio.create_subprocess_exec(
            "node",
            "--experimental-websocket",
            "--no-warnings",
            str(script),
            str(SDK),
            server.ws_url,
            server.token(user),
            channel,
            *extra,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        procs.append(proc)
        return SdkClient(proc)

    try:
        yield start
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
