"""Every proxy type against a real aiohttp back end: accepts, refuses, changes, fails.

The node is real (memory transports); the back end is a real HTTP server in
the test's loop (`Backend`). Request bodies are compared with the field
names documented for Centrifugo v6 (fixtures/centrifugo_v6_proxy_requests.json).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.core.conftest import Conn, settle_client
from tests.upstream.backend import Backend, Seen
from tidings.core.node import Node

DOCUMENTED = json.loads(
    (Path(__file__).parent / "fixtures" / "centrifugo_v6_proxy_requests.json").read_text()
)


def assert_documented(kind: str, seen: Seen) -> dict[str, Any]:
    """The request body has the documented fields of `kind` and nothing else."""
    body = seen.body
    spec = DOCUMENTED[kind]
    missing = set(spec["always"]) - set(body)
    unknown = set(body) - set(spec["always"]) - set(spec["optional"])
    assert not missing, f"{kind}: missing {missing} in {body}"
    assert not unknown, f"{kind}: undocumented {unknown} in {body}"
    assert seen.headers["Content-Type"].startswith("application/json")
    return body


def proxied_settings(backend: Backend, **extra: Any) -> dict[str, Any]:
    def ep(path: str, **options: Any) -> dict[str, Any]:
        return {"endpoint": backend.url(path), "timeout": "1s", **options}

    settings: dict[str, Any] = {
        "proxy": {
            "connect": ep("connect", http_headers=["Cookie", "X-Real-Ip"]),
            "refresh": ep("refresh", include_connection_meta=True),
            "subscribe": ep("subscribe"),
            "publish": ep("publish"),
            "sub_refresh": ep("sub_refresh"),
            "rpc": ep("rpc"),
            "refresh_retry": 1,
        },
        "proxies": {"billing": ep("billing", static_headers={"X-Service": "tidings"})},
        "rpc_namespaces": {
            "billing": {"proxy_enabled": True, "proxy_name": "billing"},
            "off": {"proxy_enabled": False},
        },
        "namespaces": {
            "room": {
                "subscribe_proxy_enabled": True,
                "publish_proxy_enabled": True,
                "sub_refresh_proxy_enabled": True,
                "history_size": 10,
                "history_ttl": "1m",
            },
            "plain": {"allow_subscribe_for_client": True, "allow_publish_for_client": True},
        },
    }
    settings.update(extra)
    return settings


@pytest.fixture
def node(node_factory: Callable[..., Node], backend: Backend) -> Node:
    return node_factory(**proxied_settings(backend))


async def proxy_connect(node: Node, headers: dict[str, str] | None = None, **req: Any) -> Conn:
    conn = Conn(node)
    if headers:
        node.upstream.remember_headers(conn.client, headers)
    conn.last = await conn.call({"id": 1, "connect": req})  # type: ignore[attr-defined]
    return conn


def error_of(reply: dict[str, Any]) -> dict[str, Any]:
    assert "error" in reply, reply
    error: dict[str, Any] = reply["error"]
    return error


# --- connect --------------------------------------------------------------------------------


async def test_connect_accepts_and_the_result_reaches_the_client(
    node: Node, backend: Backend
) -> None:
    backend.answer(
        "connect",
        {
            "result": {
                "user": "56",
                "info": {"name": "Ann"},
                "data": {"welcome": True},
                "channels": ["plain:news"],
                "subs": {"plain:sport": {"info": {"seat": 1}, "data": {"hello": "sport"}}},
                "meta": {"tier": "gold"},
            }
        },
    )
    conn = await proxy_connect(
        node,
        headers={"cookie": "session=abc", "x-real-ip": "10.0.0.1", "user-agent": "secret"},
        name="py",
        version="1.0",
        data={"from": "client"},
        subs={"plain:news": {}},
    )
    reply = conn.last  # type: ignore[attr-defined]
    result = reply["connect"]
    assert result["data"] == {"welcome": True}
    assert set(result["subs"]) == {"plain:news", "plain:sport"}
    assert result["subs"]["plain:sport"]["data"] == {"hello": "sport"}
    assert "expires" not in result
    assert conn.client.user == "56"
    assert json.loads(conn.client.info) == {"name": "Ann"}
    assert json.loads(conn.client.subscriptions["plain:sport"].info) == {"seat": 1}
    [seen] = backend.of("connect")
    body = assert_documented("connect", seen)
    assert body["client"] == conn.client.id
    assert body["transport"] == "memory"
    assert (body["protocol"], body["encoding"]) == ("json", "json")
    assert (body["name"], body["version"]) == ("py", "1.0")
    assert body["data"] == {"from": "client"}
    assert body["channels"] == ["plain:news"]
    # Only allow-listed headers travel, with the configured spelling.
    assert seen.headers["Cookie"] == "session=abc"
    assert seen.headers["X-Real-Ip"] == "10.0.0.1"
    assert "secret" not in seen.headers.values()


async def test_connect_with_a_token_does_not_ask_the_back_end(node: Node, backend: Backend) -> None:
    conn = Conn(node)
    await conn.connect("alice")
    assert conn.client.user == "alice"
    assert backend.of("connect") == []


async def test_connect_error_reaches_the_client_with_its_code(node: Node, backend: Backend) -> None:
    backend.answer("connect", {"error": {"code": 1000, "message": "nope", "temporary": True}})
    conn = await proxy_connect(node)
    assert error_of(conn.last) == {"code": 1000, "message": "nope", "temporary": True}  # type: ignore[attr-defined]
    assert node.hub.num_clients == 0


async def test_connect_disconnect_closes_with_the_back_ends_code(
    node: Node, backend: Backend
) -> None:
    backend.answer("connect", {"disconnect": {"code": 4501, "reason": "unauthorized"}})
    conn = Conn(node)
    await conn.send({"id": 1, "connect": {}})
    assert conn.transport.close_code == 4501
    assert conn.transport.close_reason == "unauthorized"
    assert node.hub.num_clients == 0


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"<html>oops</html>", 200),  # not JSON
        (b'{"result": {"user": "\xff\xfe"}}', 200),  # not UTF-8
        (b'{"result": {"user": "u", "expire_at": 123456789012345678901234567890}}', 200),
        (b'{"result": {"user": 56}}', 200),  # wrong type
        (b'{"result": {"b64info": "***"}}', 200),  # bad base64
        (b'{"disconnect": {"code": 1000, "reason": "x"}}', 200),  # not a close code for apps
        (b'{"error": {"code": 0}}', 200),
        (b'{"result": {"user": "u"}}', 500),
        (b"", 200),
    ],
)
async def test_connect_garbage_is_a_temporary_internal_error(
    node: Node, backend: Backend, body: bytes, status: int
) -> None:
    backend.answer("connect", body, status=status)
    conn = await proxy_connect(node)
    assert error_of(conn.last) == {  # type: ignore[attr-defined]
        "code": 100,
        "message": "internal server error",
        "temporary": True,
    }
    assert node.hub.num_clients == 0
    assert node.upstream.http.failures[("connect", "garbage" if status == 200 else "status")] == 1


async def test_pretty_printed_answers_are_made_compact(node: Node, backend: Backend) -> None:
    pretty = json.dumps({"result": {"user": "u", "data": {"a": [1, 2], "b": "x y"}}}, indent=4)
    backend.answer("connect", pretty.encode())
    conn = Conn(node)
    conn.client.handle_frame(b'{"id": 1, "connect": {}}')
    await settle_client(conn.client)
    [frame] = conn.transport.frames
    # One message per line in a JSON frame: the payload must not bring its newlines.
    assert b'"data":{"a":[1,2],"b":"x y"}' in frame
    assert b"\n" not in frame.rstrip(b"\n")


async def test_connect_back_end_down_or_slow_is_temporary(
    node_factory: Callable[..., Node], backend: Backend
) -> None:
    down = proxied_settings(backend)
    down["proxy"]["connect"]["endpoint"] = "http://127.0.0.1:1/connect"
    conn = await proxy_connect(node_factory(**down))
    assert error_of(conn.last)["code"] == 100  # type: ignore[attr-defined]

    slow = proxied_settings(backend)
    slow["proxy"]["connect"]["timeout"] = "200ms"
    backend.answer("connect", {"result": {"user": "late"}}, delay=3)
    slow_node = node_factory(**slow)
    conn = await proxy_connect(slow_node)
    assert error_of(conn.last) == {  # type: ignore[attr-defined]
        "code": 100,
        "message": "internal server error",
        "temporary": True,
    }
    assert slow_node.upstream.http.failures[("connect", "timeout")] == 1


async def test_client_gone_while_the_back_end_answers_leaves_no_ghost(
    node: Node, backend: Backend
) -> None:
    backend.answer("connect", {"result": {"user": "56"}}, delay=0.3)
    conn = Conn(node)
    conn.client.handle_frame(b'{"id": 1, "connect": {}}')
    await backend.wait_for("connect")
    conn.client.transport_closed()
    await settle_client(conn.client)
    assert node.hub.num_clients == 0
    assert node.hub.num_user_clients("56") == 0


# --- refresh --------------------------------------------------------------------------------


async def test_refresh_proxy_prolongs_then_expires_a_connection(
    node: Node, backend: Backend
) -> None:
    soon = int(time.time()) + 1
    backend.answer("connect", {"result": {"user": "56", "expire_at": soon, "meta": {"k": "v"}}})
    # Built when asked: the new expiry is 2 s after the refresh, whenever it comes.
    answers = iter(
        [
            lambda: {"result": {"expire_at": int(time.time()) + 2, "info": {"v": 2}}},
            lambda: {"result": {"expired": True}},
        ]
    )
    backend.answer("refresh", lambda body: _json_answer(next(answers)()))
    conn = await proxy_connect(node)
    # The node refreshes a proxied connection itself: the client is not told to.
    assert "expires" not in conn.last["connect"]  # type: ignore[attr-defined]
    [first] = await backend.wait_for("refresh", 1)
    body = assert_documented("refresh", first)
    assert body["user"] == "56"
    assert body["meta"] == {"k": "v"}
    await _until(lambda: json.loads(conn.client.info or b"null") == {"v": 2})
    assert conn.transport.close_code is None
    await backend.wait_for("refresh", 2)
    await _until(lambda: conn.transport.close_code == 3005)


async def test_refresh_failure_is_retried(node: Node, backend: Backend) -> None:
    backend.answer("connect", {"result": {"user": "56", "expire_at": int(time.time()) + 1}})
    backend.answer("refresh", b"not json")
    conn = await proxy_connect(node)
    await backend.wait_for("refresh", 1)
    assert conn.transport.close_code is None  # a failed refresh keeps the connection
    backend.answer("refresh", {"result": {"expired": True}})
    await backend.wait_for("refresh", 2)
    await _until(lambda: conn.transport.close_code == 3005)


# --- subscribe and sub_refresh --------------------------------------------------------------


async def test_subscribe_accepts_with_info_and_data(node: Node, backend: Backend) -> None:
    backend.answer("connect", {"result": {"user": "56", "meta": {"m": 1}}})
    backend.answer("subscribe", {"result": {"info": {"role": "mod"}, "data": {"motd": "hi"}}})
    conn = await proxy_connect(node)
    reply = await conn.subscribe("room:1", data={"want": "seat"})
    assert reply["subscribe"]["data"] == {"motd": "hi"}
    assert json.loads(conn.client.subscriptions["room:1"].info) == {"role": "mod"}
    [seen] = backend.of("subscribe")
    body = assert_documented("subscribe", seen)
    assert (body["user"], body["channel"], body["data"]) == ("56", "room:1", {"want": "seat"})
    assert "meta" not in body  # include_connection_meta is off for subscribe


async def test_subscribe_refused_by_the_back_end(node: Node, backend: Backend) -> None:
    backend.answer("subscribe", {"error": {"code": 403, "message": "permission denied"}})
    conn = await proxy_connect(node)
    reply = await conn.subscribe("room:1")
    assert error_of(reply) == {"code": 403, "message": "permission denied"}
    assert "room:1" not in conn.client.subscriptions
    backend.answer("subscribe", {"disconnect": {"code": 4000, "reason": "go away"}})
    await conn.send({"id": 3, "subscribe": {"channel": "room:2"}})
    assert conn.transport.close_code == 4000


async def test_subscribe_without_proxy_keeps_the_channel_rules(
    node: Node, backend: Backend
) -> None:
    backend.answer("connect", {"result": {"user": "56"}})
    conn = await proxy_connect(node)
    assert "subscribe" in await conn.subscribe("plain:x")
    assert backend.of("subscribe") == []


async def test_subscribe_back_end_down_is_temporary(node: Node, backend: Backend) -> None:
    conn = await proxy_connect(node)
    backend.answer("subscribe", b"{}", status=503)
    reply = await conn.subscribe("room:1")
    assert error_of(reply) == {"code": 100, "message": "internal server error", "temporary": True}


async def test_sub_refresh_proxy_keeps_then_ends_a_subscription(
    node: Node, backend: Backend
) -> None:
    backend.answer("connect", {"result": {"user": "56"}})
    backend.answer("subscribe", {"result": {"expire_at": int(time.time()) + 1}})
    answers = iter(
        [
            lambda: {"result": {"expire_at": int(time.time()) + 2}},
            lambda: {"result": {"expired": True}},
        ]
    )
    backend.answer("sub_refresh", lambda body: _json_answer(next(answers)()))
    conn = await proxy_connect(node)
    reply = await conn.subscribe("room:1")
    assert "expires" not in reply["subscribe"]
    [first] = await backend.wait_for("sub_refresh", 1)
    body = assert_documented("sub_refresh", first)
    assert (body["user"], body["channel"]) == ("56", "room:1")
    assert conn.transport.close_code is None
    await backend.wait_for("sub_refresh", 2)
    await _until(lambda: conn.transport.close_code == 3006)


# --- publish ----------------------------------------------------------------------------------


async def test_publish_accepts_changes_and_refuses(node: Node, backend: Backend) -> None:
    backend.answer("connect", {"result": {"user": "56"}})
    backend.answer("subscribe", {"result": {}})
    reader = await proxy_connect(node)
    await reader.subscribe("room:1")
    writer = await proxy_connect(node)

    reply = await writer.call({"id": 5, "publish": {"channel": "room:1", "data": {"t": 1}}})
    assert "publish" in reply
    body = assert_documented("publish", backend.of("publish")[-1])
    assert (body["channel"], body["data"], body["user"]) == ("room:1", {"t": 1}, "56")

    backend.answer(
        "publish",
        b'{"result": {"data": {\n  "t": "changed"\n}, "tags": {"k": "v"}, "skip_history": true}}',
    )
    await writer.call({"id": 6, "publish": {"channel": "room:1", "data": {"t": 2}}})
    await settle_client(reader.client)
    pubs = [r["push"]["pub"] for r in reader.transport.take() if "pub" in r.get("push", {})]
    assert [p["data"] for p in pubs] == [{"t": 1}, {"t": "changed"}]
    assert pubs[1]["tags"] == {"k": "v"}
    assert "tags" not in pubs[0]
    # skip_history: only the first publication was kept.
    assert node.history.top("room:1").offset == 1  # type: ignore[union-attr]

    backend.answer("publish", {"error": {"code": 1001, "message": "spam"}})
    reply = await writer.call({"id": 8, "publish": {"channel": "room:1", "data": {"t": 3}}})
    assert error_of(reply) == {"code": 1001, "message": "spam"}
    backend.answer("publish", b"[]")
    reply = await writer.call({"id": 9, "publish": {"channel": "room:1", "data": {"t": 4}}})
    assert error_of(reply)["code"] == 100
    await settle_client(reader.client)
    pubs = [r for r in reader.transport.take() if "pub" in r.get("push", {})]
    assert pubs == []  # refused publications went nowhere


async def test_publish_replacement_must_be_json(node: Node, backend: Backend) -> None:
    backend.answer("connect", {"result": {"user": "56"}})
    writer = await proxy_connect(node)
    backend.answer("publish", {"result": {"b64data": base64.b64encode(b"\x00\x01").decode()}})
    reply = await writer.call({"id": 5, "publish": {"channel": "room:1", "data": {"t": 1}}})
    assert error_of(reply)["code"] == 100
    backend.answer("publish", {"result": {"b64data": base64.b64encode(b'{"ok":1}').decode()}})
    reply = await writer.call({"id": 6, "publish": {"channel": "room:1", "data": {"t": 1}}})
    assert "publish" in reply


# --- rpc ----------------------------------------------------------------------------------------


async def test_rpc_routes_by_method_namespace(node: Node, backend: Backend) -> None:
    backend.answer("connect", {"result": {"user": "56"}})
    backend.answer("rpc", {"result": {"data": {"from": "default"}}})
    backend.answer("billing", {"result": {"data": {"from": "billing"}}})
    conn = await proxy_connect(node)
    reply = await conn.call({"id": 2, "rpc": {"method": "getPrice", "data": {"id": 12}}})
    assert reply["rpc"]["data"] == {"from": "default"}
    reply = await conn.call({"id": 3, "rpc": {"method": "billing:charge", "data": {"n": 1}}})
    assert reply["rpc"]["data"] == {"from": "billing"}
    body = assert_documented("rpc", backend.of("billing")[0])
    assert (body["method"], body["data"], body["user"]) == ("billing:charge", {"n": 1}, "56")
    assert backend.of("billing")[0].headers["X-Service"] == "tidings"
    assert assert_documented("rpc", backend.of("rpc")[0])["method"] == "getPrice"
    # A namespace with its proxy off answers like a node without one.
    reply = await conn.call({"id": 4, "rpc": {"method": "off:x"}})
    assert error_of(reply)["code"] == 108
    assert len(backend.of("rpc")) == 1


async def test_rpc_error_disconnect_and_failure(node: Node, backend: Backend) -> None:
    backend.answer("connect", {"result": {"user": "56"}})
    conn = await proxy_connect(node)
    backend.answer("rpc", {"error": {"code": 1404, "message": "no such thing"}})
    reply = await conn.call({"id": 2, "rpc": {"method": "x"}})
    assert error_of(reply) == {"code": 1404, "message": "no such thing"}
    backend.answer("rpc", {"result": {"data": 1}}, delay=3)  # beyond the 1 s timeout
    reply = await conn.call({"id": 3, "rpc": {"method": "x"}})
    assert error_of(reply)["temporary"] is True
    backend.answer("rpc", {"disconnect": {"code": 4999, "reason": "x" * 300}})
    await conn.send({"id": 4, "rpc": {"method": "x"}})
    assert conn.transport.close_code == 4999
    assert len(conn.transport.close_reason.encode()) <= 123


async def test_binary_encoding_sends_base64(
    node_factory: Callable[..., Node], backend: Backend
) -> None:
    settings = proxied_settings(backend)
    settings["proxy"]["rpc"]["binary_encoding"] = True
    node = node_factory(**settings)
    backend.answer("connect", {"result": {"user": "56"}})
    backend.answer("rpc", {"result": {"b64data": base64.b64encode(b'{"x":1}').decode()}})
    conn = await proxy_connect(node)
    reply = await conn.call({"id": 2, "rpc": {"method": "m", "data": {"a": 1}}})
    assert reply["rpc"]["data"] == {"x": 1}
    body = assert_documented("rpc", backend.of("rpc")[0])
    assert body["encoding"] == "binary"
    assert json.loads(base64.b64decode(body["b64data"])) == {"a": 1}
    assert "data" not in body


# --- helpers ------------------------------------------------------------------------------------


def _json_answer(body: dict[str, Any]) -> Any:
    from tests.upstream.backend import Answer

    return Answer(json.dumps(body).encode())


async def _until(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


async def test_status_transforms_turn_statuses_into_answers(
    node_factory: Callable[..., Node], backend: Backend
) -> None:
    settings = proxied_settings(backend)
    settings["proxy"]["subscribe"]["status_to_code_transforms"] = [
        {"status_code": 403, "to_error": {"code": 403, "message": "forbidden"}},
        {"status_code": 429, "to_disconnect": {"code": 4429, "reason": "slow down"}},
    ]
    node = node_factory(**settings)
    backend.answer("connect", {"result": {"user": "56"}})
    conn = await proxy_connect(node)
    backend.answer("subscribe", b"no", status=403)
    reply = await conn.subscribe("room:1")
    assert error_of(reply) == {"code": 403, "message": "forbidden"}
    backend.answer("subscribe", b"no", status=500)  # not transformed: temporary 100
    assert error_of(await conn.subscribe("room:1", cid=3))["code"] == 100
    backend.answer("subscribe", b"no", status=429)
    await conn.send({"id": 4, "subscribe": {"channel": "room:1"}})
    assert conn.transport.close_code == 4429


async def test_a_refresh_answered_with_an_error_is_tried_again(
    node: Node, backend: Backend
) -> None:
    backend.answer("connect", {"result": {"user": "56", "expire_at": int(time.time()) + 1}})
    backend.answer("refresh", {"error": {"code": 1000, "message": "later"}})
    conn = await proxy_connect(node)
    await backend.wait_for("refresh", 1)
    await _until(lambda: node.upstream.http.failures[("refresh", "garbage")] == 1)
    assert conn.transport.close_code is None
    assert conn.client.expire_at > time.time()  # still expiring: the retry is scheduled
    backend.answer("refresh", {"result": {"expired": True}})
    await backend.wait_for("refresh", 2)
    await _until(lambda: conn.transport.close_code == 3005)


async def test_emulated_headers_are_passed_on_below_transport_headers(
    node_factory: Callable[..., Node], backend: Backend
) -> None:
    settings = proxied_settings(backend)
    settings["proxy"]["connect"]["emulated_headers"] = ["Authorization", "Cookie", "X-Evil"]
    settings["proxy"]["rpc"]["emulated_headers"] = ["Authorization"]
    settings["proxy"]["rpc"]["static_headers"] = {"Authorization": "static", "X-S": "1"}
    node = node_factory(**settings)
    backend.answer("connect", {"result": {"user": "56"}})
    emulated = {"authorization": "Bearer abc", "Cookie": "sid=emulated", "X-Evil": "a\r\nb"}
    conn = Conn(node)
    node.upstream.remember_headers(conn.client, {"cookie": "sid=real"})
    await conn.call({"id": 1, "connect": {"headers": emulated}})
    [seen] = backend.of("connect")
    assert seen.headers["Authorization"] == "Bearer abc"
    assert seen.headers["Cookie"] == "sid=real"  # the transport's value wins
    assert "X-Evil" not in seen.headers  # a value with a line break is dropped
    # Kept for the connection's later calls; emulated beats static.
    await conn.call({"id": 2, "rpc": {"method": "m"}})
    rpc = backend.of("rpc")[0]
    assert rpc.headers["Authorization"] == "Bearer abc"
    assert rpc.headers["X-S"] == "1"
