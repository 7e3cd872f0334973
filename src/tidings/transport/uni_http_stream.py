"""HTTP streaming (`/connection/uni_http_stream`): a unidirectional stream of JSON lines.

For clients that can read a streamed response body but not `EventSource`
(e.g. `fetch` with a reader, `curl -N`): `POST` the connect request as the
JSON body; the response (`application/json`) is one push per line in the
unidirectional JSON encoding, `{}` pings included, and a
`{"disconnect": {...}}` line before the server closes it. Bounded like
`/connection/uni_sse` (see `tidings.transport.sse`), whose session it is
with another framing.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import msgspec

from tidings.protocol.centrifuge.uni_codec import connect_frame
from tidings.transport.http import HttpRequest, respond, response_bytes
from tidings.transport.port import HttpHandler
from tidings.transport.sse import SseSession
from tidings.transport.stream import respond_preflight

if TYPE_CHECKING:
    from tidings.core.node import Node

UNI_HTTP_STREAM_PATH = "/connection/uni_http_stream"


class UniHttpStream(SseSession):
    """One streamed response of JSON lines; the node sees it as a transport."""

    name = "uni_http_stream"

    def _head(self, headers: dict[str, str]) -> bytes:
        return response_bytes(200, content_type="application/json", headers=headers, keep_open=True)

    def write(self, data: bytes) -> None:
        out = bytearray()
        for line in data.split(b"\n"):
            if line:
                out += line + b"\n"
        self._transport.write(bytes(out))

    def close(self, code: int, reason: str) -> None:
        if self._transport.is_closing():
            return
        push = msgspec.json.encode({"disconnect": {"code": code, "reason": reason}})
        self._transport.write(push + b"\n")
        self._hang_up()


def uni_http_stream_handler(node: Node) -> HttpHandler:
    """The HTTP handler for UNI_HTTP_STREAM_PATH."""

    def handle(request: HttpRequest, transport: asyncio.Transport) -> None:
        if request.method == "OPTIONS":  # CORS preflight of a cross-origin POST
            respond_preflight(transport, request.headers.get("origin", ""), "POST")
            return
        if request.method != "POST":
            respond(transport, 405, b"POST only\n", headers={"Allow": "POST"})
            return
        try:
            frame = connect_frame(request.body or b"{}")
        except ValueError as exc:
            respond(transport, 400, f"{exc}\n".encode())
            return
        stream = UniHttpStream(node, transport, request.peer_ip, "", request.slot)
        request.slot = None  # the stream releases it when it closes
        transport.set_protocol(stream)
        stream.start(frame, request.headers.get("origin", ""), request.headers)

    return handle
