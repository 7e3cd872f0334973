"""`tidings serve` with gossip on, against real processes: Go memberlist peers, Serf
agents and other `tidings serve` nodes.

Each side lists the others alive, deaths are detected both ways, a Serf user event
reaches the node's event dispatcher (counted in `info`), a wrong key is refused
with a log line while the node keeps serving, and `GET /dispatch` follows the
cluster: a killed node leaves the answers within failure-detection time, a node
that got SIGTERM (draining, then a graceful leave) at once.
"""

from __future__ import annotations

import asyncio
import base64
import signal
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from tests.conftest import API_KEY, ServerProcess, free_port
from tests.integration.test_gossip_interop import (
    DETECTION_LIMIT,
    GoPeer,
    go_peer_built,
)
from tests.integration.test_serf_interop import SerfAgent, serf_installed, until_status
from tests.integration.test_user_events import Hook, hook

__all__ = [
    "go_peer_built",
    "hook",
    "serf_installed",
]  # module fixtures: the peers are built/installed

KEY = b"0123456789abcdef0123456789abcdef"
Factory = Callable[..., ServerProcess]


async def api(server: ServerProcess, method: str, body: dict[str, Any] | None = None) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{server.api_url}/{method}", json=body or {}, headers={"X-API-Key": API_KEY}
        ) as response,
    ):
        reply = await response.json()
    assert "error" not in reply, reply
    return reply["result"]


async def states(server: ServerProcess) -> dict[str, str]:
    result = await api(server, "members")
    assert result["enabled"] is True
    return {m["name"]: m["state"] for m in result["members"]}


async def info_items(server: ServerProcess) -> dict[str, float]:
    items: dict[str, float] = (await api(server, "info"))["nodes"][0]["metrics"]["items"]
    return items


async def dispatch(server: ServerProcess, query: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{server.port}/dispatch?{query}") as response,
    ):
        return response.status, await response.json(content_type=None)


async def eventually(check: Callable[[], Any], limit: float) -> None:
    """Poll the async `check` until it returns true."""
    async with asyncio.timeout(limit):
        while not await check():  # noqa: ASYNC110 - polling other processes
            await asyncio.sleep(0.2)


def gossip_settings(**extra: Any) -> dict[str, Any]:
    return {"gossip_bind": f"127.0.0.1:{free_port()}", "log_level": "info", **extra}


def gossip_port(server: ServerProcess, settings: dict[str, Any]) -> int:
    return int(str(settings["gossip_bind"]).rsplit(":", 1)[1])


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "encrypted"])
async def test_node_joins_go_memberlist_peers_and_deaths_are_seen_both_ways(
    server_factory: Factory, key: bytes | None
) -> None:
    first = await GoPeer.start("go-1", key=key)
    second = await GoPeer.start("go-2", join=[first.port], key=key)
    try:
        extra: dict[str, Any] = {}
        if key:
            extra["gossip_secret_keys"] = [base64.b64encode(key).decode()]
        node = server_factory(
            gossip_settings(name="tidings-a", gossip_join=[f"127.0.0.1:{first.port}"], **extra)
        )

        async def all_alive() -> bool:
            return await states(node) == {"tidings-a": "alive", "go-1": "alive", "go-2": "alive"}

        await eventually(all_alive, 15)
        for peer in (first, second):
            await peer.wait_for(lambda e: e["event"] == "join" and e["name"] == "tidings-a", 15)

        second.kill()  # kill -9 a Go peer: the node declares it dead

        async def go_2_dead() -> bool:
            return (await states(node)).get("go-2") == "dead"

        await eventually(go_2_dead, DETECTION_LIMIT)
        items = await info_items(node)
        assert items["gossip.events.member_dead"] >= 1
        assert items["gossip.members.alive"] == 2

        node.stop(signal.SIGKILL)  # kill -9 the node: go-1 finds it failed, not left
        await first.wait_for(
            lambda e: e["event"] == "leave" and e["name"] == "tidings-a", DETECTION_LIMIT
        )
        assert first.failed("tidings-a")
    finally:
        await second.close()
        await first.close()


async def test_join_is_retried_until_a_seed_answers(server_factory: Factory) -> None:
    seed_port = free_port()
    node = server_factory(gossip_settings(name="tidings-r", gossip_join=[f"127.0.0.1:{seed_port}"]))
    await asyncio.sleep(1.5)  # at least one refused attempt
    assert "join failed" in node.log()
    peer = await GoPeer.start("go-late", port=seed_port)
    try:
        await peer.wait_for(lambda e: e["event"] == "join" and e["name"] == "tidings-r", 30)
        assert node.stop(signal.SIGTERM) == 0  # graceful: a leave, not a failure
        await peer.wait_for(lambda e: e["event"] == "leave" and e["name"] == "tidings-r", 15)
        assert not peer.failed("tidings-r")
    finally:
        await peer.close()


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "encrypted"])
async def test_node_in_a_serf_cluster(
    server_factory: Factory, key: bytes | None, hook: Hook
) -> None:
    first = await SerfAgent.start("serf-1", key=key)
    second = await SerfAgent.start("serf-2", join=first.port, key=key)
    try:
        extra: dict[str, Any] = {
            "gossip_serf": True,
            "region": "eu",
            "cluster_events_url": hook.url,
        }
        if key:
            extra["gossip_secret_keys"] = [base64.b64encode(key).decode()]
        node = server_factory(
            gossip_settings(name="tidings-s", gossip_join=[f"127.0.0.1:{first.port}"], **extra)
        )
        await until_status(second, "tidings-s", "alive", 15)
        listed = (await second.members_or_none() or {})["tidings-s"]
        assert listed["tags"]["role"] == "tidings"
        assert listed["tags"]["region"] == "eu"

        async def serf_alive() -> bool:
            view = await states(node)
            return view.get("serf-1") == "alive" and view.get("serf-2") == "alive"

        await eventually(serf_alive, 15)

        await first.command("event", "deploy", "v42")

        async def event_seen() -> bool:
            return (await info_items(node)).get("gossip.events.cluster_user_event", 0) >= 1

        await eventually(event_seen, 15)
        await asyncio.sleep(1)  # Serf's retransmissions arrive and are dropped
        assert (await info_items(node))["gossip.events.cluster_user_event"] == 1
        assert "serf user event 'deploy'" in node.log()
        # The same events through the node's event dispatcher to a webhook.
        webhook = [e for e in hook.events if e["type"] == "cluster_user_event"]
        assert [(e["detail"]["name"], e["detail"]["payload"]) for e in webhook] == [
            ("deploy", "v42")
        ]
        joined = {e["detail"]["name"] for e in hook.events if e["type"] == "member_joined"}
        assert {"serf-1", "serf-2"} <= joined

        assert node.stop(signal.SIGTERM) == 0  # graceful: Serf sees it leave
        await until_status(first, "tidings-s", "left", 15)
    finally:
        await second.close()
        await first.close()


async def test_serf_agent_death_is_seen_and_node_death_is_seen_by_serf(
    server_factory: Factory,
) -> None:
    first = await SerfAgent.start("serf-1")
    second = await SerfAgent.start("serf-2", join=first.port)
    try:
        node = server_factory(
            gossip_settings(
                name="tidings-d", gossip_serf=True, gossip_join=[f"127.0.0.1:{first.port}"]
            )
        )
        await until_status(first, "tidings-d", "alive", 15)
        second.kill()

        async def serf_2_dead() -> bool:
            return (await states(node)).get("serf-2") == "dead"

        await eventually(serf_2_dead, DETECTION_LIMIT)
        node.stop(signal.SIGKILL)
        await until_status(first, "tidings-d", "failed", DETECTION_LIMIT)
    finally:
        await second.close()
        await first.close()


async def test_wrong_key_is_refused_with_a_log_line_and_the_node_keeps_serving(
    server_factory: Factory,
) -> None:
    first = await GoPeer.start("go-k", key=KEY)
    try:
        node = server_factory(
            gossip_settings(
                name="tidings-k",
                gossip_join=[f"127.0.0.1:{first.port}"],
                gossip_secret_keys=[base64.b64encode(b"x" * 32).decode()],
            )
        )

        async def refused() -> bool:
            return "could decrypt" in node.log()

        await eventually(refused, 15)
        assert node.proc.poll() is None
        assert await states(node) == {"tidings-k": "alive"}
        status, body = await dispatch(node, "network=wifi")
        assert status == 200 and body["gateways"] == [node.ws_url]
    finally:
        await first.close()
    assert not any(e.get("name") == "tidings-k" for e in first.events)


async def test_dispatch_follows_the_cluster(server_factory: Factory) -> None:
    seed = gossip_settings(name="eu-1", region="eu")
    eu1 = server_factory(seed)
    join = [f"127.0.0.1:{gossip_port(eu1, seed)}"]
    eu2 = server_factory(gossip_settings(name="eu-2", region="eu", gossip_join=join))
    us1 = server_factory(gossip_settings(name="us-1", region="us", gossip_join=join))
    nodes = (eu1, eu2, us1)

    async def everyone_sees_three() -> bool:
        for node in nodes:
            _, body = await dispatch(node, "network=wifi")
            if len(body["gateways"]) != 3:
                return False
        return True

    await eventually(everyone_sees_three, 20)
    status, body = await dispatch(us1, "network=2g&region=eu")
    assert status == 200
    assert body["ttl"] == 3600
    assert sorted(body["gateways"][:2]) == sorted([eu1.ws_url, eu2.ws_url])
    assert body["gateways"][2] == us1.ws_url  # other regions last
    _, body = await dispatch(eu1, "network=wifi&region=us")
    assert body["gateways"][0] == us1.ws_url
    assert body["ttl"] == 300

    # Hostile or odd input: 400 with a reason, or defaults; never a 500.
    assert (await dispatch(eu1, "network=5g"))[0] == 400
    assert (await dispatch(eu1, "region=" + "x" * 100))[0] == 400
    assert (await dispatch(eu1, "region=nowhere"))[0] == 200
    assert (await dispatch(eu1, "network=%ff%00&region=%zz"))[0] == 400

    eu2.stop(signal.SIGKILL)  # killed: gone from every answer within detection time

    async def eu2_gone() -> bool:
        for node in (eu1, us1):
            _, body = await dispatch(node, "network=4g&region=eu")
            if eu2.ws_url in body["gateways"]:
                return False
        return True

    await eventually(eu2_gone, DETECTION_LIMIT)

    assert await api(us1, "drain") == {"draining": True}  # drained: gone at once

    async def us1_gone() -> bool:
        _, body = await dispatch(eu1, "network=wifi")
        return body["gateways"] == [eu1.ws_url]

    await eventually(us1_gone, 10)
    assert (await dispatch(us1, "network=wifi"))[1]["gateways"] == [eu1.ws_url]
    await api(us1, "drain", {"draining": False})

    async def us1_back() -> bool:
        _, body = await dispatch(eu1, "network=wifi")
        return us1.ws_url in body["gateways"]

    await eventually(us1_back, 10)
    assert us1.stop(signal.SIGTERM) == 0  # SIGTERM: draining then leave, gone at once

    async def us1_left() -> bool:
        return (await states(eu1)).get("us-1") == "left"

    await eventually(us1_left, 10)
    assert (await dispatch(eu1, "network=wifi"))[1]["gateways"] == [eu1.ws_url]


async def test_dispatch_without_gossip_answers_this_node(server_factory: Factory) -> None:
    node = server_factory({"region": "eu"})
    status, body = await dispatch(node, "network=3g&region=us")
    assert status == 200
    assert body == {"gateways": [node.ws_url], "ttl": 1800}
    assert (await api(node, "members")) == {"enabled": False, "members": []}
    await api(node, "drain")
    assert (await dispatch(node, "network=wifi"))[1]["gateways"] == []
