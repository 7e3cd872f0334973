"""Frames: the exact bytes nsqd sends, and the client-side reader."""

from __future__ import annotations

import struct

import pytest

from tidings.protocol.nsq import (
    FrameReader,
    FrameType,
    MessageFrame,
    encode_error,
    encode_message,
    encode_response,
    message_id,
    message_number,
)


def test_response_and_error_bytes() -> None:
    assert encode_response(b"OK") == b"\x00\x00\x00\x06\x00\x00\x00\x00OK"
    assert encode_error(b"E_INVALID x") == struct.pack(">ii", 15, 1) + b"E_INVALID x"


def test_message_frame_layout() -> None:
    frame = encode_message(1_700_000_000_000_000_000, 1, b"000000000000002a", b"body")
    size, frame_type, timestamp, attempts = struct.unpack_from(">iiqH", frame)
    assert (size, frame_type) == (len(frame) - 4, 2)
    assert (timestamp, attempts) == (1_700_000_000_000_000_000, 1)
    assert frame[18:34] == b"000000000000002a"
    assert frame[34:] == b"body"


def test_reader_splits_and_joins() -> None:
    data = encode_response(b"OK") + encode_message(5, 2, message_id(7), b"m") + encode_error(b"E")
    reader = FrameReader()
    frames = [f for i in range(len(data)) for f in reader.feed(data[i : i + 1])]
    assert [f.frame_type for f in frames] == [
        FrameType.RESPONSE,
        FrameType.MESSAGE,
        FrameType.ERROR,
    ]
    message = MessageFrame.decode(frames[1].data)
    assert (message.timestamp_ns, message.attempts, message.body) == (5, 2, b"m")
    assert message_number(message.message_id) == 7


def test_reader_refuses_absurd_sizes() -> None:
    with pytest.raises(ValueError):
        FrameReader(max_frame_size=10).feed(struct.pack(">ii", 1000, 0))


def test_message_ids() -> None:
    assert message_id(255) == b"00000000000000ff"
    assert message_number(b"00000000000000ff") == 255
    assert message_number(b"zz") is None
    assert message_number(b"not-hex-at-all!!") is None
