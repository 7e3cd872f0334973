"""Publications through the server API, on one keep-alive HTTP connection per sender."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from types import TracebackType

import aiohttp

_HEAD = b'{"t":'


def stamped(size: int) -> bytes:
    """A JSON object of about `size` bytes carrying the monotonic send time in ns as "t"."""
    head = b'{"t":%d,"p":"' % time.monotonic_ns()
    pad = max(0, size - len(head) - 2)
    return head + b"x" * pad + b'"}'


@dataclass
class PublishRun:
    """What one run of publishing did."""

    calls: int = 0
    publications: int = 0
    errors: int = 0
    seconds: float = 0.0
    call_ms: list[float] = field(default_factory=list)


class Publisher:
    """Publishes to `channel` via `POST /api/publish` (or `/api/batch` for several at once)."""

    def __init__(
        self, api_url: str, api_key: str, channel: str, size: int, *, parallel: bool = False
    ) -> None:
        self._url = api_url.rstrip("/") + "/api/"
        #: Batches with `"parallel": true`: the server may run their commands at once.
        self.parallel = parallel
        self._headers = {"X-API-Key": api_key, "Content-Type": "application/json"}
        self.channel = channel
        self.size = size
        self._http: aiohttp.ClientSession | None = None
        self._channel_json = b'"' + channel.encode() + b'"'

    async def __aenter__(self) -> Publisher:
        connector = aiohttp.TCPConnector(limit=256, force_close=False)
        self._http = aiohttp.ClientSession(connector=connector, headers=self._headers)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._http is not None:
            await self._http.close()

    def _body(self, batch: int) -> tuple[str, bytes]:
        one = b'{"channel":' + self._channel_json + b',"data":' + stamped(self.size) + b"}"
        if batch <= 1:
            return "publish", one
        commands = b",".join(b'{"publish":' + one + b"}" for _ in range(batch))
        tail = b',"parallel":true}' if self.parallel else b"}"
        return "batch", b'{"commands":[' + commands + b"]" + tail

    async def call(self, batch: int = 1) -> bool:
        """One API call carrying `batch` publications; True if the server accepted it."""
        assert self._http is not None
        method, body = self._body(batch)
        async with self._http.post(self._url + method, data=body) as resp:
            text = await resp.read()
            return resp.status == 200 and b'"error"' not in text

    async def _timed(self, run: PublishRun, batch: int) -> None:
        t0 = time.monotonic()
        try:
            ok = await asyncio.wait_for(self.call(batch), 30.0)
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        run.call_ms.append((time.monotonic() - t0) * 1000)
        run.calls += 1
        if ok:
            run.publications += batch
        else:
            run.errors += 1

    async def at_rate(
        self, rate: float, seconds: float, *, batch: int = 1, in_flight: int = 8
    ) -> PublishRun:
        """`rate` calls a second for `seconds`, paced from the start so the rate holds."""
        run = PublishRun()
        loop = asyncio.get_running_loop()
        sem = asyncio.Semaphore(in_flight)
        tasks: set[asyncio.Task[None]] = set()
        start = loop.time()

        async def one() -> None:
            async with sem:
                await self._timed(run, batch)

        for i in range(max(1, int(rate * seconds))):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            task = loop.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=60.0)
        run.seconds = loop.time() - start
        return run

    async def flat_out(self, seconds: float, *, concurrency: int = 8, batch: int = 1) -> PublishRun:
        """As many calls as `concurrency` senders manage in `seconds`."""
        run = PublishRun()
        loop = asyncio.get_running_loop()
        start = loop.time()
        end = start + seconds

        async def sender() -> None:
            while loop.time() < end:
                await self._timed(run, batch)

        await asyncio.wait_for(
            asyncio.gather(*(sender() for _ in range(concurrency))), seconds + 60
        )
        run.seconds = loop.time() - start
        return run
