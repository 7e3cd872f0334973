"""Unidirectional connections have a session id, and the server API's `session` selects them.

As Centrifugo does, the connect push of `uni_sse` and `uni_websocket`
carries a `session`; `subscribe` and `disconnect` with that `session` act on
that one connection of the user, not on the user's others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import websockets

from tests.conftest import ServerProcess
from tests.integration.support.api import api_body as api
from tests.integration.test_sse import NEWS, connect_query, next_push, open_stream, uni_ws_url


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory({"channel": NEWS, "personal_channel": False})


async def test_api_selects_a_unidirectional_connection_by_session(server: ServerProcess) -> None:
    token = server.token("uma", channels=["news"])
    first = await open_stream(server, connect_query(token))
    second = await open_stream(server, connect_query(token))
    try:
        sessions = [(await s.event()).data["connect"]["session"] for s in (first, second)]
        async with websockets.connect(uni_ws_url(server, connect_query(token))) as ws:
            ws_session = (await next_push(ws))["connect"]["session"]
            assert all(sessions) and ws_session and len({*sessions, ws_session}) == 3

            # Subscribe only the second SSE stream to "extra", then publish there.
            await api(
                server, "subscribe", {"user": "uma", "channel": "extra", "session": sessions[1]}
            )
            assert (await second.event()).data["channel"] == "extra"  # the subscribe push
            await api(server, "publish", {"channel": "extra", "data": {"n": 1}})
            await api(server, "publish", {"channel": "news", "data": {"n": 2}})
            assert (await second.event()).data["pub"]["data"] == {"n": 1}
            assert (await second.event()).data["pub"]["data"] == {"n": 2}
            # The others got "news" only: "extra" did not reach them.
            assert (await first.event()).data == {
                "channel": "news",
                "pub": {"data": {"n": 2}, "offset": 1},
            }
            assert (await next_push(ws))["pub"]["data"] == {"n": 2}

            # A disconnect by session closes that WebSocket alone.
            disconnect = {"code": 4000, "reason": "bye"}
            await api(
                server,
                "disconnect",
                {"user": "uma", "session": ws_session, "disconnect": disconnect},
            )
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            await api(server, "publish", {"channel": "news", "data": {"n": 3}})
            for stream in (first, second):
                assert (await stream.event()).data["pub"]["data"] == {"n": 3}
    finally:
        first.close()
        second.close()
