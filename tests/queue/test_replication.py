"""Replication frames (the wire between a primary and its replica)."""

from __future__ import annotations

import asyncio
import struct

import pytest

from tidings.queue.replication import decode_append, encode_append, frame, read_frame


async def _read(data: bytes) -> tuple[bytes, bytes]:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return await read_frame(reader)


async def test_append_round_trip() -> None:
    records = [(7, b"seven"), (8, b""), (9, b"nine" * 100)]
    kind, body = await _read(encode_append("orders.v1", records))
    assert kind == b"A"
    assert decode_append(body) == ("orders.v1", 7, [b"seven", b"", b"nine" * 100])


async def test_frames_in_sequence() -> None:
    data = frame(b"H", b"") + frame(b"S", b"{}")
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    assert await read_frame(reader) == (b"H", b"")
    assert await read_frame(reader) == (b"S", b"{}")


async def test_absurd_frame_size_is_refused() -> None:
    with pytest.raises(ConnectionError):
        await _read(struct.pack(">IB", 0, 0x41))
    with pytest.raises(ConnectionError):
        await _read(struct.pack(">IB", 1 << 31, 0x41))


async def test_truncated_frame() -> None:
    with pytest.raises(asyncio.IncompleteReadError):
        await _read(frame(b"A", b"abcdef")[:-2])
