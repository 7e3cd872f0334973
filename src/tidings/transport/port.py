"""The client port: reads each request's head, then hands the socket to its handler.

WebSocket upgrades go to picows (the socket is handed over with the bytes
already read); other requests (SSE streams, the demo page) go to small HTTP
handlers. Limits, in the order they apply:

- when a socket is accepted, before any byte is read (`AccessPolicy.admit`):
  IP allow/deny lists (403), the caps on open sockets per IP
  (`client_connections_per_ip`, 429) and in total (`client_connections_max`,
  503), the per-IP connection rate (429);
- the request head (and a POST body) must arrive within
  `client_head_timeout` (HTTP 408), the head within MAX_HEAD bytes (431);
- once the head is read: the page's origin (403), the WebSocket version (426).

Whatever the bytes, a malformed head is answered 400 and closed: no
exception escapes `data_received`. A socket the port closes that does not
take its last bytes within `client_close_timeout` is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

from tidings.core.access import AccessPolicy, ConnectionSlot
from tidings.settings import Settings
from tidings.transport.http import MAX_BODY, MAX_HEAD, BadRequest, HttpRequest, parse_head, respond

log = logging.getLogger(__name__)

#: Handles a plain HTTP request; may take the transport over (streams), and then
#: `request.slot` with it (released when its connection is lost).
HttpHandler = Callable[[HttpRequest, asyncio.Transport], None]
#: Makes the protocol that takes over a WebSocket upgrade (and the connection's slot).
WebSocketFactory = Callable[[ConnectionSlot], Any]

#: The only WebSocket version there is (RFC 6455); older drafts get 426.
WEBSOCKET_VERSION = "13"

_REFUSALS = {
    403: b"forbidden\n",
    429: b"too many connections\n",
    503: b"server full, try again later\n",
}


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


def drop_later(transport: asyncio.BaseTransport, delay: float) -> None:
    """Abort `transport` in `delay` seconds if it has not closed by then.

    A graceful close waits for the write buffer to drain, which a peer that
    never reads makes last forever: the socket and its buffer with it.
    """
    # Aborting a transport that has closed meanwhile does nothing.
    asyncio.get_running_loop().call_later(delay, cast(asyncio.WriteTransport, transport).abort)


class ClientPortProtocol(asyncio.Protocol):
    __slots__ = (
        "_access",
        "_buffer",
        "_done",
        "_head_size",
        "_peer_ip",
        "_request",
        "_routes",
        "_settings",
        "_slot",
        "_timer",
        "_transport",
        "_websocket",
    )

    def __init__(
        self,
        access: AccessPolicy,
        websocket: WebSocketFactory,
        routes: dict[str, HttpHandler],
        settings: Settings,
    ) -> None:
        self._access = access
        self._websocket = websocket
        self._routes = routes
        self._settings = settings
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._request: HttpRequest | None = None
        self._peer_ip = ""
        self._timer: asyncio.TimerHandle | None = None
        self._head_size = 0
        self._slot: ConnectionSlot | None = None
        self._done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self._peer_ip = str(peer[0]) if peer else ""
        slot = self._access.admit(self._peer_ip)
        if isinstance(slot, int):
            self._finish(slot, _REFUSALS[slot])
            return
        self._slot = slot
        self._timer = asyncio.get_running_loop().call_later(
            self._settings.client_head_timeout, self._head_timed_out
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        if self._slot is not None:
            self._slot.release()
            self._slot = None

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_timed_out(self) -> None:
        self._timer = None
        self._access.refused["head_timeout"] += 1
        self._finish(408, b"request head not received in time\n")

    def _finish(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        """Answer `status` and close; drop the socket if it does not drain in time."""
        self._stop_timer()
        self._done = True
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        respond(transport, status, body, headers=headers)
        drop_later(transport, self._settings.client_close_timeout)

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or self._done:
            return  # answered already: whatever follows is ignored
        self._buffer += data
        try:
            request = self._read_request(transport)
        except BadRequest as exc:
            if exc.status == 400:
                self._access.refused["bad_request"] += 1
            headers = {"Sec-WebSocket-Version": WEBSOCKET_VERSION} if exc.status == 426 else None
            self._finish(exc.status, f"{exc}\n".encode(), headers)
            return
        if request is None:
            return
        self._stop_timer()
        self._done = True
        handler = self._routes.get(request.path)
        if handler is None:
            self._finish(404, b"not found\n")
            return
        request.slot, self._slot = self._slot, None
        try:
            handler(request, transport)
        except Exception:
            log.exception("client port handler for %s failed", request.path)
            if not transport.is_closing():
                respond(transport, 500, b"internal server error\n")
        if transport.get_protocol() is self:
            # Not taken over: the slot stays with this protocol until the socket closes.
            self._slot, request.slot = request.slot, None
            if transport.is_closing():
                drop_later(transport, self._settings.client_close_timeout)

    def _read_request(self, transport: asyncio.Transport) -> HttpRequest | None:
        """The complete request (head and body), None while incomplete; BadRequest if refused."""
        if self._request is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD:
                    raise BadRequest(431, "request head too large")
                return None
            if end > MAX_HEAD:
                raise BadRequest(431, "request head too large")
            request = parse_head(bytes(self._buffer[:end]), self._peer_ip)
            self._request = request
            self._head_size = end + 4
            origin = request.headers.get("origin", "")
            if not self._access.origin_allowed(origin, request.headers.get("host", "")):
                self._access.refused["origin"] += 1
                raise BadRequest(403, f"origin {origin} not allowed (see allowed_origins)")
            if request.wants_websocket:
                version = request.headers.get("sec-websocket-version", "")
                if version != WEBSOCKET_VERSION:
                    raise BadRequest(426, f"WebSocket version {WEBSOCKET_VERSION} only")
                self._hand_to_websocket(transport)
                return None
        request = self._request
        length = request.content_length
        if length > MAX_BODY:
            raise BadRequest(413, "body too large")
        if len(self._buffer) - self._head_size < length:
            return None
        request.body = bytes(self._buffer[self._head_size : self._head_size + length])
        self._buffer = bytearray()
        return request

    def _hand_to_websocket(self, transport: asyncio.Transport) -> None:
        """Give the socket, the bytes read so far and the slot to a picows protocol."""
        self._stop_timer()
        self._done = True
        slot, self._slot = self._slot, None
        assert slot is not None
        protocol = self._websocket(slot)
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
