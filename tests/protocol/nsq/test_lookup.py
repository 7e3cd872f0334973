"""nsqlookupd's registration protocol, bytes in and out, no network."""

from __future__ import annotations

import json
import struct

import pytest

from tidings.protocol.nsq.lookup import (
    MAGIC_V1,
    MAX_IDENTIFY_BODY,
    MAX_LINE_LENGTH,
    Identify,
    LookupFailure,
    LookupResponseReader,
    LookupResponseTooLarge,
    LookupServerConnection,
    PeerInfo,
    Ping,
    Register,
    Unregister,
    encode_identify,
    encode_ping,
    encode_register,
    encode_response,
    encode_unregister,
    is_error_response,
)

PEER = {"broadcast_address": "10.0.0.1", "tcp_port": 4150, "http_port": 4151, "version": "1.3.0"}


def identify_bytes(body: bytes) -> bytes:
    return b"IDENTIFY\n" + struct.pack(">i", len(body)) + body


def identified() -> LookupServerConnection:
    connection = LookupServerConnection()
    events = connection.receive_data(MAGIC_V1 + identify_bytes(json.dumps(PEER).encode()))
    assert events == [Identify(PeerInfo(**PEER))]
    return connection


def test_identify_then_register_and_unregister() -> None:
    connection = identified()
    data = b"REGISTER orders\nREGISTER orders billing\nUNREGISTER orders billing\nPING\n"
    assert connection.receive_data(data) == [
        Register("orders", None),
        Register("orders", "billing"),
        Unregister("orders", "billing"),
        Ping(),
    ]
    assert not connection.closed


def test_bytes_may_arrive_one_at_a_time() -> None:
    connection = LookupServerConnection()
    stream = MAGIC_V1 + identify_bytes(json.dumps(PEER).encode()) + b"REGISTER t c\r\n"
    events = [e for byte in stream for e in connection.receive_data(bytes([byte]))]
    assert events == [Identify(PeerInfo(**PEER)), Register("t", "c")]


def test_ping_needs_no_identify() -> None:
    connection = LookupServerConnection()
    assert connection.receive_data(MAGIC_V1 + b"PING\n") == [Ping()]


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"  V2", "E_BAD_PROTOCOL"),
        (b"GET / HTTP/1.1\r\n", "E_BAD_PROTOCOL"),
        (MAGIC_V1 + b"REGISTER t\n", "E_INVALID client must IDENTIFY"),
        (MAGIC_V1 + b"UNREGISTER t\n", "E_INVALID client must IDENTIFY"),
        (MAGIC_V1 + b"FOO bar\n", "E_INVALID invalid command FOO"),
        (MAGIC_V1 + b"\n", "E_INVALID invalid command "),
        (MAGIC_V1 + identify_bytes(b"{not json"), "E_BAD_BODY IDENTIFY failed to decode JSON body"),
        (
            MAGIC_V1 + identify_bytes(b'{"tcp_port": "4150"}'),
            "E_BAD_BODY IDENTIFY failed to decode JSON body",
        ),
        (MAGIC_V1 + identify_bytes(b'{"tcp_port": 4150}'), "E_BAD_BODY IDENTIFY missing fields"),
        (
            MAGIC_V1 + b"IDENTIFY\n" + struct.pack(">i", -1),
            "E_BAD_BODY IDENTIFY invalid body size -1",
        ),
        (
            MAGIC_V1 + b"IDENTIFY\n" + struct.pack(">i", MAX_IDENTIFY_BODY + 1),
            f"E_BAD_BODY IDENTIFY invalid body size {MAX_IDENTIFY_BODY + 1}",
        ),
        (MAGIC_V1 + b"x" * (MAX_LINE_LENGTH + 1), "E_INVALID command line too long"),
    ],
)
def test_failures_close_the_connection(data: bytes, text: str) -> None:
    connection = LookupServerConnection()
    (event,) = connection.receive_data(data)
    assert isinstance(event, LookupFailure)
    assert event.text == text
    assert connection.closed
    assert connection.receive_data(b"PING\n") == []


@pytest.mark.parametrize(
    ("line", "text"),
    [
        (b"REGISTER\n", "E_INVALID REGISTER insufficient number of params"),
        (b"UNREGISTER  \n", "E_INVALID UNREGISTER insufficient number of params"),
        (b"REGISTER bad/topic\n", "E_BAD_TOPIC REGISTER topic name 'bad/topic' is not valid"),
        (b"REGISTER t bad*ch\n", "E_BAD_CHANNEL REGISTER channel name 'bad*ch' is not valid"),
        (
            b"UNREGISTER " + b"x" * 65 + b"\n",
            f"E_BAD_TOPIC UNREGISTER topic name '{'x' * 65}' is not valid",
        ),
        (b"IDENTIFY\n", "E_INVALID cannot IDENTIFY again"),
    ],
)
def test_refusals_after_identify(line: bytes, text: str) -> None:
    connection = identified()
    (event,) = connection.receive_data(line + b"PING\n")
    assert isinstance(event, LookupFailure)
    assert event.text == text
    assert event.encode() == struct.pack(">i", len(text)) + text.encode()


def test_empty_second_parameter_is_a_topic_registration() -> None:
    # "REGISTER t  c" splits into ["t", "", "c"]: the channel is the empty second word.
    assert identified().receive_data(b"REGISTER t  c\n") == [Register("t", None)]


def test_client_side_encoding() -> None:
    peer = PeerInfo(**PEER, hostname="h")
    wire = encode_identify(peer)
    assert wire.startswith(b"IDENTIFY\n")
    (size,) = struct.unpack(">i", wire[9:13])
    assert json.loads(wire[13:]) == {**PEER, "hostname": "h"}
    assert size == len(wire) - 13
    assert encode_register("t", None) == b"REGISTER t\n"
    assert encode_register("t", "c") == b"REGISTER t c\n"
    assert encode_unregister("t", "c#ephemeral") == b"UNREGISTER t c#ephemeral\n"
    assert encode_ping() == b"PING\n"
    with pytest.raises(ValueError, match="invalid"):
        encode_register("t\nPING", None)


def test_response_reader_splits_frames_and_bounds_size() -> None:
    reader = LookupResponseReader(max_size=100)
    wire = encode_response(b"OK") + encode_response(b'{"a":1}') + encode_response(b"E_INVALID x")
    assert reader.receive_data(wire[:3]) == []
    assert reader.receive_data(wire[3:]) == [b"OK", b'{"a":1}', b"E_INVALID x"]
    assert is_error_response(b"E_INVALID x") and not is_error_response(b"OK")
    with pytest.raises(LookupResponseTooLarge):
        LookupResponseReader(max_size=100).receive_data(struct.pack(">i", 101))
