"""LookupPeers, the queue node's side of lookup, against real nsqlookupd and tidings lookup.

The same scenarios run against both (`lookupd` is parametrized), and one test
registers with both at once and compares what they answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers.nsq_processes import NsqProcess, start_nsqlookupd, start_tidings_lookup
from tidings.protocol.nsq.lookup import encode_response
from tidings.queue.lookup_peer import LookupPeers

IDENTITY = {
    "broadcast_address": "127.0.0.1",
    "hostname": "queue-test",
    "tcp_port": 14150,
    "http_port": 14151,
    "version": "1.3.0",
}
Starter = Callable[..., NsqProcess]
STARTERS: dict[str, Starter] = {"nsqlookupd": start_nsqlookupd, "tidings": start_tidings_lookup}


@pytest.fixture(params=sorted(STARTERS))
def lookupd(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NsqProcess]:
    process = STARTERS[request.param](tmp_path)
    yield process
    process.stop()


async def eventually(check: Callable[[], Any], what: str, within: float = 15.0) -> Any:
    """Poll `check` (a blocking HTTP call, run off the loop) until it returns truthy."""
    deadline = time.monotonic() + within
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def producers(lookupd: NsqProcess, topic: str) -> list[dict[str, Any]]:
    status, body = lookupd.get(f"/lookup?topic={topic}")
    return body["producers"] if status == 200 else []


def channels(lookupd: NsqProcess, topic: str) -> list[str]:
    return sorted(lookupd.get(f"/channels?topic={topic}")[1]["channels"])


async def test_register_and_unregister(lookupd: NsqProcess) -> None:
    peers = LookupPeers([lookupd.tcp_address], IDENTITY, reconnect_delay=0.05)
    await peers.start()
    try:
        peers.register("orders", None)
        peers.register("orders", "billing")
        peers.register("orders", "audit#ephemeral")
        found = await eventually(lambda: producers(lookupd, "orders"), "registration")
        assert {k: found[0][k] for k in IDENTITY} == IDENTITY
        await eventually(
            lambda: channels(lookupd, "orders") == ["audit#ephemeral", "billing"], "channels"
        )
        assert peers.lookupd_http_addresses() == [lookupd.http_address]

        peers.unregister("orders", "audit#ephemeral")  # ephemeral: gone with its producer
        await eventually(lambda: channels(lookupd, "orders") == ["billing"], "unregister")
        peers.unregister("orders", None)
        await eventually(lambda: producers(lookupd, "orders") == [], "topic unregister")
    finally:
        await peers.stop()


async def test_reregisters_everything_after_lookupd_restarts(
    lookupd: NsqProcess, tmp_path: Path
) -> None:
    peers = LookupPeers([lookupd.tcp_address], IDENTITY, reconnect_delay=0.05)
    await peers.start()
    try:
        peers.register("bare", None)
        peers.register("orders", None)
        peers.register("orders", "billing")
        await eventually(lambda: producers(lookupd, "bare"), "first registration")
        await eventually(lambda: channels(lookupd, "orders") == ["billing"], "channel")

        lookupd.stop()
        starter = STARTERS["tidings" if lookupd.name == "tidings-lookup" else "nsqlookupd"]
        restarted = starter(tmp_path, ports=(lookupd.tcp_port, lookupd.http_port))
        lookupd.proc = restarted.proc  # the fixture stops the new process
        peers.register("later", None)  # while (maybe) disconnected: carried by the snapshot
        for topic in ("bare", "orders", "later"):
            await eventually(lambda t=topic: producers(restarted, t), f"{topic} again")
        assert channels(restarted, "orders") == ["billing"]
    finally:
        await peers.stop()


async def test_pings_keep_the_node_listed(tmp_path: Path) -> None:
    # Both lookupds list a node only while it was heard from within the timeout (2 s).
    servers = [
        start_nsqlookupd(tmp_path, "-inactive-producer-timeout=2s"),
        start_tidings_lookup(tmp_path, "--inactive-producer-timeout=2"),
    ]
    peers = LookupPeers([s.tcp_address for s in servers], IDENTITY, ping_interval=0.2)
    await peers.start()
    try:
        peers.register("t", None)
        for server in servers:
            await eventually(lambda s=server: producers(s, "t"), "registration")
        await asyncio.sleep(3)  # longer than the timeout: only the PINGs keep them listed
        for server in servers:
            assert producers(server, "t"), server.name
        await peers.stop()  # no more PINGs, and the connections are closed
        for server in servers:
            await eventually(lambda s=server: producers(s, "t") == [], "gone")
    finally:
        await peers.stop()
        for server in servers:
            server.stop()


async def test_both_lookupds_answer_alike(tmp_path: Path) -> None:
    servers = [start_nsqlookupd(tmp_path), start_tidings_lookup(tmp_path)]
    peers = LookupPeers([s.tcp_address for s in servers], IDENTITY)
    await peers.start()
    try:
        peers.register("t1", "c1")
        peers.register("t1", "c2")
        peers.register("t2", None)
        for server in servers:
            await eventually(lambda s=server: len(channels(s, "t1")) == 2, "registrations")
            await eventually(lambda s=server: producers(s, "t2"), "t2")

        def view(server: NsqProcess) -> dict[str, Any]:
            found = server.get("/lookup?topic=t1")[1]
            nodes = server.get("/nodes")[1]["producers"]
            for entry in [*found["producers"], *nodes]:
                entry.pop("remote_address")  # differs: two connections
            for node in nodes:  # sorted: nsqlookupd's order is Go's map order
                pairs = sorted(zip(node["topics"], node["tombstones"], strict=True))
                node["topics"], node["tombstones"] = [t for t, _ in pairs], [b for _, b in pairs]
            return {
                "lookup": {**found, "channels": sorted(found["channels"])},
                "topics": sorted(server.get("/topics")[1]["topics"]),
                "nodes": nodes,
            }

        assert view(servers[0]) == view(servers[1])
    finally:
        await peers.stop()
        for server in servers:
            server.stop()


def test_bad_identity_and_names_are_refused() -> None:
    with pytest.raises(ValueError, match="identity"):
        LookupPeers(["127.0.0.1:1"], {**IDENTITY, "tcp_port": 0})
    with pytest.raises(ValueError, match="host:port"):
        LookupPeers(["nowhere"], IDENTITY)
    peers = LookupPeers(["127.0.0.1:1"], IDENTITY)
    with pytest.raises(ValueError, match="invalid"):
        peers.register("bad name", None)
    assert peers.registrations() == []


def test_snapshot_follows_nsqd_rules() -> None:
    peers = LookupPeers(["127.0.0.1:1"], IDENTITY)
    peers.register("a", None)
    peers.register("b", None)
    peers.register("b", "y")
    peers.register("b", "x")
    peers.register("c", "z")
    peers.unregister("c", "z")
    assert peers.registrations() == [("a", None), ("b", "x"), ("b", "y"), ("c", None)]
    peers.unregister("b", None)
    assert peers.registrations() == [("a", None), ("c", None)]


@pytest.mark.parametrize("behaviour", ["refuses", "mute", "garbage"])
async def test_misbehaving_lookupd_is_retried(behaviour: str) -> None:
    """A lookupd that errors, never answers or sends nonsense: reconnect, never crash."""
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.read(4096)  # the magic and IDENTIFY
        if behaviour == "refuses":
            writer.write(encode_response(b"E_INVALID go away"))
        elif behaviour == "garbage":
            writer.write(b"\xff\xff\xff\xff")  # a negative frame size
        else:
            await asyncio.sleep(30)  # the peer's own timeout ends this
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    peers = LookupPeers([f"127.0.0.1:{port}"], IDENTITY, reconnect_delay=0.01, timeout=0.2)
    await peers.start()
    try:
        peers.register("t", None)
        for _ in range(500):
            if connections >= 3:
                break
            await asyncio.sleep(0.02)
        assert connections >= 3
        assert not peers.peers[0].connected
    finally:
        await peers.stop()
        server.close()
