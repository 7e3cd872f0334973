"""Integers no store can hold, from every door, answer 107 (or 3501) and nothing else.

Whatever the decoders let through, the store refuses offsets and limits
outside 0 <= n < 2^63 before any I/O, and the node answers a clean bad
request: never 500, never error 100 with a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.adversarial.canary import Canary
from tests.conftest import ServerProcess
from tests.integration.support.api import api_raw
from tests.integration.support.ws import connected_ws, expect_close, open_ws, send_command

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


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory(_settings())


async def test_api_history_and_delivery_status_answer_107(server: ServerProcess) -> None:
    async with Canary(server) as canary:
        for channel in ("room:a", "vault:a", "#someone"):
            await api_raw(server, "publish", {"channel": channel, "data": {}})
            for bad in HUGE:
                body = await api_raw(server, "history", {"channel": channel, "limit": bad})
                assert body.get("error", {}).get("code") == 107, (channel, bad, body)
                since = {"offset": bad, "epoch": ""}
                body = await api_raw(server, "history", {"channel": channel, "since": since})
                assert body.get("error", {}).get("code") == 107, (channel, bad, body)
                if bad > 0:
                    status = {"channel": channel, "offset": bad}
                    body = await api_raw(server, "delivery_status", status)
                    assert body.get("error", {}).get("code") == 107, (channel, bad, body)
            batch = {"commands": [{"history": {"channel": channel, "limit": 2**64}}]}
            body = await api_raw(server, "batch", batch)
            assert body["replies"][0]["error"]["code"] == 107, body
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


async def test_connect_with_a_huge_recovery_hint_closes_3501(server: ServerProcess) -> None:
    ws = await open_ws(server.ws_url)
    token = server.token("u2", channels=["room:srv"])
    hint = {"room:srv": {"recover": True, "offset": 2**64, "epoch": "x"}}
    await ws.send(json.dumps({"id": 1, "connect": {"token": token, "subs": hint}}))
    assert await expect_close(ws) == 3501
    assert "Traceback" not in server.log()
