"""The client state table."""

from __future__ import annotations

from tidings.protocol.nsq import ClientState, ErrorCode, Rule, is_ephemeral, is_valid_name
from tidings.protocol.nsq.states import RULES, VERBS, next_state, rule


def test_table_is_complete() -> None:
    for state in ClientState:
        assert set(RULES[state]) == set(VERBS)


def test_publish_and_nop_everywhere() -> None:
    for state in ClientState:
        for verb in ("PUB", "MPUB", "DPUB", "NOP"):
            assert rule(state, verb) is Rule.ALLOW


def test_transitions() -> None:
    assert next_state(ClientState.INIT, "SUB") is ClientState.SUBSCRIBED
    assert next_state(ClientState.SUBSCRIBED, "CLS") is ClientState.CLOSING
    assert next_state(ClientState.SUBSCRIBED, "FIN") is ClientState.SUBSCRIBED
    assert rule(ClientState.CLOSING, "RDY") is Rule.IGNORE
    assert rule(ClientState.CLOSING, "FIN") is Rule.ALLOW


def test_fatal_codes() -> None:
    non_fatal = {c for c in ErrorCode if not c.fatal}
    assert non_fatal == {ErrorCode.FIN_FAILED, ErrorCode.REQ_FAILED, ErrorCode.TOUCH_FAILED}


def test_names() -> None:
    assert is_valid_name("a.b_c-D9")
    assert is_valid_name("x#ephemeral") and is_ephemeral("x#ephemeral")
    assert is_valid_name("x" * 64)
    for bad in ("", "x" * 65, "a b", "a/b", "a#b", "#ephemeral", "é"):
        assert not is_valid_name(bad), bad
