"""Emulation routing: sessions of this node, and requests for another node through a relay."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from tidings.core.emulation import EmulationRelay, EmulationSessions, Outcome
from tidings.core.node import Node
from tidings.transport.emulation import emulation_handler
from tidings.transport.http import HttpRequest


class _Target:
    def __init__(self) -> None:
        self.received: list[bytes] = []

    def handle_commands(self, data: bytes) -> None:
        self.received.append(data)


class _Relay(EmulationRelay):
    def __init__(self, outcome: Outcome | None) -> None:
        self.outcome = outcome
        self.calls: list[tuple[str, str, bytes]] = []

    async def relay(self, node: str, session: str, data: bytes) -> Outcome:
        self.calls.append((node, session, data))
        if self.outcome is None:
            raise ConnectionError("broker down")
        return self.outcome


class _Socket:
    """Just enough of a transport to take one response."""

    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    @property
    def status(self) -> int:
        return int(self.written.split(b" ", 2)[1])


def _post(session: str, node: str) -> HttpRequest:
    body = json.dumps({"session": session, "node": node, "data": '{"id":1,"ping":{}}'})
    return HttpRequest("POST", "/emulation", "/emulation", {}, {}, body=body.encode())


def test_sessions_deliver_to_their_stream() -> None:
    sessions = EmulationSessions("n1")
    target = _Target()
    session = sessions.add(target)
    assert sessions.deliver(session, b"x") is Outcome.DELIVERED
    assert target.received == [b"x"]
    assert sessions.deliver("other", b"x") is Outcome.UNKNOWN_SESSION
    sessions.remove(session)
    assert sessions.deliver(session, b"x") is Outcome.UNKNOWN_SESSION and len(sessions) == 0
    assert sessions.is_local("") and sessions.is_local("n1") and not sessions.is_local("n2")


async def _answer(handler: Callable[..., None], request: HttpRequest) -> _Socket:
    socket = _Socket()
    handler(request, socket)
    for _ in range(10):
        await asyncio.sleep(0)
    return socket


async def test_requests_for_another_node_go_to_the_relay(
    node_factory: Callable[..., Node],
) -> None:
    node = node_factory()
    relay = _Relay(Outcome.DELIVERED)
    sessions = EmulationSessions("n1", relay)
    handler: Any = emulation_handler(node, sessions)
    assert (await _answer(handler, _post("s9", "n2"))).status == 204
    assert relay.calls == [("n2", "s9", b'{"id":1,"ping":{}}')]
    relay.outcome = Outcome.UNKNOWN_SESSION
    assert (await _answer(handler, _post("s9", "n2"))).status == 404
    relay.outcome = None  # the relay fails: 503, the SDK reconnects
    assert (await _answer(handler, _post("s9", "n2"))).status == 503
    # Without a relay, another node is unknown here.
    handler = emulation_handler(node, EmulationSessions("n1"))
    assert (await _answer(handler, _post("s9", "n2"))).status == 404
