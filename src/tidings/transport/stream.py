"""A response held open as a connection's transport: what the HTTP streaming transports share.

The unidirectional SSE and HTTP-stream sessions and the streams of emulated
connections only write: each subclass frames its pushes and its closing
disconnect, this class opens the stream, hands it to the node, follows the
socket's backpressure and gives the connection's slot back when it closes.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from tidings.transport.http import respond
from tidings.transport.port import drop_later

if TYPE_CHECKING:
    from tidings.core.access import ConnectionSlot
    from tidings.core.client import Client
    from tidings.core.node import Node
    from tidings.protocol.centrifuge.codec import Codec

#: Response headers of every stream: no cache, and no buffering by a proxy in front.
NO_CACHE = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class ResponseStream(asyncio.Protocol, ABC):
    """One streamed response; the node sees it as a transport (subclasses frame it)."""

    name: str

    def __init__(
        self,
        node: Node,
        transport: asyncio.Transport,
        peer_ip: str,
        slot: ConnectionSlot | None = None,
    ) -> None:
        self._node = node
        self._transport = transport
        self._slot = slot
        self._paused = False
        self.remote_addr = peer_ip
        self._client: Client | None = None

    @property
    def paused(self) -> bool:
        return self._paused

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Send one frame, framed for this stream."""

    @abstractmethod
    def close(self, code: int, reason: str) -> None:
        """Send the disconnect, framed for this stream, then `_hang_up()`."""

    def _open(
        self, head: bytes, codec: Codec, connect: bytes, request_headers: dict[str, str] | None
    ) -> None:
        """Send the response `head`, then give the node the client and its `connect` frame."""
        self._transport.write(head)
        self._client = self._node.accept(self, codec)
        if request_headers:  # for the connect proxy, as for other transports
            self._node.upstream.remember_headers(self._client, request_headers)
        self._client.handle_frame(connect)

    def _hang_up(self) -> None:
        """Close the socket; it has `client_close_timeout` to take its last bytes."""
        self._transport.close()
        drop_later(self._transport, self._node.settings.client_close_timeout)

    # asyncio.Protocol: the stream only writes; whatever the client sends on it is ignored.
    def data_received(self, data: bytes) -> None:
        pass

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._client is not None:
            self._client.resume()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._slot is not None:
            self._slot.release()
            self._slot = None
        if self._client is not None:
            self._client.transport_closed()


def stream_headers(origin: str) -> dict[str, str]:
    """The headers of a stream's response to a request from `origin` (already checked)."""
    headers = dict(NO_CACHE)
    if origin:  # the port already checked it against allowed_origins
        headers.update({"Access-Control-Allow-Origin": origin, "Vary": "Origin"})
    return headers


def respond_preflight(
    transport: asyncio.Transport,
    origin: str,
    methods: str,
    allow_headers: str = "Content-Type",
) -> None:
    """Answer a CORS preflight (OPTIONS) for `methods` from `origin`."""
    respond(
        transport,
        204,
        headers={
            "Access-Control-Allow-Origin": origin or "*",
            "Access-Control-Allow-Methods": methods,
            "Access-Control-Allow-Headers": allow_headers,
            "Vary": "Origin",
        },
    )
