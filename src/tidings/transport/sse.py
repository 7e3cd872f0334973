"""Server-Sent Events (`/connection/uni_sse`): a unidirectional stream for clients without an SDK.

The connect request comes in the `cf_connect` URL parameter (GET, what
`EventSource` can do) or as the JSON body (POST). Each push is one `data:`
event in the unidirectional JSON encoding. To resume after a reconnect, a
client puts `subs: {"<channel>": {"recover": true, "offset": N, "epoch": "E"}}`
in its connect request; for `EventSource`, which cannot change its URL, the
server also accepts the standard `Last-Event-ID` header: every publication
event carries `id: <offset>:<epoch>` of the last publication of the channel
named in the `cf_channel` parameter, and that id resumes it.

A client that does not read is bounded like a WebSocket one: pushes wait
in its outbox (3008 above `client_queue_max_size`) while the socket is
backed up, and once closed it has `client_close_timeout` to take the last
bytes before the socket is dropped. The stream keeps its connection's slot
among the open connections (`client_connections_per_ip`) until it closes.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING

import msgspec

from tidings.protocol.centrifuge.uni_codec import UniJsonCodec, connect_frame
from tidings.transport.http import HttpRequest, respond, response_bytes
from tidings.transport.port import HttpHandler
from tidings.transport.stream import ResponseStream, respond_preflight, stream_headers

if TYPE_CHECKING:
    from tidings.core.access import ConnectionSlot
    from tidings.core.node import Node

log = logging.getLogger(__name__)

SSE_PATH = "/connection/uni_sse"
UNI_CODEC = UniJsonCodec()


class SseSession(ResponseStream):
    """One event stream; the node sees it as a transport."""

    name = "uni_sse"

    def __init__(
        self,
        node: Node,
        transport: asyncio.Transport,
        peer_ip: str,
        track: str,
        slot: ConnectionSlot | None = None,
    ) -> None:
        super().__init__(node, transport, peer_ip, slot)
        self._track = track  # channel whose position goes into event ids
        #: The session id its connect push names (the server API's `session` selects it).
        self.session = str(uuid.uuid4())

    def start(
        self, frame: bytes, origin: str = "", request_headers: dict[str, str] | None = None
    ) -> None:
        self._open(self._head(stream_headers(origin)), UNI_CODEC, frame, request_headers)

    def _head(self, headers: dict[str, str]) -> bytes:
        """The response head that opens the stream."""
        return response_bytes(
            200, content_type="text/event-stream", headers=headers, keep_open=True
        )

    def write(self, data: bytes) -> None:
        out = bytearray()
        for line in data.split(b"\n"):
            if not line:
                continue
            event_id = self._event_id(line)
            if event_id:
                out += b"id: " + event_id + b"\n"
            out += b"data: " + line + b"\n\n"
        self._transport.write(bytes(out))

    def _event_id(self, line: bytes) -> bytes:
        if not self._track:
            return b""
        try:
            return self._position_of(line)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return b""  # not a push of ours: no id (payloads are compact, so never expected)

    def _position_of(self, line: bytes) -> bytes:
        if line.startswith(b'{"connect":'):
            # The connect event carries the recovered publications: its id is the
            # position they reach, so a second drop resumes after them.
            position = _CONNECT_DECODER.decode(line).connect.subs.get(self._track)
            if position is None or not position.recoverable:
                return b""
            offset = position.offset  # recovered: the offset asked from, as in Centrifugo
            if position.publications:
                offset = max(offset, position.publications[-1].offset)
            return f"{offset}:{position.epoch}".encode()
        if not line.startswith(b'{"channel":'):
            return b""
        push = _PUSH_DECODER.decode(line)
        if push.channel != self._track or push.pub is None or not push.pub.offset:
            return b""
        client = self._client
        sub = client.subscriptions.get(self._track) if client is not None else None
        epoch = sub.epoch if sub is not None else ""
        return f"{push.pub.offset}:{epoch}".encode()

    def close(self, code: int, reason: str) -> None:
        if self._transport.is_closing():
            return
        push = msgspec.json.encode({"disconnect": {"code": code, "reason": reason}})
        self._transport.write(b"data: " + push + b"\n\n")
        self._hang_up()


class _PubOnly(msgspec.Struct):
    offset: int = 0


class _PushHead(msgspec.Struct):
    channel: str = ""
    pub: _PubOnly | None = None


_PUSH_DECODER = msgspec.json.Decoder(_PushHead)


class _SubPosition(msgspec.Struct):
    offset: int = 0
    epoch: str = ""
    recoverable: bool = False
    publications: list[_PubOnly] = msgspec.field(default_factory=list)


class _ConnectBody(msgspec.Struct):
    subs: dict[str, _SubPosition] = msgspec.field(default_factory=dict)


class _ConnectHead(msgspec.Struct):
    connect: _ConnectBody = msgspec.field(default_factory=_ConnectBody)


_CONNECT_DECODER = msgspec.json.Decoder(_ConnectHead)


def sse_handler(node: Node) -> HttpHandler:
    """The HTTP handler for SSE_PATH."""

    def handle(request: HttpRequest, transport: asyncio.Transport) -> None:
        if request.method == "GET":
            raw = request.query.get("cf_connect", "{}").encode()
        elif request.method == "POST":
            raw = request.body or b"{}"
        elif request.method == "OPTIONS":  # CORS preflight of a cross-origin POST
            origin = request.headers.get("origin", "")
            respond_preflight(transport, origin, "GET, POST", "Content-Type, Last-Event-ID")
            return
        else:
            respond(transport, 405, b"GET or POST\n", headers={"Allow": "GET, POST"})
            return
        track = request.query.get("cf_channel", "")
        last_event = request.headers.get("last-event-id", "")
        try:
            raw = _with_last_event(raw, track, last_event)
            frame = connect_frame(raw)
        except ValueError as exc:
            respond(transport, 400, f"{exc}\n".encode())
            return
        session = SseSession(node, transport, request.peer_ip, track, request.slot)
        request.slot = None  # the session releases it when the stream closes
        transport.set_protocol(session)
        session.start(frame, request.headers.get("origin", ""), request.headers)

    return handle


def _with_last_event(raw: bytes, track: str, last_event: str) -> bytes:
    """Add recovery of `track` from a `Last-Event-ID` of the form `<offset>:<epoch>`."""
    if not track or not last_event:
        return raw
    offset, sep, epoch = last_event.partition(":")
    if not sep or not (offset.isascii() and offset.isdigit()) or len(offset) > 18:
        raise ValueError("Last-Event-ID must be <offset>:<epoch>")
    try:
        request = msgspec.json.decode(raw or b"{}")
    except msgspec.DecodeError as exc:
        raise ValueError(f"connect request is not JSON: {exc}") from None
    except RecursionError:
        raise ValueError("connect request is nested too deep") from None
    if not isinstance(request, dict):
        raise ValueError("connect request must be a JSON object")
    subs = request.setdefault("subs", {})
    if not isinstance(subs, dict):
        raise ValueError("subs must be an object")
    subs[track] = {"recover": True, "offset": int(offset), "epoch": epoch}
    return msgspec.json.encode(request)
