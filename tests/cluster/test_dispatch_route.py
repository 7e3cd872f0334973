"""`GET /dispatch`: answers from the view, checked query values, never an exception."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.cluster.dispatch_route import Dispatch
from tidings.transport.http import BadRequest, parse_head

URL = "ws://10.0.0.1:8000/connection/websocket"


def answer(dispatch: Dispatch, target: str, method: str = "GET") -> tuple[int, dict[str, object]]:
    request = parse_head(f"{method} {target} HTTP/1.1\r\nHost: x".encode())
    return dispatch.answer(request)


def test_without_gossip_this_node_is_the_answer() -> None:
    dispatch = Dispatch("n1", (URL,), "eu")
    assert answer(dispatch, "/dispatch?network=2g&region=us") == (
        200,
        {"gateways": [URL], "ttl": 3600},
    )
    assert answer(dispatch, "/dispatch") == (200, {"gateways": [URL], "ttl": 300})
    assert answer(dispatch, "/dispatch?network=4G")[1]["ttl"] == 600
    dispatch.drain()
    assert answer(dispatch, "/dispatch")[1]["gateways"] == []
    dispatch.drain(False)
    assert answer(dispatch, "/dispatch")[1]["gateways"] == [URL]


def test_bad_values_are_400_with_a_reason() -> None:
    dispatch = Dispatch("n1", (URL,), "eu")
    assert answer(dispatch, "/dispatch?network=5g")[0] == 400
    assert answer(dispatch, "/dispatch?region=" + "r" * 65)[0] == 400
    assert answer(dispatch, "/dispatch", method="POST")[0] == 405
    assert dispatch.answers == {"ok": 0, "bad_request": 3}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_query_is_answered(query: str) -> None:
    dispatch = Dispatch("n1", (URL,), "eu")
    try:
        request = parse_head(f"GET /dispatch?{query} HTTP/1.1".encode("utf-8", "replace"))
    except BadRequest:
        return
    status, body = dispatch.answer(request)
    assert status in (200, 400)
    assert ("gateways" in body) == (status == 200)
