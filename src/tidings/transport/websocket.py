"""The WebSocket transport on picows, and the client port's HTTP router.

picows was chosen by measurement (docs/websocket-choice.md): it parses
frames in C with a small per-connection read buffer, which gives the most
deliveries per core and the least memory per idle connection of the
candidates measured.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

from tidings.protocol.centrifuge import codes

if TYPE_CHECKING:
    from tidings.core.client import Client
    from tidings.core.node import Node

log = logging.getLogger(__name__)

WEBSOCKET_PATH = "/connection/websocket"
#: Close code picows uses for a frame above the size limit; we say it in the reason.
MESSAGE_TOO_BIG = 1009


class WebSocketSession(WSListener):
    """One WebSocket connection: frames to the client, writes and closes to the socket."""

    name = "websocket"

    def __init__(self, node: Node, max_message_size: int) -> None:
        self._node = node
        self._ws: WSTransport | None = None
        self._client: Client | None = None
        self._max_message_size = max_message_size
        self._fragments: list[bytes] | None = None
        self._fragments_size = 0
        self.remote_addr = ""
        self._paused = False

    @property
    def paused(self) -> bool:
        return self._paused

    # --- picows callbacks ----------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._ws = transport
        peer = transport.underlying_transport.get_extra_info("peername")
        if peer:
            self.remote_addr = f"{peer[0]}:{peer[1]}"
        self._client = self._node.accept(self)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        client = self._client
        if client is None:
            return
        if msg_type is WSMsgType.TEXT or msg_type is WSMsgType.BINARY:
            if frame.fin:
                client.handle_frame(frame.get_payload_as_bytes())
            else:
                self._fragments = [frame.get_payload_as_bytes()]
                self._fragments_size = frame.payload_size
        elif msg_type is WSMsgType.CONTINUATION:
            self._continue(client, frame)
        elif msg_type is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()

    def _continue(self, client: Client, frame: WSFrame) -> None:
        if self._fragments is None:
            client.disconnect(codes.BAD_REQUEST)
            return
        self._fragments.append(frame.get_payload_as_bytes())
        self._fragments_size += frame.payload_size
        if self._fragments_size > self._max_message_size:
            self._fragments = None
            self.close(MESSAGE_TOO_BIG, "message too big")
            return
        if frame.fin:
            payload = b"".join(self._fragments)
            self._fragments = None
            client.handle_frame(payload)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self._client is not None:
            self._client.transport_closed()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._client is not None:
            self._client.resume()

    # --- Transport -------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._ws is not None:
            self._ws.send(WSMsgType.TEXT, data)

    def close(self, code: int, reason: str) -> None:
        ws = self._ws
        if ws is None or ws.is_disconnected:
            return
        ws.send_close(WSCloseCode(code), reason.encode()[:123])
        ws.disconnect()


Route = Callable[[WSUpgradeRequest], Any]


class ClientPortRouter:
    """Maps client-port requests to a WebSocket session or a small HTTP response."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._routes: dict[str, Route] = {WEBSOCKET_PATH: self._websocket}

    def add(self, path: str, route: Route) -> None:
        self._routes[path] = route

    def __call__(self, request: WSUpgradeRequest) -> Any:
        path = request.path.decode("latin-1").split("?", 1)[0]
        route = self._routes.get(path)
        if route is None:
            return WSUpgradeResponseWithListener(
                WSUpgradeResponse.create_error_response(404, b"not found\n"), None
            )
        return route(request)

    def _websocket(self, request: WSUpgradeRequest) -> Any:
        return WebSocketSession(self._node, self._node.settings.client_max_message_size)


async def serve_client_port(node: Node, router: ClientPortRouter) -> asyncio.Server:
    settings = node.settings
    return await ws_create_server(
        router,
        settings.address,
        settings.port,
        max_frame_size=settings.client_max_message_size,
        read_buffer_init_size=settings.client_read_buffer_size,
        websocket_handshake_timeout=10,
        enable_auto_pong=True,
        reuse_port=True,
    )
