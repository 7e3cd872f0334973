"""The session state machine: connect first, one request per command, pongs only when asked."""

from __future__ import annotations

import pytest

from tidings.protocol.centrifuge import codes
from tidings.protocol.centrifuge.json_codec import JsonCodec
from tidings.protocol.centrifuge.messages import REQUEST_FIELDS, Command
from tidings.protocol.centrifuge.session import (
    ALLOWED,
    PONG,
    UNKNOWN,
    Session,
    SessionState,
    SessionViolation,
    method_of,
)

codec = JsonCodec()


def cmd(text: str) -> Command:
    (command,) = codec.decode(text.encode())
    return command


def connected() -> Session:
    session = Session()
    assert session.accept(cmd('{"id":1,"connect":{}}')) == "connect"
    session.connected()
    return session


def test_command_fields_and_request_fields_agree() -> None:
    fields = set(Command.__struct_fields__) - {"id"}
    assert fields == set(REQUEST_FIELDS)


# --- method_of -------------------------------------------------------------------


@pytest.mark.parametrize("method", [m for m in REQUEST_FIELDS if m != "send"])
def test_method_of_each_request(method: str) -> None:
    assert method_of(cmd(f'{{"id":7,"{method}":{{}}}}')) == method


def test_send_needs_no_id() -> None:
    assert method_of(cmd('{"send":{"data":1}}')) == "send"


def test_empty_command_is_a_pong() -> None:
    assert method_of(cmd("{}")) == PONG


def test_id_without_request_is_unknown() -> None:
    assert method_of(cmd('{"id":3}')) == UNKNOWN
    assert method_of(cmd('{"id":3,"some_future_method":{}}')) == UNKNOWN


def test_several_requests_in_one_command_is_a_violation() -> None:
    with pytest.raises(SessionViolation) as info:
        method_of(cmd('{"id":1,"ping":{},"presence":{"channel":"c"}}'))
    assert info.value.disconnect == codes.BAD_REQUEST
    assert "several" in info.value.detail


@pytest.mark.parametrize("method", ["connect", "subscribe", "publish", "ping", "rpc"])
def test_request_without_id_is_a_violation(method: str) -> None:
    with pytest.raises(SessionViolation) as info:
        method_of(cmd(f'{{"{method}":{{}}}}'))
    assert info.value.disconnect.code == 3501
    assert method in info.value.detail


# --- the state table -------------------------------------------------------------


def test_table_awaiting_connect_allows_only_connect() -> None:
    assert ALLOWED[SessionState.AWAITING_CONNECT] == {"connect"}


def test_table_connected_allows_everything_but_connect() -> None:
    allowed = ALLOWED[SessionState.CONNECTED]
    assert "connect" not in allowed
    assert set(REQUEST_FIELDS) - {"connect"} <= allowed
    assert {PONG, UNKNOWN} <= allowed


def test_table_closed_allows_nothing() -> None:
    assert ALLOWED[SessionState.CLOSED] == frozenset()


# --- Session ---------------------------------------------------------------------


def test_new_session_awaits_connect() -> None:
    session = Session()
    assert session.state is SessionState.AWAITING_CONNECT
    assert session.awaiting_pong is False


@pytest.mark.parametrize(
    "text",
    [
        '{"id":1,"subscribe":{"channel":"c"}}',
        '{"id":1,"ping":{}}',
        '{"send":{"data":1}}',
        '{"id":1}',
        "{}",
    ],
)
def test_anything_before_connect_is_3501(text: str) -> None:
    session = Session()
    with pytest.raises(SessionViolation) as info:
        session.accept(cmd(text))
    assert info.value.disconnect == codes.BAD_REQUEST
    assert "before connect" in info.value.detail
    assert session.state is SessionState.AWAITING_CONNECT


def test_accepting_connect_does_not_change_state_until_connected() -> None:
    session = Session()
    assert session.accept(cmd('{"id":1,"connect":{}}')) == "connect"
    assert session.state is SessionState.AWAITING_CONNECT
    session.connected()
    assert session.state is SessionState.CONNECTED


@pytest.mark.parametrize("method", [m for m in REQUEST_FIELDS if m not in ("connect", "send")])
def test_connected_session_accepts_requests(method: str) -> None:
    assert connected().accept(cmd(f'{{"id":2,"{method}":{{}}}}')) == method


def test_connected_session_accepts_send_and_unknown() -> None:
    session = connected()
    assert session.accept(cmd('{"send":{"data":{}}}')) == "send"
    assert session.accept(cmd('{"id":9}')) == UNKNOWN


def test_second_connect_is_a_violation() -> None:
    session = connected()
    with pytest.raises(SessionViolation) as info:
        session.accept(cmd('{"id":2,"connect":{}}'))
    assert info.value.disconnect.code == 3501
    assert "unexpected connect" in info.value.detail


def test_pong_without_ping_is_a_violation() -> None:
    session = connected()
    with pytest.raises(SessionViolation) as info:
        session.accept(cmd("{}"))
    assert info.value.disconnect.code == 3501
    assert "pong without ping" in info.value.detail


def test_pong_after_ping_is_accepted_once() -> None:
    session = connected()
    session.ping_sent()
    assert session.awaiting_pong is True
    assert session.accept(cmd("{}")) == PONG
    assert session.awaiting_pong is False
    with pytest.raises(SessionViolation):
        session.accept(cmd("{}"))


def test_other_commands_do_not_answer_a_ping() -> None:
    session = connected()
    session.ping_sent()
    session.accept(cmd('{"id":2,"ping":{}}'))
    assert session.awaiting_pong is True


def test_closed_session_accepts_nothing() -> None:
    session = connected()
    session.close()
    assert session.state is SessionState.CLOSED
    with pytest.raises(SessionViolation) as info:
        session.accept(cmd('{"id":2,"ping":{}}'))
    assert info.value.detail == "session closed"


def test_violation_is_an_exception_with_detail() -> None:
    exc = SessionViolation(codes.BAD_REQUEST, "why")
    assert str(exc) == "why"
    assert exc.disconnect is codes.BAD_REQUEST
