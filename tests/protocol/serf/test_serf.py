"""Serf tags, messages and user-event de-duplication."""

from __future__ import annotations

import msgpack
import pytest

from tidings.protocol.memberlist.errors import DecodeError
from tidings.protocol.serf.events import RecentUserEvents
from tidings.protocol.serf.messages import (
    JoinIntent,
    LeaveIntent,
    OtherSerfMessage,
    UserEvent,
    decode_serf_message,
    encode_serf_message,
)
from tidings.protocol.serf.participant import SerfParticipant
from tidings.protocol.serf.tags import decode_tags, encode_tags


def test_tags_round_trip_and_role_fallback() -> None:
    meta = encode_tags({"role": "tidings", "region": "eu"})
    assert meta[0] == 0xFF
    assert msgpack.unpackb(meta[1:], raw=False) == {"region": "eu", "role": "tidings"}
    assert decode_tags(meta) == {"role": "tidings", "region": "eu"}
    assert decode_tags(b"web") == {"role": "web"}
    with pytest.raises(DecodeError):
        decode_tags(b"\xff\x93\x01\x02\x03")


@pytest.mark.parametrize(
    "message",
    [JoinIntent(3, "n"), LeaveIntent(4, "n", True), UserEvent(5, "deploy", b"v1", True)],
)
def test_messages_round_trip(message: JoinIntent | LeaveIntent | UserEvent) -> None:
    assert decode_serf_message(encode_serf_message(message)) == message


def test_user_event_as_serf_writes_it() -> None:
    # [3] + {CC, LTime, Name, Payload} with Go's raw strings, as a Serf agent sends it.
    raw = b"\x03\x84\xa2CC\xc3\xa5LTime\x01\xa4Name\xa6deploy\xa7Payload\xa5hello"
    assert decode_serf_message(raw) == UserEvent(1, "deploy", b"hello", True)
    assert encode_serf_message(UserEvent(1, "deploy", b"hello", True)) == raw


def test_other_and_bad_messages() -> None:
    assert decode_serf_message(b"\x04anything") == OtherSerfMessage(4)
    with pytest.raises(DecodeError):
        decode_serf_message(b"")
    with pytest.raises(DecodeError):
        decode_serf_message(b"\x03\x81\xa5LTime\xa1x")


def test_recent_user_events_pass_each_event_once() -> None:
    recent = RecentUserEvents(window=4)
    event = UserEvent(10, "deploy", b"v1")
    assert recent.first_time(event)
    assert not recent.first_time(event)
    assert recent.first_time(UserEvent(10, "deploy", b"v2"))
    assert recent.first_time(UserEvent(20, "x"))
    assert not recent.first_time(UserEvent(11, "late"))  # older than the window


def test_participant_witnesses_clocks_and_passes_events_once() -> None:
    me = SerfParticipant("tidings-1")
    assert me.receive(encode_serf_message(JoinIntent(7, "serf-1"))) is None
    leave = decode_serf_message(me.leave_intent())
    assert isinstance(leave, LeaveIntent) and leave.ltime > 7 and leave.node == "tidings-1"
    event = encode_serf_message(UserEvent(3, "deploy", b"v1"))
    assert me.receive(event) == UserEvent(3, "deploy", b"v1")
    assert me.receive(event) is None
    assert me.receive(b"") is None and me.receive(b"\x03\xc1") is None
    ours = decode_serf_message(me.user_event("ping"))
    assert isinstance(ours, UserEvent) and ours.ltime > 3
    first = SerfParticipant("x")
    intent = decode_serf_message(first.join_intent())
    assert isinstance(intent, JoinIntent) and intent.ltime >= 1
