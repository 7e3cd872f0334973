"""The demo's HTTP routes on the client port, and the settings demo mode adds (no browser)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from urllib.parse import quote

import aiohttp
import jwt
import pytest

from tests.conftest import SECRET, ServerProcess
from tidings.channel_options import ChannelOptions
from tidings.config import build
from tidings.demo import CHAT_NAMESPACE, chat_options, configure
from tidings.settings import Settings


@pytest.fixture
def demo_server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory({"demo": True})


async def get(server: ServerProcess, path: str, method: str = "GET") -> tuple[int, str, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"http://127.0.0.1:{server.port}{path}") as response,
    ):
        return response.status, response.headers.get("Content-Type", ""), await response.read()


async def test_page_and_its_files(demo_server: ServerProcess) -> None:
    status, content_type, body = await get(demo_server, "/")
    assert (status, content_type) == (200, "text/html; charset=utf-8")
    assert b"tidings chat" in body
    assert b"/static/chat.js" in body
    for path, kind in (("/static/chat.js", "text/javascript"), ("/static/chat.css", "text/css")):
        status, content_type, body = await get(demo_server, path)
        assert status == 200
        assert content_type.startswith(kind)
        assert body
    status, _, body = await get(demo_server, "/", "HEAD")
    assert status == 200
    assert body == b""
    status, _, _ = await get(demo_server, "/", "POST")
    assert status == 405
    status, _, _ = await get(demo_server, "/static/nothing.js")
    assert status == 404


async def test_token_is_signed_with_the_node_secret(demo_server: ServerProcess) -> None:
    status, content_type, body = await get(demo_server, "/demo/token?user=" + quote("Ada.L"))
    assert status == 200
    assert content_type.startswith("application/json")
    token = json.loads(body)["token"]
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["sub"] == "Ada.L"
    assert claims["exp"] > time.time() + 600


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?user=",
        "?user=" + "x" * 33,
        "?user=%3Cscript%3E",
        # Not usable as a user id in a personal channel: would always get 3500.
        "?user=" + quote("John Smith"),
        "?user=" + quote("a,b"),
        "?user=" + quote("a#b"),
    ],
)
async def test_token_refuses_bad_names(demo_server: ServerProcess, query: str) -> None:
    status, _, body = await get(demo_server, "/demo/token" + query)
    assert status == 400
    assert "no spaces" in json.loads(body)["error"]


async def test_no_demo_routes_without_demo(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory({})
    for path in ("/", "/demo/token?user=alice", "/static/chat.js", "/static/centrifuge.js"):
        status, _, _ = await get(server, path)
        assert status == 404, path


def test_demo_banner_names_the_page(demo_server: ServerProcess) -> None:
    assert f"http://127.0.0.1:{demo_server.port}/" in demo_server.log()


def test_demo_adds_the_chat_namespace() -> None:
    settings = build({"demo": True})
    configure(settings)
    chat = settings.namespaces[CHAT_NAMESPACE]
    assert chat == chat_options()
    assert chat.history_size == 50
    assert chat.history_enabled
    assert chat.presence and chat.join_leave and chat.force_recovery
    assert chat.allow_subscribe_for_client
    assert chat.allow_publish_for_subscriber
    assert chat.allow_presence_for_subscriber
    assert chat.allow_history_for_subscriber
    assert not chat.allow_publish_for_anonymous


def test_demo_keeps_a_chat_namespace_the_user_defined() -> None:
    settings = build({"demo": True, "namespaces": {"chat": {"history_size": 7}}})
    configure(settings)
    assert settings.namespaces["chat"] == ChannelOptions(history_size=7)


def test_no_chat_namespace_without_demo() -> None:
    settings = Settings()
    configure(settings)
    assert CHAT_NAMESPACE not in settings.namespaces
