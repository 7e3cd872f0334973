"""The conformance checks every `PresenceStore` implementation must pass.

Usage, from a test suite::

    await check_presence_store(MemoryPresenceStore)

The factory returns a fresh, empty store. Each check is also available alone
in `PRESENCE_STORE_CHECKS`.

Stores shared by several nodes (`entry_ttl > 0`) also pass
`check_presence_expiry(pair)`, whose factory takes a `FakeClock` and returns
two stores on one engine (two nodes) that measure expiry with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from msgspec import Raw

from tidings.presence.base import PresenceStore
from tidings.protocol.centrifuge.messages import ClientInfo
from tidings.testing.clock import FakeClock

PresenceStoreFactory = Callable[[], PresenceStore]
PresenceStoreCheck = Callable[[PresenceStoreFactory], Awaitable[None]]
PresencePairFactory = Callable[[FakeClock], tuple[PresenceStore, PresenceStore]]
PresenceExpiryCheck = Callable[[PresencePairFactory], Awaitable[None]]


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


@asynccontextmanager
async def _open(factory: PresenceStoreFactory) -> AsyncIterator[PresenceStore]:
    store = factory()
    try:
        yield store
    finally:
        await store.close()


def _info(client: str, user: str, conn_info: bytes = b"") -> ClientInfo:
    return ClientInfo(user=user, client=client, conn_info=Raw(conn_info) if conn_info else Raw())


async def check_empty_channel(factory: PresenceStoreFactory) -> None:
    """Nobody is present in a channel nobody joined."""
    async with _open(factory) as store:
        got = await store.get("nobody")
        _expect(got == {}, f"empty channel has presence {got}")
        stats = await store.stats("nobody")
        _expect(stats == (0, 0), f"empty channel has stats {stats}")


async def check_add_get(factory: PresenceStoreFactory) -> None:
    """After `add`, `get` returns the client's info under its client id."""
    async with _open(factory) as store:
        info = _info("c1", "u1", b'{"name":"ann"}')
        await store.add("room", info)
        got = await store.get("room")
        _expect(set(got) == {"c1"}, f"presence has clients {set(got)}, expected c1")
        _expect(got["c1"].user == "u1", f"user came back as {got['c1'].user!r}")
        _expect(got["c1"].client == "c1", f"client came back as {got['c1'].client!r}")
        _expect(
            bytes(got["c1"].conn_info) == b'{"name":"ann"}',
            f"conn_info came back as {bytes(got['c1'].conn_info)!r}",
        )
        _expect(await store.stats("room") == (1, 1), "stats after one add is not (1, 1)")


async def check_stats_count_distinct_users(factory: PresenceStoreFactory) -> None:
    """`stats` counts connections and distinct users."""
    async with _open(factory) as store:
        await store.add("room", _info("c1", "u1"))
        await store.add("room", _info("c2", "u1"))
        stats = await store.stats("room")
        _expect(stats == (2, 1), f"two connections of one user: stats {stats}, expected (2, 1)")
        await store.add("room", _info("c3", "u2"))
        stats = await store.stats("room")
        _expect(stats == (3, 2), f"three connections of two users: stats {stats}, expected (3, 2)")


async def check_add_twice_replaces(factory: PresenceStoreFactory) -> None:
    """Adding the same client again updates its info; it is still one client."""
    async with _open(factory) as store:
        await store.add("room", _info("c1", "u1", b"1"))
        await store.add("room", _info("c1", "u1", b"2"))
        got = await store.get("room")
        _expect(list(got) == ["c1"], f"re-adding c1 gave clients {list(got)}")
        _expect(bytes(got["c1"].conn_info) == b"2", "re-adding c1 did not update its info")
        _expect(await store.stats("room") == (1, 1), "re-adding c1 counted it twice")


async def check_remove(factory: PresenceStoreFactory) -> None:
    """`remove` forgets one client in one channel; removing an absent one is no error."""
    async with _open(factory) as store:
        await store.add("room", _info("c1", "u1"))
        await store.add("room", _info("c2", "u2"))
        await store.add("hall", _info("c1", "u1"))
        await store.remove("room", "c1")
        got = await store.get("room")
        _expect(set(got) == {"c2"}, f"after removing c1, room has {set(got)}")
        _expect(await store.stats("room") == (1, 1), "stats still count the removed client")
        _expect(set(await store.get("hall")) == {"c1"}, "remove in room removed c1 from hall")
        await store.remove("room", "c1")
        await store.remove("nowhere", "c9")
        await store.remove("room", "c2")
        _expect(await store.get("room") == {}, "room is not empty after everyone left")
        _expect(await store.stats("room") == (0, 0), "stats of an emptied room are not (0, 0)")


async def check_channels_independent(factory: PresenceStoreFactory) -> None:
    """Presence in one channel says nothing about another."""
    async with _open(factory) as store:
        await store.add("a", _info("c1", "u1"))
        await store.add("b", _info("c2", "u2"))
        _expect(set(await store.get("a")) == {"c1"}, "channel a sees clients of b")
        _expect(set(await store.get("b")) == {"c2"}, "channel b sees clients of a")


async def check_get_returns_copy(factory: PresenceStoreFactory) -> None:
    """Changing the dict `get` returned does not change the store."""
    async with _open(factory) as store:
        await store.add("room", _info("c1", "u1"))
        got = await store.get("room")
        got.clear()
        _expect(set(await store.get("room")) == {"c1"}, "clearing get()'s result emptied the store")


async def check_presence_expiry(pair: PresencePairFactory) -> None:
    """The clients of a node that stops refreshing vanish within `entry_ttl`; others stay."""
    clock = FakeClock()
    a, b = pair(clock)
    try:
        ttl = a.entry_ttl
        _expect(ttl > 0, f"{type(a).__name__} has no entry_ttl: it cannot expire entries")
        await a.add("room", _info("c1", "u1"))
        await b.add("room", _info("c2", "u2"))
        await b.add("room", _info("c3", "u2"))
        for name, store in (("A", a), ("B", b)):
            stats = await store.stats("room")
            _expect(stats == (3, 2), f"node {name} sees stats {stats}, expected (3, 2)")
        clock.advance(ttl * 0.6)
        await b.refresh()
        await a.close()  # node A dies: nobody refreshes c1 any more
        _expect(
            set(await b.get("room")) == {"c1", "c2", "c3"},
            "an entry vanished before its entry_ttl",
        )
        clock.advance(ttl * 0.6)
        got = set(await b.get("room"))
        _expect(got == {"c2", "c3"}, f"after the dead node's ttl, presence is {got}")
        stats = await b.stats("room")
        _expect(stats == (2, 1), f"after the dead node's ttl, stats are {stats}")
        await b.remove("room", "c3")
        await b.refresh()
        clock.advance(ttl * 0.6)
        got = set(await b.get("room"))
        _expect(got == {"c2"}, f"refresh kept or revived the wrong entries: {got}")
    finally:
        await b.close()


async def check_presence_node_gone(pair: PresencePairFactory) -> None:
    """After `node_gone(A)`, B's reads leave A's clients out at once; `node_back` undoes it.

    The pair's stores must have distinct `node_id`s (the node each adds clients for).
    """
    a, b = pair(FakeClock())
    try:
        _expect(a.node_id != b.node_id, "the two stores of a pair share a node_id")
        await a.add("room", _info("c1", "u1"))
        await a.add("hall", _info("c1", "u1"))
        await b.add("room", _info("c2", "u2"))
        _expect(await b.stats("room") == (2, 2), "both nodes' clients do not count")
        b.node_gone(a.node_id)
        got = set(await b.get("room"))
        _expect(got == {"c2"}, f"after node_gone(A), presence is {got}")
        stats = await b.stats("hall")
        _expect(stats == (0, 0), f"after node_gone(A), stats of A's channel are {stats}")
        # A was only cut off: it is heard again and refreshes its clients
        b.node_back(a.node_id)
        await a.refresh()
        got = set(await b.get("room"))
        _expect(got == {"c1", "c2"}, f"after node_back(A) and A's refresh, presence is {got}")
    finally:
        await a.close()
        await b.close()


PRESENCE_STORE_CHECKS: tuple[PresenceStoreCheck, ...] = (
    check_empty_channel,
    check_add_get,
    check_stats_count_distinct_users,
    check_add_twice_replaces,
    check_remove,
    check_channels_independent,
    check_get_returns_copy,
)


async def check_presence_store(factory: PresenceStoreFactory) -> None:
    """Run every check in `PRESENCE_STORE_CHECKS`; raises AssertionError on the first failure."""
    for check in PRESENCE_STORE_CHECKS:
        await check(factory)
