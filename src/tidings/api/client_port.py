"""One-port mode (`api_on_client_port = true`): the server API on the client port too.

For deployments that expect Centrifugo's single port. Off by default, and
less safe: the API is then reachable wherever clients are, and only its key
protects it (the key is still required, `api_insecure` aside). A request to
`/api` or `/api/<method>` on the client port is handed, with the socket, to
the same aiohttp application that serves the API port: same handlers, same
key check, same JSON errors, keep-alive for the requests that follow on that
connection. What the client port checks first still applies (per-IP caps
and rate, allowed origins, request head limits), and so does its body limit
(64 KiB, HTTP 413 above) instead of `api_max_body_size`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tidings.transport.http import HttpRequest, respond

if TYPE_CHECKING:
    from aiohttp import web

    from tidings.core.access import ConnectionSlot
    from tidings.transport.port import HttpHandler

API_PREFIX = "/api"


class _Handed(asyncio.Protocol):
    """Forwards the socket's events to aiohttp's protocol; releases the slot at the end."""

    def __init__(self, inner: Any, slot: ConnectionSlot | None) -> None:
        self._inner = inner
        self._slot = slot

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        result: bool | None = self._inner.eof_received()
        return result

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self._inner.connection_lost(exc)
        finally:
            if self._slot is not None:
                self._slot.release()
                self._slot = None


def _request_bytes(request: HttpRequest) -> bytes:
    """The request as read, for the API's HTTP parser (headers by their lower-case names)."""
    lines = [f"{request.method} {request.target} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in request.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request.body


def api_handler(server: Callable[[], web.Server | None]) -> HttpHandler:
    """The client-port handler of `/api` paths: hands the socket to `server()`'s protocol."""

    def handle(request: HttpRequest, transport: asyncio.Transport) -> None:
        api = server()
        if api is None:  # the API is not started yet (or is stopping)
            respond(transport, 503, b"API not ready\n")
            return
        protocol = _Handed(api(), request.slot)
        request.slot = None  # released when the socket closes
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        protocol.data_received(_request_bytes(request))

    return handle


def api_paths(methods: list[str]) -> list[str]:
    """The client-port paths of the API: `/api` and `/api/<method>` for each method."""
    return [API_PREFIX, *(f"{API_PREFIX}/{method}" for method in methods)]
