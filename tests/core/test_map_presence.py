"""Map presence entries written and removed by the node (in-process, memory store)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from tests.core.conftest import OPEN, Conn, settle
from tests.core.test_maps import MAP_NS, subscribe_map
from tidings.config import ConfigError, build
from tidings.core.node import Node

PRESENCE: dict[str, Any] = {
    **OPEN,
    "map_key_ttl": "30s",
    "map_stream_size": 100,
    "map_stream_ttl": "1m",
}
NAMESPACES = {
    "room": {
        **OPEN,
        "allow_subscribe_for_anonymous": True,
        "map_clients_presence_channel_prefix": "pc:",
        "map_users_presence_channel_prefix": "pu:",
    },
    "pc": {**PRESENCE, "subscription_type": "map_clients"},
    "pu": {**PRESENCE, "subscription_type": "map_users"},
    "cur": {**MAP_NS, "map_remove_client_on_unsubscribe": True, "allow_publish_for_client": True},
}


@pytest.fixture
def node(node_factory: Callable[..., Node]) -> Node:
    return node_factory(namespaces=NAMESPACES, allow_anonymous=True)


async def entries(node: Node, channel: str) -> dict[str, Any]:
    """key -> the user of its ClientInfo ("" without one)."""
    page = await node.maps.store.read_state(channel, "", 100)
    return {e.key: msgspec.json.decode(e.info)["user"] if e.info else "" for e in page.entries}


async def test_entries_follow_subscriptions(node: Node) -> None:
    a1, a2, anon = Conn(node), Conn(node), Conn(node)
    await a1.connect("ann")
    await a2.connect("ann")
    await anon.connect(None)
    for c in (a1, a2, anon):
        assert "subscribe" in await c.subscribe("room:x")
    assert await entries(node, "pc:room:x") == {
        a1.client.id: "ann",
        a2.client.id: "ann",
        anon.client.id: "",
    }
    assert await entries(node, "pu:room:x") == {"ann": ""}  # one per user, none anonymous

    await a1.call({"id": 9, "unsubscribe": {"channel": "room:x"}})
    a2.client.transport_closed()  # the connection dropped
    await settle()
    await asyncio.sleep(0.05)  # removals run in the background
    assert await entries(node, "pc:room:x") == {anon.client.id: ""}
    # A user's entry stays until its key TTL: a quick reconnect is no leave and join.
    assert await entries(node, "pu:room:x") == {"ann": ""}
    changes, _ = await node.maps.store.read_stream("pc:room:x", None, 100)
    assert [(c.key, c.removed) for c in changes][-2:] == [
        (a1.client.id, True),
        (a2.client.id, True),
    ]


async def test_watchers_need_the_namespace_type(node: Node) -> None:
    c = Conn(node)
    await c.connect("w")
    wrong = await c.subscribe("pc:room:x", type=3, phase=2)
    assert wrong["error"]["code"] == 103
    stream = await c.subscribe("pc:room:x", cid=3)
    assert stream["error"]["code"] == 103
    ok = await c.subscribe("pc:room:x", cid=4, type=2, phase=2)
    assert ok["subscribe"]["type"] == 2


async def test_a_clients_own_key_goes_with_it(node: Node) -> None:
    """map_remove_client_on_unsubscribe: the key named by the client id (a cursor) is removed."""
    stays, goes = Conn(node), Conn(node)
    for c, user in ((stays, "s"), (goes, "g")):
        await c.connect(user)
        await subscribe_map(c, "cur:doc")
        cursor = {"channel": "cur:doc", "type": 1, "key": c.client.id, "data": {"x": 1}}
        assert "publish" in await c.call({"id": 30, "publish": cursor})
    shared = {"channel": "cur:doc", "type": 1, "key": "title", "data": "t"}
    assert "publish" in await goes.call({"id": 31, "publish": shared})
    goes.client.transport_closed()
    await settle()
    await asyncio.sleep(0.05)  # removals run in the background
    assert set(await entries(node, "cur:doc")) == {stays.client.id, "title"}


@pytest.mark.parametrize(
    "namespaces",
    [
        {"room": {"map_clients_presence_channel_prefix": "nope:"}},
        {"room": {"map_clients_presence_channel_prefix": "pu:"}, "pu": NAMESPACES["pu"]},
        {"pc": {"subscription_type": "map_clients"}},  # no key TTL
        {"sp": {"subscription_type": "shared_poll", "shared_poll_mode": "sometimes"}},
        {"room": {"map_remove_client_on_unsubscribe": True}},  # not a map namespace
    ],
)
def test_config_refusals(namespaces: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        build({"token_hmac_secret_key": "k" * 32, "namespaces": namespaces})
