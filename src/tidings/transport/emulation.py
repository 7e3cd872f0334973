"""Bidirectional emulation: HTTP-stream and SSE connections for clients without WebSocket.

As the centrifuge SDKs use them, a connection is two halves:

- a stream, server → client, opened with the connect command:
  `POST /connection/http_stream` (body: the connect command; JSON replies one
  per line, or, with `Content-Type: application/octet-stream`, Protobuf
  replies each prefixed by its length as a varint), or
  `GET /connection/sse?cf_connect=<JSON connect command>` (one JSON reply per
  `data:` event);
- `POST /emulation`, client → server: each request carries commands for the
  session named in it (see `protocol.centrifuge.emulation`), answered 204
  once they are queued for the session's client, 404 for a session or node
  this server does not know (the SDK then reconnects), 400 for garbage, 413
  for a body above the client port's body limit or `client_max_message_size`.

The connect result carries the `session` and `node` the client names in its
emulation requests. A stream is bounded like a WebSocket: its pushes wait in
the client's outbox (3008 above `client_queue_max_size`) while the socket is
backed up; once closed it has `client_close_timeout` to take its last bytes;
it keeps its slot among the open connections (`client_connections_per_ip`)
until it closes. Each emulation request is one more short request on the
client port and counts against the per-IP connection rate like any other.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from tidings.core.emulation import EmulationSessions, Outcome
from tidings.protocol.centrifuge.emulation import decode_emulation_request
from tidings.protocol.centrifuge.json_codec import JsonCodec
from tidings.protocol.centrifuge.messages import DisconnectPush, Push, Reply
from tidings.protocol.centrifuge.protobuf_codec import ProtobufCodec
from tidings.transport.http import HttpRequest, respond, response_bytes
from tidings.transport.port import HttpHandler
from tidings.transport.stream import ResponseStream, respond_preflight, stream_headers

if TYPE_CHECKING:
    from tidings.core.access import ConnectionSlot
    from tidings.core.node import Node
    from tidings.protocol.centrifuge.codec import Codec

log = logging.getLogger(__name__)

HTTP_STREAM_PATH = "/connection/http_stream"
BIDI_SSE_PATH = "/connection/sse"
EMULATION_PATH = "/emulation"

JSON_CODEC = JsonCodec()
PROTOBUF_CODEC = ProtobufCodec()
_BINARY = "application/octet-stream"


class EmulationStream(ResponseStream):
    """One stream of an emulated connection; the node sees it as a transport."""

    #: Its connect result names this node (see `core.emulation.is_emulated`).
    emulated = True

    def __init__(
        self,
        node: Node,
        sessions: EmulationSessions,
        transport: asyncio.Transport,
        peer_ip: str,
        *,
        codec: Codec,
        sse: bool,
        slot: ConnectionSlot | None = None,
    ) -> None:
        super().__init__(node, transport, peer_ip, slot)
        self.name = "sse" if sse else "http_stream"
        self._sessions = sessions
        self._codec = codec
        self._sse = sse
        #: The id the client names in its emulation requests (see `ConnectResult.session`).
        self.session = sessions.add(self)

    def start(
        self, connect: bytes, origin: str, request_headers: dict[str, str] | None = None
    ) -> None:
        if self._sse:
            content_type = "text/event-stream"
        else:
            content_type = _BINARY if self._codec.binary else "application/json"
        head = response_bytes(
            200, content_type=content_type, headers=stream_headers(origin), keep_open=True
        )
        self._open(head, self._codec, connect, request_headers)

    def handle_commands(self, data: bytes) -> None:
        client = self._client
        if client is not None:
            client.handle_frame(data)

    def write(self, data: bytes) -> None:
        if self._transport.is_closing():
            return
        if self._sse:
            out = bytearray()
            for line in data.split(b"\n"):
                if line:
                    out += b"data: " + line + b"\n\n"
            self._transport.write(bytes(out))
        elif self._codec.binary:
            self._transport.write(data)  # replies are length-prefixed already
        else:
            self._transport.write(data + b"\n")

    def close(self, code: int, reason: str) -> None:
        self._sessions.remove(self.session)
        if self._transport.is_closing():
            return
        push = Reply(push=Push(disconnect=DisconnectPush(code=code, reason=reason)))
        self.write(self._codec.encode(push))
        self._hang_up()

    def connection_lost(self, exc: Exception | None) -> None:
        self._sessions.remove(self.session)
        super().connection_lost(exc)


def _cors(request: HttpRequest) -> dict[str, str]:
    origin = request.headers.get("origin", "")
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"} if origin else {}


def _is_binary(request: HttpRequest) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == _BINARY


def stream_handler(node: Node, sessions: EmulationSessions, sse: bool) -> HttpHandler:
    """The HTTP handler for HTTP_STREAM_PATH (`sse` False) or BIDI_SSE_PATH (`sse` True)."""
    allowed = "GET" if sse else "POST"

    def handle(request: HttpRequest, transport: asyncio.Transport) -> None:
        if request.method == "OPTIONS":
            respond_preflight(transport, request.headers.get("origin", ""), allowed)
            return
        if request.method != allowed:
            respond(transport, 405, f"{allowed} only\n".encode(), headers={"Allow": allowed})
            return
        codec: Codec = JSON_CODEC
        if sse:
            connect = request.query.get("cf_connect", "").encode()
        else:
            connect = request.body
            if _is_binary(request):
                codec = PROTOBUF_CODEC
        if not connect.strip():
            respond(transport, 400, b"the connect command is missing\n", headers=_cors(request))
            return
        if len(connect) > node.settings.client_max_message_size:
            respond(transport, 413, b"connect command too large\n", headers=_cors(request))
            return
        stream = EmulationStream(
            node, sessions, transport, request.peer_ip, codec=codec, sse=sse, slot=request.slot
        )
        request.slot = None  # the stream releases it when it closes
        transport.set_protocol(stream)
        stream.start(connect, request.headers.get("origin", ""), request.headers)

    return handle


def emulation_handler(node: Node, sessions: EmulationSessions) -> HttpHandler:
    """The HTTP handler for EMULATION_PATH."""

    def handle(request: HttpRequest, transport: asyncio.Transport) -> None:
        if request.method == "OPTIONS":
            respond_preflight(transport, request.headers.get("origin", ""), "POST")
            return
        cors = _cors(request)
        if request.method != "POST":
            respond(transport, 405, b"POST only\n", headers={"Allow": "POST", **cors})
            return
        try:
            emulated = decode_emulation_request(request.body, _is_binary(request))
        except ValueError as exc:
            sessions.refused += 1
            respond(transport, 400, f"{exc}\n".encode(), headers=cors)
            return
        if len(emulated.data) > node.settings.client_max_message_size:
            sessions.refused += 1
            respond(transport, 413, b"commands too large\n", headers=cors)
            return
        if sessions.is_local(emulated.node):
            _answer(transport, sessions.deliver(emulated.session, emulated.data), cors, sessions)
            return
        relay = sessions.relay
        if relay is None:
            _answer(transport, Outcome.UNKNOWN_NODE, cors, sessions)
            return
        task = asyncio.get_running_loop().create_task(
            relay.relay(emulated.node, emulated.session, emulated.data)
        )
        task.add_done_callback(lambda done: _relayed(done, transport, cors, sessions))

    return handle


def _relayed(
    task: asyncio.Task[Outcome],
    transport: asyncio.Transport,
    cors: dict[str, str],
    sessions: EmulationSessions,
) -> None:
    if task.cancelled() or task.exception() is not None:
        if not task.cancelled():
            log.warning("emulation relay failed: %s", task.exception())
        if not transport.is_closing():
            respond(transport, 503, b"relay failed\n", headers=cors)
        return
    if not transport.is_closing():
        _answer(transport, task.result(), cors, sessions)


def _answer(
    transport: asyncio.Transport,
    outcome: Outcome,
    cors: dict[str, str],
    sessions: EmulationSessions,
) -> None:
    if outcome is Outcome.DELIVERED:
        respond(transport, 204, headers=cors)
        return
    sessions.refused += 1
    respond(transport, 404, f"{outcome.value}\n".encode(), headers=cors)
