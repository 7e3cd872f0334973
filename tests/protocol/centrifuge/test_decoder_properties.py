"""Property-based tests (hypothesis) of every decoder of input from outside.

Arbitrary bytes never make a decoder raise anything but its protocol's own
error type, and what it accepts survives an encode/decode round trip. The
decoders: JSON commands, protobuf commands, the unidirectional connect
request, payloads (`data`/`info`), and token claims.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import math
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidings.core.auth import MAX_EXPIRE_AT, TokenExpired, TokenInvalid, TokenVerifier
from tidings.errors import ReplyError
from tidings.protocol.centrifuge import messages as m
from tidings.protocol.centrifuge.json_codec import JsonCodec, MalformedFrame
from tidings.protocol.centrifuge.payload import MAX_DEPTH, InvalidPayload, compact_json
from tidings.protocol.centrifuge.protobuf_codec import (
    ProtobufCodec,
    decode_message,
    encode_message,
    uvarint,
)
from tidings.protocol.centrifuge.uni_codec import connect_frame

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JSON_CODEC = JsonCodec()
PB_CODEC = ProtobufCodec()

# --- strategies -------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
names = st.text(max_size=12)
uint64 = st.integers(min_value=0, max_value=2**64 - 1)
payloads = json_values.map(lambda v: m.raw(json.dumps(v, separators=(",", ":")).encode()))

requests = st.one_of(
    st.builds(
        lambda token, name, data: m.Command(
            connect=m.ConnectRequest(token=token, name=name, data=data)
        ),
        names,
        names,
        payloads,
    ),
    st.builds(
        lambda channel, offset, epoch, recover: m.Command(
            subscribe=m.SubscribeRequest(
                channel=channel, offset=offset, epoch=epoch, recover=recover
            )
        ),
        names,
        uint64,
        names,
        st.booleans(),
    ),
    st.builds(
        lambda channel, data: m.Command(publish=m.PublishRequest(channel=channel, data=data)),
        names,
        payloads,
    ),
    st.builds(
        lambda channel, limit, offset: m.Command(
            history=m.HistoryRequest(
                channel=channel, limit=limit, since=m.StreamPosition(offset=offset, epoch="e")
            )
        ),
        names,
        st.integers(min_value=-(2**31), max_value=2**31 - 1),
        uint64,
    ),
    st.builds(
        lambda method, data: m.Command(rpc=m.RPCRequest(method=method, data=data)),
        names,
        payloads,
    ),
    st.just(m.Command(ping=m.PingRequest())),
)


@st.composite
def commands(draw: st.DrawFn) -> m.Command:
    command: m.Command = draw(requests)
    command.id = draw(st.integers(min_value=1, max_value=2**32 - 1))
    return command


# --- JSON commands ---------------------------------------------------------------


@FAST
@given(st.binary(max_size=512))
def test_json_decoder_raises_only_malformed_frame(frame: bytes) -> None:
    try:
        decoded = JSON_CODEC.decode(frame)
    except MalformedFrame:
        return
    assert all(isinstance(c, m.Command) for c in decoded)


@FAST
@given(st.lists(commands(), min_size=1, max_size=5))
def test_json_commands_round_trip(sent: list[m.Command]) -> None:
    frame = b"\n".join(msgspec.json.encode(c) for c in sent)
    assert JSON_CODEC.decode(frame) == sent


@FAST
@given(commands(), st.binary(max_size=64), st.integers(min_value=0, max_value=10_000))
def test_json_decoder_with_junk_inside_a_valid_frame(
    command: m.Command, junk: bytes, where: int
) -> None:
    frame = msgspec.json.encode(command)
    at = where % (len(frame) + 1)
    with contextlib.suppress(MalformedFrame):
        JSON_CODEC.decode(frame[:at] + junk + frame[at:])


def test_json_decoder_refuses_any_depth_as_malformed() -> None:
    for depth in (1_000, 10_000, 100_000):
        with pytest.raises(MalformedFrame):
            JSON_CODEC.decode(b"[" * depth + b"]" * depth)
        with pytest.raises(MalformedFrame):
            JSON_CODEC.decode(b'{"id":1,"rpc":{"data":' + b"[" * depth + b"]" * depth + b"}}")


# --- protobuf commands -----------------------------------------------------------


def pb_frame(sent: list[m.Command]) -> bytes:
    return b"".join(uvarint(len(b)) + b for b in map(encode_message, sent))


@FAST
@given(st.binary(max_size=512))
def test_protobuf_decoder_raises_only_malformed_frame(frame: bytes) -> None:
    try:
        decoded = PB_CODEC.decode(frame)
    except MalformedFrame:
        return
    assert all(isinstance(c, m.Command) for c in decoded)


@FAST
@given(st.lists(commands(), min_size=1, max_size=5))
def test_protobuf_commands_round_trip(sent: list[m.Command]) -> None:
    decoded = PB_CODEC.decode(pb_frame(sent))
    assert [encode_message(c) for c in decoded] == [encode_message(c) for c in sent]
    for command in decoded:
        assert decode_message(encode_message(command), m.Command) == command


@FAST
@given(commands(), st.binary(max_size=64), st.integers(min_value=0, max_value=10_000))
def test_protobuf_decoder_with_junk_inside_a_valid_frame(
    command: m.Command, junk: bytes, where: int
) -> None:
    frame = pb_frame([command])
    at = where % (len(frame) + 1)
    with contextlib.suppress(MalformedFrame):
        PB_CODEC.decode(frame[:at] + junk + frame[at:])


def test_protobuf_edge_cases_are_malformed_frames() -> None:
    cases = [
        b"\x0a" + b"\xff" * 10,  # a length that is a varint longer than 10 bytes
        b"\x05" + b"\x00" * 5,  # field number 0
        b"\x02\x0b\x0c",  # a group (wire type 3)
        b"\x03\x22\x05ab",  # a nested message longer than its parent
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # a command length of 2^64-1
        b"\x02" + b"\x3a\x80",  # truncated length of publish
    ]
    for frame in cases:
        with pytest.raises(MalformedFrame):
            PB_CODEC.decode(frame)


# --- unidirectional connect -------------------------------------------------------


@FAST
@given(st.binary(max_size=512))
def test_uni_connect_raises_only_value_error(request: bytes) -> None:
    try:
        frame = connect_frame(request)
    except ValueError:
        return
    (command,) = JSON_CODEC.decode(frame)
    assert command.id == 1 and command.connect is not None


@FAST
@given(st.dictionaries(st.sampled_from(["token", "name", "version", "data"]), json_values))
def test_uni_connect_of_any_pretty_object_is_one_line(request: dict[str, Any]) -> None:
    pretty = json.dumps(request, indent=2).encode()
    try:
        frame = connect_frame(pretty)
    except ValueError as exc:
        assert "nested deeper" in str(exc)
        return
    assert b"\n" not in frame
    # A token that is not a string, say, is then refused by the command decoder.
    with contextlib.suppress(MalformedFrame):
        JSON_CODEC.decode(frame)


# --- payloads ---------------------------------------------------------------------


@FAST
@given(st.binary(max_size=512))
def test_payload_check_raises_only_invalid_payload(data: bytes) -> None:
    try:
        out = compact_json(data)
    except InvalidPayload:
        return
    assert b"\n" not in out and b"\r" not in out
    out.decode("utf-8")


@FAST
@given(json_values, st.integers(min_value=0, max_value=4))
def test_payload_round_trip_is_compact_and_equal(value: Any, indent: int) -> None:
    pretty = json.dumps(value, indent=indent, ensure_ascii=indent % 2 == 0).encode()
    out = compact_json(pretty)
    assert b"\n" not in out
    assert json.loads(out) == value
    assert compact_json(out) == out


def nested_value(depth: int, shape: str) -> bytes:
    """JSON nested exactly `depth` deep: arrays, objects, or both (strings with brackets)."""
    opens: list[str] = []
    closes: list[str] = []
    for level in range(depth):
        if shape == "{}" or (shape == "mixed" and level % 2):
            opens.append('{"k[":')
            closes.append("}")
        else:
            opens.append('["]{\\"",' if shape == "mixed" else "[")
            closes.append("]")
    return ("".join(opens) + "0" + "".join(reversed(closes))).encode()


@FAST
@given(st.integers(min_value=1, max_value=300), st.sampled_from(["[]", "{}", "mixed"]))
def test_payload_depth_bound_is_exact(depth: int, shape: str) -> None:
    data = nested_value(depth, shape)
    assert isinstance(json.loads(data), list | dict)
    if depth <= MAX_DEPTH:
        assert json.loads(compact_json(data)) == json.loads(data)
    else:
        with pytest.raises(InvalidPayload, match="nested deeper"):
            compact_json(data)


# --- token claims -----------------------------------------------------------------

SECRET = "prop-secret-0123456789-0123456789-abcd"
VERIFIER = TokenVerifier(SECRET)
claim_names = st.sampled_from(
    ["sub", "exp", "iat", "nbf", "expire_at", "info", "channels", "channel", "aud", "iss"]
)


def signed(payload: bytes) -> str:
    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    head = b64(b'{"alg":"HS256","typ":"JWT"}') + b"." + b64(payload)
    return (head + b"." + b64(hmac.new(SECRET.encode(), head, hashlib.sha256).digest())).decode()


def check_claims(token: str) -> None:
    try:
        claims = VERIFIER.connection(token)
    except (TokenInvalid, TokenExpired):
        pass
    else:
        claims.user.encode()
        assert 0 <= claims.expire_at <= MAX_EXPIRE_AT
        assert not math.isnan(claims.expire_at)
        assert not claims.info or compact_json(claims.info) == claims.info
    try:
        VERIFIER.subscription(token, "$room", "bob")
    except ReplyError as exc:
        assert exc.code in (103, 109)


@FAST
@given(st.text(max_size=300))
def test_any_token_text_is_claims_or_invalid(token: str) -> None:
    check_claims(token)


@FAST
@given(st.dictionaries(claim_names, json_values, max_size=6))
def test_any_signed_claims_are_claims_or_invalid(claims: dict[str, Any]) -> None:
    check_claims(signed(json.dumps(claims).encode()))


@FAST
@given(st.binary(max_size=300))
def test_any_signed_payload_bytes_are_claims_or_invalid(payload: bytes) -> None:
    check_claims(signed(payload))
