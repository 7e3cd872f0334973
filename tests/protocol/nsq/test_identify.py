"""IDENTIFY: validation like nsqd, negotiation reply with what clients need."""

from __future__ import annotations

import json

import pytest

from tidings.protocol.nsq import IdentifyLimits, NsqError, identify_reply, parse_identify

LIMITS = IdentifyLimits(max_rdy_count=77)


def test_plain_identify_answers_ok() -> None:
    settings = parse_identify(b'{"client_id": "c", "unknown": [1]}', LIMITS)
    assert settings.client_id == "c"
    assert settings.heartbeat_interval_ms == LIMITS.heartbeat_interval_ms
    assert identify_reply(settings, LIMITS) == b"OK"


def test_negotiation_reply_fields() -> None:
    body = json.dumps(
        {
            "feature_negotiation": True,
            "heartbeat_interval": 5000,
            "msg_timeout": 2000,
            "snappy": True,
            "deflate": True,
            "tls_v1": True,
        }
    ).encode()
    settings = parse_identify(body, LIMITS)
    reply = json.loads(identify_reply(settings, LIMITS))
    assert reply["max_rdy_count"] == 77
    assert reply["msg_timeout"] == 2000
    # Asked for, not supported: reported false (clients then do not upgrade).
    assert (reply["snappy"], reply["deflate"], reply["tls_v1"]) == (False, False, False)
    assert reply["auth_required"] is False
    assert settings.heartbeat_interval_ms == 5000


def test_heartbeats_off() -> None:
    assert parse_identify(b'{"heartbeat_interval": -1}', LIMITS).heartbeat_interval_ms == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "E_BAD_BODY IDENTIFY failed to decode JSON body"),
        (b'{"heartbeat_interval": "x"}', "E_BAD_BODY IDENTIFY failed to decode JSON body"),
        (b'{"heartbeat_interval": 999}', "E_BAD_BODY IDENTIFY heartbeat interval (999) is invalid"),
        (b'{"heartbeat_interval": 60001}', "E_BAD_BODY IDENTIFY heartbeat interval (60001)"),
        (b'{"msg_timeout": 10}', "E_BAD_BODY IDENTIFY msg timeout (10) is invalid"),
        (b'{"sample_rate": 100}', "E_BAD_BODY IDENTIFY sample rate (100) is invalid"),
        (b'{"output_buffer_size": 10}', "E_BAD_BODY IDENTIFY output buffer size (10) is invalid"),
    ],
)
def test_bad_identify(body: bytes, message: str) -> None:
    with pytest.raises(NsqError) as caught:
        parse_identify(body, LIMITS)
    assert str(caught.value).startswith(message)
    assert caught.value.fatal
