"""Integers no store can hold, from every door, answer 107 (or 3501) and nothing else.

Whatever the decoders let through, the store refuses offsets and limits
outside 0 <= n < 2^63 before any I/O, and the node answers a clean bad
request: never 500, never error 100 with a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.adversarial.canary import Canary
from tests.conftest import ServerProcess
from tests.integration.support.api import api_raw
from tests.integration.support.ws import connected_ws, open_ws, send_command

HUGE = (2**64, -(2**64), 2**63, 10**30)
RECOVER = {"channel": "room:a", "recoverable": True, "recover": True, "epoch": "x"}


def _settings() -> dict[str, Any]:
    return {
        "client_ping_interval": 25,
        "channel": {"allow_subscribe_for_client": True},
        "namespaces": {
            "room": {
                "history_size": 10,
                "history_ttl": "1h",
                "allow_subscribe_for_client": True,
                "allow_history_for_client": True,
            },
            "vault": {"history_size": 10, "history_ttl": "1h", "durable": True},
        },
    }


#: A bad number is refused where it is decoded (HTTP 400) or by the store (200 + error).
BAD_REQUEST = (200, 400)


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory(_settings())


async def test_api_history_and_delivery_status_answer_107(server: ServerProcess) -> None:
    async with Canary(server) as canary:
        for channel in ("room:a", "vault:a", "#someone"):
            await api_raw(server, "publish", {"channel": channel, "data": {}})
            for bad in HUGE:
                history = {"channel": channel, "limit": bad}
                body = await api_raw(server, "history", history, statuses=BAD_REQUEST)
                assert body.get("error", {}).get("code") == 107, (channel, bad, body)
                since = {"offset": bad, "epoch": ""}
                history = {"channel": channel, "since": since}
                body = await api_raw(server, "history", history, statuses=BAD_REQUEST)
                assert body.get("error", {}).get("code") == 107, (channel, bad, body)
                if bad > 0:
                    status = {"channel": channel, "offset": bad}
                    body = await api_raw(server, "delivery_status", status, statuses=BAD_REQUEST)
                    assert body.get("error", {}).get("code") == 107, (channel, bad, body)
            batch = {"commands": [{"history": {"channel": channel, "limit": 2**64}}]}
            body = await api_raw(server, "batch", batch, statuses=BAD_REQUEST)
            errors = [body.get("error")] + [r.get("error") for r in body.get("replies", [])]
            assert any(e and e["code"] == 107 for e in errors), body
        await canary.check(min_rounds=1)
    assert "Traceback" not in server.log()


async def test_client_history_subscribe_and_ack_answer_107(server: ServerProcess) -> None:
    ws, _ = await connected_ws(server.ws_url, server.token("u1"))
    command_id = 10
    for bad in HUGE:
        for request in (
            {"history": {"channel": "room:a", "limit": bad}},
            {"history": {"channel": "room:a", "since": {"offset": bad, "epoch": "x"}}},
            {"subscribe": {**RECOVER, "offset": bad}},
            {"rpc": {"method": "ack", "data": {"channel": "#u1", "offset": bad}}},
        ):
            reply = await send_command(ws, command_id, **request)
            assert reply.get("error", {}).get("code") == 107, (request, reply)
            command_id += 1
    await ws.close()
    assert "Traceback" not in server.log()


async def test_connect_with_a_huge_recovery_hint_is_refused(server: ServerProcess) -> None:
    """Refused where it is decoded: error 107 naming the field, never a half-made connection."""
    ws = await open_ws(server.ws_url)
    token = server.token("u2", channels=["room:srv"])
    hint = {"room:srv": {"recover": True, "offset": 2**64, "epoch": "x"}}
    reply = await send_command(ws, 1, connect={"token": token, "subs": hint})
    assert reply.get("error", {}).get("code") == 107, reply
    assert "offset" in reply["error"]["message"], reply
    status = await api_raw(server, "user_status", {"users": ["u2"]}, statuses=(200,))
    assert all(s.get("online") is not True for s in status["result"]["statuses"]), status
    assert "Traceback" not in server.log()
