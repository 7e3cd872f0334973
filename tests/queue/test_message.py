"""Stored message payloads."""

from __future__ import annotations

from tidings.queue.message import StoredMessage, encode_payload


def test_payload_round_trip() -> None:
    payload = encode_payload(1_700_000_000_123_456_789, 42, b"body")
    message = StoredMessage.decode(5, payload)
    assert (message.seq, message.timestamp_ns, message.deliver_at_ms, message.body) == (
        5,
        1_700_000_000_123_456_789,
        42,
        b"body",
    )
    assert message.payload() == payload
