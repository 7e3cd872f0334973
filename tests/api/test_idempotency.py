"""Idempotency keys: a retried publish is stored and delivered once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from tests.core.conftest import Conn, make_settings, settle
from tidings.api.idempotency import IdempotencyCache
from tidings.api.methods import ServerApi
from tidings.core.node import Node
from tidings.testing import FakeClock

# --- the cache -----------------------------------------------------------------------


def test_cache_returns_what_was_put() -> None:
    cache = IdempotencyCache(ttl=10, clock=FakeClock())
    assert cache.get("k") is None
    cache.put("k", {"offset": 1})
    assert cache.get("k") == {"offset": 1}


def test_cache_entries_expire() -> None:
    clock = FakeClock()
    cache = IdempotencyCache(ttl=10, clock=clock)
    cache.put("k", 1)
    clock.advance(9.9)
    assert cache.get("k") == 1
    clock.advance(0.1)
    assert cache.get("k") is None


def test_cache_drops_oldest_beyond_size() -> None:
    cache = IdempotencyCache(ttl=10, size=2, clock=FakeClock())
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("a", 11)  # refreshed: now the newest
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (11, None, 3)


def test_put_again_extends_the_ttl() -> None:
    clock = FakeClock()
    cache = IdempotencyCache(ttl=10, clock=clock)
    cache.put("k", 1)
    clock.advance(8)
    cache.put("k", 2)
    clock.advance(8)
    assert cache.get("k") == 2


# --- through the API -------------------------------------------------------------------


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    created = Node(make_settings(namespaces={"bare": {"allow_subscribe_for_client": True}}))
    yield created
    await created.stop()


async def publish(api: ServerApi, **body: Any) -> dict[str, Any]:
    result = await api.call("publish", api.decode("publish", msgspec.json.encode(body)))
    return dict(result)


async def received(conn: Conn) -> list[Any]:
    await settle()
    return [r["push"]["pub"]["data"] for r in conn.transport.take() if "pub" in r.get("push", {})]


@pytest.mark.parametrize("channel", ["news", "bare:x"], ids=["with-history", "no-history"])
async def test_retried_publish_is_delivered_once(node: Node, channel: str) -> None:
    api = ServerApi(node)
    conn = Conn(node)
    await conn.connect("u1")
    await conn.subscribe(channel)
    conn.transport.take()
    first = await publish(api, channel=channel, data=1, idempotency_key="k1")
    again = await publish(api, channel=channel, data=1, idempotency_key="k1")
    assert again == first
    assert await received(conn) == [1]
    other = await publish(api, channel=channel, data=2, idempotency_key="k2")
    assert await received(conn) == [2]
    if channel == "news":
        assert (first["offset"], other["offset"]) == (1, 2)
        pubs, top = await node.history.read("news")
        assert [p.offset for p in pubs] == [1, 2] and top.offset == 2


async def test_keys_are_per_channel(node: Node) -> None:
    api = ServerApi(node)
    a = await publish(api, channel="a", data=1, idempotency_key="same")
    b = await publish(api, channel="b", data=1, idempotency_key="same")
    assert (a["offset"], b["offset"]) == (1, 1)
    assert (await node.history.position("b")).offset == 1


async def test_without_key_every_publish_counts(node: Node) -> None:
    api = ServerApi(node)
    await publish(api, channel="news", data=1)
    second = await publish(api, channel="news", data=1)
    assert second["offset"] == 2


async def test_broadcast_retry_is_idempotent_per_channel(node: Node) -> None:
    api = ServerApi(node)
    body = msgspec.json.encode({"channels": ["a", "b"], "data": 1, "idempotency_key": "bk"})
    first = await api.call("broadcast", api.decode("broadcast", body))
    again = await api.call("broadcast", api.decode("broadcast", body))
    assert first == again
    assert (await node.history.position("a")).offset == 1
    assert (await node.history.position("b")).offset == 1
