"""Differential check: the proxy requests of tidings and of Centrifugo v6 itself, side by side.

The same client session (connect without a token carrying a cookie, subscribe,
publish, RPC, then a server-side refresh) runs against a real Centrifugo v6
(built by scripts/build-centrifugo.sh) and against `tidings serve`, both
proxying to the same kind of back end. Each request body must have the same
fields with the same values (the client id aside), and the allow-listed
cookie must be passed on by both.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerProcess, free_port
from tests.integration.support.ws import closing, open_ws, send_command
from tests.upstream.backend import Backend

CENTRIFUGO = Path(__file__).resolve().parents[1] / "peers" / "bin" / "centrifugo"
KINDS = ("connect", "subscribe", "publish", "rpc", "refresh")

pytestmark = [pytest.mark.timeout(90)]


@pytest.fixture
async def backends() -> AsyncIterator[tuple[Backend, Backend]]:
    pair = (Backend(), Backend())
    for backend in pair:
        await backend.start()
    yield pair
    for backend in pair:
        await backend.stop()


def script(backend: Backend) -> None:
    """The same answers for both servers: a user, an expiry soon, meta, accepted calls."""
    backend.answer(
        "connect",
        lambda body: _answer(
            {"result": {"user": "42", "expire_at": int(time.time()) + 2, "meta": {"tier": "x"}}}
        ),
    )
    backend.answer("refresh", lambda body: _answer({"result": {"expired": True}}))
    backend.answer("subscribe", {"result": {}})
    backend.answer("publish", {"result": {}})
    backend.answer("rpc", {"result": {"data": {"ok": True}}})


def _answer(body: dict[str, Any]) -> Any:
    from tests.upstream.backend import Answer

    return Answer(json.dumps(body).encode())


@pytest.fixture
def centrifugo(tmp_path: Path) -> Iterator[Callable[[Backend], str]]:
    assert CENTRIFUGO.exists(), "no Centrifugo v6: run scripts/setup-test-deps.sh"
    procs: list[subprocess.Popen[bytes]] = []

    def start(backend: Backend) -> str:
        port = free_port()
        proxy = {"timeout": "2s", "http_headers": ["Cookie"], "emulated_headers": ["Authorization"]}
        config = {
            "http_server": {"address": "127.0.0.1", "port": port},
            "log": {"level": "error"},
            "client": {
                "allowed_origins": ["*"],
                "proxy": {
                    "connect": {"enabled": True, "endpoint": backend.url("connect"), **proxy},
                    "refresh": {
                        "enabled": True,
                        "endpoint": backend.url("refresh"),
                        "include_connection_meta": True,
                        **proxy,
                    },
                },
            },
            "channel": {
                "proxy": {
                    "subscribe": {"endpoint": backend.url("subscribe"), **proxy},
                    "publish": {"endpoint": backend.url("publish"), **proxy},
                },
                "without_namespace": {
                    "subscribe_proxy_enabled": True,
                    "publish_proxy_enabled": True,
                },
            },
            "rpc": {
                "proxy": {"endpoint": backend.url("rpc"), **proxy},
                "without_namespace": {"proxy_enabled": True},
            },
        }
        path = tmp_path / f"centrifugo-{port}.json"
        path.write_text(json.dumps(config))
        log = (tmp_path / f"centrifugo-{port}.log").open("wb")
        procs.append(subprocess.Popen([str(CENTRIFUGO), "-c", str(path)], stdout=log, stderr=log))
        _wait_port(port, procs[-1])
        return f"ws://127.0.0.1:{port}/connection/websocket"

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


def _wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert proc.poll() is None, "centrifugo exited"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("centrifugo did not start")


async def session(url: str, backend: Backend) -> dict[str, Any]:
    """Run the scripted session; the first request body and headers of each proxy type."""
    ws = await open_ws(url, additional_headers={"Cookie": "sid=42"})
    async with closing(ws):
        connect = {
            "name": "diff",
            "version": "1.0",
            "data": {"hello": 1},
            "headers": {"Authorization": "Bearer emulated"},
        }
        reply = await send_command(ws, 1, connect=connect)
        assert "connect" in reply, reply
        replies = {"connect": reply["connect"]}
        reply = await send_command(ws, 2, subscribe={"channel": "room", "data": {"s": 1}})
        assert "subscribe" in reply, reply
        replies["subscribe"] = reply["subscribe"]
        reply = await send_command(ws, 3, publish={"channel": "room", "data": {"p": 1}})
        assert "publish" in reply, reply
        reply = await send_command(ws, 4, rpc={"method": "getPrice", "data": {"r": 1}})
        assert reply["rpc"]["data"] == {"ok": True}, reply
        await backend.wait_for("refresh", within=20)
    seen: dict[str, Any] = {kind: backend.of(kind)[0] for kind in KINDS}
    return {**seen, "replies": replies}


async def test_tidings_sends_what_centrifugo_sends(
    server_factory: Callable[..., ServerProcess],
    centrifugo: Callable[[Backend], str],
    backends: tuple[Backend, Backend],
) -> None:
    theirs_backend, ours_backend = backends
    for backend in backends:
        script(backend)
    proxy = {"timeout": "2s", "http_headers": ["Cookie"], "emulated_headers": ["Authorization"]}
    ours_server = server_factory(
        {
            "proxy": {
                "connect": {"endpoint": ours_backend.url("connect"), **proxy},
                "refresh": {
                    "endpoint": ours_backend.url("refresh"),
                    "include_connection_meta": True,
                    **proxy,
                },
                "subscribe": {"endpoint": ours_backend.url("subscribe"), **proxy},
                "publish": {"endpoint": ours_backend.url("publish"), **proxy},
                "rpc": {"endpoint": ours_backend.url("rpc"), **proxy},
            },
            "channel": {"subscribe_proxy_enabled": True, "publish_proxy_enabled": True},
        }
    )
    theirs, ours = await asyncio.gather(
        session(centrifugo(theirs_backend), theirs_backend),
        session(ours_server.ws_url, ours_backend),
    )
    for kind in KINDS:
        expected, got = theirs[kind].body, ours[kind].body
        expected.pop("client"), got.pop("client")
        assert got == expected, f"{kind}: tidings sent {got}, Centrifugo v6 sent {expected}"
        assert ours[kind].headers.get("Cookie") == theirs[kind].headers.get("Cookie") == "sid=42"
        # Emulated headers: passed on (or not) by both alike, on every proxy type.
        auth = theirs[kind].headers.get("Authorization")
        assert ours[kind].headers.get("Authorization") == auth, (kind, auth)
        assert ours[kind].headers["Content-Type"] == theirs[kind].headers["Content-Type"]
    # The client sees the same: a proxied connection is refreshed by the server, not told to.
    for name in ("connect", "subscribe"):
        assert ("expires" in ours["replies"][name]) == ("expires" in theirs["replies"][name])
