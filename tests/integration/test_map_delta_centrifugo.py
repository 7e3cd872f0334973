"""Differential: per-key map deltas as the npm SDK sees them, tidings against Centrifugo v6.9.1.

The same interleaved changes (`map_publish` with `delta: true`, a removal,
a key set again, a change whose delta is larger than the value) go to a
delta map subscriber on each server, configured alike; the values the SDK
shows must be the same, and so must the number of changes that came as deltas.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SECRET, ServerProcess, free_port
from tests.integration.support.node_sdk import sdk_clients
from tests.integration.test_map_delta_sdk import DELTA_MAP_NS, document, exercise, put
from tests.integration.test_map_sdk import SCRIPT
from tests.integration.test_proxy_centrifugo import CENTRIFUGO, _wait_port

API_KEY = "centrifugo-api-key"


@pytest.fixture
def centrifugo(tmp_path: Path) -> Iterator[ServerProcess]:
    assert CENTRIFUGO.exists(), "no Centrifugo v6: run scripts/setup-test-deps.sh"
    port = free_port()
    namespace = {
        "name": "md",
        "subscription_type": "map",
        "allow_subscribe_for_client": True,
        "allowed_delta_types": ["fossil"],
        "map": {"mode": "recoverable", "stream_size": 100, "stream_ttl": "5m", "key_ttl": "5m"},
    }
    config = {
        "http_server": {"address": "127.0.0.1", "port": port},
        "http_api": {"key": API_KEY},
        "client": {"token": {"hmac_secret_key": SECRET}, "allowed_origins": ["*"]},
        "log": {"level": "error"},
        "channel": {"namespaces": [namespace]},
    }
    path = tmp_path / "centrifugo-map-delta.json"
    path.write_text(json.dumps(config))
    log_path = tmp_path / "centrifugo-map-delta.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [str(CENTRIFUGO), "-c", str(path)], stdout=log, stderr=log, text=True
        )
    try:
        _wait_port(port, proc)
        yield ServerProcess(proc=proc, port=port, api_port=port, log_path=log_path, api_key=API_KEY)
    finally:
        proc.kill()
        proc.wait()


async def scenario(server: ServerProcess) -> tuple[list[Any], dict[str, Any]]:
    """The SDK's updates after the changes, and its delta statistics."""
    for key in ("a", "b", "c"):
        await put(server, "md:doc", key, document(key, 0))
    async with sdk_clients(server, SCRIPT) as start:
        client = await start("alice", "md:doc", "delta")
        await exercise(server, client, "md:doc")
        await client.send("stats")
        stats = await client.next("stats")
        updates = [ctx for kind, ctx in client.events if kind == "update"]
        return updates, stats


async def test_map_deltas_as_in_centrifugo(
    centrifugo: ServerProcess, server_factory: Callable[..., ServerProcess]
) -> None:
    tidings = server_factory({"namespaces": {"md": DELTA_MAP_NS}})
    theirs, their_stats = await scenario(centrifugo)
    ours, our_stats = await scenario(tidings)
    assert ours == theirs
    # The same changes came as deltas (the SDK counts them) from both.
    counts = ("numPublications", "numFullPayloads", "numDeltaPayloads")
    assert {c: our_stats[c] for c in counts} == {c: their_stats[c] for c in counts}
    assert their_stats["numDeltaPayloads"] > 0
