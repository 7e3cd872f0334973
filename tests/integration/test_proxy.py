"""Proxies of a real `tidings serve` process to a real aiohttp back end, used by real clients.

centrifuge-python connects without a token (the back end knows the user by a
cookie passed on from the WebSocket upgrade), subscribes, publishes and calls
RPCs through the proxies; raw sockets check failures and the node's limit on
concurrent proxy calls.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ServerProcess
from tests.integration.support.sdk import TIMEOUT, Sdk
from tests.integration.support.ws import closing, open_ws, send_command, send_connect
from tests.upstream.backend import Answer, Backend
from tests.upstream.test_coordinator import assert_documented


def settings(backend: Backend, **proxy: Any) -> dict[str, Any]:
    def ep(path: str, **options: Any) -> dict[str, Any]:
        return {"endpoint": backend.url(path), "timeout": "1s", **options}

    return {
        "proxy": {
            "connect": ep("connect", http_headers=["Cookie"]),
            "subscribe": ep("subscribe"),
            "publish": ep("publish"),
            "rpc": ep("rpc"),
            **proxy,
        },
        "namespaces": {
            "room": {
                "subscribe_proxy_enabled": True,
                "publish_proxy_enabled": True,
            }
        },
    }


def user_from_cookie(body: dict[str, Any], headers: Any) -> Answer:
    cookie = headers.get("Cookie", "")
    if not cookie.startswith("sid="):
        return Answer(json.dumps({"disconnect": {"code": 4501, "reason": "unauthorized"}}).encode())
    user = cookie.removeprefix("sid=")
    return Answer(json.dumps({"result": {"user": user, "data": {"hello": user}}}).encode())


@pytest.mark.parametrize("protobuf", [False, True], ids=["json", "protobuf"])
async def test_sdk_connects_through_the_connect_proxy_without_a_token(
    server_factory: Callable[..., ServerProcess], backend: Backend, protobuf: bool
) -> None:
    server = server_factory(settings(backend))
    backend.answer_with_headers("connect", user_from_cookie)
    backend.answer("subscribe", {"result": {"data": {"motd": "welcome"}}})
    backend.answer(
        "publish", lambda body: Answer(json.dumps({"result": {"data": {"edited": True}}}).encode())
    )
    backend.answer("rpc", {"result": {"data": {"price": 2019}}})
    sdk = Sdk(
        server.ws_url, "", within=TIMEOUT, headers={"Cookie": "sid=42"}, use_protobuf=protobuf
    )
    try:
        await sdk.connect()
        [connected] = sdk.rec.of("connected")
        data = json.loads(connected.data) if protobuf else connected.data
        assert data == {"hello": "42"}
        body = assert_documented("connect", backend.of("connect")[0])
        assert body["transport"] == "websocket"
        assert body["protocol"] == ("protobuf" if protobuf else "json")

        sub, rec = await sdk.subscribed("room:1")
        body = assert_documented("subscribe", backend.of("subscribe")[0])
        assert (body["user"], body["channel"]) == ("42", "room:1")

        def payload(value: Any) -> Any:
            return json.dumps(value).encode() if protobuf else value

        await sub.publish(payload({"text": "hi"}))
        [pub] = await rec.wait("publication")
        assert (json.loads(pub.pub.data) if protobuf else pub.pub.data) == {"edited": True}
        body = assert_documented("publish", backend.of("publish")[0])
        assert body["data"] == {"text": "hi"}

        result = await sdk.client.rpc("getPrice", payload({"id": 1}))
        assert (json.loads(result.data) if protobuf else result.data) == {"price": 2019}
        assert assert_documented("rpc", backend.of("rpc")[0])["method"] == "getPrice"
    finally:
        await sdk.close()


async def test_without_the_cookie_the_back_end_disconnects(
    server_factory: Callable[..., ServerProcess], backend: Backend
) -> None:
    server = server_factory(settings(backend))
    backend.answer_with_headers("connect", user_from_cookie)
    ws = await open_ws(server.ws_url)
    async with closing(ws):
        await ws.send(json.dumps({"id": 1, "connect": {}}))
        with pytest.raises(Exception):  # noqa: B017 - the socket closes
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 4501


async def test_back_end_down_slow_or_garbage_gives_a_temporary_error(
    server_factory: Callable[..., ServerProcess], backend: Backend
) -> None:
    down = settings(backend)
    down["proxy"]["connect"]["endpoint"] = "http://127.0.0.1:1/connect"
    for server in (server_factory(down), server_factory(settings(backend))):
        backend.answer("connect", {"result": {"user": "u"}}, delay=3)  # beyond the 1 s timeout
        ws = await open_ws(server.ws_url)
        async with closing(ws):
            reply = await send_connect(ws, None)
            assert reply["error"] == {
                "code": 100,
                "message": "internal server error",
                "temporary": True,
            }
    backend.answer("connect", b'{"result": {"user": "u", "expire_at": 1e400}}')
    ws = await open_ws(server.ws_url)
    async with closing(ws):
        reply = await send_connect(ws, None)
        assert reply["error"]["code"] == 100
        # The connection is still there to try again.
        backend.answer("connect", {"result": {"user": "u"}})
        await ws.send(json.dumps({"id": 2, "connect": {}}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert reply["connect"]["client"]


async def test_concurrent_proxy_calls_are_bounded_per_node(
    server_factory: Callable[..., ServerProcess], backend: Backend
) -> None:
    bounded = settings(backend, max_concurrent=3, max_waiting=5)
    bounded["proxy"]["rpc"]["timeout"] = "5s"  # the line moves; only a full line refuses
    server = server_factory(bounded)
    backend.answer("connect", {"result": {"user": "u"}})
    backend.answer("rpc", {"result": {"data": "ok"}}, delay=0.5)
    sockets = [await open_ws(server.ws_url) for _ in range(20)]
    async with closing(*sockets):
        for ws in sockets:
            assert "connect" in await send_connect(ws, None)
        replies = await asyncio.gather(
            *(send_command(ws, 2, rpc={"method": "slow"}) for ws in sockets)
        )
    answered = [r for r in replies if "rpc" in r]
    refused = [r for r in replies if "error" in r]
    assert backend.peak <= 3
    assert len(answered) + len(refused) == 20
    assert len(answered) >= 8  # 3 running and 5 waiting all get their answer
    assert refused, "a flood beyond running + waiting calls must be refused"
    assert all(
        r["error"] == {"code": 100, "message": "internal server error", "temporary": True}
        for r in refused
    )
    # The node's own count of what it refused, as Prometheus sees it (no API key needed).
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{server.api_port}/metrics") as response,
    ):
        text = await response.text()
    errors = {
        sample.labels["reason"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "tidings_proxy_errors_total" and sample.labels["type"] == "rpc"
    }
    assert sum(errors.values()) == len(refused)


async def test_sse_connects_through_the_connect_proxy_with_its_cookie(
    server_factory: Callable[..., ServerProcess], backend: Backend
) -> None:
    from tests.integration.test_sse import open_stream

    server = server_factory(settings(backend))
    backend.answer_with_headers("connect", user_from_cookie)
    stream = await open_stream(server, {"cf_connect": "{}"}, headers={"Cookie": "sid=7"})
    try:
        assert stream.status == 200
        event = await stream.event()
        assert event.data["connect"]["data"] == {"hello": "7"}
        body = assert_documented("connect", backend.of("connect")[0])
        assert body["transport"] == "uni_sse"
        assert backend.of("connect")[0].headers["Cookie"] == "sid=7"
    finally:
        stream.close()
    # Without the cookie the back end refuses: the stream ends with its disconnect.
    stream = await open_stream(server, {"cf_connect": "{}"})
    try:
        event = await stream.event()
        assert event.data.get("disconnect", {}).get("code") == 4501, event
    finally:
        stream.close()


async def test_proxies_configured_by_flags(
    server_factory: Callable[..., ServerProcess], backend: Backend
) -> None:
    server = server_factory(
        {"allow_anonymous": True},
        args=[
            "--proxy",
            f"rpc.endpoint={backend.url('rpc')}",
            "--proxy",
            'rpc.http_headers=["Cookie"]',
            "--proxies",
            f"other.endpoint={backend.url('other')}",
            "--rpc-namespace",
            "ns.proxy_enabled=true",
            "--rpc-namespace",
            "ns.proxy_name=other",
        ],
    )
    backend.answer("rpc", {"result": {"data": "default"}})
    backend.answer("other", {"result": {"data": "other"}})
    ws = await open_ws(server.ws_url, additional_headers={"Cookie": "sid=1"})
    async with closing(ws):
        assert "connect" in await send_connect(ws, None)
        assert (await send_command(ws, 2, rpc={"method": "m"}))["rpc"]["data"] == "default"
        assert (await send_command(ws, 3, rpc={"method": "ns:m"}))["rpc"]["data"] == "other"
    assert backend.of("rpc")[0].headers["Cookie"] == "sid=1"
