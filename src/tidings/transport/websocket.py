"""The WebSocket transport on picows, and the client port's HTTP router.

picows was chosen by measurement (docs/websocket-choice.md): it parses
frames in C with a small per-connection read buffer, which gives the most
deliveries per core of the candidates measured. The server socket is
created with the event loop's own `create_server` (not aiofastnet), which
measured 8.7 KB instead of 13.8 KB per idle connection at the same speed.

What a client can make the server hold for its connection is bounded here
and in the core (docs/configuration.md, "Per-connection budget"):

- a fragmented message is assembled in one `bytearray`; each fragment costs
  its payload plus FRAGMENT_COST bytes against `client_max_message_size`
  (1009 above), so empty continuation frames are not free; it must complete
  within `client_message_timeout` (1008 after);
- pongs are answered here, not by picows: while the socket's write buffer is
  full (paused) only the latest ping is remembered and answered once it
  drains, as RFC 6455 section 5.5.3 allows, so a ping flood from a client that
  never reads costs at most one 125-byte payload;
- frames with reserved bits (no extension is negotiated) and close frames
  with a code a peer may not send are answered with close 1002;
- once the server closes, the peer has `client_close_timeout` to take the
  last bytes; then the socket is dropped with whatever it still buffers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, urlsplit

from multidict import CIMultiDict, CIMultiDictProxy
from picows import (
    WSAutoPingStrategy,
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
)
from picows.picows import WSProtocol  # type: ignore[attr-defined]

from tidings.core.access import AccessPolicy, ConnectionSlot
from tidings.protocol.centrifuge import codes
from tidings.protocol.centrifuge.codec import Codec
from tidings.protocol.centrifuge.protobuf_codec import ProtobufCodec
from tidings.protocol.centrifuge.uni_codec import connect_frame
from tidings.transport.port import ClientPortProtocol, HttpHandler, drop_later
from tidings.transport.sse import UNI_CODEC

if TYPE_CHECKING:
    from tidings.core.client import Client
    from tidings.core.node import Node

log = logging.getLogger(__name__)

WEBSOCKET_PATH = "/connection/websocket"
UNI_WEBSOCKET_PATH = "/connection/uni_websocket"
#: Close code picows uses for a frame above the size limit; we say it in the reason.
MESSAGE_TOO_BIG = 1009
#: Close code for a frame that breaks RFC 6455 (reserved bits, a bad close code, ...).
PROTOCOL_ERROR = 1002
#: Close code for a fragmented message not completed within `client_message_timeout`.
POLICY_VIOLATION = 1008
#: Seconds a closed connection waits for the peer's close frame before closing the socket.
CLOSE_LINGER = 1.0
#: Bytes each fragment of a message counts besides its payload: the smallest masked
#: frame header is 6 bytes, and handling a frame costs far more than that.
FRAGMENT_COST = 64
#: Close codes of RFC 6455 section 7.4 a peer may send (besides 3000-4999).
_PEER_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015)})


def valid_close_code(code: int) -> bool:
    """Whether a peer may put `code` in a close frame (1005, 1006, 1015 are never sent)."""
    return code in _PEER_CLOSE_CODES or 3000 <= code <= 4999


class WebSocketSession(WSListener):
    """One WebSocket connection: frames to the client, writes and closes to the socket."""

    name = "websocket"

    __slots__ = (
        "_client",
        "_codec",
        "_frame_type",
        "_max_message_size",
        "_message",
        "_message_cost",
        "_message_timer",
        "_node",
        "_pong",
        "_uni",
        "_uni_connect",
        "_uni_started",
        "_ws",
        "paused",
    )

    def __init__(
        self,
        node: Node,
        max_message_size: int,
        codec: Codec | None = None,
        uni_connect: bytes | None = None,
    ) -> None:
        self._node = node
        self._codec = codec
        # Unidirectional: the connect request (from the URL, or the first message).
        self._uni = uni_connect is not None
        self._uni_connect = uni_connect or b""
        self._frame_type = (
            WSMsgType.BINARY if codec is not None and codec.binary else WSMsgType.TEXT
        )
        self._ws: WSTransport | None = None
        self._client: Client | None = None
        self._max_message_size = max_message_size
        self._uni_started = False
        # A fragmented message being received: its bytes, and what it counts so far.
        self._message: bytearray | None = None
        self._message_cost = 0
        self._message_timer: asyncio.TimerHandle | None = None
        # The payload of the latest ping not answered yet (the socket was backed up).
        self._pong: bytes | None = None
        # A plain attribute, not a property: the flusher reads it once per delivery.
        self.paused = False

    # --- picows callbacks ----------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._ws = transport
        request_headers = transport.request.headers if transport.request is not None else None
        client = self._client = self._node.accept(self, self._codec)
        if request_headers is not None:
            self._node.upstream.remember_headers(client, request_headers)
        _forget_upgrade(transport)
        if self._uni_connect:
            self._uni_start(self._client, self._uni_connect)

    def _uni_start(self, client: Client, connect_request: bytes) -> None:
        self._uni_connect = b""
        try:
            frame = connect_frame(connect_request)
        except ValueError:
            client.disconnect(codes.BAD_REQUEST)
            return
        self._uni = False  # later messages are ignored, see on_ws_frame
        self._uni_started = True
        client.handle_frame(frame)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        client = self._client
        if client is None:
            return
        if msg_type is WSMsgType.CLOSE:
            self._peer_closed(transport, frame)
            return
        if transport.is_close_frame_sent:
            # Closing. picows answers a frame above max_frame_size with close 1009 but
            # still delivers that frame before it disconnects: never process it.
            return
        if frame.rsv1 or frame.rsv2 or frame.rsv3:
            self._protocol_error("reserved bits set, no extension was negotiated")
            return
        if msg_type is WSMsgType.PING:
            self._ping(transport, frame.get_payload_as_bytes())
        elif msg_type is WSMsgType.TEXT or msg_type is WSMsgType.BINARY:
            if self._message is not None:
                self._protocol_error("new message before the fragmented one ended")
                return
            if self._uni_started:
                return  # a unidirectional client has nothing more to say
            if self._uni:
                if frame.fin:
                    self._uni_start(client, frame.get_payload_as_bytes())
                else:
                    self._start_message(frame)
                return
            if frame.fin:
                client.handle_frame(frame.get_payload_as_bytes())
            else:
                self._start_message(frame)
        elif msg_type is WSMsgType.CONTINUATION:
            if self._message is None and self._uni_started:
                return
            self._continue(client, frame)
        # PONG: the node pings in the protocol, not with WebSocket pings; ignored.

    def _peer_closed(self, transport: WSTransport, frame: WSFrame) -> None:
        """The peer's close frame: answer it (1002 for a code it may not send), then close."""
        if not transport.is_close_frame_sent:
            code: int = frame.get_close_code().value
            if frame.payload_size == 0:
                transport.send_close(WSCloseCode.OK)
            elif valid_close_code(code):
                transport.send_close(WSCloseCode(code), frame.get_close_message())
            else:
                transport.send_close(WSCloseCode.PROTOCOL_ERROR, b"invalid close code")
        transport.disconnect()
        self._drop_later(transport)

    def _protocol_error(self, reason: str) -> None:
        log.info("websocket %s: %s", self.remote_addr, reason)
        self._end_message()
        self.close(PROTOCOL_ERROR, reason)

    def _ping(self, transport: WSTransport, payload: bytes) -> None:
        if self.paused:
            # The peer is not reading: keep only the latest ping (RFC 6455 5.5.3).
            self._pong = payload
        else:
            transport.send_pong(payload)

    def _start_message(self, frame: WSFrame) -> None:
        cost = frame.payload_size + FRAGMENT_COST
        if cost > self._max_message_size:
            self._too_big()
            return
        self._message = bytearray(frame.get_payload_as_memoryview())
        self._message_cost = cost
        timeout = self._node.settings.client_message_timeout
        self._message_timer = asyncio.get_running_loop().call_later(
            timeout, self._message_timed_out
        )

    def _continue(self, client: Client, frame: WSFrame) -> None:
        message = self._message
        if message is None:
            self._protocol_error("continuation frame without a message to continue")
            return
        self._message_cost += frame.payload_size + FRAGMENT_COST
        if self._message_cost > self._max_message_size:
            self._too_big()
            return
        message += frame.get_payload_as_memoryview()
        if frame.fin:
            self._end_message()
            if self._uni:
                self._uni_start(client, bytes(message))
            else:
                client.handle_frame(bytes(message))

    def _too_big(self) -> None:
        self._end_message()
        self.close(MESSAGE_TOO_BIG, "message too big (each fragment counts 64 bytes more)")

    def _end_message(self) -> None:
        self._message = None
        self._message_cost = 0
        if self._message_timer is not None:
            self._message_timer.cancel()
            self._message_timer = None

    def _message_timed_out(self) -> None:
        self._message_timer = None
        self._end_message()
        self.close(POLICY_VIOLATION, "fragmented message not completed in time")

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._end_message()
        if self._client is not None:
            self._client.transport_closed()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        pong, self._pong = self._pong, None
        ws = self._ws
        if pong is not None and ws is not None and not ws.is_close_frame_sent:
            ws.send_pong(pong)
        if self._client is not None:
            self._client.resume()

    # --- Transport -------------------------------------------------------------------

    @property
    def remote_addr(self) -> str:
        """`host:port` of the peer (made when asked: it is rarely read)."""
        ws = self._ws
        peer = ws.underlying_transport.get_extra_info("peername") if ws is not None else None
        return f"{peer[0]}:{peer[1]}" if peer else ""

    def write(self, data: bytes) -> None:
        if self._ws is not None:
            self._ws.send(self._frame_type, data)

    def close(self, code: int, reason: str) -> None:
        ws = self._ws
        if ws is None or ws.is_disconnected:
            return
        if not ws.is_close_frame_sent:
            ws.send_close(WSCloseCode(code), reason.encode()[:123])
            # Wait for the peer's close frame (on_ws_frame then disconnects), at most
            # CLOSE_LINGER: closing with unread input makes the kernel send RST, and a
            # peer still sending would lose our close frame and see 1006 instead of `code`.
            asyncio.get_running_loop().call_later(CLOSE_LINGER, ws.disconnect)
        # Also when picows sent the close itself (a protocol error): its graceful close
        # waits for a write buffer that a peer that never reads never drains.
        self._drop_later(ws)

    def _drop_later(self, ws: WSTransport) -> None:
        """Drop the socket if the peer has not taken its last bytes in `client_close_timeout`."""
        drop_later(ws.underlying_transport, self._node.settings.client_close_timeout)


#: Headers of an upgrade that is over (read-only, shared by every connection).
_NO_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())


def _forget_upgrade(transport: WSTransport) -> None:
    """Drop the upgrade's headers, which picows keeps for the connection's life.

    They are read only while the upgrade is routed (`ClientPortRouter`); kept,
    they cost about 1 KB per connection.
    """
    for message in (transport.request, transport.response):
        if message is not None:
            message.headers = cast(CIMultiDict[str], _NO_HEADERS)
            if isinstance(message, WSUpgradeResponse):
                message.body = None


Route = Callable[[WSUpgradeRequest], Any]

#: The protobuf codec, shared by every connection that negotiated it (it is stateless).
PROTOBUF_CODEC = ProtobufCodec()


def _protobuf_requested(request: WSUpgradeRequest) -> tuple[bool, bool]:
    """Whether the upgrade asks for protobuf, and whether by subprotocol (not `?format=`)."""
    offered = {
        name.strip()
        for value in request.headers.getall("Sec-WebSocket-Protocol", [])
        for name in value.split(",")
    }
    if PROTOBUF_CODEC.subprotocol in offered:
        return True, True
    query = parse_qs(urlsplit(request.path.decode("latin-1")).query)
    return query.get("format", [""])[-1] == "protobuf", False


class ClientPortRouter:
    """Maps client-port paths to WebSocket sessions or plain HTTP handlers."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self.access = AccessPolicy(node.settings)
        node.access_refusals = self.access.refused
        self._routes: dict[str, Route] = {
            WEBSOCKET_PATH: self._websocket,
            UNI_WEBSOCKET_PATH: self._uni_websocket,
        }
        #: Plain HTTP handlers (SSE, pages) by path.
        self.http: dict[str, HttpHandler] = {}

    def add(self, path: str, route: Route) -> None:
        """Serve WebSocket upgrades to `path` with `route`."""
        self._routes[path] = route

    def add_http(self, path: str, handler: HttpHandler) -> None:
        """Serve plain HTTP requests to `path` with `handler`."""
        self.http[path] = handler

    def __call__(self, request: WSUpgradeRequest) -> Any:
        path = request.path.decode("latin-1").split("?", 1)[0]
        route = self._routes.get(path)
        if route is None:
            return WSUpgradeResponseWithListener(
                WSUpgradeResponse.create_error_response(404, b"not found\n"), None
            )
        return route(request)

    def _websocket(self, request: WSUpgradeRequest) -> Any:
        protobuf, by_subprotocol = _protobuf_requested(request)
        if not protobuf:
            return WebSocketSession(self._node, self._node.settings.client_max_message_size)
        session = WebSocketSession(
            self._node, self._node.settings.client_max_message_size, PROTOBUF_CODEC
        )
        if not by_subprotocol:
            return session
        # A client that offered the subprotocol must see it accepted in the 101.
        headers = {"Sec-WebSocket-Protocol": PROTOBUF_CODEC.subprotocol}
        return WSUpgradeResponseWithListener(
            WSUpgradeResponse.create_101_response(extra_headers=headers), session
        )

    def _uni_websocket(self, request: WSUpgradeRequest) -> Any:
        query = parse_qs(urlsplit(request.path.decode("latin-1")).query)
        connect = query.get("cf_connect", [""])[-1].encode()
        if connect:
            try:
                connect_frame(connect)  # checked before the upgrade, as SSE does
            except ValueError as exc:
                return WSUpgradeResponseWithListener(
                    WSUpgradeResponse.create_error_response(400, f"{exc}\n".encode()), None
                )
        return WebSocketSession(
            self._node,
            self._node.settings.client_max_message_size,
            UNI_CODEC,
            uni_connect=connect,
        )

    def protocol(self) -> ClientPortProtocol:
        """A protocol for one new connection on the client port."""
        return ClientPortProtocol(
            self.access, self._websocket_protocol, self.http, self._node.settings
        )

    def _websocket_protocol(self, slot: ConnectionSlot) -> Any:
        settings = self._node.settings
        return _CountedWSProtocol(
            slot,
            None,  # host and port: server side
            None,  # path: server side
            False,  # is_client_side
            self,
            _PICOWS_LOG,
            True,  # disconnect_on_exception
            10.0,  # handshake timeout
            False,  # auto ping: the node sends protocol-level pings itself
            20.0,
            20.0,
            WSAutoPingStrategy.PING_WHEN_IDLE,
            False,  # auto pong: WebSocketSession answers pings (bounded while paused)
            settings.client_max_message_size,
            None,  # extra headers
            settings.client_read_buffer_size,
        )


class _CountedWSProtocol(WSProtocol):  # type: ignore[misc]
    """picows' protocol, holding the connection's slot among open connections until it closes."""

    __slots__ = ("_slot",)

    def __init__(self, slot: ConnectionSlot, *args: Any) -> None:
        super().__init__(*args)
        self._slot = slot

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            self._slot.release()


#: picows makes a child `Logger` per connection (about 400 bytes each) when given a
#: `Logger`; given an adapter, every connection shares it.
_PICOWS_LOG = logging.LoggerAdapter(logging.getLogger("picows.server"))


async def serve_client_port(
    node: Node, router: ClientPortRouter, *, reuse_port: bool = False
) -> asyncio.Server:
    """Listen on the client port; `reuse_port`: share it with other processes (SO_REUSEPORT)."""
    settings = node.settings
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        router.protocol, settings.address, settings.port, reuse_port=reuse_port or None
    )
