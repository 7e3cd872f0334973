"""Recovery: positions and missed publications, bounded in bytes."""

from __future__ import annotations

from msgspec import Raw

from tidings.core.outbox import encoded_size
from tidings.core.recovery import Recovery
from tidings.protocol.centrifuge.messages import Publication, SubscribeResult
from tidings.store.base import Position
from tidings.store.memory import MemoryHistoryStore
from tidings.testing import FakeClock


async def filled(count: int, pad: int = 100) -> tuple[Recovery, dict[str, int], Position]:
    store = MemoryHistoryStore(clock=FakeClock())
    for n in range(count):
        data = Raw(f'{{"n":{n},"pad":"{"x" * pad}"}}'.encode())
        top = await store.append("c", Publication(data=data), 1000, 3600)
    counters = {"unrecovered_reply_size": 0}
    return Recovery(store, counters), counters, top


async def test_position_only_without_since() -> None:
    recovery, _, top = await filled(3)
    result = SubscribeResult()
    await recovery.fill("c", result, None, budget=0)
    assert (result.offset, result.epoch, result.positioned) == (3, top.epoch, True)
    assert not result.was_recovering and result.publications is None


async def test_recovers_within_the_budget() -> None:
    recovery, counters, top = await filled(5)
    result = SubscribeResult()
    await recovery.fill("c", result, Position(2, top.epoch), budget=10_000)
    assert result.recovered and [p.offset for p in result.publications or []] == [3, 4, 5]
    assert counters["unrecovered_reply_size"] == 0


async def test_beyond_the_budget_nothing_is_recovered() -> None:
    recovery, counters, top = await filled(5)
    result = SubscribeResult()
    await recovery.fill("c", result, Position(0, top.epoch), budget=300)
    assert result.was_recovering and not result.recovered and result.publications is None
    assert result.offset == 5, "positioned at the top"
    assert counters["unrecovered_reply_size"] == 1


async def test_newest_that_fit_leaves_the_oldest_out() -> None:
    recovery, counters, top = await filled(10)
    one = encoded_size([(await recovery.history.read("c", limit=1))[0][0]])
    result = SubscribeResult()
    await recovery.fill(
        "c", result, Position(0, top.epoch), budget=3 * one + 8, newest_that_fit=True
    )
    assert result.recovered and [p.offset for p in result.publications or []] == [8, 9, 10]
    assert counters["unrecovered_reply_size"] == 0
