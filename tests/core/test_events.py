"""The event dispatcher: typed fan-out through bounded queues, never blocking."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from tests.core.conftest import settle
from tidings.core.events import Event, EventDispatcher, EventType


@pytest.fixture
async def dispatcher() -> AsyncIterator[EventDispatcher]:
    events = EventDispatcher()
    events.start()
    yield events
    await events.stop()


async def test_delivers_to_subscribers_of_the_type(dispatcher: EventDispatcher) -> None:
    connected = dispatcher.subscribe(EventType.CONNECTED)
    connected_too = dispatcher.subscribe(EventType.CONNECTED)
    published = dispatcher.subscribe(EventType.PUBLISHED)
    event = Event(EventType.CONNECTED, client="c1", user="u1")
    dispatcher.emit(event)
    await settle()
    assert connected.get_nowait() is event
    assert connected_too.get_nowait() is event
    assert published.empty()
    assert dispatcher.dispatched[EventType.CONNECTED] == 2


async def test_events_keep_their_order(dispatcher: EventDispatcher) -> None:
    queue = dispatcher.subscribe(EventType.PUBLISHED)
    for n in range(5):
        dispatcher.emit(Event(EventType.PUBLISHED, channel=f"c{n}"))
    await settle()
    assert [queue.get_nowait().channel for _ in range(5)] == [f"c{n}" for n in range(5)]


async def test_wants_and_unsubscribe(dispatcher: EventDispatcher) -> None:
    assert not dispatcher.wants(EventType.SUBSCRIBED)
    queue = dispatcher.subscribe(EventType.SUBSCRIBED)
    assert dispatcher.wants(EventType.SUBSCRIBED)
    dispatcher.unsubscribe(EventType.SUBSCRIBED, queue)
    dispatcher.unsubscribe(EventType.SUBSCRIBED, queue)  # twice is fine
    assert not dispatcher.wants(EventType.SUBSCRIBED)
    dispatcher.emit(Event(EventType.SUBSCRIBED))
    await settle()
    assert queue.empty()


async def test_events_nobody_wants_are_not_queued() -> None:
    events = EventDispatcher(inbound_size=1)
    events.emit(Event(EventType.CONNECTED))
    events.emit(Event(EventType.CONNECTED))
    assert events.dropped == {}, "unwanted events are skipped, not dropped"


async def test_full_subscriber_queue_drops_and_counts(dispatcher: EventDispatcher) -> None:
    queue = dispatcher.subscribe(EventType.PUBLISHED, maxsize=2)
    for n in range(5):
        dispatcher.emit(Event(EventType.PUBLISHED, channel=str(n)))
    await settle()
    assert queue.qsize() == 2
    assert [queue.get_nowait().channel for _ in range(2)] == ["0", "1"]
    assert dispatcher.dropped[EventType.PUBLISHED] == 3
    assert dispatcher.dispatched[EventType.PUBLISHED] == 2


async def test_full_inbound_queue_drops_without_blocking(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events = EventDispatcher(inbound_size=2)  # not started: nothing drains the inbound queue
    events.subscribe(EventType.DISCONNECTED)
    with caplog.at_level(logging.WARNING, logger="tidings.core.events"):
        for _ in range(6):
            events.emit(Event(EventType.DISCONNECTED))
    assert events.dropped[EventType.DISCONNECTED] == 4
    # Logged at the 1st, 2nd and 4th drop, not every time.
    assert len([r for r in caplog.records if "dropped" in r.message]) == 3


async def test_a_slow_subscriber_does_not_hold_up_another(dispatcher: EventDispatcher) -> None:
    slow = dispatcher.subscribe(EventType.PUBLISHED, maxsize=1)
    fast = dispatcher.subscribe(EventType.PUBLISHED, maxsize=100)
    for _ in range(10):
        dispatcher.emit(Event(EventType.PUBLISHED))
    await settle()
    assert slow.qsize() == 1
    assert fast.qsize() == 10


async def test_start_twice_and_stop_twice() -> None:
    events = EventDispatcher()
    events.start()
    events.start()
    queue = events.subscribe(EventType.CONNECTED)
    events.emit(Event(EventType.CONNECTED))
    await settle()
    assert queue.qsize() == 1, "a second start must not add a second delivery loop"
    await events.stop()
    await events.stop()
    events.emit(Event(EventType.CONNECTED))
    await asyncio.sleep(0)
    assert queue.qsize() == 1, "a stopped dispatcher delivers nothing"


def test_event_is_frozen() -> None:
    event = Event(EventType.CONNECTED, client="c")
    with pytest.raises(AttributeError):
        event.client = "d"  # type: ignore[misc]
    assert event.detail == {}
