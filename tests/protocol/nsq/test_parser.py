"""The command parser: bytes in, commands or the fatal error nsqd would send."""

from __future__ import annotations

import struct

import pytest

from tidings.protocol.nsq import (
    Auth,
    ClientState,
    Cls,
    CommandParser,
    Dpub,
    ErrorCode,
    Fin,
    Identify,
    Mpub,
    Nop,
    NsqError,
    Pub,
    Rdy,
    Req,
    Sub,
    Touch,
)

MID = b"0123456789abcdef"


def body(data: bytes) -> bytes:
    return struct.pack(">i", len(data)) + data


def mpub_body(*messages: bytes) -> bytes:
    inner = struct.pack(">i", len(messages)) + b"".join(body(m) for m in messages)
    return body(inner)


def parse(data: bytes, state: ClientState = ClientState.INIT, **limits: int) -> list[object]:
    parser = CommandParser(**limits)
    parser.receive(b"  V2")
    parser.state = state
    parser.receive(data)
    out: list[object] = []
    while (command := parser.next_command()) is not None:
        out.append(command)
    return out


def error_of(data: bytes, state: ClientState = ClientState.INIT, **limits: int) -> NsqError:
    with pytest.raises(NsqError) as caught:
        parse(data, state, **limits)
    return caught.value


def test_publish_commands() -> None:
    data = (
        b"PUB orders\n"
        + body(b"one")
        + b"MPUB orders\n"
        + mpub_body(b"a", b"bc")
        + b"DPUB orders 1500\n"
        + body(b"later")
    )
    assert parse(data) == [
        Pub("orders", b"one"),
        Mpub("orders", (b"a", b"bc")),
        Dpub("orders", 1500, b"later"),
    ]


def test_init_commands_and_crlf() -> None:
    data = b"IDENTIFY\r\n" + body(b"{}") + b"NOP\nSUB t c#ephemeral\n"
    assert parse(data) == [Identify(b"{}"), Nop(), Sub("t", "c#ephemeral")]


def test_subscribed_commands() -> None:
    data = b"RDY 10\nRDY\nFIN " + MID + b"\nREQ " + MID + b" 250\nTOUCH " + MID + b"\nCLS\n"
    assert parse(data, ClientState.SUBSCRIBED) == [
        Rdy(10),
        Rdy(1),
        Fin(MID),
        Req(MID, 250),
        Touch(MID),
        Cls(),
    ]


def test_req_timeout_is_clamped_to_the_maximum() -> None:
    commands = parse(b"REQ " + MID + b" 99999999\n", ClientState.SUBSCRIBED, max_req_timeout_ms=5)
    assert commands == [Req(MID, 5)]


def test_rdy_after_cls_is_ignored() -> None:
    assert parse(b"RDY 5\n", ClientState.CLOSING) == [Nop()]


def test_auth_body() -> None:
    assert parse(b"AUTH\n" + body(b"secret")) == [Auth(b"secret")]


def test_bytes_one_at_a_time() -> None:
    data = b"  V2PUB t\n" + body(b"hello") + b"MPUB t\n" + mpub_body(b"x", b"y")
    parser = CommandParser()
    out: list[object] = []
    for byte in data:
        parser.receive(bytes([byte]))
        while (command := parser.next_command()) is not None:
            out.append(command)
    assert out == [Pub("t", b"hello"), Mpub("t", (b"x", b"y"))]


@pytest.mark.parametrize("magic", [b"  V1", b"GET ", b"V2  ", b"\x00\x00\x00\x00"])
def test_wrong_magic(magic: bytes) -> None:
    parser = CommandParser()
    parser.receive(magic)
    with pytest.raises(NsqError) as caught:
        parser.next_command()
    assert caught.value.frame_body == b"E_BAD_PROTOCOL"


def test_wrong_magic_detected_early() -> None:
    parser = CommandParser()
    parser.receive(b"GE")
    with pytest.raises(NsqError):
        parser.next_command()


@pytest.mark.parametrize(
    ("data", "state", "expected"),
    [
        (b"HELLO\n", ClientState.INIT, b"E_INVALID invalid command HELLO"),
        (b"\n", ClientState.INIT, b"E_INVALID invalid command "),
        (b"RDY 1\n", ClientState.INIT, b"E_INVALID cannot RDY in current state"),
        (b"FIN " + MID + b"\n", ClientState.INIT, b"E_INVALID cannot FIN in current state"),
        (b"CLS\n", ClientState.INIT, b"E_INVALID cannot CLS in current state"),
        (b"SUB t c\n", ClientState.SUBSCRIBED, b"E_INVALID cannot SUB in current state"),
        (b"IDENTIFY\n", ClientState.SUBSCRIBED, b"E_INVALID cannot IDENTIFY in current state"),
        (b"CLS\n", ClientState.CLOSING, b"E_INVALID cannot CLS in current state"),
        (b"SUB t\n", ClientState.INIT, b"E_INVALID SUB insufficient number of parameters"),
        (b"SUB t/x c\n", ClientState.INIT, b'E_BAD_TOPIC SUB topic name "t/x" is not valid'),
        (b"SUB t c\xff\n", ClientState.INIT, b"E_BAD_CHANNEL SUB channel name"),
        (b"RDY x\n", ClientState.SUBSCRIBED, b"E_INVALID RDY could not parse count x"),
        (b"RDY -1\n", ClientState.SUBSCRIBED, b"E_INVALID RDY could not parse count -1"),
        (b"RDY 2501\n", ClientState.SUBSCRIBED, b"E_INVALID RDY count 2501 out of range 0-2500"),
        (b"FIN\n", ClientState.SUBSCRIBED, b"E_INVALID FIN insufficient number of params"),
        (b"FIN abc\n", ClientState.SUBSCRIBED, b"E_INVALID invalid message ID"),
        (b"REQ " + MID + b"\n", ClientState.SUBSCRIBED, b"E_INVALID REQ insufficient"),
        (b"REQ " + MID + b" x\n", ClientState.SUBSCRIBED, b"E_INVALID REQ could not parse"),
        (b"PUB\n", ClientState.INIT, b"E_INVALID PUB insufficient number of parameters"),
        (b"PUB a*b\n", ClientState.INIT, b'E_BAD_TOPIC PUB topic name "a*b" is not valid'),
        (b"MPUB a*b\n", ClientState.INIT, b"E_BAD_TOPIC E_BAD_TOPIC MPUB topic name"),
        (b"DPUB t\n", ClientState.INIT, b"E_INVALID DPUB insufficient number of parameters"),
        (b"DPUB t x\n", ClientState.INIT, b"E_INVALID DPUB could not parse timeout x"),
        (b"DPUB t 3600001\n", ClientState.INIT, b"E_INVALID DPUB timeout 3600001 out of range"),
        (b"PUB t\n" + struct.pack(">i", 0), ClientState.INIT, b"E_BAD_MESSAGE PUB invalid"),
        (b"PUB t\n" + struct.pack(">i", -5), ClientState.INIT, b"E_BAD_MESSAGE PUB invalid"),
        (b"AUTH x\n", ClientState.INIT, b"E_INVALID AUTH invalid number of parameters"),
    ],
)
def test_errors_are_nsqds(data: bytes, state: ClientState, expected: bytes) -> None:
    error = error_of(data, state)
    assert error.frame_body.startswith(expected)
    assert error.fatal


def test_sub_needs_heartbeats() -> None:
    parser = CommandParser()
    parser.heartbeats_enabled = False
    parser.receive(b"  V2SUB t c\n")
    with pytest.raises(NsqError, match="cannot SUB with heartbeats disabled"):
        parser.next_command()


def test_oversized_bodies_are_refused_before_they_arrive() -> None:
    # Only the 4-byte length is sent: the refusal must not wait for the body.
    error = error_of(b"PUB t\n" + struct.pack(">i", 101), max_msg_size=100)
    assert error.frame_body == b"E_BAD_MESSAGE PUB message too big 101 > 100"
    error = error_of(b"MPUB t\n" + struct.pack(">i", 1001), max_body_size=1000)
    assert error.frame_body == b"E_BAD_BODY MPUB body too big 1001 > 1000"
    error = error_of(b"IDENTIFY\n" + struct.pack(">i", 1001), max_body_size=1000)
    assert error.frame_body == b"E_BAD_BODY IDENTIFY body too big 1001 > 1000"
    error = error_of(b"DPUB t 5\n" + struct.pack(">i", 101), max_msg_size=100)
    assert error.frame_body == b"E_BAD_MESSAGE DPUB message too big 101 > 100"


def test_mpub_inner_messages_are_checked() -> None:
    error = error_of(b"MPUB t\n" + mpub_body(b"x" * 11), max_msg_size=10)
    assert error.frame_body == b"E_BAD_MESSAGE MPUB message too big 11 > 10"
    error = error_of(b"MPUB t\n" + body(struct.pack(">i", 0)))
    assert error.frame_body == b"E_BAD_BODY MPUB invalid message count 0"
    error = error_of(b"MPUB t\n" + body(struct.pack(">i", 2) + body(b"a")))
    assert error.code is ErrorCode.BAD_MESSAGE
    error = error_of(b"MPUB t\n" + body(struct.pack(">i", 1) + body(b"a") + b"junk"))
    assert error.code is ErrorCode.BAD_BODY


def test_long_line_is_refused_without_its_newline() -> None:
    error = error_of(b"PUB " + b"x" * 5000, max_line=4096)
    assert error.frame_body == b"E_INVALID command line too long"


def test_parser_is_dead_after_an_error() -> None:
    parser = CommandParser()
    parser.receive(b"  V2BAD\n")
    with pytest.raises(NsqError):
        parser.next_command()
    parser.receive(b"NOP\n")
    with pytest.raises(NsqError):
        parser.next_command()
    assert parser.buffered == 0


def test_commands_before_an_error_are_returned_first() -> None:
    parser = CommandParser()
    parser.receive(b"  V2NOP\nPUB t\n" + body(b"x") + b"WHAT\n")
    assert parser.next_command() == Nop()
    assert parser.next_command() == Pub("t", b"x")
    with pytest.raises(NsqError):
        parser.next_command()


def test_buffer_is_bounded_by_the_limits() -> None:
    parser = CommandParser(max_msg_size=100, max_line=64)
    parser.receive(b"  V2PUB t\n" + struct.pack(">i", 100) + b"x" * 99)
    assert parser.next_command() is None
    assert parser.buffered == 99
