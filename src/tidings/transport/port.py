"""The client port: reads each request's head, then hands the socket to its handler.

WebSocket upgrades go to picows (the socket is handed over with the bytes
already read); other requests (SSE streams, the demo page) go to small HTTP
handlers. IP allow/deny lists and the per-IP connection rate are applied
here, before anything else, for every kind of request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

from tidings.core.access import AccessPolicy
from tidings.transport.http import MAX_BODY, MAX_HEAD, BadRequest, HttpRequest, parse_head, respond

log = logging.getLogger(__name__)

#: Handles a plain HTTP request; may take the transport over (streams).
HttpHandler = Callable[[HttpRequest, asyncio.Transport], None]
#: Makes the protocol that takes over a WebSocket upgrade.
WebSocketFactory = Callable[[], Any]

#: Seconds a client has to send its request head.
HEAD_TIMEOUT = 10.0


class _Detached(asyncio.Protocol):
    """Stands in between the front protocol and picows during the hand-over.

    uvloop keeps the previous protocol's bound `data_received` when it switches
    to a buffered protocol (picows), which would hold every `ClientPortProtocol`,
    and its request, for the connection's life. Passing through this shared
    protocol, whose `data_received` is one plain function, leaves only that
    function behind.
    """

    data_received = staticmethod(lambda data: None)


_DETACHED = _Detached()


class ClientPortProtocol(asyncio.Protocol):
    __slots__ = (
        "_access",
        "_buffer",
        "_head_size",
        "_peer_ip",
        "_request",
        "_routes",
        "_timer",
        "_transport",
        "_websocket",
    )

    def __init__(
        self,
        access: AccessPolicy,
        websocket: WebSocketFactory,
        routes: dict[str, HttpHandler],
    ) -> None:
        self._access = access
        self._websocket = websocket
        self._routes = routes
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._request: HttpRequest | None = None
        self._peer_ip = ""
        self._timer: asyncio.TimerHandle | None = None
        self._head_size = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self._peer_ip = str(peer[0]) if peer else ""
        self._timer = asyncio.get_running_loop().call_later(HEAD_TIMEOUT, self._transport.abort)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        assert transport is not None
        self._buffer += data
        try:
            if self._request is None:
                end = self._buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(self._buffer) > MAX_HEAD:
                        raise BadRequest(431, "request head too large")
                    return
                self._request = parse_head(bytes(self._buffer[:end]), self._peer_ip)
                self._head_size = end + 4
                refused = self._access.check(self._peer_ip)
                if refused is not None:
                    self._stop_timer()
                    body = b"forbidden\n" if refused == 403 else b"too many connections\n"
                    respond(transport, refused, body)
                    return
                origin = self._request.headers.get("origin", "")
                if not self._access.origin_allowed(origin, self._request.headers.get("host", "")):
                    self._access.refused["origin"] += 1
                    raise BadRequest(403, f"origin {origin} not allowed (see allowed_origins)")
                if self._request.wants_websocket:
                    self._hand_to_websocket(transport)
                    return
            request = self._request
            length = request.content_length
            if length > MAX_BODY:
                raise BadRequest(413, "body too large")
            if len(self._buffer) - self._head_size < length:
                return
            request.body = bytes(self._buffer[self._head_size : self._head_size + length])
        except BadRequest as exc:
            self._stop_timer()
            respond(transport, exc.status, f"{exc}\n".encode())
            return
        self._stop_timer()
        handler = self._routes.get(request.path)
        if handler is None:
            respond(transport, 404, b"not found\n")
            return
        try:
            handler(request, transport)
        except Exception:
            log.exception("client port handler for %s failed", request.path)
            if not transport.is_closing():
                respond(transport, 500, b"internal server error\n")

    def _hand_to_websocket(self, transport: asyncio.Transport) -> None:
        """Give the socket, and the bytes read so far, to a picows protocol."""
        self._stop_timer()
        protocol = self._websocket()
        transport.set_protocol(_DETACHED)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        data = memoryview(bytes(self._buffer))
        # Nothing of the front protocol outlives the hand-over.
        self._buffer = bytearray()
        self._request = self._transport = None
        while data:
            buffer = protocol.get_buffer(len(data))
            n = min(len(buffer), len(data))
            buffer[:n] = data[:n]
            protocol.buffer_updated(n)
            data = data[n:]
