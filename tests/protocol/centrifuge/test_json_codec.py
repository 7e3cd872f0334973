"""The JSON codec: frames of newline-delimited commands in, replies out."""

from __future__ import annotations

import msgspec
import pytest
from msgspec import Raw

from tidings.protocol.centrifuge.json_codec import JsonCodec, MalformedFrame
from tidings.protocol.centrifuge.messages import (
    ClientInfo,
    ConnectResult,
    Error,
    HistoryResult,
    PingResult,
    PresenceResult,
    PresenceStatsResult,
    Publication,
    Push,
    Reply,
    StreamPosition,
    SubscribeResult,
    Unsubscribe,
    raw,
)


@pytest.fixture
def codec() -> JsonCodec:
    return JsonCodec()


# --- decoding --------------------------------------------------------------------


def test_decodes_one_command(codec: JsonCodec) -> None:
    (cmd,) = codec.decode(b'{"id":1,"connect":{"token":"t","name":"js","version":"1.0"}}')
    assert cmd.id == 1
    assert cmd.connect is not None
    assert (cmd.connect.token, cmd.connect.name, cmd.connect.version) == ("t", "js", "1.0")
    assert cmd.subscribe is None


def test_decodes_several_commands_in_order(codec: JsonCodec) -> None:
    frame = b'{"id":1,"ping":{}}\n{"id":2,"subscribe":{"channel":"a"}}\n{"id":3,"ping":{}}'
    cmds = codec.decode(frame)
    assert [c.id for c in cmds] == [1, 2, 3]
    assert cmds[1].subscribe is not None and cmds[1].subscribe.channel == "a"


def test_tolerates_trailing_newline_and_crlf(codec: JsonCodec) -> None:
    assert [c.id for c in codec.decode(b'{"id":1}\r\n{"id":2}\n')] == [1, 2]


def test_data_is_passed_through_raw(codec: JsonCodec) -> None:
    (cmd,) = codec.decode(b'{"id":1,"publish":{"channel":"c","data":{"a": [1, 2.50]}}}')
    assert cmd.publish is not None
    assert bytes(cmd.publish.data) == b'{"a": [1, 2.50]}'


def test_subscribe_request_fields(codec: JsonCodec) -> None:
    (cmd,) = codec.decode(
        b'{"id":5,"subscribe":{"channel":"news","token":"tk","recover":true,'
        b'"epoch":"ep","offset":7,"join_leave":true,"recoverable":true,"flag":1}}'
    )
    sub = cmd.subscribe
    assert sub is not None
    assert (sub.channel, sub.token, sub.recover, sub.epoch, sub.offset) == (
        "news",
        "tk",
        True,
        "ep",
        7,
    )
    assert sub.join_leave and sub.recoverable


def test_history_since_is_a_stream_position(codec: JsonCodec) -> None:
    (cmd,) = codec.decode(
        b'{"id":2,"history":{"channel":"c","limit":3,"since":{"offset":4,"epoch":"e"},'
        b'"reverse":true}}'
    )
    assert cmd.history is not None
    assert cmd.history.since == StreamPosition(offset=4, epoch="e")
    assert (cmd.history.limit, cmd.history.reverse) == (3, True)


def test_connect_subs_map(codec: JsonCodec) -> None:
    (cmd,) = codec.decode(
        b'{"id":1,"connect":{"subs":{"a":{"recover":true,"offset":3,"epoch":"x"}}}}'
    )
    assert cmd.connect is not None and cmd.connect.subs is not None
    assert cmd.connect.subs["a"].recover is True
    assert cmd.connect.subs["a"].offset == 3


def test_empty_object_is_an_empty_command(codec: JsonCodec) -> None:
    (cmd,) = codec.decode(b"{}")
    assert cmd.id == 0
    assert all(getattr(cmd, f) is None for f in ("connect", "subscribe", "ping", "send"))


def test_unknown_fields_are_ignored(codec: JsonCodec) -> None:
    (cmd,) = codec.decode(b'{"id":9,"future_field":{"x":1},"ping":{}}')
    assert cmd.id == 9 and cmd.ping is not None


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"   ",
        b"\n\n",
        b"not json",
        b"[1]",
        b'"text"',
        b'{"id":"1"}',
        b'{"id":1,"subscribe":{"channel":5}}',
        b'{"id":1,"subscribe":[]}',
        b'{"id":1',
        b"\xff\xfe",
        b'{"id":1}\n{"id":',
    ],
)
def test_malformed_frames_raise(codec: JsonCodec, frame: bytes) -> None:
    with pytest.raises(MalformedFrame):
        codec.decode(frame)


def test_malformed_frame_is_a_value_error() -> None:
    assert issubclass(MalformedFrame, ValueError)


@pytest.mark.parametrize("command_id", [-1, 2**32])
def test_ids_outside_uint32_are_malformed(codec: JsonCodec, command_id: int) -> None:
    # Command ids are uint32 in client.proto; anything else is not a Centrifuge command.
    with pytest.raises(MalformedFrame):
        codec.decode(b'{"id":%d,"ping":{}}' % command_id)


def test_largest_uint32_id_is_accepted(codec: JsonCodec) -> None:
    (cmd,) = codec.decode(b'{"id":4294967295,"ping":{}}')
    assert cmd.id == 2**32 - 1


def test_command_count_limit() -> None:
    codec = JsonCodec(max_commands_per_frame=3)
    assert len(codec.decode(b"\n".join([b'{"id":1,"ping":{}}'] * 3))) == 3
    with pytest.raises(MalformedFrame, match="more than 3"):
        codec.decode(b"\n".join([b'{"id":1,"ping":{}}'] * 4))


# --- encoding --------------------------------------------------------------------


def test_codec_attributes(codec: JsonCodec) -> None:
    assert codec.name == "json"
    assert codec.binary is False
    assert codec.ping == b"{}"


def test_encode_omits_defaults(codec: JsonCodec) -> None:
    assert codec.encode(Reply(id=1, ping=PingResult())) == b'{"id":1,"ping":{}}'
    assert codec.encode(Reply()) == b"{}"
    assert codec.encode(Reply(id=3, subscribe=SubscribeResult())) == b'{"id":3,"subscribe":{}}'


def test_encode_push_keeps_raw_data_bytes(codec: JsonCodec) -> None:
    pub = Publication(data=Raw(b'{"a": 1.50}'), offset=3)
    out = codec.encode(Reply(push=Push(channel="c", pub=pub)))
    assert out == b'{"push":{"channel":"c","pub":{"data":{"a": 1.50},"offset":3}}}'


def test_empty_payload_is_omitted(codec: JsonCodec) -> None:
    out = codec.encode(Reply(push=Push(channel="c", pub=Publication(data=raw(b"")))))
    assert out == b'{"push":{"channel":"c","pub":{}}}'
    assert raw(b"") is raw(b"")
    assert bytes(raw(b"1")) == b"1"


def test_encode_error_reply(codec: JsonCodec) -> None:
    out = codec.encode(Reply(id=2, error=Error(code=100, message="internal", temporary=True)))
    assert msgspec.json.decode(out) == {
        "id": 2,
        "error": {"code": 100, "message": "internal", "temporary": True},
    }


def test_encode_connect_result(codec: JsonCodec) -> None:
    result = ConnectResult(client="cid", version="0.1.0", ping=25, pong=True, expires=True, ttl=9)
    assert msgspec.json.decode(codec.encode(Reply(id=1, connect=result))) == {
        "id": 1,
        "connect": {
            "client": "cid",
            "version": "0.1.0",
            "expires": True,
            "ttl": 9,
            "ping": 25,
            "pong": True,
        },
    }


def test_encode_history_with_info(codec: JsonCodec) -> None:
    info = ClientInfo(user="u", client="c", conn_info=Raw(b'{"n":1}'))
    pub = Publication(data=Raw(b"1"), info=info, offset=1, tags={"t": "v"})
    out = codec.encode(Reply(id=4, history=HistoryResult(publications=[pub], epoch="e", offset=1)))
    assert msgspec.json.decode(out) == {
        "id": 4,
        "history": {
            "publications": [
                {
                    "data": 1,
                    "info": {"user": "u", "client": "c", "conn_info": {"n": 1}},
                    "offset": 1,
                    "tags": {"t": "v"},
                }
            ],
            "epoch": "e",
            "offset": 1,
        },
    }


def test_encode_unsubscribe_push(codec: JsonCodec) -> None:
    out = codec.encode(Reply(push=Push(channel="c", unsubscribe=Unsubscribe(2000, "bye"))))
    assert out == b'{"push":{"channel":"c","unsubscribe":{"code":2000,"reason":"bye"}}}'


def test_join_one_and_many(codec: JsonCodec) -> None:
    one = codec.encode(Reply(id=1, ping=PingResult()))
    assert codec.join([one]) is one
    assert codec.join([b"{}", b'{"id":1}', b"{}"]) == b'{}\n{"id":1}\n{}'


def test_round_trip_through_a_client_view(codec: JsonCodec) -> None:
    # What the server writes can be split and parsed the way SDKs do.
    frame = codec.join(
        [codec.encode(Reply(id=i, ping=PingResult())) for i in (1, 2)] + [codec.ping]
    )
    lines = [msgspec.json.decode(line) for line in frame.split(b"\n")]
    assert lines == [{"id": 1, "ping": {}}, {"id": 2, "ping": {}}, {}]


def test_fields_centrifugo_always_writes_are_written_at_zero() -> None:
    """presence_stats counts, presence map, history's fields, ClientInfo user/client."""
    codec = JsonCodec()
    assert codec.encode(Reply(id=1, presence_stats=PresenceStatsResult())) == (
        b'{"id":1,"presence_stats":{"num_clients":0,"num_users":0}}'
    )
    assert (
        codec.encode(Reply(id=2, presence=PresenceResult()))
        == b'{"id":2,"presence":{"presence":{}}}'
    )
    assert codec.encode(Reply(id=3, history=HistoryResult())) == (
        b'{"id":3,"history":{"publications":[],"epoch":"","offset":0}}'
    )
    info = ClientInfo(user="", client="c1")
    assert msgspec.json.encode(info) == b'{"user":"","client":"c1"}'
    assert msgspec.json.encode(ClientInfo()) == b"{}"
