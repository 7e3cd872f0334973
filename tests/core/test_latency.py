"""Latency histograms and the store timing used by the metrics."""

from __future__ import annotations

from tidings.core.latency import BUCKETS, LatencyHistogram, LatencyTable
from tidings.core.traffic import time_store
from tidings.store.base import Position
from tidings.store.memory import MemoryHistoryStore


def test_cumulative_buckets() -> None:
    histogram = LatencyHistogram()
    for seconds in (0.0001, 0.003, 0.003, 20.0):
        histogram.observe(seconds)
    pairs = dict(histogram.cumulative())
    assert pairs[str(BUCKETS[0])] == 1
    assert pairs["0.005"] == 3
    assert pairs["10.0"] == 3
    assert pairs["+Inf"] == 4
    assert histogram.count == 4
    assert abs(histogram.sum - 20.0061) < 1e-9


async def test_store_operations_are_timed_by_name() -> None:
    store = MemoryHistoryStore()
    table = LatencyTable()
    time_store(store, table)
    from tidings.protocol.centrifuge.messages import Publication, raw

    await store.append("c", Publication(data=raw(b"1")), 10, 60.0)
    await store.read("c", Position(0, (await store.position("c")).epoch))
    assert table.by_key["append"].count == 1
    assert table.by_key["read"].count == 1
    assert table.by_key["position"].count == 1


def test_a_store_with_slots_is_left_alone() -> None:
    class Slotted:
        __slots__ = ()

        async def append(self) -> None:
            return None

    time_store(Slotted(), LatencyTable())  # no error
