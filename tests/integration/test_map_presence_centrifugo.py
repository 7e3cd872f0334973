"""Differential: map presence as the npm SDK sees it, tidings against Centrifugo v6.9.1.

The same scenario runs on both servers, configured alike: members subscribe
to a channel with centrifuge-python, watchers use the npm SDK's
`newMapClientsSubscription` / `newMapUsersSubscription`. What the watchers
see (entries, joins and leaves, with client ids replaced by placeholders)
must be the same.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import OPEN_CHANNEL, SECRET, ServerProcess, free_port
from tests.integration.support.node_sdk import sdk_clients
from tests.integration.support.sdk import connecting
from tests.integration.test_proxy_centrifugo import CENTRIFUGO, _wait_port

SCRIPT = Path(__file__).parent / "support" / "map_client.cjs"
WATCHED = "room:lobby"
MAP = {"key_ttl": "30s", "stream_size": 100, "stream_ttl": "5m"}


@pytest.fixture
def centrifugo(tmp_path: Path) -> Iterator[ServerProcess]:
    assert CENTRIFUGO.exists(), "no Centrifugo v6: run scripts/setup-test-deps.sh"
    port = free_port()
    presence = {"allow_subscribe_for_client": True, "map": {"mode": "recoverable", **MAP}}
    config = {
        "http_server": {"address": "127.0.0.1", "port": port},
        "client": {"token": {"hmac_secret_key": SECRET}, "allowed_origins": ["*"]},
        "log": {"level": "error"},
        "channel": {
            "namespaces": [
                {
                    "name": "room",
                    "allow_subscribe_for_client": True,
                    "map_clients_presence_channel_prefix": "pc:",
                    "map_users_presence_channel_prefix": "pu:",
                },
                {"name": "pc", "subscription_type": "map_clients", **presence},
                {"name": "pu", "subscription_type": "map_users", **presence},
            ]
        },
    }
    path = tmp_path / "centrifugo-presence.json"
    path.write_text(json.dumps(config))
    log_path = tmp_path / "centrifugo-presence.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [str(CENTRIFUGO), "-c", str(path)], stdout=log, stderr=log, text=True
        )
    try:
        _wait_port(port, proc)
        yield ServerProcess(proc=proc, port=port, api_port=port, log_path=log_path)
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def tidings(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    presence = {
        "allow_subscribe_for_client": True,
        "map_key_ttl": MAP["key_ttl"],
        "map_stream_size": MAP["stream_size"],
        "map_stream_ttl": MAP["stream_ttl"],
    }
    namespaces = {
        "room": {
            **OPEN_CHANNEL,
            "map_clients_presence_channel_prefix": "pc:",
            "map_users_presence_channel_prefix": "pu:",
        },
        "pc": {**presence, "subscription_type": "map_clients"},
        "pu": {**presence, "subscription_type": "map_users"},
    }
    return server_factory({"namespaces": namespaces})


async def scenario(server: ServerProcess) -> list[Any]:
    """What the watchers see, client ids replaced by the order they first appear in."""
    seen: list[Any] = []
    ids: dict[str, str] = {}

    def named(event: dict[str, Any]) -> dict[str, Any]:
        key = event.get("key", "")
        if key and key not in ("alice", "bob"):
            event = event | {"key": ids.setdefault(key, f"client-{len(ids)}")}
        return event

    async with sdk_clients(server, SCRIPT) as start, connecting(server) as connect:
        alice = await connect("alice")
        await alice.subscribed(WATCHED)
        clients = await start("watcher", "pc:" + WATCHED, "clients")
        seen.append([named(e) for e in (await clients.next("sync"))["entries"]])
        bob = await connect("bob")
        await bob.subscribed(WATCHED)
        seen.append(named(await clients.next("update")))
        await alice.close()
        seen.append(named(await clients.next("update")))
        users = await start("watcher", "pu:" + WATCHED, "users")
        entries = (await users.next("sync"))["entries"]
        seen.append(sorted((named(e) for e in entries), key=lambda e: str(e["key"])))
    return seen


async def test_map_presence_as_in_centrifugo(
    centrifugo: ServerProcess, tidings: ServerProcess
) -> None:
    theirs = await scenario(centrifugo)
    ours = await scenario(tidings)
    assert ours == theirs
    assert theirs[1]["user"] == "bob" and theirs[2]["removed"] is True  # the scenario ran
