"""Error and disconnect codes match the Centrifuge v2 protocol tables."""

from __future__ import annotations

import pytest

from tidings.protocol.centrifuge import codes
from tidings.protocol.centrifuge.codes import Disconnect, ErrorCode, ReplyErrorInfo

PROTOCOL_ERRORS = {
    100: "INTERNAL",
    101: "UNAUTHORIZED",
    102: "UNKNOWN_CHANNEL",
    103: "PERMISSION_DENIED",
    104: "METHOD_NOT_FOUND",
    105: "ALREADY_SUBSCRIBED",
    106: "LIMIT_EXCEEDED",
    107: "BAD_REQUEST",
    108: "NOT_AVAILABLE",
    109: "TOKEN_EXPIRED",
    110: "EXPIRED",
    111: "TOO_MANY_REQUESTS",
    112: "UNRECOVERABLE_POSITION",
}

PROTOCOL_DISCONNECTS = {
    "SHUTDOWN": 3001,
    "SERVER_ERROR": 3004,
    "EXPIRED": 3005,
    "SUBSCRIPTION_EXPIRED": 3006,
    "SLOW": 3008,
    "WRITE_ERROR": 3009,
    "INSUFFICIENT_STATE": 3010,
    "FORCE_RECONNECT": 3011,
    "NO_PONG": 3012,
    "TOO_MANY_REQUESTS": 3013,
    "INVALID_TOKEN": 3500,
    "BAD_REQUEST": 3501,
    "STALE": 3502,
    "FORCE_DISCONNECT": 3503,
    "CONNECTION_LIMIT": 3504,
    "CHANNEL_LIMIT": 3505,
    "INAPPROPRIATE_PROTOCOL": 3506,
    "PERMISSION_DENIED": 3507,
    "NOT_AVAILABLE": 3508,
    "TOO_MANY_ERRORS": 3509,
}


def test_error_codes_match_protocol() -> None:
    assert {int(c): c.name for c in ErrorCode} == PROTOCOL_ERRORS


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_has_a_message(code: ErrorCode) -> None:
    info = ReplyErrorInfo.of(code)
    assert info.code == int(code)
    assert info.message and info.message == info.message.lower()
    assert type(info.code) is int


def test_only_internal_and_too_many_requests_are_temporary() -> None:
    temporary = {c for c in ErrorCode if ReplyErrorInfo.of(c).temporary}
    assert temporary == {ErrorCode.INTERNAL, ErrorCode.TOO_MANY_REQUESTS}


def test_error_message_can_be_replaced() -> None:
    info = ReplyErrorInfo.of(ErrorCode.BAD_REQUEST, "channel required")
    assert info == ReplyErrorInfo(107, "channel required", False)
    assert ReplyErrorInfo.of(ErrorCode.PERMISSION_DENIED).message == "permission denied"


def test_reply_error_info_is_frozen() -> None:
    info = ReplyErrorInfo.of(ErrorCode.INTERNAL)
    with pytest.raises(AttributeError):
        info.code = 1  # type: ignore[misc]


@pytest.mark.parametrize(("name", "code"), sorted(PROTOCOL_DISCONNECTS.items()))
def test_disconnect_constants(name: str, code: int) -> None:
    disconnect = getattr(codes, name)
    assert isinstance(disconnect, Disconnect)
    assert disconnect.code == code
    assert disconnect.reason
    # The close frame reason must fit: 123 bytes of the 125-byte control payload.
    assert len(disconnect.reason.encode()) < 123


@pytest.mark.parametrize(
    ("code", "reconnect"),
    [
        (3000, True),
        (3001, True),
        (3499, True),
        (3500, False),
        (3501, False),
        (3999, False),
        (4000, True),
        (4499, True),
        (4500, False),
        (4999, False),
        (1000, False),
        (2999, False),
        (5000, False),
    ],
)
def test_reconnect_follows_code_ranges(code: int, reconnect: bool) -> None:
    assert Disconnect(code, "x").reconnect is reconnect


def test_named_disconnects_reconnect_as_protocol_says() -> None:
    assert codes.SHUTDOWN.reconnect and codes.NO_PONG.reconnect and codes.SLOW.reconnect
    assert not codes.INVALID_TOKEN.reconnect
    assert not codes.BAD_REQUEST.reconnect
    assert not codes.FORCE_DISCONNECT.reconnect


def test_disconnect_is_a_value() -> None:
    assert Disconnect(3001, "shutdown") == codes.SHUTDOWN
    assert hash(Disconnect(3001, "shutdown")) == hash(codes.SHUTDOWN)
