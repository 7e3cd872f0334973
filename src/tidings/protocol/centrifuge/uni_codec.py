"""The unidirectional JSON encoding (uni_websocket, uni_sse): pushes only.

A unidirectional client sends nothing but its connect request; the server
sends bare Push objects (`{"channel":"c","pub":{...}}`), the connect result as
a `{"connect":{...}}` push, and `{}` pings that need no pong. Replies to
commands have no place in this encoding and encode to nothing.
"""

from __future__ import annotations

from tidings.protocol.centrifuge.json_codec import JsonCodec
from tidings.protocol.centrifuge.messages import Connect, Push, Reply
from tidings.protocol.centrifuge.payload import InvalidPayload, compact_json


class UniJsonCodec(JsonCodec):
    name = "uni_json"
    binary = False
    ping = b"{}"
    expects_pong = False

    def encode(self, reply: Reply) -> bytes:
        if reply.push is not None:
            return self._encoder.encode(reply.push)
        result = reply.connect
        if result is not None:
            connect = Connect(
                client=result.client,
                version=result.version,
                data=result.data,
                subs=result.subs,
                expires=result.expires,
                ttl=result.ttl,
                ping=result.ping,
                pong=False,
                session=result.session,
                node=result.node,
                time=result.time,
            )
            return self._encoder.encode(Push(connect=connect))
        if reply == _EMPTY_REPLY:
            return self.ping
        return b""


_EMPTY_REPLY = Reply()


def connect_frame(connect_request: bytes) -> bytes:
    """Wrap a bare ConnectRequest JSON object (URL parameter or body) as command 1.

    Raises `ValueError` if it is not a JSON object. The request is compacted:
    the frame is decoded as one JSON line.
    """
    try:
        compact = compact_json(connect_request or b"{}")
    except InvalidPayload as exc:
        raise ValueError(f"connect request: {exc}") from None
    if not compact.startswith(b"{"):
        raise ValueError("connect request must be a JSON object")
    return b'{"id":1,"connect":' + compact + b"}"
