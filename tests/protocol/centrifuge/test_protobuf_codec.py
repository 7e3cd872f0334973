"""The Protobuf codec: length-prefixed protobuf messages in binary frames.

Byte-exact checks compare with the official protobuf runtime, through the
classes generated from `client.proto` that centrifuge-python ships, and
with a few encodings computed by hand.
"""

from __future__ import annotations

import base64
import typing
from typing import Any

import pytest

# The official runtime and the SDK's generated classes: test dependencies, never optional.
from centrifuge import codecs as sdk_codecs
from centrifuge.protocol import client_pb2 as pb
from google.protobuf import json_format
from msgspec import Raw, Struct

from tidings.protocol.centrifuge import messages as m
from tidings.protocol.centrifuge import protobuf_schema as schema
from tidings.protocol.centrifuge.codec import Codec
from tidings.protocol.centrifuge.json_codec import MalformedFrame as JsonMalformedFrame
from tidings.protocol.centrifuge.protobuf_codec import (
    MalformedFrame,
    ProtobufCodec,
    decode_message,
    encode_message,
    read_uvarint,
    uvarint,
)

#: Our Struct names that differ from the message names of client.proto.
PROTO_NAMES = {m.DisconnectPush: "Disconnect"}


@pytest.fixture
def codec() -> ProtobufCodec:
    return ProtobufCodec()


# --- samples built from the schema -----------------------------------------------


def _value(kind: schema.Kind, number: int) -> Any:
    """A non-default value of `kind`, distinct per field number."""
    if isinstance(kind, schema.Repeated):
        if isinstance(kind.item, str):
            return [_value(kind.item, number), ""]
        if kind.item is m.FilterNode:  # recursive: one level of children is enough
            return [m.FilterNode(op="and", key="k", vals=["v"]), m.FilterNode()]
        return [sample(kind.item), kind.item()]
    if isinstance(kind, schema.MapOf):
        if isinstance(kind.value, str):
            return {"a": "1", "b": ""}
        return {"a": sample(kind.value), "b": kind.value()}
    if isinstance(kind, type):
        return sample(kind)
    return {
        schema.UINT32: 0xFFFF_FF00 + number,
        schema.UINT64: (1 << 63) + number,
        schema.INT32: -number,
        schema.INT64: -(1 << 40) - number,
        schema.BOOL: True,
        schema.STRING: f"s{number}-é",
        schema.BYTES: Raw(b'{"n":%d}' % number),
    }[kind]


#: Map subscription fields of client.proto (centrifugal/protocol v0.21) that the
#: client_pb2 of the installed centrifuge-python predates; their numbers were
#: checked against definitions/client.proto by hand.
NEWER_THAN_PB = {
    (m.Publication, "key"): 11,
    (m.Publication, "removed"): 12,
    (m.PublishRequest, "type"): 3,
    (m.PublishRequest, "key"): 4,
    (m.PublishRequest, "removed"): 5,
    (m.SubscribeRequest, "flag"): 14,
    (m.SubscribeRequest, "type"): 15,
    (m.SubscribeRequest, "phase"): 16,
    (m.SubscribeRequest, "cursor"): 17,
    (m.SubscribeRequest, "limit"): 18,
    (m.SubscribeRequest, "asc"): 19,
    (m.SubscribeResult, "type"): 15,
    (m.SubscribeResult, "phase"): 16,
    (m.SubscribeResult, "cursor"): 17,
    (m.SubscribeResult, "state"): 18,
    (m.Publication, "version"): 16,
    (m.Publication, "epoch"): 14,
    (m.SubscribeRequest, "tf"): 13,  # a FilterNode message there, bytes here
    (m.SubRefreshRequest, "type"): 3,
    (m.SubRefreshRequest, "track"): 4,
    (m.SubRefreshRequest, "untrack"): 5,
    (m.SubRefreshResult, "items"): 3,
}
#: Messages of client.proto v0.21 the installed client_pb2 does not have at all.
NEWER_MESSAGES = {m.KeyedItem, m.TrackBatch}


def sample(cls: type[Struct]) -> Any:
    """An instance of `cls` with every field the official runtime knows set."""
    return cls(
        **{
            attr: _value(kind, n)
            for attr, (n, kind) in schema.SCHEMA[cls].items()
            if (cls, attr) not in NEWER_THAN_PB
        }
    )


def to_proto_dict(obj: Any) -> Any:
    """`obj` in protobuf's JSON mapping (bytes as base64), for the official runtime."""
    if isinstance(obj, Raw):
        return base64.b64encode(bytes(memoryview(obj))).decode()
    if isinstance(obj, Struct):
        return {
            f: to_proto_dict(v)
            for f in obj.__struct_fields__
            if (v := getattr(obj, f)) is not None and (type(obj), f) not in NEWER_THAN_PB
        }
    if isinstance(obj, list):
        return [to_proto_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_proto_dict(v) for k, v in obj.items()}
    return obj


def official(obj: Struct) -> bytes:
    """`obj` serialized by the official protobuf runtime (map keys sorted)."""
    cls = type(obj)
    message = getattr(pb, PROTO_NAMES.get(cls, cls.__name__))()
    json_format.ParseDict(to_proto_dict(obj), message)
    return bytes(message.SerializeToString(deterministic=True))


ALL_TYPES = sorted(set(schema.SCHEMA) - NEWER_MESSAGES, key=lambda cls: cls.__name__)


# --- the schema ------------------------------------------------------------------


def _message_structs() -> set[type[Struct]]:
    return {
        obj
        for obj in vars(m).values()
        if isinstance(obj, type) and issubclass(obj, Struct) and obj.__module__ == m.__name__
    } - {m._Message}


def test_schema_covers_every_message_and_field() -> None:
    assert set(schema.SCHEMA) == _message_structs()
    for cls, fields in schema.SCHEMA.items():
        assert set(fields) == set(cls.__struct_fields__), cls.__name__


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda cls: cls.__name__)
def test_schema_numbers_and_kinds_match_client_proto(cls: type[Struct]) -> None:
    descriptor = getattr(pb, PROTO_NAMES.get(cls, cls.__name__)).DESCRIPTOR
    hints = typing.get_type_hints(cls, include_extras=True)
    for attr, (number, kind) in schema.SCHEMA[cls].items():
        if (cls, attr) in NEWER_THAN_PB:
            assert NEWER_THAN_PB[cls, attr] == number, f"{cls.__name__}.{attr}"
            continue
        field = descriptor.fields_by_name[attr]
        assert field.number == number, f"{cls.__name__}.{attr}"
        if isinstance(kind, str):
            expected = {
                schema.UINT32: field.TYPE_UINT32,
                schema.UINT64: field.TYPE_UINT64,
                schema.INT32: field.TYPE_INT32,
                schema.INT64: field.TYPE_INT64,
                schema.BOOL: field.TYPE_BOOL,
                schema.STRING: field.TYPE_STRING,
                schema.BYTES: field.TYPE_BYTES,
            }[kind]
            assert field.type == expected, f"{cls.__name__}.{attr}"
            if kind == schema.BYTES:
                assert hints[attr] is Raw
        elif isinstance(kind, schema.Repeated) and kind.item == schema.STRING:
            assert field.type == field.TYPE_STRING, f"{cls.__name__}.{attr}"
        else:
            assert field.type == field.TYPE_MESSAGE, f"{cls.__name__}.{attr}"


# --- round trips and byte-exact encodings ----------------------------------------


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda cls: cls.__name__)
def test_round_trip_of_every_message_type(cls: type[Struct]) -> None:
    full = sample(cls)
    assert decode_message(encode_message(full), cls) == full
    assert decode_message(encode_message(cls()), cls) == cls()


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda cls: cls.__name__)
def test_encoding_is_byte_exact_with_the_official_runtime(cls: type[Struct]) -> None:
    full = sample(cls)
    assert encode_message(full) == official(full)
    assert encode_message(cls()) == official(cls()) == b""


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda cls: cls.__name__)
def test_decodes_what_the_official_runtime_encodes(cls: type[Struct]) -> None:
    full = sample(cls)
    assert decode_message(official(full), cls) == full


def test_every_command_and_reply_round_trips_through_the_codec(codec: ProtobufCodec) -> None:
    for attr in m.REQUEST_FIELDS:
        request_type = schema.SCHEMA[m.Command][attr][1]
        assert isinstance(request_type, type)
        command = m.Command(id=7, **{attr: sample(request_type)})
        framed = uvarint(len(encode_message(command))) + encode_message(command)
        assert codec.decode(framed) == [command]
    for attr, (_, kind) in schema.SCHEMA[m.Reply].items():
        if isinstance(kind, type):
            reply = m.Reply(id=9, **{attr: sample(kind)})
            body = decode_message(codec.encode(reply)[_prefix(codec.encode(reply)) :], m.Reply)
            assert body == reply


def _prefix(framed: bytes) -> int:
    length, pos = read_uvarint(framed, 0, len(framed))
    assert pos + length == len(framed)
    return pos


def test_ping_is_an_empty_reply(codec: ProtobufCodec) -> None:
    assert codec.ping == codec.encode(m.Reply()) == b"\x00"
    assert (codec.name, codec.binary, codec.expects_pong) == ("protobuf", True, True)
    assert isinstance(codec.ping, bytes)


def test_codec_satisfies_the_protocol() -> None:
    instance: Codec = ProtobufCodec()
    assert instance.name == "protobuf"


def test_hand_computed_encodings(codec: ProtobufCodec) -> None:
    # Reply{id: 1, publish: {}}: 08 01 (id) 42 00 (field 8, empty message).
    assert codec.encode(m.Reply(id=1, publish=m.PublishResult())) == bytes.fromhex("0408014200")
    # Reply{push: {channel: "c", pub: {data: {}}}}.
    push = m.Reply(push=m.Push(channel="c", pub=m.Publication(data=m.raw(b"{}"))))
    assert codec.encode(push) == bytes.fromhex("0b 22 09 12 01 63 22 04 22 02 7b 7d")
    # Error code 107 with a message: uint32 and string.
    error = m.Reply(id=300, error=m.Error(code=107, message="bad"))
    assert codec.encode(error) == bytes.fromhex("0c 08 ac 02 12 07 08 6b 12 03 62 61 64")
    # Publication.time is int64: a negative value is ten bytes of two's complement.
    assert encode_message(m.Publication(time=-1)) == bytes.fromhex("48" + "ff" * 9 + "01")


def test_publication_push_matches_the_official_runtime(codec: ProtobufCodec) -> None:
    info = m.ClientInfo(user="42", client="c1", conn_info=m.raw(b'{"name":"x"}'))
    pub = m.Publication(
        data=m.raw(b'{"text":"hi"}'), info=info, offset=17, tags={"k": "v"}, time=1700000000000
    )
    reply = m.Reply(push=m.Push(channel="chat:index", pub=pub))
    encoded = codec.encode(reply)
    assert encoded[_prefix(encoded) :] == official(reply)


def test_join_concatenates(codec: ProtobufCodec) -> None:
    one, two = codec.encode(m.Reply(id=1)), codec.encode(m.Reply(id=2))
    assert codec.join([one]) is one
    assert codec.join([one, two]) == one + two


# --- decoding --------------------------------------------------------------------


def test_decodes_several_commands_in_order(codec: ProtobufCodec) -> None:
    commands = [
        pb.Command(id=1, connect=pb.ConnectRequest(token="t", name="py", data=b'{"a":1}')),
        pb.Command(id=2, subscribe=pb.SubscribeRequest(channel="news", recover=True, offset=5)),
        pb.Command(),  # a pong
    ]
    frame = b"".join(
        uvarint(len(body)) + body for body in (c.SerializeToString() for c in commands)
    )
    connect, subscribe, pong = codec.decode(frame)
    assert connect == m.Command(
        id=1, connect=m.ConnectRequest(token="t", name="py", data=m.raw(b'{"a":1}'))
    )
    assert subscribe.subscribe == m.SubscribeRequest(channel="news", recover=True, offset=5)
    assert pong == m.Command()


def test_empty_bytes_decode_to_the_empty_payload(codec: ProtobufCodec) -> None:
    (command,) = codec.decode(b"\x04\x3a\x02\x12\x00")  # publish {data: ""}
    assert command.publish is not None
    assert command.publish.data is m.EMPTY


def test_unknown_fields_are_skipped(codec: ProtobufCodec) -> None:
    # flag (14) is modelled now; tf (13) is kept as its bytes (only its presence matters).
    request = pb.SubscribeRequest(channel="c", flag=3)
    request.tf.op = "and"  # an embedded message we do not decode
    connect = pb.ConnectRequest(token="t", headers={"a": "b"}, flag=1)
    body = pb.Command(id=4, subscribe=request, connect=connect).SerializeToString()
    # And fields of every wire type: varint (97, a negative int32), fixed64 (99),
    # fixed32 (98).
    body += bytes.fromhex("88 06") + b"\xff" * 9 + b"\x01"
    body += bytes.fromhex("99 06") + b"\x01" * 8 + bytes.fromhex("95 06") + b"\x02" * 4
    (command,) = codec.decode(uvarint(len(body)) + body)
    assert command == m.Command(
        id=4,
        subscribe=m.SubscribeRequest(channel="c", flag=3, tf=Raw(request.tf.SerializeToString())),
        connect=m.ConnectRequest(token="t", headers={"a": "b"}),  # headers: emulation
    )


def test_varints_are_truncated_to_the_declared_width(codec: ProtobufCodec) -> None:
    body = b"\x08" + uvarint((1 << 40) + 5)  # id is uint32
    (command,) = codec.decode(uvarint(len(body)) + body)
    assert command.id == 5


def test_negative_int32_decodes(codec: ProtobufCodec) -> None:
    history = pb.HistoryRequest(channel="c", limit=-1)
    assert decode_message(history.SerializeToString(), m.HistoryRequest).limit == -1


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (b"", "empty frame"),
        (b"\x80", "truncated varint (frame length)"),
        (b"\x05\x08\x01", "length beyond the frame"),
        (b"\x02\x08\x80", "truncated varint (field value)"),
        (b"\x01\x08", "field key without value"),
        (b"\x0b\x08" + b"\xff" * 10, "varint longer than 10 bytes"),
        (b"\x02\x0a\x00", "wrong wire type: id as bytes"),
        (b"\x02\x28\x01", "wrong wire type: subscribe as varint"),
        (b"\x04\x2a\x05\x0a\x00", "nested length beyond its message"),
        (b"\x05\x2a\x03\x0a\x01\xff", "invalid UTF-8 in a string"),
        (b"\x02\x00\x01", "field number 0"),
        (b"\x02\xfb\x06", "group wire type"),
        (b"\x03\xfa\x06\x05", "unknown field length beyond the message"),
        (b"\x08\xf9\x06" + b"\x00" * 6, "unknown fixed64 truncated"),
        (b"\x06\x22\x04\x1a\x02\x08\x01", "map entry key with a wrong wire type"),
    ],
)
def test_malformed_frames_raise(codec: ProtobufCodec, frame: bytes, why: str) -> None:
    with pytest.raises(MalformedFrame):
        codec.decode(frame)


def test_malformed_frame_is_the_json_codec_exception_too() -> None:
    assert MalformedFrame is JsonMalformedFrame


def test_too_many_commands_in_one_frame() -> None:
    with pytest.raises(MalformedFrame, match="more than 3"):
        ProtobufCodec(max_commands_per_frame=3).decode(b"\x00" * 4)
    assert len(ProtobufCodec(max_commands_per_frame=3).decode(b"\x00" * 3)) == 3


# --- the SDK's own codec ---------------------------------------------------------


def test_centrifuge_python_protobuf_codec_interoperates(codec: ProtobufCodec) -> None:
    sdk = sdk_codecs._ProtobufCodec()
    frame = sdk.encode_commands(
        [
            {"id": 1, "connect": {"token": "t", "name": "python"}},
            {"id": 2, "publish": {"channel": "c", "data": base64.b64encode(b'{"x":1}').decode()}},
            {},
        ]
    )
    connect, publish, pong = codec.decode(frame)
    assert connect.connect == m.ConnectRequest(token="t", name="python")
    assert publish.publish == m.PublishRequest(channel="c", data=m.raw(b'{"x":1}'))
    assert pong == m.Command()
    replies = [
        m.Reply(id=1, connect=m.ConnectResult(client="abc", version="1", ping=25, pong=True)),
        m.Reply(push=m.Push(channel="c", pub=m.Publication(data=m.raw(b'{"x":1}'), offset=3))),
        m.Reply(),
    ]
    decoded = sdk.decode_replies(codec.join([codec.encode(r) for r in replies]))
    assert decoded[0] == {
        "id": 1,
        "connect": {"client": "abc", "version": "1", "ping": 25, "pong": True},
    }
    assert decoded[1]["push"]["pub"]["offset"] == "3"  # uint64 in protobuf's JSON mapping
    assert base64.b64decode(decoded[1]["push"]["pub"]["data"]) == b'{"x":1}'
    assert decoded[2] == {}


def test_shared_poll_track_and_untrack_round_trip() -> None:
    """Messages newer than the installed client_pb2: field numbers of client.proto v0.21."""
    req = m.SubRefreshRequest(
        channel="sp",
        type=1,
        track=[m.TrackBatch(signature="1:2:ab", items=[m.KeyedItem(key="k", version=7)])],
        untrack=["x", "é"],
    )
    data = encode_message(req)
    assert decode_message(data, m.SubRefreshRequest) == req
    # untrack is `repeated string` field 5: tag 0x2a, then length and UTF-8 bytes.
    assert data.endswith(b"\x2a\x01x\x2a\x02" + "é".encode())
    # track is field 4 holding a TrackBatch whose items (field 2) hold key 1 and version 2.
    batch = encode_message(req.track[0])  # type: ignore[index]
    assert b"\x22" + bytes([len(batch)]) + batch in data
    assert encode_message(m.KeyedItem(key="k", version=7)) == b"\x0a\x01k\x10\x07"
