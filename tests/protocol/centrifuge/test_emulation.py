"""The emulation request decoder: JSON and Protobuf forms, and what it refuses."""

from __future__ import annotations

import pytest

from tidings.protocol.centrifuge.emulation import decode_emulation_request
from tidings.protocol.centrifuge.protobuf_codec import uvarint


def _field(number: int, value: bytes) -> bytes:
    return uvarint(number << 3 | 2) + uvarint(len(value)) + value


def test_json_request() -> None:
    body = b'{"session":"s1","node":"n1","data":"{\\"id\\":1,\\"ping\\":{}}"}'
    request = decode_emulation_request(body, protobuf=False)
    assert (request.session, request.node, request.data) == ("s1", "n1", b'{"id":1,"ping":{}}')


def test_protobuf_request_skips_unknown_fields() -> None:
    commands = b"\x02\x08\x01"
    body = _field(1, b"n1") + b"\x20\x05" + _field(2, b"s1") + _field(3, commands)
    request = decode_emulation_request(body, protobuf=True)
    assert (request.session, request.node, request.data) == ("s1", "n1", commands)


@pytest.mark.parametrize(
    ("body", "protobuf", "reason"),
    [
        (b"garbage", False, "not valid"),
        (b"[]", False, "not valid"),
        (b'{"session": 5, "data": "x"}', False, "not valid"),
        (b'{"data": "x"}', False, "without session"),
        (b'{"session": "s"}', False, "without data"),
        (b'{"session": "' + b"s" * 200 + b'", "data": "x"}', False, "too long"),
        (b"\xff\xff\xff", True, "not valid"),
        (_field(2, b"s")[:-1] + b"", True, "beyond"),
        (b"\x0b", True, "wire type"),
        (_field(2, b"\xff\xfe") + _field(3, b"x"), True, "UTF-8"),
        (_field(3, b"x"), True, "without session"),
    ],
)
def test_malformed_requests_are_refused(body: bytes, protobuf: bool, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        decode_emulation_request(body, protobuf)
