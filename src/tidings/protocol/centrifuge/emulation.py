"""The emulation request: client → server commands of a streaming (SSE, HTTP-stream) connection.

A client connected over a one-way stream sends its commands in separate
HTTP POSTs to the emulation endpoint. Each names the session and the node
that hold its stream (both from the connect result) and carries the
commands, encoded as the stream's protocol encodes them:

- JSON (`Content-Type: application/json`): `{"session": S, "node": N,
  "data": D}` where `D` is a string, the newline-delimited JSON commands;
- Protobuf (`application/octet-stream`): the `EmulationRequest` message of
  `client.proto` (`node` = 1, `session` = 2, `data` = 3, the
  length-delimited commands), not itself length-prefixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from tidings.protocol.centrifuge.codec import MalformedFrame
from tidings.protocol.centrifuge.protobuf_codec import read_uvarint

#: Longest session or node id accepted (ids are UUIDs; anything longer is garbage).
MAX_ID_LENGTH = 128


@dataclass(slots=True, frozen=True)
class EmulationRequest:
    session: str
    node: str
    data: bytes


class _JsonRequest(msgspec.Struct):
    session: str = ""
    node: str = ""
    data: str = ""


_JSON_DECODER = msgspec.json.Decoder(_JsonRequest)


def decode_emulation_request(body: bytes, protobuf: bool) -> EmulationRequest:
    """The request in `body`; raises `ValueError` (with a short reason) when malformed."""
    if protobuf:
        request = _decode_protobuf(body)
    else:
        try:
            decoded = _JSON_DECODER.decode(body)
        except msgspec.DecodeError as exc:
            raise ValueError(f"emulation request is not valid: {exc}") from None
        request = EmulationRequest(decoded.session, decoded.node, decoded.data.encode())
    if not request.session:
        raise ValueError("emulation request without session")
    if len(request.session) > MAX_ID_LENGTH or len(request.node) > MAX_ID_LENGTH:
        raise ValueError("session or node id too long")
    if not request.data:
        raise ValueError("emulation request without data")
    return request


def _decode_protobuf(body: bytes) -> EmulationRequest:
    fields: dict[int, bytes] = {}
    pos, end = 0, len(body)
    try:
        while pos < end:
            key, pos = read_uvarint(body, pos, end)
            number, wire = key >> 3, key & 7
            if wire == 0:
                _, pos = read_uvarint(body, pos, end)
            elif wire == 2:
                length, pos = read_uvarint(body, pos, end)
                if pos + length > end:
                    raise ValueError("field length beyond the body")
                fields[number] = body[pos : pos + length]
                pos += length
            elif wire in (1, 5):
                pos += 8 if wire == 1 else 4
                if pos > end:
                    raise ValueError("truncated fixed field")
            else:
                raise ValueError(f"unsupported wire type {wire}")
    except MalformedFrame as exc:
        raise ValueError(f"emulation request is not valid: {exc}") from None
    try:
        node = fields.get(1, b"").decode()
        session = fields.get(2, b"").decode()
    except UnicodeDecodeError:
        raise ValueError("session or node is not UTF-8") from None
    return EmulationRequest(session, node, fields.get(3, b""))
