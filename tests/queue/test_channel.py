"""Channel: RDY, fair distribution, timeouts, REQ, deferral, dead letters, recovery."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidings.queue.channel import Channel, MessageStateError
from tidings.queue.message import ChannelMessage, StoredMessage
from tidings.queue.progress import ChannelProgress
from tidings.testing.clock import FakeClock


class FakeTopic:
    name = "t"

    def __init__(self) -> None:
        self.messages: list[StoredMessage] = []

    @classmethod
    def numbered(cls, count: int) -> FakeTopic:
        """A topic holding `count` messages, their bodies b"0", b"1", ..."""
        topic = cls()
        for i in range(count):
            topic.add(b"%d" % i)
        return topic

    @property
    def committed(self) -> int:
        return len(self.messages)

    def add(self, body: bytes, deliver_at_ms: int = 0) -> int:
        seq = len(self.messages)
        self.messages.append(StoredMessage(seq, 1, deliver_at_ms, body))
        return seq

    def read(self, seq: int, max_bytes: int) -> list[StoredMessage]:
        return self.messages[seq : seq + 3]


class FakeConsumer:
    def __init__(self, ident: int, rdy: int, msg_timeout: float = 10.0) -> None:
        self.id = ident
        self.rdy = rdy
        self.in_flight = 0
        self.msg_timeout = msg_timeout
        self.got: list[ChannelMessage] = []
        self.closed = False

    def capacity(self) -> int:
        return self.rdy - self.in_flight

    def deliver(self, message: ChannelMessage) -> None:
        # A snapshot: the channel keeps mutating its own object (attempts).
        self.got.append(ChannelMessage(message.seq, 0, message.body, message.attempts))

    def channel_closed(self) -> None:
        self.closed = True


class Wall:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms


def make(
    topic: FakeTopic,
    progress: ChannelProgress | None = None,
    dead: list[ChannelMessage] | None = None,
) -> tuple[Channel, FakeClock, Wall]:
    clock, wall = FakeClock(), Wall()

    def dead_letter(channel: Channel, message: ChannelMessage) -> None:
        assert dead is not None
        dead.append(message)
        channel.dead_lettered(message, ok=True)

    channel = Channel(
        "c",
        topic,
        progress or ChannelProgress(None, 0),
        clock=clock,
        wall_ms=wall,
        dead_letter=dead_letter if dead is not None else None,
    )
    return channel, clock, wall


def test_rdy_limits_in_flight_and_fin_frees_a_slot() -> None:
    topic = FakeTopic.numbered(10)
    channel, _, _ = make(topic)
    consumer = FakeConsumer(1, rdy=3)
    channel.add_consumer(consumer)
    assert [m.seq for m in consumer.got] == [0, 1, 2]
    assert consumer.in_flight == 3
    channel.finish(consumer, 1)
    assert [m.seq for m in consumer.got] == [0, 1, 2, 3]
    with pytest.raises(MessageStateError, match="not in flight"):
        channel.finish(consumer, 1)


def test_messages_are_shared_fairly() -> None:
    topic = FakeTopic.numbered(100)
    channel, _, _ = make(topic)
    consumers = [FakeConsumer(i, rdy=1000) for i in (1, 2, 3)]
    for consumer in consumers:
        channel.consumers[consumer.id] = consumer
    channel.pump()
    counts = [len(c.got) for c in consumers]
    assert sum(counts) == 100 and max(counts) - min(counts) <= 1
    seqs = sorted(m.seq for c in consumers for m in c.got)
    assert seqs == list(range(100))


def test_only_the_owner_may_finish() -> None:
    topic = FakeTopic()
    topic.add(b"x")
    channel, _, _ = make(topic)
    owner, other = FakeConsumer(1, rdy=1), FakeConsumer(2, rdy=1)
    channel.add_consumer(owner)
    channel.add_consumer(other)
    with pytest.raises(MessageStateError, match="does not own"):
        channel.finish(other, 0)


def test_timeout_redelivers_to_another_consumer() -> None:
    topic = FakeTopic()
    topic.add(b"x")
    channel, clock, _ = make(topic)
    silent = FakeConsumer(1, rdy=1, msg_timeout=5)
    channel.add_consumer(silent)
    healthy = FakeConsumer(2, rdy=1)
    channel.add_consumer(healthy)
    assert len(silent.got) == 1 and not healthy.got
    clock.advance(4)
    channel.touch(silent, 0)
    clock.advance(4)
    channel.tick()
    assert not healthy.got  # touched: the deadline moved
    silent.rdy = 0
    clock.advance(2)
    channel.tick()
    assert [m.attempts for m in healthy.got] == [2]
    assert channel.timeout_count == 1


def test_req_with_delay_defers() -> None:
    topic = FakeTopic()
    topic.add(b"x")
    channel, _, wall = make(topic)
    consumer = FakeConsumer(1, rdy=5)
    channel.add_consumer(consumer)
    channel.requeue(consumer, 0, 1000)
    assert len(channel.deferred) == 1 and len(consumer.got) == 1
    wall.ms += 999
    channel.tick()
    assert len(consumer.got) == 1
    wall.ms += 1
    channel.tick()
    assert [m.attempts for m in consumer.got] == [1, 2]


def test_dpub_waits_for_its_time() -> None:
    topic = FakeTopic()
    channel, _, wall = make(topic)
    topic.add(b"later", deliver_at_ms=wall.ms + 500)
    topic.add(b"now")
    consumer = FakeConsumer(1, rdy=5)
    channel.add_consumer(consumer)
    assert [m.body for m in consumer.got] == [b"now"]
    assert channel.retention_floor() == 0  # the deferred message keeps the log
    wall.ms += 500
    channel.tick()
    assert [m.body for m in consumer.got] == [b"now", b"later"]


def test_max_attempts_dead_letters() -> None:
    topic = FakeTopic()
    topic.add(b"poison")
    dead: list[ChannelMessage] = []
    channel, _, _ = make(topic, ChannelProgress(None, 0, max_attempts=2), dead)
    consumer = FakeConsumer(1, rdy=5)
    channel.add_consumer(consumer)
    channel.requeue(consumer, 0, 0)
    assert len(consumer.got) == 2
    channel.requeue(consumer, 0, 0)
    assert [m.body for m in dead] == [b"poison"]
    assert len(consumer.got) == 2 and 0 in channel.progress.acked


def test_disconnect_requeues_at_once() -> None:
    topic = FakeTopic()
    topic.add(b"x")
    channel, _, _ = make(topic)
    first, second = FakeConsumer(1, rdy=1), FakeConsumer(2, rdy=1)
    channel.add_consumer(first)
    channel.add_consumer(second)
    channel.remove_consumer(first)
    assert [m.seq for m in second.got] == [0]


def test_recovery_skips_finished_and_redelivers_the_rest(tmp_path: Path) -> None:
    topic = FakeTopic.numbered(6)
    channel, _, wall = make(topic, ChannelProgress(tmp_path, 0))
    consumer = FakeConsumer(1, rdy=10)
    channel.add_consumer(consumer)
    channel.finish(consumer, 0)
    channel.checkpoint()
    channel.finish(consumer, 2)
    channel.requeue(consumer, 3, 60_000)
    channel.progress.flush()
    # crash: no close. Restart from the files.
    again, _, wall2 = make(topic, ChannelProgress(tmp_path, 0))
    wall2.ms = wall.ms
    fresh = FakeConsumer(1, rdy=10)
    again.add_consumer(fresh)
    assert [m.seq for m in fresh.got] == [1, 4, 5]
    assert [m.attempts for m in fresh.got] == [2, 2, 2]
    assert list(again.deferred) == [3]


def test_empty_drops_everything() -> None:
    topic = FakeTopic.numbered(5)
    channel, _, _ = make(topic)
    consumer = FakeConsumer(1, rdy=2)
    channel.add_consumer(consumer)
    channel.empty()
    assert channel.depth == 0 and not channel.in_flight and consumer.in_flight == 0
    topic.add(b"new")
    channel.wake()
    assert consumer.got[-1].body == b"new"


def test_touch_flood_keeps_one_timer_per_message() -> None:
    topic = FakeTopic()
    topic.add(b"x")
    channel, clock, _ = make(topic)
    consumer = FakeConsumer(1, rdy=1, msg_timeout=5)
    channel.add_consumer(consumer)
    for _ in range(10_000):
        channel.touch(consumer, 0)
    assert len(channel._timeouts) == 1
    clock.advance(4)
    channel.touch(consumer, 0)
    clock.advance(4)
    channel.tick()  # the first deadline passed, the touched one did not
    assert channel.timeout_count == 0 and len(channel._timeouts) == 1
    clock.advance(2)
    channel.tick()
    assert channel.timeout_count == 1


def test_one_stuck_message_does_not_grow_the_state(tmp_path: Path) -> None:
    topic = FakeTopic()
    channel, _, _ = make(topic, ChannelProgress(tmp_path, 0))
    stuck = FakeConsumer(1, rdy=1)
    channel.add_consumer(stuck)
    busy = FakeConsumer(2, rdy=1000)
    for i in range(1000):
        topic.add(b"%d" % i)
    channel.add_consumer(busy)
    for message in busy.got:
        channel.finish(busy, message.seq)
    channel.checkpoint()
    assert len(channel.progress.acked) == 0  # the floor moved past all of them
    assert channel.progress.deferred == {stuck.got[0].seq: 0}  # the stuck one, listed alone
    assert channel.retention_floor() == stuck.got[0].seq  # its record stays on disk
    # Restart: only the stuck message comes again.
    again, _, _ = make(topic, ChannelProgress(tmp_path, 0))
    fresh = FakeConsumer(3, rdy=1000)
    again.add_consumer(fresh)
    assert [m.seq for m in fresh.got] == [stuck.got[0].seq]
    assert fresh.got[0].body == stuck.got[0].body and fresh.got[0].attempts == 2


def test_touch_cannot_extend_beyond_max_msg_timeout() -> None:
    topic = FakeTopic()
    topic.add(b"x")
    clock, wall = FakeClock(), Wall()
    channel = Channel(
        "c", topic, ChannelProgress(None, 0), max_msg_timeout=12, clock=clock, wall_ms=wall
    )
    consumer = FakeConsumer(1, rdy=1, msg_timeout=5)
    channel.add_consumer(consumer)
    for _ in range(5):
        clock.advance(4)
        channel.touch(consumer, 0)
        channel.tick()
    assert channel.timeout_count == 1  # at 12 s after delivery, touched or not
