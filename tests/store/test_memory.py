"""MemoryHistoryStore specifics (the shared contract is in tests/conformance)."""

from __future__ import annotations

import pytest
from msgspec import Raw

from tidings.protocol.centrifuge.messages import Publication
from tidings.store.base import Position, StreamLimitReached
from tidings.store.memory import META_TTL, MemoryHistoryStore
from tidings.testing import FakeClock


def pub(n: int) -> Publication:
    return Publication(data=Raw(str(n).encode()))


async def test_append_sets_the_offset_on_the_publication() -> None:
    store = MemoryHistoryStore(clock=FakeClock())
    p = pub(1)
    position = await store.append("c", p, 10, 60)
    assert p.offset == position.offset == 1


async def test_top_is_known_without_io_only_after_use() -> None:
    store = MemoryHistoryStore(clock=FakeClock())
    assert store.top("c") is None
    position = await store.append("c", pub(1), 10, 60)
    assert store.top("c") == position


async def test_sweep_forgets_idle_expired_streams_with_a_new_epoch() -> None:
    clock = FakeClock()
    store = MemoryHistoryStore(clock=clock)
    old = await store.append("c", pub(1), 10, 5)
    clock.advance(6)
    await store.sweep()
    assert store.top("c") == old, "offset and epoch outlive the publications for META_TTL"
    clock.advance(META_TTL)
    await store.sweep()
    assert store.top("c") is None, "an expired, empty stream is dropped"
    new = await store.position("c")
    assert new.offset == 0 and new.epoch != old.epoch


async def test_looking_at_unknown_channels_does_not_keep_streams_forever() -> None:
    clock = FakeClock()
    store = MemoryHistoryStore(clock=clock)
    await store.position("never-published")
    await store.read("never-published-either")
    assert await store.num_streams() == 0, "a look creates no stream at all"
    assert store.top("never-published") is None
    assert store.top("never-published-either") is None


async def test_sweep_keeps_streams_with_live_publications() -> None:
    clock = FakeClock()
    store = MemoryHistoryStore(clock=clock)
    old = await store.append("c", pub(1), 10, 5)
    clock.advance(3)
    await store.sweep()
    assert await store.position("c") == old


async def test_idempotency_key_appends_once() -> None:
    store = MemoryHistoryStore(clock=FakeClock())
    first = await store.append("c", pub(1), 10, 60, idempotency_key="k")
    again_pub = pub(1)
    again = await store.append("c", again_pub, 10, 60, idempotency_key="k")
    assert again == first
    assert again_pub.offset == 0, "a duplicate is not assigned an offset"
    assert await store.find("c", "k") == 1
    assert await store.find("c", "other") == 0
    assert await store.find("unknown", "k") == 0
    pubs, _ = await store.read("c")
    assert [p.offset for p in pubs] == [1]


async def test_idempotency_keys_are_bounded_by_size() -> None:
    store = MemoryHistoryStore(clock=FakeClock())
    for n in range(3):
        await store.append("c", pub(n), 2, 60, idempotency_key=f"k{n}")
    assert await store.find("c", "k0") == 0, "the oldest key went with its publication"
    assert await store.find("c", "k2") == 3


async def test_acks_only_move_forward() -> None:
    store = MemoryHistoryStore(clock=FakeClock())
    top = await store.append("c", pub(1), 10, 60)
    await store.append("c", pub(2), 10, 60)
    assert await store.acked("u", "c") is None
    ack = await store.ack("u", "c", Position(2, top.epoch), "client-1")
    assert (ack.offset, ack.epoch, ack.client) == (2, top.epoch, "client-1")
    back = await store.ack("u", "c", Position(1, top.epoch), "client-2")
    assert back.offset == 2, "an ack never moves backwards"
    acked = await store.acked("u", "c")
    assert acked is not None and acked.offset == 2
    assert [u for u, _ in await store.acks("c", 2)] == ["u"]
    assert await store.acks("c", 3) == []


async def test_read_does_not_let_callers_change_the_stream() -> None:
    store = MemoryHistoryStore(clock=FakeClock())
    await store.append("c", pub(1), 10, 60)
    pubs, _ = await store.read("c")
    pubs.clear()
    again, _ = await store.read("c")
    assert len(again) == 1


async def test_max_streams_refuses_a_new_stream_until_sweep_makes_room() -> None:
    clock = FakeClock()
    store = MemoryHistoryStore(clock=clock, max_streams=2)
    await store.append("a", pub(1), 10, 5)
    await store.append("b", pub(1), 10, 5)
    with pytest.raises(StreamLimitReached, match=r"history_max_streams \(2\)"):
        await store.append("c", pub(1), 10, 5)
    assert await store.append("a", pub(2), 10, 5) == Position(2, (await store.position("a")).epoch)
    assert await store.num_streams() == 2
    clock.advance(META_TTL + 10)
    await store.sweep()
    assert (await store.append("c", pub(1), 10, 5)).offset == 1


async def test_unlimited_streams_with_max_streams_0() -> None:
    store = MemoryHistoryStore(clock=FakeClock(), max_streams=0)
    for n in range(50):
        await store.append(f"c{n}", pub(1), 10, 5)
    assert await store.num_streams() == 50


async def test_the_epoch_of_a_never_published_channel_changes_only_with_the_era() -> None:
    clock = FakeClock()
    store = MemoryHistoryStore(clock=clock)
    seen = await store.position("c")
    clock.advance(META_TTL / 3)
    assert await store.position("c") == seen
    assert (await store.position("d")).epoch != seen.epoch, "channels share no epoch"
    clock.advance(META_TTL)
    assert (await store.position("c")).epoch != seen.epoch
    assert await store.num_streams() == 0
