"""The blast-radius check: a well-behaved client beside a hostile one.

`Canary` keeps a subscribed connection to `CHANNEL` on the server under
attack. While it runs, publications to its channel are made through the API
once per round and must arrive, and a fresh connection must connect each
round. Timeouts are generous (`STEP`): the point is "still served", not speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from types import TracebackType

import aiohttp
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tests.conftest import ServerProcess
from tests.integration.support.ws import STEP, connected_ws, parse_frame, subscribe

#: The canary's channel: the servers of these tests let clients subscribe to it.
CHANNEL = "canary"


class Canary:
    """Publishes to itself and reconnects in rounds; records what went wrong."""

    def __init__(self, server: ServerProcess, pause: float = 0.2) -> None:
        self.server = server
        self.pause = pause
        self.rounds = 0
        self.completed = 0
        self._progress = asyncio.Event()
        self.failures: list[str] = []
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._received: asyncio.Queue[int] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Canary:
        self._ws, _ = await connected_ws(self.server.ws_url, self.server.token("canary"))
        await subscribe(self._ws, CHANNEL)
        self._reader = asyncio.create_task(self._read(self._ws))
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in (self._task, self._reader):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._ws is not None:
            await self._ws.close()

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for frame in ws:
                messages = parse_frame(frame)
                if {} in messages:
                    await ws.send("{}")
                for message in messages:
                    pub = message.get("push", {}).get("pub")
                    if pub is not None and message["push"].get("channel") == CHANNEL:
                        self._received.put_nowait(int(pub["data"]["n"]))
        except ConnectionClosed as exc:
            self.failures.append(f"canary connection closed: {exc}")

    async def _run(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=STEP)) as http:
            while True:
                await self.round(http)
                await asyncio.sleep(self.pause)

    async def round(self, http: aiohttp.ClientSession) -> None:
        """One publication that must arrive, one connection that must connect."""
        n = self.rounds
        self.rounds += 1
        try:
            async with http.post(
                f"{self.server.api_url}/publish",
                data=json.dumps({"channel": CHANNEL, "data": {"n": n}}),
                headers={"X-API-Key": self.server.api_key},
            ) as resp:
                body = await resp.json()
            if "error" in body:
                self.failures.append(f"round {n}: canary publish failed: {body}")
            async with asyncio.timeout(STEP):
                got = await self._received.get()
            if got != n:
                self.failures.append(f"round {n}: canary received {got}")
        except (TimeoutError, aiohttp.ClientError) as exc:
            self.failures.append(f"round {n}: canary publication not received: {exc!r}")
        try:
            async with asyncio.timeout(STEP):
                fresh, _ = await connected_ws(self.server.ws_url, self.server.token(f"fresh{n}"))
                await fresh.close()
        except (TimeoutError, OSError, ConnectionClosed, AssertionError) as exc:
            self.failures.append(f"round {n}: a new connection failed: {exc!r}")
        self.completed += 1
        self._progress.set()

    async def wait(self, rounds: int, within: float = 60) -> None:
        """Until `rounds` rounds have completed (a loaded machine may need a while)."""
        async with asyncio.timeout(within):
            while self.completed < rounds:
                self._progress.clear()
                progress = asyncio.ensure_future(self._progress.wait())
                assert self._task is not None
                await asyncio.wait({progress, self._task}, return_when=asyncio.FIRST_COMPLETED)
                progress.cancel()
                if self._task.done():
                    self._task.result()  # raises what stopped the canary
                    raise AssertionError("the canary stopped")

    async def check(self, min_rounds: int = 3) -> None:
        """Wait for `min_rounds` completed rounds; raise if anything failed."""
        await self.wait(min_rounds)
        assert not self.failures, "the canary was hurt: " + "; ".join(self.failures[:5])
