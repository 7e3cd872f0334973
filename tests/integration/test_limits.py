"""Limits of a real `tidings serve` process: connections per user, channels per
connection, command rate and abuse, connection rate and CIDR lists per IP, and
the largest frame a client may send.

Every refusal must also show in the `info` API result as a `refused.*` metric.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import OPEN_CHANNEL
from tests.integration.support.api import api_call, refusal_counters
from tests.integration.support.servers import start_with_lists
from tests.integration.support.ws import (
    STEP,
    assert_open,
    closing,
    connected_ws,
    expect_close,
    open_ws,
    raw_connect,
    recv_messages,
    send_command,
)


async def replies_to(ws: Any, ids: set[int]) -> dict[int, dict[str, Any]]:
    """The replies to every command id in `ids` (pushes and pings skipped)."""
    found: dict[int, dict[str, Any]] = {}
    async with asyncio.timeout(STEP):
        while set(found) != ids:
            for message in await recv_messages(ws):
                if message.get("id") in ids:
                    found[message["id"]] = message
    return found


def error_code(reply: dict[str, Any]) -> int | None:
    code: int | None = reply.get("error", {}).get("code")
    return code


# --- connections per user -------------------------------------------------------------------


async def test_user_connection_limit(server_factory: Any) -> None:
    server = server_factory({"user_connection_limit": 2, "channel": OPEN_CHANNEL})
    before = await refusal_counters(server)
    first, _ = await connected_ws(server.ws_url, server.token("42"))
    second, _ = await connected_ws(server.ws_url, server.token("42"))
    third, reply = await raw_connect(server.ws_url, server.token("42"))
    other, _ = await connected_ws(server.ws_url, server.token("43"))
    async with closing(first, second, third, other):
        assert "connect" not in reply, reply
        assert await expect_close(third) == 3504
        await assert_open(first, 2)
        await assert_open(second, 2)
        await assert_open(other, 2)
        after = await refusal_counters(server)
        key = "refused.refused_connection_limit"
        assert after[key] == before.get(key, 0) + 1
    # Once one of them is gone, the user may connect again.
    await asyncio.sleep(0.2)
    fourth, _ = await connected_ws(server.ws_url, server.token("42"))
    async with closing(fourth):
        await assert_open(fourth, 2)


# --- channels per connection ----------------------------------------------------------------


async def test_client_channel_limit_counts_personal_channel(server_factory: Any) -> None:
    server = server_factory({"client_channel_limit": 2, "channel": OPEN_CHANNEL})
    ws, result = await connected_ws(server.ws_url, server.token("42"))
    async with closing(ws):
        # The personal channel is a subscription like any other, so it uses one of the two.
        assert list(result["subs"]) == ["#42"]
        assert "subscribe" in await send_command(ws, 2, subscribe={"channel": "a"})
        reply = await send_command(ws, 3, subscribe={"channel": "b"})
        assert error_code(reply) == 106, reply
        await assert_open(ws, 4)
        # Leaving one channel frees its place.
        assert "unsubscribe" in await send_command(ws, 5, unsubscribe={"channel": "a"})
        assert "subscribe" in await send_command(ws, 6, subscribe={"channel": "b"})
        counters = await refusal_counters(server)
        assert counters["refused.refused_channel_limit"] == 1


async def test_client_channel_limit_without_personal_channel(server_factory: Any) -> None:
    server = server_factory(
        {"client_channel_limit": 2, "personal_channel": False, "channel": OPEN_CHANNEL}
    )
    ws, _ = await connected_ws(server.ws_url, server.token("42"))
    async with closing(ws):
        assert "subscribe" in await send_command(ws, 2, subscribe={"channel": "a"})
        assert "subscribe" in await send_command(ws, 3, subscribe={"channel": "b"})
        reply = await send_command(ws, 4, subscribe={"channel": "c"})
        assert error_code(reply) == 106, reply


async def test_server_side_channels_over_the_limit_leave_no_ghost(server_factory: Any) -> None:
    """A connect that fails on its server-side channels must not leave the user connected."""
    server = server_factory({"client_channel_limit": 1, "channel": OPEN_CHANNEL})
    ws, reply = await raw_connect(server.ws_url, server.token("42", channels=["news"]))
    async with closing(ws):
        assert "connect" not in reply, reply
        assert await expect_close(ws) == 3505  # channel limit
        status = await api_call(server, "user_status", {"users": ["42"]})
        assert status["statuses"][0]["connections"] == 0, status
        info = await api_call(server, "info", {})
        assert info["nodes"][0]["num_clients"] == 0


# --- command rate -----------------------------------------------------------------------------


async def test_command_rate_refuses_with_111(server_factory: Any) -> None:
    server = server_factory(
        {"client_command_rate": 5, "client_command_burst": 5, "channel": OPEN_CHANNEL}
    )
    ws, _ = await connected_ws(server.ws_url, server.token("42"))
    async with closing(ws):
        ids = set(range(2, 22))
        await ws.send("\n".join(json.dumps({"id": i, "ping": {}}) for i in sorted(ids)))
        replies = await replies_to(ws, ids)
        ok = [i for i, r in replies.items() if "ping" in r]
        refused = [r for r in replies.values() if error_code(r) == 111]
        assert len(ok) + len(refused) == 20, replies
        assert 3 <= len(ok) <= 7, replies  # the burst (connect took one token)
        assert len(refused) >= 13
        assert all(r["error"]["temporary"] is True for r in refused)
        # The first commands of the burst are the ones served.
        assert ok == sorted(ids)[: len(ok)]
        counters = await refusal_counters(server)
        assert counters["refused.refused_command_rate"] == len(refused)
        # The bucket refills: after a second the client may send again, still connected.
        await asyncio.sleep(1.0)
        await assert_open(ws, 100)


async def test_command_abuse_closes_with_3013(server_factory: Any) -> None:
    server = server_factory(
        {
            "client_command_rate": 5,
            "client_command_burst": 5,
            "client_command_abuse_limit": 10,
            "channel": OPEN_CHANNEL,
        }
    )
    witness, _ = await connected_ws(server.ws_url, server.token("43"))
    flooder, _ = await connected_ws(server.ws_url, server.token("42"))
    async with closing(witness, flooder):
        started = time.monotonic()
        code = None
        command_id = 2
        while code is None and time.monotonic() - started < STEP:
            batch = [json.dumps({"id": command_id + i, "ping": {}}) for i in range(10)]
            command_id += 10
            try:
                await flooder.send("\n".join(batch))
                await recv_messages(flooder, 0.5)
            except TimeoutError:
                continue
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
        assert code == 3013
        assert command_id <= 42  # cut off soon after 10 refusals, not after the flood ended
        await assert_open(witness, 2)
        counters = await refusal_counters(server)
        assert counters["refused.disconnected_command_abuse"] == 1
        assert counters["refused.refused_command_rate"] >= 10


async def test_slow_steady_client_is_not_cut_off(server_factory: Any) -> None:
    server = server_factory(
        {
            "client_command_rate": 10,
            "client_command_burst": 2,
            "client_command_abuse_limit": 3,
            "channel": OPEN_CHANNEL,
        }
    )
    ws, _ = await connected_ws(server.ws_url, server.token("42"))
    async with closing(ws):
        for i in range(15):
            await assert_open(ws, 2 + i)
            await asyncio.sleep(0.15)


# --- per-IP connection rate and CIDR lists --------------------------------------------------


async def test_connection_rate_per_ip_is_429(server_factory: Any) -> None:
    server = server_factory({"connection_rate_per_ip": 1, "connection_burst_per_ip": 3})
    sockets = [await open_ws(server.ws_url) for _ in range(3)]
    async with closing(*sockets):
        with pytest.raises(InvalidStatus) as refused:
            await open_ws(server.ws_url)
        assert refused.value.response.status_code == 429
        # The three upgraded ones are real sessions.
        for ws in sockets:
            reply = await send_command(ws, 1, connect={"token": server.token("42")})
            assert "connect" in reply, reply
        counters = await refusal_counters(server)
        assert counters["refused.ip_rate"] == 1
        await asyncio.sleep(1.2)  # one new connection per second
        late = await open_ws(server.ws_url)
        await late.close()


@pytest.mark.parametrize(
    "lists",
    [
        {"client_ip_deny": ["127.0.0.0/8"]},
        {"client_ip_deny": ["10.0.0.0/8", "127.0.0.1/32"]},
        {"client_ip_allow": ["10.0.0.0/8"]},
        {"client_ip_allow": ["127.0.0.0/8"], "client_ip_deny": ["127.0.0.1/32"]},
    ],
)
async def test_ip_lists_are_403(
    server_factory: Any, tmp_path: Path, lists: dict[str, list[str]]
) -> None:
    server = start_with_lists(server_factory, tmp_path, lists)
    for _ in range(2):
        with pytest.raises(InvalidStatus) as refused:
            await open_ws(server.ws_url)
        assert refused.value.response.status_code == 403
    counters = await refusal_counters(server)
    assert counters["refused.ip_denied"] == 2
    assert "refused.ip_rate" not in counters


async def test_ip_allow_list_lets_listed_range_in(server_factory: Any, tmp_path: Path) -> None:
    lists = {"client_ip_allow": ["10.0.0.0/8", "127.0.0.0/8"], "client_ip_deny": ["10.1.0.0/16"]}
    server = start_with_lists(server_factory, tmp_path, lists)
    ws, _ = await connected_ws(server.ws_url, server.token("42"))
    async with closing(ws):
        await assert_open(ws, 2)
    assert "refused.ip_denied" not in await refusal_counters(server)


# --- message size ------------------------------------------------------------------------------


async def test_frame_above_max_message_size_is_1009(server_factory: Any) -> None:
    server = server_factory({"client_max_message_size": 1024, "channel": OPEN_CHANNEL})
    witness, _ = await connected_ws(server.ws_url, server.token("43"))
    ws, _ = await connected_ws(server.ws_url, server.token("42"))
    async with closing(witness, ws):
        # Just below the limit is fine.
        small = {"id": 2, "publish": {"channel": "news", "data": {"x": "a" * 900}}}
        assert "publish" in await send_command(ws, 2, publish=small["publish"])
        big = {"id": 3, "publish": {"channel": "news", "data": {"x": "a" * 4000}}}
        await ws.send(json.dumps(big))
        assert await expect_close(ws) == 1009
        await assert_open(witness, 2)
