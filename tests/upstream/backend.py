"""A scripted application back end for proxy tests: a real aiohttp server on a free port.

Every POST is recorded (path, headers, raw body, parsed body). What it answers
is set per path with `answer(path, ...)`: a JSON object, raw bytes, an HTTP
status, or a delay. It counts the requests it serves at once (`peak`).
The `backend` fixture (loaded for every test by tests/conftest.py) starts one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from multidict import CIMultiDict

from tests.conftest import free_port


@dataclass
class Seen:
    path: str
    headers: CIMultiDict[str]  # names are case-insensitive
    raw: bytes

    @property
    def body(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.raw)
        return parsed


@dataclass
class Answer:
    body: bytes = b'{"result": {}}'
    status: int = 200
    delay: float = 0.0
    content_type: str = "application/json"


Responder = Callable[[dict[str, Any]], Answer]
HeaderResponder = Callable[[dict[str, Any], CIMultiDict[str]], Answer]


class Backend:
    def __init__(self) -> None:
        self.port = free_port()
        self.seen: list[Seen] = []
        self.active = 0
        self.peak = 0
        self._answers: dict[str, Answer | Responder] = {}
        self._by_headers: dict[str, HeaderResponder] = {}
        self._runner: web.AppRunner | None = None
        self.changed = asyncio.Event()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def answer(
        self,
        path: str,
        body: dict[str, Any] | bytes | Responder | None = None,
        *,
        status: int = 200,
        delay: float = 0.0,
    ) -> None:
        """Answer POSTs to `/path` with `body` (JSON object, raw bytes, or a function)."""
        if callable(body):
            self._answers[path] = body
            return
        raw = body if isinstance(body, bytes) else json.dumps(body or {"result": {}}).encode()
        self._answers[path] = Answer(raw, status, delay)
        self._by_headers.pop(path, None)

    def answer_with_headers(self, path: str, responder: HeaderResponder) -> None:
        """Answer POSTs to `/path` by what `responder(body, headers)` returns."""
        self._by_headers[path] = responder

    def of(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{path}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        for attempt in range(3):
            try:
                await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
                return
            except OSError:  # the free port was taken meanwhile (parallel test runs)
                if attempt == 2:
                    raise
                self.port = free_port()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        raw = await request.read()
        seen = Seen(path, CIMultiDict(request.headers), raw)
        self.seen.append(seen)
        self.changed.set()
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            answer = self._answers.get(path, Answer())
            if path in self._by_headers:
                answer = self._by_headers[path](seen.body, seen.headers)
            elif callable(answer):
                answer = answer(seen.body)
            if answer.delay:
                await asyncio.sleep(answer.delay)
            return web.Response(
                body=answer.body, status=answer.status, content_type=answer.content_type
            )
        finally:
            self.active -= 1

    async def wait_for(self, path: str, count: int = 1, within: float = 10.0) -> list[Seen]:
        async def poll() -> list[Seen]:
            while len(self.of(path)) < count:
                self.changed.clear()
                await self.changed.wait()
            return self.of(path)

        return await asyncio.wait_for(poll(), within)


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    """A running `Backend`, stopped after the test."""
    server = Backend()
    await server.start()
    yield server
    await server.stop()
