"""Differential: `shared_poll_publish` of tidings answers as Centrifugo v6.9.1 (built here).

The same calls go to both servers, configured alike (a versioned namespace
that allows publishing, one that does not, a stream namespace); replies must
be equal, 107 messages aside (tidings' say more, see docs/api.md).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import OPEN_CHANNEL, ServerProcess, free_port
from tests.integration.test_proxy_centrifugo import CENTRIFUGO, _wait_port

NOWHERE = "http://127.0.0.1:9/poll"  # never polled: nothing tracks a key here

CALLS: list[dict[str, Any]] = [
    {"channel": "sp:q", "key": "a", "version": 1, "data": {"x": 1}},
    {"channel": "sp:q", "key": "a", "version": 1, "b64data": "eyJ4IjoxfQ=="},
    {"channel": "sp:q", "key": "a", "data": 1},
    {"channel": "sp:q", "key": "", "version": 1, "data": 1},
    {"channel": "", "key": "a", "version": 1, "data": 1},
    {"channel": "sp2:q", "key": "a", "version": 1, "data": 1},
    {"channel": "plain:q", "key": "a", "version": 1, "data": 1},
    {"channel": "nons:q", "key": "a", "version": 1, "data": 1},
    {"channel": "sp:q", "key": "a", "version": 1, "b64data": "@@"},
    {"channel": "sp:q", "key": "a", "version": 2, "data": 1, "epoch": "e"},
]


@pytest.fixture
def centrifugo_api(tmp_path: Path) -> Iterator[str]:
    assert CENTRIFUGO.exists(), "no Centrifugo v6: run scripts/setup-test-deps.sh"
    port = free_port()
    versioned = {"mode": "versioned", "publish_enabled": True}
    config = {
        "http_server": {"address": "127.0.0.1", "port": port},
        "http_api": {"key": "k"},
        "log": {"level": "error"},
        "shared_poll": {"hmac_secret_key": "s"},
        "channel": {
            "proxy": {"shared_poll_refresh": {"endpoint": NOWHERE}},
            "namespaces": [
                {"name": "sp", "subscription_type": "shared_poll", "shared_poll": versioned},
                {"name": "sp2", "subscription_type": "shared_poll"},
                {"name": "plain"},
            ],
        },
    }
    path = tmp_path / "centrifugo-shared-poll.json"
    path.write_text(json.dumps(config))
    log = (tmp_path / "centrifugo-shared-poll.log").open("wb")
    proc = subprocess.Popen([str(CENTRIFUGO), "-c", str(path)], stdout=log, stderr=log)
    try:
        _wait_port(port, proc)
        yield f"http://127.0.0.1:{port}/api"
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def tidings(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    polled = {"subscription_type": "shared_poll", "shared_poll_endpoint": NOWHERE}
    namespaces = {
        "sp": {**polled, "shared_poll_mode": "versioned", "shared_poll_publish_enabled": True},
        "sp2": polled,
        "plain": OPEN_CHANNEL,
    }
    return server_factory({"shared_poll_hmac_secret_key": "s", "namespaces": namespaces})


def normalized(reply: dict[str, Any]) -> dict[str, Any]:
    if reply.get("error", {}).get("code") == 107:
        return {"error": {"code": 107}}
    return reply


async def replies(url: str, key: str) -> list[dict[str, Any]]:
    got = []
    async with aiohttp.ClientSession() as session:
        for body in CALLS:
            async with session.post(
                f"{url}/shared_poll_publish", json=body, headers={"X-API-Key": key}
            ) as resp:
                got.append(normalized(await resp.json()))
    return got


async def test_shared_poll_publish_replies_match_centrifugo(
    centrifugo_api: str, tidings: ServerProcess
) -> None:
    theirs = await replies(centrifugo_api, "k")
    ours = await replies(tidings.api_url, tidings.api_key)
    for body, want, got in zip(CALLS, theirs, ours, strict=True):
        assert got == want, body
