"""MemoryPresenceStore specifics (the shared contract is in tests/conformance)."""

from __future__ import annotations

from tidings.presence.memory import MemoryPresenceStore
from tidings.protocol.centrifuge.messages import ClientInfo


async def test_empty_channels_are_forgotten() -> None:
    store = MemoryPresenceStore()
    await store.add("room", ClientInfo(user="u", client="c"))
    await store.remove("room", "c")
    assert store._channels == {}, "an emptied channel must not keep memory"


async def test_many_clients_of_one_user() -> None:
    store = MemoryPresenceStore()
    for n in range(50):
        await store.add("room", ClientInfo(user="u", client=f"c{n}"))
    assert await store.stats("room") == (50, 1)
    for n in range(49):
        await store.remove("room", f"c{n}")
    assert await store.stats("room") == (1, 1)
    assert set(await store.get("room")) == {"c49"}


async def test_anonymous_clients_count_as_one_user() -> None:
    store = MemoryPresenceStore()
    await store.add("room", ClientInfo(user="", client="a"))
    await store.add("room", ClientInfo(user="", client="b"))
    assert await store.stats("room") == (2, 1)
