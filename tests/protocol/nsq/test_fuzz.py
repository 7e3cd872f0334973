"""Properties: any split of valid input parses the same; any input only raises NsqError."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.protocol.nsq import ClientState, Command, CommandParser, NsqError

names = st.from_regex(r"[.a-zA-Z0-9_-]{1,20}", fullmatch=True)
bodies = st.binary(min_size=1, max_size=64)


def _body(data: bytes) -> bytes:
    return struct.pack(">i", len(data)) + data


@st.composite
def publish_stream(draw: st.DrawFn) -> bytes:
    parts = [b"  V2"]
    for _ in range(draw(st.integers(1, 8))):
        topic = draw(names).encode()
        kind = draw(st.sampled_from(["PUB", "MPUB", "DPUB", "NOP"]))
        if kind == "PUB":
            parts.append(b"PUB " + topic + b"\n" + _body(draw(bodies)))
        elif kind == "DPUB":
            parts.append(b"DPUB " + topic + b" 10\n" + _body(draw(bodies)))
        elif kind == "MPUB":
            items = draw(st.lists(bodies, min_size=1, max_size=4))
            inner = struct.pack(">i", len(items)) + b"".join(_body(b) for b in items)
            parts.append(b"MPUB " + topic + b"\n" + _body(inner))
        else:
            parts.append(b"NOP\n")
    return b"".join(parts)


def _drain(parser: CommandParser) -> list[Command]:
    out: list[Command] = []
    while (command := parser.next_command()) is not None:
        out.append(command)
    return out


@given(publish_stream(), st.lists(st.integers(1, 50), max_size=20))
def test_chunking_does_not_change_the_result(data: bytes, cuts: list[int]) -> None:
    whole = CommandParser()
    whole.receive(data)
    expected = _drain(whole)
    chunked = CommandParser()
    got: list[Command] = []
    offset = 0
    for cut in [*cuts, len(data)]:
        chunked.receive(data[offset : offset + cut])
        offset += cut
        got += _drain(chunked)
    chunked.receive(data[offset:])
    got += _drain(chunked)
    assert got == expected
    assert chunked.buffered == 0


@settings(max_examples=500)
@given(st.binary(max_size=300), st.sampled_from(list(ClientState)))
def test_garbage_only_raises_protocol_errors(data: bytes, state: ClientState) -> None:
    parser = CommandParser(max_msg_size=64, max_body_size=256, max_line=64)
    parser.state = state
    parser.receive(b"  V2" + data)
    try:
        _drain(parser)
    except NsqError as error:
        assert error.frame_body.startswith(b"E_")
    assert parser.buffered <= 64 + 4 + 256


def test_bounded_random_fuzz() -> None:
    # A fixed-seed run over mutated valid streams: bit flips, cuts and splices.
    import random

    rng = random.Random(1234)
    seed = (
        b"  V2IDENTIFY\n" + _body(b"{}") + b"SUB t c\nRDY 5\nFIN 0123456789abcdef\n"
        b"PUB t\n" + _body(b"hello") + b"MPUB t\n" + _body(struct.pack(">i", 1) + _body(b"x"))
    )
    for _ in range(3000):
        data = bytearray(seed)
        for _ in range(rng.randint(1, 6)):
            position = rng.randrange(len(data))
            choice = rng.random()
            if choice < 0.5:
                data[position] = rng.randrange(256)
            elif choice < 0.75:
                del data[position : position + rng.randint(1, 8)]
            else:
                data[position:position] = bytes(rng.randrange(256) for _ in range(4))
        parser = CommandParser(max_msg_size=1024, max_body_size=4096)
        parser.receive(bytes(data))
        try:
            for _ in range(100):
                command = parser.next_command()
                if command is None:
                    break
                if type(command).__name__ == "Sub":
                    parser.state = ClientState.SUBSCRIBED
        except NsqError as error:
            assert error.frame_body.startswith(b"E_")
